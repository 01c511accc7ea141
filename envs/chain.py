"""A random walk on a chain with a wall: the value jumps across the wall."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from adaptive_td.envs.tabular import TabularMDP, TabularTask

OBSERVATIONS = ("scalar", "one_hot", "aliased")


class WallChain(TabularTask):
    """A biased random walk on a chain of N states split by a wall.

    ## States

    States 0 ... N-1 in a row, plus one absorbing terminal state. A wall sits
    between states `wall - 1` and `wall`: the chain falls into a short left
    segment 0 ... wall-1 and a long right segment wall ... N-1 that never
    exchange the agent.

    ## Actions and policy

    Two moves, left (action 0) and right (action 1). The evaluated policy
    moves right with probability `p_right` and left otherwise; `p_right = 1`
    (or 0) is a deterministic drift. A move into the wall leaves the agent
    where it is. (The Gymnasium version, `adaptive_td/Chain-v0`, lets the
    caller choose the moves; the evaluated policy is not part of it.)

    ## Rewards

    Moving left from state 0 gives `r_left`; moving right from state N-1 gives
    `r_right`; every other step gives 0. With `cliff` set, every move from
    state `cliff` falls off the chain with reward `r_cliff`. With
    `reward_noise` > 0, zero-mean Gaussian noise of that standard deviation is
    added to every sampled reward; the exact values do not change.

    ## Episode end

    Moving left from state 0 or right from state N-1 terminates the episode,
    and so does any move from the cliff state. Episodes are cut (truncated)
    after `max_steps` steps.

    ## Observation

    `observation="scalar"` (the default): one smooth scalar,
    x = s / (N-1) in [0, 1], shape `(1,)`. Neighbouring states on the two
    sides of the wall get neighbouring observations, so a small network cannot
    represent the jump exactly and TD's error at the wall can leak along the
    chain. The terminal state is observed as x = -0.1 (its value is never
    used).

    `observation="one_hot"`: the indicator of the state, shape `(N,)`; the
    terminal state is all zeros.

    `observation="aliased"`: a one-hot code over observation classes, shape
    `(K,)`. Each group in `aliases` is one class (its states share one
    observation on purpose); every other state is a class of its own. Classes
    are numbered in the order of their smallest state. `aliases=None` aliases
    the two states beside the wall, `((wall - 1, wall),)`. The terminal state
    is all zeros.

    ## Starting state

    Uniform over the N states.

    ## Ground truth

    Exact V^pi of every state from the linear system (float64), see
    `TabularMDP.exact_values`.

    With the defaults (N = 40, wall = 4, p_right = 0.6, r_left = 2, r_right = 1,
    gamma = 0.98) the left segment is worth 1.08 ... 1.55 and the right one
    0.056 ... 0.94: V jumps by 1.02 across the wall, 68% of the value range.
    The drift carries the right segment to its exit quickly; from the left
    segment the agent leaves against the drift. About 6% of the random-walk
    episodes reach the 200-step limit (truncated), nearly all of them started
    in the right segment near the wall.

    Args:
      num_states: N, at least 2.
      wall: the wall sits between states `wall - 1` and `wall`; 1 <= wall <= N-1.
      p_right: the probability of a step to the right, in [0, 1].
      r_left: the reward for leaving the chain on the left.
      r_right: the reward for leaving the chain on the right.
      gamma: the discount, in [0, 1).
      max_steps: the time limit of `collect`.
      reward_noise: the standard deviation of the reward noise, >= 0.
      cliff: None (no cliff) or the index of the cliff state.
      r_cliff: the reward for falling off the cliff.
      observation: "scalar", "one_hot" or "aliased".
      aliases: for "aliased", disjoint groups of states that share one
        observation each (each group at least 2 states).
    """

    name = "chain"
    description = "Random walk on a 40-state chain; a wall makes V jump (exact values)"

    def __init__(
        self,
        num_states: int = 40,
        wall: int = 4,
        p_right: float = 0.6,
        r_left: float = 2.0,
        r_right: float = 1.0,
        gamma: float = 0.98,
        max_steps: int = 200,
        reward_noise: float = 0.0,
        cliff: int | None = None,
        r_cliff: float = -1.0,
        observation: str = "scalar",
        aliases: Sequence[Sequence[int]] | None = None,
    ):
        for arg, value in (
            ("num_states", num_states),
            ("wall", wall),
            ("max_steps", max_steps),
            ("cliff", 0 if cliff is None else cliff),
        ):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise ValueError(
                    f"WallChain: {arg}={value!r}; expected an integer"
                    + (" or None." if arg == "cliff" else ".")
                )
        if num_states < 2:
            raise ValueError(f"WallChain: num_states={num_states}; expected >= 2.")
        if not 1 <= wall <= num_states - 1:
            raise ValueError(
                f"WallChain: wall={wall}; expected 1 <= wall <= {num_states - 1} "
                "(the wall sits between states wall - 1 and wall)."
            )
        if not 0.0 <= p_right <= 1.0:
            raise ValueError(f"WallChain: p_right={p_right}; expected 0 <= p <= 1.")
        if not 0.0 <= gamma < 1.0:
            raise ValueError(f"WallChain: gamma={gamma}; expected 0 <= gamma < 1.")
        if max_steps < 1:
            raise ValueError(f"WallChain: max_steps={max_steps}; expected >= 1.")
        if not (np.isfinite(reward_noise) and reward_noise >= 0):
            raise ValueError(
                f"WallChain: reward_noise={reward_noise}; expected a finite value >= 0."
            )
        if cliff is not None and not 0 <= cliff < num_states:
            raise ValueError(
                f"WallChain: cliff={cliff}; expected None or a state in "
                f"0 ... {num_states - 1}."
            )
        if observation not in OBSERVATIONS:
            raise ValueError(
                f"WallChain: observation={observation!r}; expected one of "
                f"{', '.join(map(repr, OBSERVATIONS))}."
            )
        if aliases is not None and observation != "aliased":
            raise ValueError(
                f"WallChain: aliases given with observation={observation!r}; "
                "aliases need observation='aliased'."
            )
        groups = _alias_groups(num_states, wall, aliases)

        self.num_states = num_states
        self.wall = wall
        self.p_right = p_right
        self.r_left = r_left
        self.r_right = r_right
        self.gamma = gamma
        self.max_steps = max_steps
        self.reward_noise = reward_noise
        self.cliff = cliff
        self.r_cliff = r_cliff
        self.observation = observation
        self.aliases = groups if observation == "aliased" else None
        mdp = wall_chain_mdp(num_states, wall, p_right, r_left, r_right)
        if cliff is not None:
            p, r = _add_cliff(mdp.transitions, mdp.rewards, cliff, r_cliff)
            mdp = dataclasses.replace(mdp, transitions=p, rewards=r)
        if observation != "scalar":
            features, terminal = _chain_features(num_states, observation, groups)
            mdp = dataclasses.replace(mdp, features=features, terminal_feature=terminal)
        if reward_noise > 0:
            mdp = dataclasses.replace(mdp, reward_noise=reward_noise)
        self.mdp = mdp
        self.obs_shape = tuple(mdp.features.shape[1:])

    def discontinuity_distance(self) -> np.ndarray:
        """Steps along the chain from every state to the value jump, `[N]`.

        Without a cliff, signed: `s - wall`, so the long segment right of the
        wall runs 0, 1, 2, ... away from it and the short left segment is
        negative (-1 beside the wall). With a cliff, the unsigned distance to
        the nearest jump: the two states beside the wall and the cliff state
        are at 0.
        """
        states = np.arange(self.num_states)
        if self.cliff is None:
            return (states - self.wall).astype(np.float64)
        jumps = np.array([self.wall - 1, self.wall, self.cliff])
        return np.min(np.abs(states[:, None] - jumps[None]), axis=1).astype(np.float64)

    def action_model(self) -> tuple[np.ndarray, np.ndarray]:
        """The dynamics of each move, for the Gymnasium version.

        Returns:
          `(transitions, rewards)`, each `[2, N, N+1]` float64: P_a(s, s') and
          R_a(s, s') for a = 0 (left) and a = 1 (right). Averaging them over
          the evaluated policy gives `mdp`.
        """
        models = [
            wall_chain_mdp(self.num_states, self.wall, p, self.r_left, self.r_right)
            for p in (0.0, 1.0)
        ]
        p = np.stack([m.transitions for m in models])
        r = np.stack([m.rewards for m in models])
        if self.cliff is not None:
            for a in range(2):
                p[a], r[a] = _add_cliff(p[a], r[a], self.cliff, self.r_cliff)
        return p, r


def wall_chain_mdp(
    num_states: int, wall: int, p_right: float, r_left: float, r_right: float
) -> TabularMDP:
    """The `TabularMDP` of `WallChain` (see its docstring)."""
    n = num_states
    terminal = n
    p = np.zeros((n, n + 1))
    r = np.zeros((n, n + 1))
    for s in range(n):
        left = terminal if s == 0 else (s if s == wall else s - 1)
        right = terminal if s == n - 1 else (s if s == wall - 1 else s + 1)
        p[s, left] += 1.0 - p_right
        p[s, right] += p_right
    r[0, terminal] = r_left
    r[n - 1, terminal] = r_right

    return TabularMDP(
        transitions=p,
        rewards=r,
        start=np.full(n, 1.0 / n),
        features=(np.arange(n) / (n - 1)).astype(np.float32)[:, None],
        terminal_feature=np.array([-0.1], np.float32),
    )


def _add_cliff(
    p: np.ndarray, r: np.ndarray, cliff: int, r_cliff: float
) -> tuple[np.ndarray, np.ndarray]:
    """Make every move from state `cliff` terminate with reward `r_cliff`."""
    p, r = np.array(p), np.array(r)
    p[cliff] = 0.0
    r[cliff] = 0.0
    p[cliff, -1] = 1.0
    r[cliff, -1] = r_cliff
    return p, r


def _alias_groups(
    num_states: int, wall: int, aliases: Sequence[Sequence[int]] | None
) -> tuple[tuple[int, ...], ...]:
    """Validate the alias groups; None gives the two states beside the wall."""
    if aliases is None:
        return ((wall - 1, wall),)

    groups = tuple(tuple(int(s) for s in group) for group in aliases)
    flat = [s for group in groups for s in group]
    if any(len(group) < 2 for group in groups):
        raise ValueError(
            f"WallChain: aliases={groups}; every group needs at least 2 states."
        )
    if any(not 0 <= s < num_states for s in flat) or len(set(flat)) != len(flat):
        raise ValueError(
            f"WallChain: aliases={groups}; expected disjoint groups of states in "
            f"0 ... {num_states - 1}."
        )
    return groups


def _chain_features(
    num_states: int, observation: str, groups: tuple[tuple[int, ...], ...]
) -> tuple[np.ndarray, np.ndarray]:
    """The "one_hot" or "aliased" features `[N, d]` and terminal feature `[d]`."""
    if observation == "one_hot":
        return np.eye(num_states, dtype=np.float32), np.zeros(num_states, np.float32)

    group_of = {s: min(group) for group in groups for s in group}
    representative = [group_of.get(s, s) for s in range(num_states)]
    classes = sorted(set(representative))
    index = np.array([classes.index(c) for c in representative])
    features = np.eye(len(classes), dtype=np.float32)[index]
    return features, np.zeros(len(classes), np.float32)
