"""From a trajectory batch to flat transitions, and the jitted training loop.

`transitions` flattens the valid steps of a `Trajectories` batch into arrays
of one entry per transition, with everything the targets of every estimator
need precomputed on the host:

    obs         s_t
    reward      r_t
    next_obs    s_{t+1} (replaced by s_t where s_{t+1} is terminal, so no
                terminal placeholder ever enters a network)
    bootstraps  s_{t+1} is not terminal
    mc_return   sum_k gamma^k r_{t+k} up to the end of the segment
    mc_discount gamma^(steps to the segment end); 0 where the segment ended
                in a terminal state
    mc_boot_obs the observation the segment ends in (bootstrap state of a
                truncated or cut segment)
    segment     the index of the segment (episode, or part of one within a
                row) the transition belongs to, 0 ... num_segments - 1

so that the Monte Carlo target is `mc_return + mc_discount * V(mc_boot_obs)`
and the TD(0) target is `reward + gamma * V(next_obs)` where it bootstraps.

`multistep` adds what the multi-step estimators need to the same
transitions: the parts of the n-step target (`NStep`, per transition, so that
G^(n)_t = `ret + discount * V(boot_obs)`), and the batch in its `[B, T(+1)]`
layout (`Layout`) for targets recomputed on device from fresh values.

`train` runs `steps` optimiser updates on minibatches sampled uniformly on
device, inside one `lax.scan`, optionally with a target network and with
per-transition arrays refreshed every few steps.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from adaptive_td import returns
from adaptive_td.data import Trajectories, segment_cuts


class Transitions(NamedTuple):
    """Valid steps of a batch, flattened; see the module docstring.

    Built on the host as NumPy arrays; they reach the device as arguments of
    the jitted fit, so preparing data compiles nothing.
    """

    obs: jax.Array
    reward: jax.Array
    next_obs: jax.Array
    bootstraps: jax.Array
    mc_return: jax.Array
    mc_discount: jax.Array
    mc_boot_obs: jax.Array
    segment: jax.Array


class NStep(NamedTuple):
    """The parts of the n-step target of each transition, `[N]` each.

    With m = min(n, steps from t to the end of its segment, counting t):

      ret       sum_{k<m} gamma^k r_{t+k}
      discount  gamma^m; 0 where the segment terminates within the window
      boot_obs  s_{t+m}; s_t where the window ends in a terminal state

    so that G^(n)_t = ret + discount * V(boot_obs), bootstrapping only where
    discount > 0. n = 1 gives the TD(0) target, n >= the segment length the
    Monte Carlo target.
    """

    ret: jax.Array
    discount: jax.Array
    boot_obs: jax.Array


class Layout(NamedTuple):
    """The batch in its `[B, T(+1)]` layout, for targets computed on device.

    The flags are those of `returns` (time on the last axis), with every cut
    of the return recursion (`data.segment_cuts`: flagged steps, mid-episode
    cuts, masked steps) that is not a termination passed as truncated, so the
    kernels stop at every segment end.

      obs         [B, T+1, *obs_shape]; places no valid step reads (padding,
                  terminal placeholders) hold a valid observation instead
      reward      [B, T], 0 on masked steps
      terminated  [B, T] bool
      truncated   [B, T] bool, cut and not terminated
      row, col    [N] int32, where each flat transition sits in the layout
    """

    obs: jax.Array
    reward: jax.Array
    terminated: jax.Array
    truncated: jax.Array
    row: jax.Array
    col: jax.Array


class MultiStep(NamedTuple):
    """`Transitions` with the arrays of the multi-step estimators.

    `obs` is `transitions.obs`, so code that reads only the observations
    accepts either type.
    """

    transitions: Transitions
    n_step: NStep | None = None
    layout: Layout | None = None

    @property
    def obs(self) -> jax.Array:
        return self.transitions.obs


def _obs_dtype(dtype: np.dtype) -> np.dtype:
    """Integer observations (state indices) become int32, all others float32."""
    return np.int32 if np.issubdtype(dtype, np.integer) else np.float32


@functools.partial(jax.jit, static_argnames="gamma")
def _segment_returns(rewards, terminated, truncated, *, gamma):
    """Discounted reward sum and discount to each step's segment end.

    Jitted: run eagerly, the kernels' `lax.scan` would compile again on every
    call, so a second fit on data of the same shapes would recompile.
    """
    zeros, ones = jnp.zeros_like(rewards), jnp.ones_like(rewards)
    mc_return = returns.discounted_returns(
        rewards, zeros, terminated, truncated, gamma=gamma
    )
    mc_discount = returns.discounted_returns(
        zeros, ones, terminated, truncated, gamma=gamma
    )
    return mc_return, mc_discount


@functools.partial(jax.jit, static_argnames=("gamma", "n"))
def _window_returns(rewards, terminated, truncated, *, gamma, n):
    """Discounted reward sum and discount over each step's n-step window.

    The same kernel as the estimator's definition: with V = 0 it sums the
    rewards, with r = 0 and V = 1 it gives the discount of the bootstrap
    (0 where the window ends in a termination). Jitted like
    `_segment_returns`.
    """
    zeros, ones = jnp.zeros_like(rewards), jnp.ones_like(rewards)
    ret = returns.n_step_returns(
        rewards, zeros, terminated, truncated, gamma=gamma, n=n
    )
    discount = returns.n_step_returns(
        zeros, ones, terminated, truncated, gamma=gamma, n=n
    )
    return ret, discount


class _Steps(NamedTuple):
    """Host-side views of a validated batch shared by the builders below."""

    obs: np.ndarray  # [B, T+1, ...]
    mask: np.ndarray  # [B, T]
    rewards: np.ndarray  # [B, T] float64, 0 on masked steps
    terminated: np.ndarray  # [B, T]
    cut: np.ndarray  # [B, T], data.segment_cuts
    end: np.ndarray  # [B, T], the last step of each step's segment
    rows: np.ndarray  # [N], the valid steps in row-major order
    cols: np.ndarray  # [N]


def _steps(traj: Trajectories) -> _Steps:
    traj.validate()
    if traj.num_steps == 0:
        raise ValueError(
            "fit: the trajectories hold no valid step (mask is all False)."
        )
    obs = np.asarray(traj.observations)
    if obs.dtype.kind in "iu" and obs.size:
        # Integer observations reach the networks as int32 (`_obs_dtype`).
        low, high = np.iinfo(np.int32).min, np.iinfo(np.int32).max
        if obs.min() < low or obs.max() > high:
            raise ValueError(
                f"fit: observations hold integers from {obs.min()} to {obs.max()}; "
                "the networks take int32 (state indices), which would wrap them. "
                "Renumber the states, or pass float observations."
            )
    mask = np.asarray(traj.mask)
    cut = segment_cuts(traj)
    B, T = mask.shape
    # Index of the last step of the segment each step belongs to: the first
    # cut at or after t (a reverse running minimum over the cut positions).
    steps = np.broadcast_to(np.arange(T), (B, T))
    end = np.flip(np.minimum.accumulate(np.flip(np.where(cut, steps, T), 1), 1), 1)
    rows, cols = np.nonzero(mask)
    return _Steps(
        obs=obs,
        mask=mask,
        rewards=np.where(mask, np.asarray(traj.rewards, np.float64), 0.0),
        terminated=np.asarray(traj.terminated),
        cut=cut,
        end=end,
        rows=rows,
        cols=cols,
    )


def _bootstrap_obs(s: _Steps, last: np.ndarray) -> np.ndarray:
    """s_{last+1} of each transition whose window ends at step `last`; s_t
    itself where that step is terminal (never a terminal placeholder)."""
    obs = s.obs[s.rows, last + 1]
    term = s.terminated[s.rows, last]
    return np.where(
        term.reshape(-1, *[1] * (s.obs.ndim - 2)), s.obs[s.rows, s.cols], obs
    )


def transitions(traj: Trajectories, gamma: float) -> Transitions:
    """Flatten the valid steps of `traj` and precompute the return parts."""
    return _transitions(_steps(traj), gamma)


def _transitions(s: _Steps, gamma: float) -> Transitions:
    rows, cols, obs = s.rows, s.cols, s.obs
    B, T = s.cut.shape

    mc_return, mc_discount = _segment_returns(
        s.rewards, s.terminated, s.cut & ~s.terminated, gamma=gamma
    )
    next_obs = _bootstrap_obs(s, cols)
    end = s.end[rows, cols]
    boot_obs = _bootstrap_obs(s, end)
    seg_term = s.terminated[rows, end]

    # Segments (an episode, or the part of one inside a row) numbered 0, 1, ...
    # in row-major order: a valid step starts one when the step before it in
    # its row is a cut (flagged, masked, or absent at t = 0).
    previous_cut = np.concatenate([np.ones((B, 1), bool), s.cut[:, :-1]], axis=1)
    segment = np.cumsum((s.mask & previous_cut)[rows, cols]) - 1

    dtype = _obs_dtype(obs.dtype)
    return Transitions(
        obs=np.asarray(obs[rows, cols], dtype),
        reward=np.asarray(s.rewards[rows, cols], np.float32),
        next_obs=np.asarray(next_obs, dtype),
        bootstraps=np.asarray(~s.terminated[rows, cols]),
        mc_return=np.asarray(np.asarray(mc_return)[rows, cols], np.float32),
        mc_discount=np.asarray(
            np.where(seg_term, 0.0, np.asarray(mc_discount)[rows, cols]), np.float32
        ),
        mc_boot_obs=np.asarray(boot_obs, dtype),
        segment=np.asarray(segment, np.int32),
    )


def n_step(traj: Trajectories, gamma: float, n: int) -> NStep:
    """The n-step target parts of each valid step of `traj` (see `NStep`)."""
    return _n_step(_steps(traj), gamma, n)


def _n_step(s: _Steps, gamma: float, n: int) -> NStep:

    ret, discount = _window_returns(
        s.rewards, s.terminated, s.cut & ~s.terminated, gamma=gamma, n=n
    )
    # The window of step t stops at t + n - 1 or at its segment's end.
    last = np.minimum(s.cols + (n - 1), s.end[s.rows, s.cols])
    boot_obs = _bootstrap_obs(s, last)
    ends_terminal = s.terminated[s.rows, last]

    dtype = _obs_dtype(s.obs.dtype)
    return NStep(
        ret=np.asarray(np.asarray(ret)[s.rows, s.cols], np.float32),
        discount=np.asarray(
            np.where(ends_terminal, 0.0, np.asarray(discount)[s.rows, s.cols]),
            np.float32,
        ),
        boot_obs=np.asarray(boot_obs, dtype),
    )


def layout(traj: Trajectories) -> Layout:
    """The batch in its `[B, T(+1)]` layout (see `Layout`)."""
    return _layout(_steps(traj))


def _layout(s: _Steps) -> Layout:
    mask = s.mask
    B, T = mask.shape

    # Observations a valid step reads: s_t, and s_{t+1} unless it is terminal.
    # Every other place gets the first valid observation, so neither padding
    # nor a terminal placeholder ever enters a network.
    read = np.zeros((B, T + 1), bool)
    read[:, :-1] |= mask
    read[:, 1:] |= mask & ~s.terminated
    fill = s.obs[s.rows[0], s.cols[0]]
    obs = np.where(read.reshape(B, T + 1, *[1] * (s.obs.ndim - 2)), s.obs, fill)

    return Layout(
        obs=np.asarray(obs, _obs_dtype(s.obs.dtype)),
        reward=np.asarray(s.rewards, np.float32),
        terminated=np.asarray(s.terminated & mask),
        truncated=np.asarray(s.cut & ~(s.terminated & mask)),
        row=np.asarray(s.rows, np.int32),
        col=np.asarray(s.cols, np.int32),
    )


def multistep(
    traj: Trajectories, gamma: float, *, n: int | None = None, with_layout=False
) -> MultiStep:
    """`transitions(traj, gamma)` with the n-step parts (when `n` is given)
    and the `[B, T(+1)]` layout (when `with_layout`)."""
    s = _steps(traj)
    return MultiStep(
        transitions=_transitions(s, gamma),
        n_step=None if n is None else _n_step(s, gamma, n),
        layout=_layout(s) if with_layout else None,
    )


def _pad_layout(lay: Layout, rows: int, steps: int) -> Layout:
    """Pad a layout to `[rows, steps]` with masked steps (cuts, reward 0)."""
    b, t = lay.reward.shape
    grow = [(0, rows - b), (0, steps - t)]
    obs_pad = grow + [(0, 0)] * (lay.obs.ndim - 2)
    return lay._replace(
        obs=np.pad(lay.obs, obs_pad, mode="edge"),
        reward=np.pad(lay.reward, grow),
        terminated=np.pad(lay.terminated, grow, constant_values=False),
        truncated=np.pad(lay.truncated, grow, constant_values=True),
    )


def stack(
    datasets: list[Any], length: int = 0, layout_shape: tuple[int, int] = (0, 0)
) -> tuple[Any, jax.Array]:
    """Stack several datasets on a new leading axis, padded to equal length.

    A dataset is a `Transitions`, or a `MultiStep`. Returns the stacked data
    and the number of real transitions of each dataset `[D]`. The transitions
    are padded to the largest count, or to `length` if that is larger (the
    estimators pass B * T, so that the compiled program depends on the
    batch's shape, not on how many of its steps are valid). Padding repeats a
    dataset's first transitions; `train` never samples it because it draws
    indices below the count. Layouts are padded to the largest `[B, T]` (or
    to `layout_shape` where that is larger) with masked steps, which no
    transition reads.
    """
    counts = [int(d.obs.shape[0]) for d in datasets]
    size = max(max(counts), length)
    if isinstance(datasets[0], MultiStep) and datasets[0].layout is not None:
        rows = max([d.layout.reward.shape[0] for d in datasets] + [layout_shape[0]])
        steps = max([d.layout.reward.shape[1] for d in datasets] + [layout_shape[1]])
        datasets = [
            d._replace(layout=_pad_layout(d.layout, rows, steps)) for d in datasets
        ]

    def pad(x):
        reps = -(-size // x.shape[0])
        return np.concatenate([x] * reps)[:size]

    def pad_flat(d):
        """Pad the per-transition arrays `[N]`, leaving the layout's `[B, T]`."""
        if not isinstance(d, MultiStep):
            return jax.tree_util.tree_map(pad, d)
        layout = d.layout
        if layout is not None:
            layout = layout._replace(row=pad(layout.row), col=pad(layout.col))
        return d._replace(
            transitions=jax.tree_util.tree_map(pad, d.transitions),
            n_step=jax.tree_util.tree_map(pad, d.n_step),
            layout=layout,
        )

    padded = [pad_flat(d) for d in datasets]
    stacked = jax.tree_util.tree_map(lambda *xs: np.stack(xs), *padded)
    return stacked, np.asarray(counts, np.int32)


LossFn = Callable[..., tuple[jax.Array, Any]]


class TrainState(NamedTuple):
    """What a run of updates carries from one call of `train_steps` to the
    next: the parameters, the optimiser state, the target network's
    parameters (None without one) and the number of updates done so far
    (the global index of the next update, which the target schedule counts)."""

    params: Any
    opt_state: Any
    target: Any
    step: jax.Array


def init_state(
    optimizer: optax.GradientTransformation, params: Any, *, target: bool = False
) -> TrainState:
    """The state before the first update (the target network, if any, starts
    at the initial parameters)."""
    return TrainState(
        params, optimizer.init(params), params if target else None, jnp.int32(0)
    )


def train(
    loss_fn: LossFn,
    optimizer: optax.GradientTransformation,
    params: Any,
    data: Any,
    key: jax.Array,
    *,
    steps: int,
    batch_size: int,
    count: jax.Array | int | None = None,
    target_update_period: int | None = None,
    refresh: Callable[[Any], Any] | None = None,
    refresh_period: int | None = None,
    groups: int | None = None,
) -> tuple[Any, dict[str, jax.Array]]:
    """Run `steps` updates of `loss_fn` on uniform minibatches, in one scan.

    `data` is any pytree of arrays with the transitions on the leading axis
    (a `Transitions`, possibly with extra per-transition arrays); only the
    first `count` of them are sampled (all when `count` is None);
    `loss_fn(params, batch) -> (loss, aux)` where `aux` is a dict of scalars
    traced per step. Returns the final parameters and a history dict with
    `loss` `[steps]` and each entry of `aux` `[steps]`. Update i draws its
    minibatch with key i of `jax.random.split(key, steps)`.

    Target network: with `target_update_period=k`, a copy of the parameters
    rides in the scan state, set to the current parameters before every step
    i with i % k == 0 (so it starts at the initial parameters, and k = 1
    bootstraps from the current parameters as without a target network);
    `loss_fn` is then called as `loss_fn(params, batch, target_params)`.

    Refresh: with `refresh` and `refresh_period=p`, before steps 0, p, 2p, ...
    `extra = refresh(bootstrap_params)` (the target parameters if there are
    any, else the current ones) recomputes a pytree of per-transition arrays,
    and the minibatches of the next p steps are `(batch, extra[idx])`. The
    steps run as an outer `lax.scan` over refresh periods around the inner
    scan of minibatch steps; a last, shorter period takes the remainder when
    p does not divide `steps`.

    Groups: with `groups=g`, each step draws g independent minibatches and
    every array of the batch gets a leading axis `[g, batch_size, ...]` (for
    several networks trained side by side on their own minibatches).

    `train` is `train_steps` from `init_state`, with the keys split from
    `key`; a run split into several calls of `train_steps` (as
    `adaptive_td.streaming` does, one data chunk per call) carries a
    `TrainState` between them.
    """
    state = init_state(optimizer, params, target=target_update_period is not None)
    state, history = train_steps(
        loss_fn,
        optimizer,
        state,
        data,
        jax.random.split(key, steps),
        batch_size=batch_size,
        count=count,
        target_update_period=target_update_period,
        refresh=refresh,
        refresh_period=refresh_period,
        groups=groups,
    )
    return state.params, history


def train_steps(
    loss_fn: LossFn,
    optimizer: optax.GradientTransformation,
    state: TrainState,
    data: Any,
    keys: jax.Array,
    *,
    batch_size: int,
    count: jax.Array | int | None = None,
    active: jax.Array | int | None = None,
    target_update_period: int | None = None,
    refresh: Callable[[Any], Any] | None = None,
    refresh_period: int | None = None,
    groups: int | None = None,
) -> tuple[TrainState, dict[str, jax.Array]]:
    """`len(keys)` updates from `state`, one per key; see `train`.

    With `active=a`, only the first a updates are applied and the state
    leaves the call as it was after them (the remaining keys are drawn but
    change nothing, and their history entries are to be ignored): one
    compiled program of a fixed number of steps then serves runs of any
    length. The target schedule counts updates from `state.step`, so calls
    carrying the state give the same target copies as one long call; a
    refresh happens at the start of every call (and every `refresh_period`
    steps within it).
    """
    n = jax.tree_util.tree_leaves(data)[0].shape[0] if count is None else count
    use_target = target_update_period is not None
    steps = keys.shape[0]

    def bootstrap_params(i, params, target):
        """The target parameters at step i, after that step's copy."""
        copy = i % target_update_period == 0
        return jax.tree_util.tree_map(
            lambda p, t: jnp.where(copy, p, t), params, target
        )

    def step(extra, carry, x):
        params, opt_state, target = carry
        i, j, step_key = x
        shape = (batch_size,) if groups is None else (groups, batch_size)
        idx = jax.random.randint(step_key, shape, 0, n)
        sampled = data if extra is None else (data, extra)
        batch = jax.tree_util.tree_map(lambda x: x[idx], sampled)
        args = (params, batch)
        if use_target:
            target = bootstrap_params(i, params, target)
            args = (params, batch, target)
        (loss, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(*args)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        new = (params, opt_state, target)
        if active is not None:
            new = jax.tree_util.tree_map(
                lambda a, b: jnp.where(j < active, a, b), new, carry
            )
        return new, {"loss": loss, **aux}

    def period(carry, xs):
        """Refresh (if asked), then one scan over the steps of `xs`."""
        extra = None
        if refresh is not None:
            params, _, target = carry
            first = xs[0][0]
            boot = bootstrap_params(first, params, target) if use_target else params
            extra = refresh(boot)
        return jax.lax.scan(functools.partial(step, extra), carry, xs)

    local = jnp.arange(steps)
    xs = (state.step + local, local, keys)
    carry = state[:3]
    done = steps if active is None else jnp.minimum(active, steps)
    if refresh is None:
        carry, history = period(carry, xs)
        return TrainState(*carry, state.step + done), history

    full, rest = divmod(steps, refresh_period)
    parts = []
    if full:
        head = jax.tree_util.tree_map(
            lambda x: x[: full * refresh_period].reshape(
                full, refresh_period, *x.shape[1:]
            ),
            xs,
        )
        carry, history = jax.lax.scan(period, carry, head)
        parts.append(
            jax.tree_util.tree_map(lambda h: h.reshape(-1, *h.shape[2:]), history)
        )
    if rest:
        tail = jax.tree_util.tree_map(lambda x: x[full * refresh_period :], xs)
        carry, history = period(carry, tail)
        parts.append(history)
    history = jax.tree_util.tree_map(lambda *hs: jnp.concatenate(hs), *parts)
    return TrainState(*carry, state.step + done), history
