"""Value estimators sharing one interface: `fit(trajectories, key)`.

    est = atd.TD(network=atd.networks.mlp((64, 64)), optimizer=optax.adam(1e-3),
                 gamma=0.99, steps=2000, batch_size=128)
    value_fn = est.fit(trajectories, key=jax.random.key(0))
    values = value_fn(observations)          # any leading batch shape
    value_fn.params, value_fn.history        # losses and method traces

Every `fit` is one jitted program: minibatches are sampled on device, the
updates run inside `lax.scan`, and ensemble members are vmapped. Passing a
batch of keys (`jax.random.split(key, S)`) fits S seeds of the same
configuration at once, vmapped inside the same program; the value function
then returns `[S, ...]` values and `value_fn.seed(i)` selects one. The jitted
program is kept on the estimator, so a second `fit` with data of the same
shapes does not recompile.

Monte Carlo targets of truncated or mid-episode-cut segments bootstrap from a
stop-gradient value of the segment's final observation (the estimator's own
value for `MonteCarlo`, the ensemble mean for `AdaptiveTD`); termination never
bootstraps.

The bootstrapping estimators (`TD`, `NStepTD`, `TDLambda`) take
`target_update_period`: None (the default) bootstraps from the parameters
being trained; an int k bootstraps from a copy of them taken before every
k-th step (a target network, carried in the scan state; it starts at the
initial parameters, and k = 1 is the same as None).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from functools import partial
from typing import Any

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np
import optax

from adaptive_td import networks as networks_lib
from adaptive_td import returns, training
from adaptive_td.data import Trajectories
from adaptive_td.training import MultiStep, Transitions

# -- training runs -------------------------------------------------------------


def _whole(chunk, earlier, index):
    return chunk


def _no_options(chunk):
    return {}


@dataclasses.dataclass(frozen=True)
class Run:
    """One training run of a fit: `steps` updates of `loss` from `params`.

    A fit is a list of runs (`_Estimator._runs`), each trained after the ones
    before it: one for most estimators; the MC ensemble, then the TD network
    for Adaptive TD. The same runs drive the in-memory fit (one data set) and
    `adaptive_td.streaming.fit` (the data set in chunks, a `TrainState`
    carried from one chunk to the next).

    Attributes:
      loss: `loss(params, batch[, target_params]) -> (loss, aux)`.
      params: the initial parameters; with a leading member axis when
        `members`.
      key: the run's key; update i draws its minibatch with key i of
        `jax.random.split(key, steps)` (a `[K]` batch of keys for members).
      data: `data(chunk, earlier, index)`, the pytree the minibatches are drawn
        from, for the prepared data `chunk` (a `Transitions` or `MultiStep`),
        the final parameters of the earlier runs `earlier`, and the chunk's
        index (None for the in-memory fit).
      data_axes: with `members`, the vmap axes of `data`'s result (None for
        parts shared by all members).
      options: `options(chunk)`, keyword arguments of `training.train` that
        depend on the data (the refresh of TD(lambda)).
      target_update_period, groups: as in `training.train`.
      members: train a batch of independent members, vmapped.
    """

    loss: Callable
    params: Any
    key: jax.Array
    data: Callable[[Any, list, int | None], Any] = _whole
    data_axes: Any = None
    options: Callable[[Any], dict] = _no_options
    target_update_period: int | None = None
    groups: int | None = None
    members: bool = False


def run_steps(
    run: Run,
    optimizer,
    state: training.TrainState,
    chunk,
    train_data,
    keys,
    *,
    batch_size: int,
    count,
    active=None,
):
    """`training.train_steps` of `run` on the minibatch data `train_data`
    (`run.data(chunk, ...)`), vmapped over the members of a members run."""

    def one(state, train_data, keys):
        return training.train_steps(
            run.loss,
            optimizer,
            state,
            train_data,
            keys,
            batch_size=batch_size,
            count=count,
            active=active,
            target_update_period=run.target_update_period,
            groups=run.groups,
            **run.options(chunk),
        )

    if run.members:
        one = jax.vmap(one, in_axes=(0, run.data_axes, 0))
    return one(state, train_data, keys)


def start_state(run: Run, optimizer) -> training.TrainState:
    """The `TrainState` of `run` before its first update."""

    def init(params):
        return training.init_state(
            optimizer, params, target=run.target_update_period is not None
        )

    return jax.vmap(init)(run.params) if run.members else init(run.params)


def run_keys(run: Run, steps: int) -> jax.Array:
    """The minibatch keys of the run's updates, `[steps]` (`[K, steps]`)."""
    split = partial(jax.random.split, num=steps)
    return jax.vmap(split)(run.key) if run.members else split(run.key)


