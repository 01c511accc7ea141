"""A random walk on a chain with a wall: the value jumps across the wall."""

from __future__ import annotations

import numpy as np

from adaptive_td.envs.tabular import TabularMDP, TabularTask


class WallChain(TabularTask):
    """A biased random walk on a chain of N states split by a wall.

    ## States

    States 0 ... N-1 in a row, plus one absorbing terminal state. A wall sits
    between states `wall - 1` and `wall`: the chain falls into a short left
    segment 0 ... wall-1 and a long right segment wall ... N-1 that never
    exchange the agent.

    ## Policy

    Every step the agent moves right with probability `p_right` and left
    otherwise. A move into the wall leaves the agent where it is.

    ## Rewards

    Moving left from state 0 gives `r_left`; moving right from state N-1 gives
    `r_right`; every other step gives 0.

    ## Episode end

    Moving left from state 0 or right from state N-1 terminates the episode.
    Episodes are cut (truncated) after `max_steps` steps.

    ## Observation

    One smooth scalar, x = s / (N-1) in [0, 1], shape `(1,)`. Neighbouring
    states on the two sides of the wall get neighbouring observations, so a
    small network cannot represent the jump exactly and TD's error at the wall
    can leak along the chain. The terminal state is observed as x = -0.1 (its
    value is never used).

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
      p_right: the probability of a step to the right, in (0, 1).
      r_left: the reward for leaving the chain on the left.
      r_right: the reward for leaving the chain on the right.
      gamma: the discount, in [0, 1).
      max_steps: the time limit of `collect`.
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
    ):
        if num_states < 2:
            raise ValueError(f"WallChain: num_states={num_states}; expected >= 2.")
        if not 1 <= wall <= num_states - 1:
            raise ValueError(
                f"WallChain: wall={wall}; expected 1 <= wall <= {num_states - 1} "
                "(the wall sits between states wall - 1 and wall)."
            )
        if not 0.0 < p_right < 1.0:
            raise ValueError(f"WallChain: p_right={p_right}; expected 0 < p < 1.")
        if not 0.0 <= gamma < 1.0:
            raise ValueError(f"WallChain: gamma={gamma}; expected 0 <= gamma < 1.")
        if max_steps < 1:
            raise ValueError(f"WallChain: max_steps={max_steps}; expected >= 1.")

        self.num_states = num_states
        self.wall = wall
        self.p_right = p_right
        self.r_left = r_left
        self.r_right = r_right
        self.gamma = gamma
        self.max_steps = max_steps
        self.obs_shape = (1,)
        self.mdp = wall_chain_mdp(num_states, wall, p_right, r_left, r_right)


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
