"""From Gymnasium vector-environment rollouts to `Trajectories`.

A rollout of a `gymnasium.vector.VectorEnv` with `n_envs` sub-environments,
stacked over time as `env.reset` and `env.step` return it,

    observations  [T+1, n_envs, *obs_shape]  the reset observation, then the
                                            observation returned by each step
    rewards       [T, n_envs]
    terminated    [T, n_envs] bool
    truncated     [T, n_envs] bool
    actions       [T, n_envs, ...] (optional)

becomes a `Trajectories` batch with one row per sub-environment: a stream of
episodes, cut by the flags. Both autoreset modes give the same layout, the one
of NEXT_STEP mode:

- NEXT_STEP (Gymnasium's default): after a step that ends an episode, the
  observation returned is the final observation, and the next `env.step`
  resets that sub-environment (its action is ignored, reward 0, no flags).
  That reset step is not a transition of the policy: it stays in the row with
  mask False (the final observation leads to the reset observation).
- SAME_STEP: the step that ends an episode already returns the reset
  observation, and the final observation comes in `info["final_obs"]`. After
  every such step a masked reset row is inserted (final observation -> reset
  observation), so the row reads exactly as in NEXT_STEP mode. Rows grow by
  one step per episode end and are padded to equal length (mask False).
- DISABLED: the caller resets sub-environments between steps with
  `env.reset(options={"reset_mask": done})`. The rollout is then given as in
  SAME_STEP mode: observations[t + 1] is the observation step t + 1 starts
  from (the reset observation where step t ended an episode), and
  `final_observations[t]` the observation step t returned (the final one).
  `collect` does exactly that.

The same stream of transitions, converted from either mode, gives the same
rows; a truncated step bootstraps from the final observation, never from the
reset observation. On masked rows (resets and padding) rewards and actions are
0 and the flags False; padding repeats the last observation of the row.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from gymnasium.vector import AutoresetMode

from adaptive_td.data import Trajectories

__all__ = ["collect", "from_vector_rollout"]

_FN = "from_vector_rollout"


def from_vector_rollout(
    observations,
    rewards,
    terminated,
    truncated,
    *,
    autoreset_mode: AutoresetMode | str,
    final_observations=None,
    actions=None,
    initial_done=None,
) -> Trajectories:
    """Convert a vector-environment rollout into one row per sub-environment.

    Args:
      observations: `[T+1, n_envs, *obs_shape]`: observations[0] from
        `env.reset` (or the last observation of the previous rollout), then
        the observation returned by each of the T calls of `env.step`.
      rewards: `[T, n_envs]`, the rewards returned by `env.step`.
      terminated: `[T, n_envs]` bool.
      truncated: `[T, n_envs]` bool.
      autoreset_mode: a `gymnasium.vector.AutoresetMode` (NEXT_STEP,
        SAME_STEP or DISABLED) or its string value ("NextStep", "SameStep",
        "Disabled"); the mode is in `env.metadata["autoreset_mode"]`.
      final_observations: SAME_STEP and DISABLED modes only, required when an
        episode ended.
        Either the list of the T info dicts returned by `env.step` (their
        "final_obs" and "_final_obs" entries are read), or an array
        `[T, n_envs, *obs_shape]` whose entry [t, i] is read where step t ended
        sub-environment i's episode (other entries are ignored and may hold
        anything, NaN included).
      actions: `[T, n_envs, ...]` or None, the actions passed to `env.step`.
      initial_done: NEXT_STEP mode only: `[n_envs]` bool, True where the step
        before observations[0] ended an episode (when continuing an earlier
        rollout), so that step 0 of that sub-environment is a reset step and is
        masked. Default: no sub-environment.

    Returns:
      A validated `Trajectories` with `[n_envs, T', *obs_shape]` rows: T' = T
      in NEXT_STEP mode; in SAME_STEP mode T' = T plus the largest number of
      episode ends of one sub-environment.

    Raises:
      ValueError: naming the field and the expected shape for malformed input,
        for unknown modes, final observations missing where an episode ended
        in SAME_STEP or DISABLED mode, and flags on a NEXT_STEP reset step.

    Example:
      >>> import numpy as np
      >>> from gymnasium.vector import AutoresetMode
      >>> from adaptive_td.rollouts import from_vector_rollout
      >>> traj = from_vector_rollout(
      ...     observations=np.array([[0.0], [1.0], [9.0], [5.0]]),  # 1 env
      ...     rewards=np.array([[1.0], [0.0], [2.0]]),
      ...     terminated=np.array([[True], [False], [False]]),
      ...     truncated=np.zeros((3, 1), bool),
      ...     autoreset_mode=AutoresetMode.NEXT_STEP)
      >>> traj.mask.tolist()
      [[True, False, True]]
    """
    mode = _mode(autoreset_mode)
    rew = np.asarray(rewards)
    if rew.ndim != 2 or 0 in rew.shape:
        raise ValueError(
            f"{_FN}: rewards has shape {rew.shape}; expected [T, n_envs] with "
            "T >= 1 steps and n_envs >= 1 sub-environments, stacked over time as "
            "env.step returns them."
        )
    T, n_envs = rew.shape
    term = _flags("terminated", terminated, rew.shape)
    trunc = _flags("truncated", truncated, rew.shape)
    obs = np.asarray(observations)
    if obs.ndim < 2 or obs.shape[:2] != (T + 1, n_envs):
        hint = ""
        if obs.ndim >= 2 and obs.shape[:2] == (T, n_envs):
            hint = (
                " It has T entries: put the observation from env.reset() (or the "
                "last one of the previous rollout) first."
            )
        raise ValueError(
            f"{_FN}: observations has shape {obs.shape}; expected "
            f"[T+1, n_envs, *obs_shape] = ({T + 1}, {n_envs}, ...) for rewards of "
            f"shape {rew.shape}.{hint}"
        )
    _check_finite(rew, obs, term)
    obs_shape = obs.shape[2:]
    act = None
    if actions is not None:
        act = np.asarray(actions)
        if act.ndim < 2 or act.shape[:2] != (T, n_envs):
            raise ValueError(
                f"{_FN}: actions has shape {act.shape}; expected [T, n_envs, ...] "
                f"= ({T}, {n_envs}, ...), the actions passed to env.step."
            )
    done = term | trunc

    if mode == AutoresetMode.NEXT_STEP:
        if final_observations is not None:
            raise ValueError(
                f"{_FN}: final_observations is given in NEXT_STEP mode; there the "
                "final observation is the one returned by the step that ends the "
                "episode (observations[t + 1]). Pass final_observations=None, or "
                "autoreset_mode=SAME_STEP if the rollout was collected that way."
            )
        first = np.zeros(n_envs, bool)
        if initial_done is not None:
            first = _flags("initial_done", initial_done, (n_envs,))
        reset = np.concatenate([first[None], done[:-1]])
        bad = np.argwhere(reset & done)
        if bad.size:
            t, i = bad[0]
            raise ValueError(
                f"{_FN}: sub-environment {i} has terminated or truncated set at "
                f"step {t}, a NEXT_STEP reset step (an episode ended just before "
                "it); a reset step cannot end an episode. Was the rollout "
                "collected with autoreset_mode=SAME_STEP?"
            )
        mask = ~reset
        traj = Trajectories(
            observations=np.swapaxes(obs, 0, 1).copy(),
            rewards=np.where(mask, rew, np.zeros_like(rew)).T.copy(),
            terminated=term.T.copy(),
            truncated=trunc.T.copy(),
            mask=mask.T.copy(),
            actions=None if act is None else _zero_where(act, ~mask),
        )
        return traj.validate()

    if initial_done is not None and np.any(initial_done):
        raise ValueError(
            f"{_FN}: initial_done is set in {mode.name} mode; there observations[0] "
            "is always a reset or running observation, never a final one. Pass "
            "initial_done=None."
        )
    final = _final_observations(final_observations, done, obs, mode.name)

    # Step t of sub-environment i moves to position t + (episode ends before
    # t); after an episode end comes the inserted reset row.
    ends = done.sum(0)
    width = T + int(ends.max())
    out_obs = np.empty((n_envs, width + 1, *obs_shape), obs.dtype)
    out_rew = np.zeros((n_envs, width), rew.dtype)
    out_term = np.zeros((n_envs, width), bool)
    out_trunc = np.zeros((n_envs, width), bool)
    out_mask = np.zeros((n_envs, width), bool)
    out_act = (
        None if act is None else np.zeros((n_envs, width, *act.shape[2:]), act.dtype)
    )
    for i in range(n_envs):
        d = done[:, i]
        pos = np.arange(T) + np.concatenate([[0], np.cumsum(d)[:-1]])
        last = T + int(ends[i])
        out_obs[i, pos] = obs[:T, i]
        out_obs[i, pos[d] + 1] = final[d, i]
        out_obs[i, last:] = obs[T, i]
        out_rew[i, pos] = rew[:, i]
        out_term[i, pos] = term[:, i]
        out_trunc[i, pos] = trunc[:, i]
        out_mask[i, pos] = True
        if act is not None:
            out_act[i, pos] = act[:, i]
    traj = Trajectories(out_obs, out_rew, out_term, out_trunc, out_mask, out_act)
    return traj.validate()


def collect(
    env,
    policy: Callable[[Any, np.random.Generator], Any],
    num_steps: int,
    *,
    seed: int,
) -> Trajectories:
    """Step a vector environment with `policy` and convert the rollout.

    Calls `env.reset(seed=seed)`, then `num_steps` times
    `env.step(policy(observations, rng))` with `rng = np.random.default_rng(seed)`,
    and returns `from_vector_rollout` of the result (actions included). The
    autoreset mode is read from `env.metadata["autoreset_mode"]`; in DISABLED
    mode the sub-environments whose episode ended are reset after the step
    with `env.reset(options={"reset_mask": done})`, which gives the same
    episodes as SAME_STEP mode. In NEXT_STEP
    mode the policy is also called on final observations (the action of a reset
    step is ignored by the environment but still drawn), so a policy that uses
    `rng` draws differently than in SAME_STEP mode; a policy that is a
    deterministic function of the observation gives the same episodes in both.

    Args:
      env: a `gymnasium.vector.VectorEnv` with array observations.
      policy: `policy(observations [n_envs, *obs_shape], rng) -> actions`.
      num_steps: T >= 1, the number of `env.step` calls.
      seed: passed to `env.reset` and used to seed `rng`.

    Returns:
      `Trajectories` with one row per sub-environment, see `from_vector_rollout`.
    """
    if isinstance(num_steps, bool) or not isinstance(num_steps, (int, np.integer)):
        raise ValueError(f"collect: num_steps={num_steps!r}; expected an int >= 1.")
    if num_steps < 1:
        raise ValueError(f"collect: num_steps={num_steps!r}; expected an int >= 1.")
    metadata = getattr(env, "metadata", None) or {}
    if "autoreset_mode" not in metadata:
        raise ValueError(
            "collect: env.metadata has no 'autoreset_mode'; expected a "
            "gymnasium.vector.VectorEnv (gymnasium >= 1.1), which records its mode "
            "there."
        )
    mode = _mode(metadata["autoreset_mode"], fn="collect")
    rng = np.random.default_rng(seed)

    obs, _ = env.reset(seed=seed)
    observations, rewards, terminated, truncated = [obs], [], [], []
    actions, finals = [], []
    for _ in range(num_steps):
        action = policy(obs, rng)
        obs, reward, term, trunc, info = env.step(action)
        if mode == AutoresetMode.DISABLED:
            done = np.logical_or(term, trunc)
            # The final observations, as SAME_STEP mode reports them in info.
            final = np.empty(len(done), dtype=object)
            final[:] = list(np.array(obs, copy=True))
            info = {"final_obs": final, "_final_obs": done}
            if done.any():
                obs, _ = env.reset(options={"reset_mask": done})
        observations.append(obs)
        rewards.append(reward)
        terminated.append(term)
        truncated.append(trunc)
        actions.append(action)
        finals.append({k: info[k] for k in ("final_obs", "_final_obs") if k in info})

    return from_vector_rollout(
        np.stack(observations),
        np.stack(rewards),
        np.stack(terminated),
        np.stack(truncated),
        autoreset_mode=mode,
        final_observations=None if mode == AutoresetMode.NEXT_STEP else finals,
        actions=np.stack(actions),
    )


def _check_finite(rew, obs, term) -> None:
    """NaN or inf in the rollout, named by env.step index and sub-environment
    (the batch's own check would name places in the converted rows).
    observations[t + 1] is what step t returned: a terminal observation in
    NEXT_STEP mode after a terminated step, which may hold anything."""
    if rew.dtype.kind == "f":
        bad = np.argwhere(~np.isfinite(rew))
        if bad.size:
            t, i = bad[0]
            raise ValueError(
                f"{_FN}: step {t} of sub-environment {i} returned reward "
                f"{rew[t, i]}; rewards must be finite."
            )
    if obs.dtype.kind == "f":
        finite = np.isfinite(obs).reshape(*obs.shape[:2], -1).all(-1)
        finite[1:] |= term  # terminal observations are never read
        bad = np.argwhere(~finite)
        if bad.size:
            t, i = bad[0]
            what = "env.reset" if t == 0 else f"step {t - 1}"
            raise ValueError(
                f"{_FN}: the observation {what} returned for sub-environment {i} "
                "(observations[" + f"{t}, {i}" + "]) is not finite; observations "
                "must be finite except after a terminated step."
            )


def _mode(value, fn=_FN) -> AutoresetMode:
    try:
        mode = AutoresetMode(value)
    except ValueError:
        allowed = ", ".join(f"{m} ({m.value!r})" for m in AutoresetMode)
        raise ValueError(
            f"{fn}: autoreset_mode={value!r}; expected one of {allowed}."
        ) from None
    return mode


def _flags(name, value, shape):
    flags = np.asarray(value)
    if flags.shape != shape:
        raise ValueError(
            f"{_FN}: {name} has shape {flags.shape}; expected {shape}"
            + (" = [T, n_envs] like rewards." if len(shape) == 2 else " = [n_envs].")
        )
    if flags.dtype != np.bool_:
        raise ValueError(
            f"{_FN}: {name} has dtype {flags.dtype}; expected bool (as env.step "
            f"returns it); pass e.g. {name} != 0 if 1 marks a flagged step."
        )
    return flags


def _zero_where(actions, where):
    """Batch-major actions `[n_envs, T, ...]`, 0 where `where` `[T, n_envs]`."""
    where = where.reshape(where.shape + (1,) * (actions.ndim - 2))
    return np.swapaxes(np.where(where, np.zeros_like(actions), actions), 0, 1).copy()


def _final_observations(final, done, obs, mode="SAME_STEP"):
    """Final observations `[T, n_envs, *obs_shape]`, checked where `done`."""
    T, n_envs = done.shape
    obs_shape = obs.shape[2:]
    expected = (
        "the list of info dicts returned by env.step (with 'final_obs') or an "
        f"array [T, n_envs, *obs_shape] = ({T}, {n_envs}, "
        f"{', '.join(map(str, obs_shape)) or '...'})"
    )
    if final is None:
        if done.any():
            t, i = np.argwhere(done)[0]
            raise ValueError(
                f"{_FN}: final_observations is None, but in {mode} mode the "
                f"episode of sub-environment {i} ended at step {t} and its final "
                f"observation is only in info['final_obs']; pass {expected}."
            )
        return np.zeros((T, n_envs, *obs_shape), obs.dtype)

    dense = np.zeros((T, n_envs, *obs_shape), obs.dtype)
    have = np.zeros((T, n_envs), bool)
    if isinstance(final, Sequence) and all(isinstance(x, Mapping) for x in final):
        if len(final) != T:
            raise ValueError(
                f"{_FN}: final_observations is a list of {len(final)} info dicts; "
                f"expected {T}, one per env.step call."
            )
        for t, info in enumerate(final):
            if "final_obs" not in info:
                continue
            entries = np.asarray(info["final_obs"], dtype=object)
            valid = info.get("_final_obs")
            if valid is None:
                valid = np.array([e is not None for e in entries.reshape(-1)])
            valid = np.asarray(valid, bool)
            if valid.shape != (n_envs,) or entries.shape[:1] != (n_envs,):
                raise ValueError(
                    f"{_FN}: final_observations[{t}]['final_obs'] has "
                    f"{entries.shape[:1]} entries; expected {n_envs}, one per "
                    "sub-environment."
                )
            for i in np.flatnonzero(valid & done[t]):
                dense[t, i] = _one_final(
                    entries[i], obs_shape, f"[{t}]['final_obs'][{i}]"
                )
                have[t, i] = True
    else:
        array = np.asarray(final)
        if array.dtype == object:
            if array.shape[:2] != (T, n_envs):
                raise ValueError(
                    f"{_FN}: final_observations has shape {array.shape}; expected "
                    f"{expected}."
                )
            for t, i in np.argwhere(done):
                if array[t, i] is not None:
                    dense[t, i] = _one_final(array[t, i], obs_shape, f"[{t}, {i}]")
                    have[t, i] = True
        else:
            if array.shape != (T, n_envs, *obs_shape):
                raise ValueError(
                    f"{_FN}: final_observations has shape {array.shape}; expected "
                    f"{expected}."
                )
            dense = np.where(
                done.reshape(done.shape + (1,) * len(obs_shape)), array, dense
            ).astype(obs.dtype)
            have[:] = True

    missing = np.argwhere(done & ~have)
    if missing.size:
        t, i = missing[0]
        raise ValueError(
            f"{_FN}: final_observations has no final observation for "
            f"sub-environment {i} at step {t}, where its episode ended (terminated "
            f"or truncated); in {mode} mode pass {expected}."
        )
    return dense


def _one_final(value, obs_shape, where):
    value = np.asarray(value)
    if value.shape != obs_shape:
        raise ValueError(
            f"{_FN}: final_observations{where} has shape {value.shape}; expected "
            f"{obs_shape} like one observation."
        )
    return value