# -- fitted value functions --------------------------------------------------


def _flat_apply(apply, params, observations, obs_shape, obs_dtype):
    """Apply a network to observations with any leading batch shape."""
    obs = jnp.asarray(observations)
    if jnp.issubdtype(obs_dtype, jnp.integer) and not (
        jnp.issubdtype(obs.dtype, jnp.integer) or obs.dtype == jnp.bool_
    ):
        raise ValueError(
            f"value function: observations have dtype {obs.dtype}, but it was "
            "trained on integer observations (state indices); pass integers, "
            "or train on float observations to query between states."
        )
    if obs.dtype != obs_dtype:
        obs = obs.astype(obs_dtype)
    nd = len(obs_shape)
    if tuple(obs.shape[obs.ndim - nd :]) != tuple(obs_shape) or obs.ndim < nd:
        raise ValueError(
            f"value function: observations have shape {obs.shape}; expected "
            f"[..., *{tuple(obs_shape)}] like the training observations."
        )
    lead = obs.shape[: obs.ndim - nd]
    if obs.size == 0:
        return jnp.zeros(lead, jnp.float32)
    values = apply(params, obs.reshape((-1, *obs_shape)))
    return values.reshape(lead)


@dataclasses.dataclass
class ValueFunction:
    """A fitted value function.

    Attributes:
      params: network parameters; with a leading seed axis when several seeds
        were fitted at once.
      history: per-step traces (`loss`, and method-specific ones), `[steps]`
        or `[S, steps]`.
      num_seeds: None for a single fit, else the size of the seed axis.
    """

    apply: Callable[[Any, jax.Array], jax.Array]
    params: Any
    history: dict[str, np.ndarray]
    obs_shape: tuple[int, ...]
    obs_dtype: Any
    num_seeds: int | None = None

    def __call__(self, observations) -> jax.Array:
        """V(s) for observations `[..., *obs_shape]`: `[...]` or `[S, ...]`."""
        return self._evaluate(self.params, observations, stacked=0)

    def _evaluate(self, params, observations, stacked: int) -> jax.Array:
        """The network on `observations` for parameters stacked on `stacked`
        leading axes, plus the seed axis of a multi-seed fit."""
        fn = partial(
            _flat_apply,
            self.apply,
            observations=observations,
            obs_shape=self.obs_shape,
            obs_dtype=self.obs_dtype,
        )
        for _ in range(stacked + (self.num_seeds is not None)):
            fn = jax.vmap(fn)
        return fn(params)

    def seed(self, i: int) -> ValueFunction:
        """The value function of seed i of a multi-seed fit."""
        if self.num_seeds is None:
            raise ValueError("seed: this value function was fitted with one key.")
        if not -self.num_seeds <= i < self.num_seeds:
            raise ValueError(
                f"seed: i={i}; this value function holds {self.num_seeds} seeds "
                f"(0 to {self.num_seeds - 1})."
            )
        return self._select(i)

    def _select(self, i):
        pick = partial(jax.tree_util.tree_map, lambda x: x[i])
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        fields = {
            k: pick(v) if k in self._seeded_fields() else v for k, v in fields.items()
        }
        fields["num_seeds"] = None
        return type(self)(**fields)

    def _seeded_fields(self):
        return ("params", "history")


# -- estimators ----------------------------------------------------------------


def _transform(network) -> hk.Transformed:
    if isinstance(network, hk.Transformed):
        return hk.without_apply_rng(network)
    if not callable(network):
        raise ValueError(
            f"network={network!r}; expected a function from observations to "
            "values (e.g. atd.networks.mlp()) or an hk.Transformed."
        )
    return hk.without_apply_rng(hk.transform(network))


def _check_unit(name: str, value: float) -> float:
    if (
        isinstance(value, (bool, np.bool_))
        or np.ndim(value) != 0
        or not np.issubdtype(np.asarray(value).dtype, np.number)
        or not 0.0 <= float(value) <= 1.0
    ):
        raise ValueError(f"{name}={value!r}; expected a number in [0, 1].")
    return float(value)


def _check_positive_int(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name}={value!r}; expected an integer >= 1.")
    return int(value)


def _check_period(name: str, value: int | None) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name}={value!r}; expected None or an integer >= 1.")
    return int(value)


