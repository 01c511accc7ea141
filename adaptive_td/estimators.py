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
from adaptive_td import training
from adaptive_td.data import Trajectories
from adaptive_td.training import Transitions

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
        fn = partial(
            _flat_apply,
            self.apply,
            observations=observations,
            obs_shape=self.obs_shape,
            obs_dtype=self.obs_dtype,
        )
        if self.num_seeds is None:
            return fn(self.params)
        return jax.vmap(fn)(self.params)

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

    def _fit_one(self, key, data: Transitions, count):
        raise NotImplementedError

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
            data, counts = training.stack(datasets)
            out = self._fit_datasets(keys, data, counts)
            data = datasets[0]
        else:
            data = self._transitions(trajectories)
            out = self._fit_seeds(keys, data, None)
        out = jax.tree_util.tree_map(lambda x: x if batched else x[0], out)
        return self._value_function(out, data, num_seeds=len(keys) if batched else None)

    def _transitions(self, trajectories) -> Transitions:
        if not isinstance(trajectories, Trajectories):
            raise ValueError(
                f"fit: trajectories is a {type(trajectories).__name__}; expected "
                "adaptive_td.Trajectories (see Trajectories.from_episodes)."
            )
        data = training.transitions(trajectories, self.gamma)
        self._check_network(data.obs[:2])
        return data

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


def _mc_targets(apply, params, batch: Transitions) -> jax.Array:
    boot = jax.lax.stop_gradient(apply(params, batch.mc_boot_obs))
    return batch.mc_return + jnp.where(
        batch.mc_discount > 0, batch.mc_discount * boot, 0.0
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

    def _fit_one(self, key, data, count):
        init_key, train_key = jax.random.split(key)
        return training.train(
            self._loss,
            self.optimizer,
            self._init(init_key, data),
            data,
            train_key,
            steps=self.steps,
            batch_size=self.batch_size,
            count=count,
        )


class TD(_Estimator):
    """Semi-gradient TD(0).

    Target r_t + gamma V(s_{t+1}) with V(s_{t+1}) under stop-gradient, and no
    bootstrap where s_{t+1} is terminal. Loss: mean of (V(s_t) - target)^2 / 2.
    Reference: Sutton and Barto, Reinforcement Learning: An Introduction
    (2nd ed.), section 9.3.
    """

    def __init__(
        self, network=None, optimizer=None, *, gamma=0.99, steps=2000, batch_size=128
    ):
        super().__init__(network, optimizer, gamma, steps, batch_size)

    def _loss(self, params, batch):
        target = _td_targets(self._net.apply, params, batch, self.gamma)
        v = self._net.apply(params, batch.obs)
        return 0.5 * jnp.mean((v - target) ** 2), {}

    def _fit_one(self, key, data, count):
        init_key, train_key = jax.random.split(key)
        return training.train(
            self._loss,
            self.optimizer,
            self._init(init_key, data),
            data,
            train_key,
            steps=self.steps,
            batch_size=self.batch_size,
            count=count,
        )
