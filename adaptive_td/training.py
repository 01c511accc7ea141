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

`train` runs `steps` optimiser updates on minibatches sampled uniformly on
device, inside one `lax.scan`.
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
    """Valid steps of a batch, flattened; see the module docstring."""

    obs: jax.Array
    reward: jax.Array
    next_obs: jax.Array
    bootstraps: jax.Array
    mc_return: jax.Array
    mc_discount: jax.Array
    mc_boot_obs: jax.Array
    segment: jax.Array


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


def transitions(traj: Trajectories, gamma: float) -> Transitions:
    """Flatten the valid steps of `traj` and precompute the return parts."""
    traj.validate()
    if traj.num_steps == 0:
        raise ValueError(
            "fit: the trajectories hold no valid step (mask is all False)."
        )
    obs = np.asarray(traj.observations)
    mask = np.asarray(traj.mask)
    terminated = np.asarray(traj.terminated)
    cut = segment_cuts(traj)
    B, T = mask.shape

    rewards = np.where(mask, np.asarray(traj.rewards, np.float64), 0.0)
    mc_return, mc_discount = _segment_returns(
        rewards, terminated, cut & ~terminated, gamma=gamma
    )

    # Index of the last step of the segment each step belongs to: the first
    # cut at or after t (a reverse running minimum over the cut positions).
    steps = np.broadcast_to(np.arange(T), (B, T))
    end = np.flip(np.minimum.accumulate(np.flip(np.where(cut, steps, T), 1), 1), 1)
    rows, cols = np.nonzero(mask)
    next_obs = obs[rows, cols + 1]
    term = terminated[rows, cols]
    next_obs = np.where(
        term.reshape(-1, *[1] * (obs.ndim - 2)), obs[rows, cols], next_obs
    )
    boot_obs = obs[rows, end[rows, cols] + 1]
    seg_term = terminated[rows, end[rows, cols]]
    boot_obs = np.where(
        seg_term.reshape(-1, *[1] * (obs.ndim - 2)), obs[rows, cols], boot_obs
    )

    # Segments (an episode, or the part of one inside a row) numbered 0, 1, ...
    # in row-major order: a valid step starts one when the step before it in
    # its row is a cut (flagged, masked, or absent at t = 0).
    previous_cut = np.concatenate([np.ones((B, 1), bool), cut[:, :-1]], axis=1)
    segment = np.cumsum((mask & previous_cut)[rows, cols]) - 1

    dtype = _obs_dtype(obs.dtype)
    return Transitions(
        obs=jnp.asarray(obs[rows, cols], dtype),
        reward=jnp.asarray(rewards[rows, cols], jnp.float32),
        next_obs=jnp.asarray(next_obs, dtype),
        bootstraps=jnp.asarray(~term),
        mc_return=jnp.asarray(np.asarray(mc_return)[rows, cols], jnp.float32),
        mc_discount=jnp.asarray(
            np.where(seg_term, 0.0, np.asarray(mc_discount)[rows, cols]), jnp.float32
        ),
        mc_boot_obs=jnp.asarray(boot_obs, dtype),
        segment=jnp.asarray(segment, jnp.int32),
    )


def stack(datasets: list[Transitions]) -> tuple[Transitions, jax.Array]:
    """Stack several datasets on a new leading axis, padded to equal length.

    Returns the stacked transitions and the number of real transitions of
    each dataset `[D]`. Padding repeats a dataset's first transitions; `train`
    never samples it because it draws indices below the count.
    """
    counts = [int(d.reward.shape[0]) for d in datasets]
    n = max(counts)

    def pad(x):
        reps = -(-n // x.shape[0])
        return jnp.concatenate([x] * reps)[:n]

    padded = [jax.tree_util.tree_map(pad, d) for d in datasets]
    stacked = jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *padded)
    return stacked, jnp.asarray(counts, jnp.int32)


LossFn = Callable[[Any, Transitions], tuple[jax.Array, Any]]


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
) -> tuple[Any, dict[str, jax.Array]]:
    """Run `steps` updates of `loss_fn` on uniform minibatches, in one scan.

    `data` is any pytree of arrays with the transitions on the leading axis
    (a `Transitions`, possibly with extra per-transition arrays); only the
    first `count` of them are sampled (all when `count` is None);
    `loss_fn(params, batch) -> (loss, aux)` where `aux` is a dict of scalars
    traced per step. Returns the final parameters and a history dict with
    `loss` `[steps]` and each entry of `aux` `[steps]`.
    """
    n = jax.tree_util.tree_leaves(data)[0].shape[0] if count is None else count

    def step(carry, step_key):
        params, opt_state = carry
        idx = jax.random.randint(step_key, (batch_size,), 0, n)
        batch = jax.tree_util.tree_map(lambda x: x[idx], data)
        (loss, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, batch)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        return (params, opt_state), {"loss": loss, **aux}

    keys = jax.random.split(key, steps)
    (params, _), history = jax.lax.scan(step, (params, optimizer.init(params)), keys)
    return params, history