def _as_keys(key) -> tuple[jax.Array, bool]:
    """A batch of typed keys, and whether the caller passed a batch."""
    expected = "expected jax.random.key(seed), a batch of such keys, or an int seed"
    if isinstance(key, (bool, np.bool_)) or key is None or isinstance(key, str):
        raise ValueError(f"key={key!r}; {expected}.")
    if isinstance(key, (int, np.integer)) or (
        isinstance(key, np.ndarray) and key.ndim == 0 and key.dtype.kind in "iu"
    ):
        if not 0 <= int(key) < 2**63:
            raise ValueError(f"key={key!r}; an int seed must be in [0, 2**63).")
        key = jax.random.key(int(key))
    try:
        key = jnp.asarray(key)
    except TypeError:
        raise ValueError(f"key={key!r}; {expected}.") from None
    if not jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        if key.shape[-1:] == (2,) and key.dtype == jnp.uint32:
            key = jax.random.wrap_key_data(key)
        else:
            raise ValueError(
                f"key has dtype {key.dtype} and shape {key.shape}; expected "
                "jax.random.key(seed), a batch of such keys, or an int seed."
            )
    if key.ndim > 1:
        raise ValueError(f"key has shape {key.shape}; expected () or (num_seeds,).")
    if key.ndim == 1 and key.shape[0] == 0:
        raise ValueError("key is an empty batch of keys; expected at least one seed.")
    return (key[None], False) if key.ndim == 0 else (key, True)


class _Estimator:
    """Shared construction, validation and the multi-seed jitted fit."""

    def __init__(self, network, optimizer, gamma, steps, batch_size):
        self.network = networks_lib.mlp() if network is None else network
        self.optimizer = optax.adam(1e-3) if optimizer is None else optimizer
        if not hasattr(self.optimizer, "init") or not hasattr(self.optimizer, "update"):
            raise ValueError(
                f"optimizer={self.optimizer!r}; expected an optax "
                "GradientTransformation such as optax.adam(1e-3)."
            )
        self.gamma = _check_unit("gamma", gamma)
        self.steps = _check_positive_int("steps", steps)
        self.batch_size = _check_positive_int("batch_size", batch_size)
        self._net = _transform(self.network)
        self._fit_seeds = jax.jit(jax.vmap(self._fit_one, in_axes=(0, None, None)))
        self._fit_datasets = jax.jit(jax.vmap(self._fit_one, in_axes=(0, 0, 0)))

    def __repr__(self):
        fields = ", ".join(f"{k}={v!r}" for k, v in self._config().items())
        return f"{type(self).__name__}({fields})"

    def _config(self) -> dict[str, Any]:
        return {"gamma": self.gamma, "steps": self.steps, "batch_size": self.batch_size}

    def _init(self, key, data: Transitions):
        return self._net.init(key, data.obs[:1])

    def _runs(self, key, data) -> list[Run]:
        """The training runs of a fit with `key`; `data` gives the shapes."""
        raise NotImplementedError

    def _finish(self, params: list, histories: list) -> tuple[Any, dict]:
        """The fit's (params, history) from those of its runs."""
        return params[0], histories[0]

    def _fit_one(self, key, data, count):
        """The runs of one fit, in memory: each `self.steps` updates."""
        params, histories = [], []
        for run in self._runs(key, data):
            state, history = run_steps(
                run,
                self.optimizer,
                start_state(run, self.optimizer),
                data,
                run.data(data, params, None),
                run_keys(run, self.steps),
                batch_size=self.batch_size,
                count=count,
            )
            params.append(state.params)
            histories.append(history)
        return self._finish(params, histories)

    def fit(self, trajectories, key=0) -> ValueFunction:
        """Fit to `trajectories`; `key` is a PRNG key, a batch of keys, or an int.

        Args:
          trajectories: a `Trajectories` batch; or a list of batches, one per
            key, to fit each seed on its own data set (all vmapped in one
            program, data sets padded to equal length internally).
          key: `jax.random.key(seed)`, an int seed, or a batch of keys `[S]`
            to fit S seeds at once.

        Returns:
          A `ValueFunction` (an `AdaptiveValueFunction` for `AdaptiveTD`).
        """
        keys, batched = _as_keys(key)
        if isinstance(trajectories, (list, tuple)):
            if len(trajectories) == 0:
                raise ValueError("fit: got an empty list of trajectory batches.")
            if not batched or len(trajectories) != len(keys):
                raise ValueError(
                    f"fit: got {len(trajectories)} trajectory batches and key of "
                    f"shape {tuple(keys.shape) if batched else ()}; a list of "
                    "batches needs a batch of keys of the same length "
                    "(jax.random.split(key, len(batches)))."
                )
            datasets = [self._transitions(t) for t in trajectories]
            for i, d in enumerate(datasets):
                if d.obs.shape[1:] != datasets[0].obs.shape[1:] or (
                    d.obs.dtype != datasets[0].obs.dtype
                ):
                    raise ValueError(
                        f"fit: batch {i} has observations of shape "
                        f"{d.obs.shape[1:]} and dtype {d.obs.dtype}; batch 0 has "
                        f"{datasets[0].obs.shape[1:]} and {datasets[0].obs.dtype}. "
                        "All batches of one fit must match."
                    )
            length = max(t.batch_size * t.horizon for t in trajectories)
            data, counts = training.stack(datasets, length)
            out = self._fit_datasets(keys, data, counts)
            data = datasets[0]
        else:
            # Padded to B * T transitions, so that batches of one shape share
            # one compiled program whatever their masks.
            data = self._transitions(trajectories)
            length = trajectories.batch_size * trajectories.horizon
            padded, counts = training.stack([data], length)
            padded = jax.tree_util.tree_map(lambda x: x[0], padded)
            out = self._fit_seeds(keys, padded, counts[0])
        out = jax.tree_util.tree_map(lambda x: x if batched else x[0], out)
        return self._value_function(out, data, num_seeds=len(keys) if batched else None)

    def _transitions(self, trajectories) -> Transitions:
        if not isinstance(trajectories, Trajectories):
            raise ValueError(
                f"fit: trajectories is a {type(trajectories).__name__}; expected "
                "adaptive_td.Trajectories (see Trajectories.from_episodes)."
            )
        data = self._prepare(trajectories)
        self._check_network(data.obs[:2])
        return data

    def _prepare(self, trajectories: Trajectories) -> Transitions | MultiStep:
        """The host-side arrays `_fit_one` trains on."""
        return training.transitions(trajectories, self.gamma)

    def _check_network(self, obs) -> None:
        """The network must map [N, *obs_shape] to [N] values (traced only)."""

        def values(obs):
            return self._net.apply(self._net.init(jax.random.key(0), obs), obs)

        shape = jax.eval_shape(values, obs).shape
        if shape != obs.shape[:1]:
            raise ValueError(
                f"network maps observations of shape {tuple(obs.shape)} to values "
                f"of shape {tuple(shape)}; expected {tuple(obs.shape[:1])}, one "
                "value per observation (for an [N, 1] output return x[:, 0])."
            )

    def _value_function(self, out, data, num_seeds) -> ValueFunction:
        params, history = out
        return ValueFunction(
            apply=self._net.apply,
            params=params,
            history=jax.tree_util.tree_map(np.asarray, history),
            obs_shape=tuple(data.obs.shape[1:]),
            obs_dtype=data.obs.dtype,
            num_seeds=num_seeds,
        )


