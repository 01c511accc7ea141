"""Monte Carlo ground truth for any Gymnasium environment whose state can be
restored: the reference oracle, one real environment stepped in Python.

`rollout_values` estimates V^pi(s) for given simulator states by running the
policy from each restored state past any time limit (it steps
`env.unwrapped`, so no `TimeLimit` wrapper cuts it) for `horizon` steps or
until termination, and averaging the discounted returns. It is slow (one
Python step at a time) and meant for small problems and for checking the
batched oracles of the benchmark tasks (`cartpole`, `classic`), which follow
the same definition.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import gymnasium
import numpy as np


def rollout_values(
    env: gymnasium.Env,
    restore: Callable[[Any, Any], Any],
    states: Sequence[Any],
    policy: Callable[[Any, np.random.Generator], Any],
    *,
    gamma: float,
    rollouts: int,
    horizon: int,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Estimate V^pi of each state by rollouts from the restored simulator.

    Args:
      env: the environment; its `unwrapped` environment is stepped.
      restore: `restore(unwrapped_env, state) -> observation` puts the
        simulator in `state` and returns the observation the policy sees.
      states: the simulator states to evaluate, `M` of them.
      policy: `policy(observation, rng) -> action`, the evaluated policy.
      gamma: the discount, in [0, 1].
      rollouts: rollouts per state, at least 2 (for a standard error).
      horizon: steps per rollout; choose it so that
        gamma^horizon / (1 - gamma) * max|r| is negligible.
      seed: seeds the environment's and the policy's random streams.

    Returns:
      (values, stderr), each `[M]` float64: the mean discounted return and
      its standard error (sample standard deviation, ddof=1, / sqrt(rollouts)).
    """
    if not 0.0 <= gamma <= 1.0:
        raise ValueError(f"rollout_values: gamma={gamma}; expected 0 <= gamma <= 1.")
    if rollouts < 2:
        raise ValueError(f"rollout_values: rollouts={rollouts}; expected >= 2.")
    if horizon < 1:
        raise ValueError(f"rollout_values: horizon={horizon}; expected >= 1.")

    base = env.unwrapped
    base.reset(seed=seed)
    rng = np.random.default_rng(seed)
    returns = np.zeros((len(states), rollouts))
    for i, state in enumerate(states):
        for j in range(rollouts):
            obs = restore(base, state)
            total, discount = 0.0, 1.0
            for _ in range(horizon):
                obs, reward, terminated, _, _ = base.step(policy(obs, rng))
                total += discount * float(reward)
                discount *= gamma
                if terminated:
                    break
            returns[i, j] = total
    stderr = returns.std(axis=1, ddof=1) / np.sqrt(rollouts)
    return returns.mean(axis=1), stderr
