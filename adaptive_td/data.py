"""The trajectory batch every estimator consumes.

A `Trajectories` batch is batch-major. Row b holds the observations
s_0 ... s_T and the T transitions between them; step t of a row is the
transition s_t -> s_{t+1} with reward r_t received on that transition
(Sutton and Barto's indexing):

    observations  [B, T+1, *obs_shape]
    rewards       [B, T]
    terminated    [B, T] bool   s_{t+1} is terminal (its value is 0)
    truncated     [B, T] bool   the episode was cut after step t; s_{t+1} is
                                a real state to bootstrap from
    mask          [B, T] bool   valid steps; padding and Gymnasium's
                                next-step reset rows are False
    actions       [B, T, ...] or None

A row may hold one padded episode or a stream of several episodes: the flags
cut the return recursion. Both flags on one step mean termination. The last
valid step of a segment with neither flag was cut mid-episode and bootstraps
from the state after it. A masked step in the middle of a row must directly
follow a flagged step (or another masked step); anything else is ambiguous and
rejected. A valid step may directly follow a terminated step (the terminal
observation is never read, so s_{t+1} is the next episode's first state), but
not a truncated one, whose s_{t+1} is the final observation to bootstrap from:
a masked reset row must come between.

Validation runs on the host with NumPy (`Trajectories.validate`); it is called
by the constructors here and by every estimator's `fit`, never inside jit.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import numpy as np

_FORMAT_VERSION = 1
_FIELDS = ("observations", "rewards", "terminated", "truncated", "mask", "actions")


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Trajectories:
    """A batch of trajectories, batch-major; see the module docstring.

    Attributes:
      observations: `[B, T+1, *obs_shape]`, s_0 ... s_T of each row.
      rewards: `[B, T]`, r_t received on the transition s_t -> s_{t+1}.
      terminated: `[B, T]` bool, s_{t+1} is terminal.
      truncated: `[B, T]` bool, the episode was cut after step t.
      mask: `[B, T]` bool, valid steps.
      actions: `[B, T, ...]` or None.
    """

    observations: Any
    rewards: Any
    terminated: Any
    truncated: Any
    mask: Any
    actions: Any = None

    # -- construction -------------------------------------------------------

    @classmethod
    def from_episodes(
        cls, episodes: Sequence[Mapping[str, Any]], *, pad_value: float = 0.0
    ) -> Trajectories:
        """Build a padded batch with one episode per row.

        Each episode is a mapping with
          - ``observations``: `[T_i + 1, *obs_shape]`, s_0 ... s_{T_i};
          - ``rewards``: `[T_i]`;
          - ``terminated`` (bool, default False): the episode ended in a
            terminal state;
          - ``truncated`` (bool, default False): it was cut after its last
            step (a time limit). With neither flag the episode is treated as
            cut mid-episode and bootstraps from its last observation;
          - ``actions`` (optional): `[T_i, ...]`, given for all or none.

        Rows are padded to the longest episode with `pad_value` and
        `mask=False`; the flag of how an episode ended sits on its last step.

        Raises:
          ValueError: naming the episode and field when an episode is
            malformed.
        """
        if isinstance(episodes, Mapping):
            raise ValueError(
                "from_episodes: got a single mapping; expected a sequence of "
                "episodes (a list of mappings), e.g. from_episodes([episode])."
            )
        episodes = list(episodes)
        if len(episodes) == 0:
            raise ValueError("from_episodes: got no episodes; expected at least one.")
        obs_list, rew_list, act_list = [], [], []
        ends = []
        for i, ep in enumerate(episodes):
            if not isinstance(ep, Mapping):
                raise ValueError(
                    f"from_episodes: episode {i} is a {type(ep).__name__}; expected "
                    "a mapping with 'observations' and 'rewards'."
                )
            unknown = set(ep) - {
                "observations",
                "rewards",
                "terminated",
                "truncated",
                "actions",
            }
            if unknown:
                raise ValueError(
                    f"from_episodes: episode {i} has unknown keys {sorted(unknown)}; "
                    "allowed: observations, rewards, terminated, truncated, actions."
                )
            for k in ("observations", "rewards"):
                if k not in ep:
                    raise ValueError(f"from_episodes: episode {i} has no '{k}'.")
            obs = _episode_array(i, "observations", ep["observations"])
            rew = _episode_array(i, "rewards", ep["rewards"])
            if rew.ndim != 1:
                raise ValueError(
                    f"from_episodes: episode {i} rewards has shape {rew.shape}; "
                    "expected a 1-D array [T]."
                )
            if rew.shape[0] == 0:
                raise ValueError(
                    f"from_episodes: episode {i} has no transition (0 rewards); "
                    "an episode needs at least one step."
                )
            if obs.ndim == 0 or obs.shape[0] != rew.shape[0] + 1:
                raise ValueError(
                    f"from_episodes: episode {i} has {obs.shape[0] if obs.ndim else 0}"
                    f" observations and {rew.shape[0]} rewards; expected "
                    f"{rew.shape[0] + 1} observations (s_0 ... s_T, one more than "
                    "rewards)."
                )
            for flag in ("terminated", "truncated"):
                value = ep.get(flag, False)
                if not isinstance(value, (bool, np.bool_)):
                    raise ValueError(
                        f"from_episodes: episode {i} {flag}={value!r}; expected a "
                        "Python or NumPy bool."
                    )
            obs_list.append(obs)
            rew_list.append(rew)
            ends.append((bool(ep.get("terminated", False)), bool(ep.get("truncated"))))
            act_list.append(
                None
                if ep.get("actions") is None
                else _episode_array(i, "actions", ep["actions"])
            )

        has_actions = [a is not None for a in act_list]
        if any(has_actions) and not all(has_actions):
            missing = has_actions.index(False)
            raise ValueError(
                f"from_episodes: episode {missing} has no actions but others do; "
                "give actions for all episodes or for none."
            )
        obs_shape = obs_list[0].shape[1:]
        for i, obs in enumerate(obs_list):
            if obs.shape[1:] != obs_shape:
                raise ValueError(
                    f"from_episodes: episode {i} observations have shape "
                    f"{obs.shape[1:]} per step; episode 0 has {obs_shape}."
                )

        lengths = [r.shape[0] for r in rew_list]
        B, T = len(episodes), max(lengths)
        obs_dtype = np.result_type(*[o.dtype for o in obs_list])
        rew_dtype = np.result_type(*[r.dtype for r in rew_list])
        for name, dtype in (("observations", obs_dtype), ("rewards", rew_dtype)):
            if np.issubdtype(dtype, np.floating):
                continue
            with np.errstate(invalid="ignore"):
                stored = np.asarray(pad_value).astype(dtype).item()
            if stored != pad_value:
                raise ValueError(
                    f"from_episodes: pad_value={pad_value!r} cannot be stored in "
                    f"{name} of dtype {dtype}; pick a value of that dtype."
                )
        observations = np.full((B, T + 1, *obs_shape), pad_value, dtype=obs_dtype)
        rewards = np.full((B, T), pad_value, dtype=rew_dtype)
        terminated = np.zeros((B, T), bool)
        truncated = np.zeros((B, T), bool)
        mask = np.zeros((B, T), bool)
        actions = None
        if all(has_actions):
            act_shape = act_list[0].shape[1:]
            for i, act in enumerate(act_list):
                if act.shape[1:] != act_shape:
                    raise ValueError(
                        f"from_episodes: episode {i} actions have shape "
                        f"{act.shape[1:]} per step; episode 0 has {act_shape}."
                    )
            actions = np.zeros((B, T, *act_shape), np.result_type(*act_list))
        for i, (obs, rew, (term, trunc)) in enumerate(zip(obs_list, rew_list, ends)):
            n = rew.shape[0]
            observations[i, : n + 1] = obs
            rewards[i, :n] = rew
            mask[i, :n] = True
            terminated[i, n - 1] = term
            truncated[i, n - 1] = trunc
            if actions is not None:
                if act_list[i].shape[0] != n:
                    raise ValueError(
                        f"from_episodes: episode {i} has {act_list[i].shape[0]} "
                        f"actions and {n} rewards; expected one action per step."
                    )
                actions[i, :n] = act_list[i]
        traj = cls(observations, rewards, terminated, truncated, mask, actions)
        traj.validate()
        return traj

    # -- shape information --------------------------------------------------

    @property
    def batch_size(self) -> int:
        return int(np.shape(self.rewards)[0])

    @property
    def horizon(self) -> int:
        """T, the number of steps per row (including padding)."""
        return int(np.shape(self.rewards)[1])

    @property
    def obs_shape(self) -> tuple[int, ...]:
        return tuple(np.shape(self.observations)[2:])

    @property
    def num_steps(self) -> int:
        """The number of valid transitions."""
        return int(np.sum(np.asarray(self.mask)))

    def summary(self) -> dict[str, int]:
        """Counts a user wants to see before fitting."""
        mask = np.asarray(self.mask)
        term = np.asarray(self.terminated) & mask
        trunc = np.asarray(self.truncated) & mask & ~term
        return {
            "rows": self.batch_size,
            "horizon": self.horizon,
            "steps": int(mask.sum()),
            "terminated": int(term.sum()),
            "truncated": int(trunc.sum()),
            "cut_segments": int(np.sum(segment_cuts(self) & mask & ~term & ~trunc)),
        }

    # -- validation ---------------------------------------------------------

    def validate(self) -> Trajectories:
        """Check shapes, dtypes, finiteness and the masking rule; return self.

        Raises:
          ValueError: naming the field, what was given and what was expected.
        """
        rewards = np.asarray(self.rewards)
        obs = np.asarray(self.observations)
        if rewards.ndim != 2:
            raise ValueError(
                f"Trajectories: rewards has shape {rewards.shape}; expected [B, T]."
            )
        B, T = rewards.shape
        if obs.ndim < 2 or obs.shape[:2] != (B, T + 1):
            hint = ""
            if obs.ndim >= 2 and obs.shape[:2] == (B, T):
                hint = (
                    " It has T entries per row: append the observation each row "
                    "ends in (s_T, the final observation)."
                )
            raise ValueError(
                f"Trajectories: observations has shape {obs.shape}; expected "
                f"[B, T+1, ...] = ({B}, {T + 1}, ...) for rewards of shape "
                f"{rewards.shape}.{hint}"
            )
        for name in ("terminated", "truncated", "mask"):
            value = np.asarray(getattr(self, name))
            if value.shape != (B, T):
                raise ValueError(
                    f"Trajectories: {name} has shape {value.shape}; expected "
                    f"{(B, T)} like rewards."
                )
            if value.dtype != np.bool_:
                raise ValueError(
                    f"Trajectories: {name} has dtype {value.dtype}; expected bool."
                )
        if self.actions is not None:
            actions = np.asarray(self.actions)
            if actions.shape[:2] != (B, T):
                raise ValueError(
                    f"Trajectories: actions has shape {actions.shape}; expected "
                    f"[B, T, ...] = ({B}, {T}, ...)."
                )
        for name, value in (("rewards", rewards), ("observations", obs)):
            real = np.issubdtype(value.dtype, np.integer) or np.issubdtype(
                value.dtype, np.floating
            )
            if not (real or value.dtype == np.bool_):
                raise ValueError(
                    f"Trajectories: {name} has dtype {value.dtype}; expected real "
                    "numbers (bool, integer or floating)."
                )
        if obs.ndim > 2 and 0 in obs.shape[2:]:
            raise ValueError(
                f"Trajectories: observations has shape {obs.shape}; each "
                "observation must hold at least one number."
            )

        mask = np.asarray(self.mask)
        terminated = np.asarray(self.terminated)
        flagged = terminated | np.asarray(self.truncated)
        bad = np.argwhere(flagged & ~mask)
        if bad.size:
            b, t = bad[0]
            raise ValueError(
                f"Trajectories: row {b} step {t} is masked out but has a terminated "
                "or truncated flag; flags belong on valid steps only."
            )
        bad = np.argwhere(mask & ~np.isfinite(rewards.astype(np.float64)))
        if bad.size:
            b, t = bad[0]
            raise ValueError(
                f"Trajectories: rewards[{b}, {t}] = {rewards[b, t]} on a valid step; "
                "rewards must be finite where mask is True."
            )
        if np.issubdtype(obs.dtype, np.floating):
            finite = np.isfinite(obs).all(axis=tuple(range(2, obs.ndim)))
            # s_t of every valid step, and s_{t+1} unless s_{t+1} is terminal.
            needed = np.zeros((B, T + 1), bool)
            needed[:, :-1] |= mask
            needed[:, 1:] |= mask & ~terminated
            bad = np.argwhere(needed & ~finite)
            if bad.size:
                b, t = bad[0]
                raise ValueError(
                    f"Trajectories: observations[{b}, {t}] holds NaN or inf and is "
                    "used by a valid step; observations must be finite there."
                )
        # After a truncation, s_{t+1} is the final observation the return
        # bootstraps from; it cannot also start the next episode.
        bad = np.argwhere(
            np.asarray(self.truncated)[:, :-1]
            & ~terminated[:, :-1]
            & mask[:, :-1]
            & mask[:, 1:]
        )
        if bad.size:
            b, t = bad[0]
            raise ValueError(
                f"Trajectories: row {b} step {t} is truncated and step {t + 1} is "
                f"valid, so observations[{b}, {t + 1}] would be both the final "
                "observation to bootstrap from and the next episode's first "
                "state. Put a masked reset row after the truncated step (the "
                "layout of Gymnasium's next-step autoreset) or start a new row."
            )
        # A masked step followed later by a valid one must follow a flag or
        # another masked step (or start the row).
        valid_later = np.flip(np.cumsum(np.flip(mask, 1), 1), 1) > 0
        gap_start = ~mask[:, 1:] & mask[:, :-1] & valid_later[:, 1:]
        bad = np.argwhere(gap_start & ~flagged[:, :-1])
        if bad.size:
            b, t = bad[0]
            raise ValueError(
                f"Trajectories: row {b} has a masked gap at step {t + 1} that does "
                f"not follow an episode end (step {t} has neither terminated nor "
                "truncated) and valid steps follow it; the batch is ambiguous. "
                "Flag the step before the gap or start a new row."
            )
        return self

    # -- files --------------------------------------------------------------

    def save(self, path: str | os.PathLike) -> None:
        """Save to `.npz` losslessly (dtypes and shapes preserved)."""
        self.validate()
        arrays = {
            name: np.asarray(getattr(self, name))
            for name in _FIELDS
            if getattr(self, name) is not None
        }
        arrays["format_version"] = np.asarray(_FORMAT_VERSION)
        path = os.fspath(path)
        tmp = path + ".tmp.npz"
        np.savez(tmp, **arrays)
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> Trajectories:
        """Load a batch written by `save`, and validate it."""
        where = f"Trajectories.load: {os.fspath(path)}"
        try:
            data = np.load(path, allow_pickle=False)
        except (ValueError, OSError) as error:
            raise ValueError(
                f"{where} is not an .npz file written by Trajectories.save ({error})."
            ) from None
        if not isinstance(data, np.lib.npyio.NpzFile):
            raise ValueError(f"{where} holds a single array; expected an .npz archive.")
        with data:
            missing = [f for f in _FIELDS[:-1] if f not in data.files]
            if missing:
                raise ValueError(
                    f"{where} lacks fields {missing}; expected "
                    f"{list(_FIELDS[:-1])} (and optionally actions)."
                )
            unknown = sorted(set(data.files) - set(_FIELDS) - {"format_version"})
            if unknown:
                raise ValueError(
                    f"{where} has unknown fields {unknown}; loading would drop them."
                )
            version = 1
            if "format_version" in data.files:
                version = int(data["format_version"])
            if version > _FORMAT_VERSION:
                raise ValueError(
                    f"{where} has format_version {version}; this version of "
                    f"adaptive_td reads up to {_FORMAT_VERSION}. Upgrade adaptive_td."
                )
            try:
                fields = {f: data[f] for f in _FIELDS if f in data.files}
            except ValueError as error:
                raise ValueError(f"{where}: {error}") from None
        return cls(**fields).validate()


def _episode_array(i: int, name: str, value) -> np.ndarray:
    """`np.asarray` of an episode field, naming the episode if it is ragged."""
    try:
        return np.asarray(value)
    except ValueError as error:
        raise ValueError(
            f"from_episodes: episode {i} {name} is not a rectangular array ({error})."
        ) from None


def segment_cuts(traj: Trajectories) -> np.ndarray:
    """Where the return recursion must stop: `[B, T]` bool.

    True on flagged valid steps, on the last valid step before a masked gap
    or the end of the row (a segment cut mid-episode), and on masked steps.
    """
    mask = np.asarray(traj.mask)
    flagged = np.asarray(traj.terminated) | np.asarray(traj.truncated)
    next_valid = np.concatenate([mask[:, 1:], np.zeros_like(mask[:, :1])], axis=1)
    return flagged | ~next_valid | ~mask