def _bootstrapped(apply, params, ret, discount, boot_obs) -> jax.Array:
    """ret + discount * V(boot_obs), V under stop-gradient; none where
    discount is 0 (so a NaN value there cannot leak)."""
    boot = jax.lax.stop_gradient(apply(params, boot_obs))
    return ret + jnp.where(discount > 0, discount * boot, 0.0)


def _mc_targets(apply, params, batch: Transitions) -> jax.Array:
    return _bootstrapped(
        apply, params, batch.mc_return, batch.mc_discount, batch.mc_boot_obs
    )


def _td_targets(apply, params, batch: Transitions, gamma) -> jax.Array:
    nxt = jax.lax.stop_gradient(apply(params, batch.next_obs))
    return batch.reward + jnp.where(batch.bootstraps, gamma * nxt, 0.0)


class MonteCarlo(_Estimator):
    """Regress V(s_t) on the discounted return G_t.

    G_t = r_t + gamma r_{t+1} + ... up to the end of the segment; a truncated
    or cut segment adds gamma^k V(s_end) with V the estimator's own
    stop-gradient value. Loss: mean of (V(s_t) - G_t)^2 / 2.
    """

    def __init__(
        self, network=None, optimizer=None, *, gamma=0.99, steps=2000, batch_size=128
    ):
        super().__init__(network, optimizer, gamma, steps, batch_size)

    def _loss(self, params, batch):
        target = _mc_targets(self._net.apply, params, batch)
        v = self._net.apply(params, batch.obs)
        return 0.5 * jnp.mean((v - target) ** 2), {}

    def _runs(self, key, data):
        init_key, train_key = jax.random.split(key)
        return [Run(self._loss, self._init(init_key, data), train_key)]


class _Bootstrapping(_Estimator):
    """An estimator whose targets bootstrap from its own values.

    Shared option `target_update_period` (see the module docstring) and the
    fit: one run of the loss `_loss(params, batch, target_params)`.
    """

    def __init__(
        self, network, optimizer, gamma, steps, batch_size, target_update_period
    ):
        self.target_update_period = _check_period(
            "target_update_period", target_update_period
        )
        super().__init__(network, optimizer, gamma, steps, batch_size)

    def _config(self):
        return {**super()._config(), "target_update_period": self.target_update_period}

    def _targets(self, boot_params, batch) -> jax.Array:
        raise NotImplementedError

    def _loss(self, params, batch, target_params=None):
        boot_params = params if target_params is None else target_params
        target = self._targets(boot_params, batch)
        v = self._net.apply(params, batch.obs)
        return 0.5 * jnp.mean((v - target) ** 2), {}

    def _train_options(self, data) -> dict[str, Any]:
        """Extra keyword arguments of `training.train`."""
        return {}

    def _train_data(self, data):
        """What the minibatches are sampled from."""
        return data

    def _runs(self, key, data):
        init_key, train_key = jax.random.split(key)
        return [
            Run(
                self._loss,
                self._init(init_key, data),
                train_key,
                data=lambda chunk, earlier, index: self._train_data(chunk),
                options=self._train_options,
                target_update_period=self.target_update_period,
            )
        ]


class TD(_Bootstrapping):
    """Semi-gradient TD(0).

    Target r_t + gamma V(s_{t+1}) with V(s_{t+1}) under stop-gradient, and no
    bootstrap where s_{t+1} is terminal. Loss: mean of (V(s_t) - target)^2 / 2.
    Reference: Sutton and Barto, Reinforcement Learning: An Introduction
    (2nd ed.), section 9.3.

    Args:
      target_update_period: None to bootstrap from the parameters being
        trained; k to bootstrap from a target network copied from them every
        k steps (starting with the initial parameters).
    """

    def __init__(
        self,
        network=None,
        optimizer=None,
        *,
        gamma=0.99,
        steps=2000,
        batch_size=128,
        target_update_period=None,
    ):
        super().__init__(
            network, optimizer, gamma, steps, batch_size, target_update_period
        )

    def _targets(self, boot_params, batch):
        return _td_targets(self._net.apply, boot_params, batch, self.gamma)


def _n_step_targets(apply, params, batch: MultiStep) -> jax.Array:
    """G^(n)_t = ret + discount * V(boot_obs) (see `training.NStep`)."""
    ns = batch.n_step
    return _bootstrapped(apply, params, ns.ret, ns.discount, ns.boot_obs)


class NStepTD(_Bootstrapping):
    """Semi-gradient n-step TD.

    Regress V(s_t) on the n-step return

        G^(n)_t = sum_{k<m} gamma^k r_{t+k} + gamma^m V(s_{t+m}),

    V under stop-gradient, where m = min(n, steps from t to the end of its
    segment). A window that meets a termination adds no bootstrap; one that
    meets a truncation or a mid-episode cut bootstraps from the segment's
    final observation. n = 1 is `TD`; n at least the segment length is
    `MonteCarlo`. The reward sums, discounts gamma^m and bootstrap
    observations are precomputed per transition on the host with
    `returns.n_step_returns` (`training.NStep`), so the device holds three
    more arrays per transition and reads one more network value per sample.
    Reference: Sutton and Barto, Reinforcement Learning: An Introduction
    (2nd ed.), sections 7.1 and 9.3.

    Args:
      n: the number of rewards in each window, an int >= 1. The default 5 is
        a common middle ground, not tuned.
      target_update_period: as for `TD`.
    """

    def __init__(
        self,
        network=None,
        optimizer=None,
        *,
        gamma=0.99,
        steps=2000,
        batch_size=128,
        n=5,
        target_update_period=None,
    ):
        self.n = _check_positive_int("n", n)
        super().__init__(
            network, optimizer, gamma, steps, batch_size, target_update_period
        )

    def _config(self):
        return {**super()._config(), "n": self.n}

    def _prepare(self, trajectories):
        return training.multistep(trajectories, self.gamma, n=self.n)

    def _targets(self, boot_params, batch):
        return _n_step_targets(self._net.apply, boot_params, batch)


def _lambda_targets(apply, params, layout: training.Layout, gamma, lambda_):
    """Lambda-returns of every transition from fresh values, `[N]`.

    V (stop-gradient) of every observation of the `[B, T+1]` layout, then
    `returns.lambda_returns` over the rows, read at each transition's place.
    """
    rows, width = layout.obs.shape[:2]
    flat = layout.obs.reshape(rows * width, *layout.obs.shape[2:])
    v = jax.lax.stop_gradient(apply(params, flat)).reshape(rows, width)
    g = returns.lambda_returns(
        layout.reward,
        v[:, 1:],
        layout.terminated,
        layout.truncated,
        gamma=gamma,
        lambda_=lambda_,
    )
    return g[layout.row, layout.col]


class TDLambda(_Bootstrapping):
    """Regression on lambda-returns recomputed from fresh values.

    The target of s_t is the episodic lambda-return

        G_t = r_t + gamma ((1 - lambda) V(s_{t+1}) + lambda G_{t+1}),

    stopping at segment ends like the other estimators (no bootstrap after a
    termination; a truncation or mid-episode cut bootstraps from V of the
    final observation). lambda_ = 0 gives TD(0) targets and lambda_ = 1 the
    Monte Carlo return. The targets are a function of V, so they are
    refreshed: before steps 0, p, 2p, ... with p = `refresh_period`, V is
    evaluated (stop-gradient) on every observation of the batch in its
    `[B, T+1]` layout, `returns.lambda_returns` runs over the rows, and the
    next p minibatch steps regress V(s_t) on the resulting G_t. This is the
    forward view of TD(lambda) with targets that lag by at most p steps, all
    inside the one jitted program (an outer `lax.scan` over refresh periods;
    a last, shorter period when p does not divide `steps`). Reference: Sutton
    and Barto, Reinforcement Learning: An Introduction (2nd ed.), sections
    12.1 and 12.2.

    Each refresh is one application of the lambda-return operator to the
    current estimate, so the fit needs enough of them (`steps /
    refresh_period`) for that fixed-point iteration to settle: fewer the
    larger lambda_ is (lambda_ = 1 needs one), more for small lambda_ and
    gamma near 1.

    Cost and memory: the batch stays on device in its `[B, T+1]` layout too
    (about the size of the flat observations again), and each refresh
    evaluates the network once on all B (T + 1) observations at once. For
    data sets much larger than `refresh_period * batch_size` transitions,
    raise `refresh_period` so that refreshes do not dominate the run.

    Args:
      lambda_: the trace parameter in [0, 1]. The default 0.9 is a common
        middle ground, not tuned.
      refresh_period: minibatch steps between target refreshes, an int >= 1
        (default 20, so 100 refreshes in the default 2000 steps; with 100 in
        a 2000-step fit, lambda_ = 0.5 on the two-room maze stayed far from
        its fixed point: nMSE 1.99 against 0.16 with 20); with
        `refresh_period >= steps` the targets are computed once, from the
        initial values.
      target_update_period: as for `TD`; with a target network the refresh
        evaluates V with the target parameters.
    """

    def __init__(
        self,
        network=None,
        optimizer=None,
        *,
        gamma=0.99,
        steps=2000,
        batch_size=128,
        lambda_=0.9,
        refresh_period=20,
        target_update_period=None,
    ):
        self.lambda_ = _check_unit("lambda_", lambda_)
        self.refresh_period = _check_positive_int("refresh_period", refresh_period)
        super().__init__(
            network, optimizer, gamma, steps, batch_size, target_update_period
        )

    def _config(self):
        return {
            **super()._config(),
            "lambda_": self.lambda_,
            "refresh_period": self.refresh_period,
        }

    def _prepare(self, trajectories):
        return training.multistep(trajectories, self.gamma, with_layout=True)

    def _refresh(self, layout, params):
        return _lambda_targets(
            self._net.apply, params, layout, self.gamma, self.lambda_
        )

    def _train_data(self, data):
        return data.transitions

    def _train_options(self, data):
        return {
            "refresh": partial(self._refresh, data.layout),
            "refresh_period": self.refresh_period,
        }

    def _loss(self, params, batch, target_params=None):
        # The targets were computed at the last refresh, with the target
        # parameters where there are any.
        batch, target = batch
        v = self._net.apply(params, batch.obs)
        return 0.5 * jnp.mean((v - target) ** 2), {}
