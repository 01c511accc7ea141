"""The reference rollout oracle against exact values, on the chain exposed
through Gymnasium (adaptive_td/Chain-v0)."""

import math

import gymnasium
import numpy as np
import pytest

import adaptive_td.envs  # noqa: F401  (registers adaptive_td/Chain-v0)
from adaptive_td.envs.oracle import rollout_values


def test_rollout_oracle_agrees_with_exact_chain_values():
    # A 6-state chain with a wall between states 1 and 2, right-moving with
    # probability 0.6 (the policy below: action 1 is a move right).
    env = gymnasium.make(
        "adaptive_td/Chain-v0", num_states=6, wall=2, max_steps=30, gamma=0.9
    )
    task = env.unwrapped.task
    exact = task.exact_values()

    def restore(base, state):
        base.state = int(state)
        return base._observation()

    def policy(obs, rng):
        return int(rng.random() < task.p_right)

    # gamma^H / (1 - gamma) * max|r| < 1e-4 with max|r| = 2.
    horizon = math.ceil(math.log(1e-4 * (1 - 0.9) / 2) / math.log(0.9))
    values, stderr = rollout_values(
        env, restore, range(6), policy, gamma=0.9, rollouts=400, horizon=horizon
    )

    assert (stderr > 0).all()
    np.testing.assert_array_less(np.abs(values - exact), 4 * stderr + 1e-4)


def test_rollout_oracle_checks_its_arguments():
    env = gymnasium.make("adaptive_td/Chain-v0", num_states=6, wall=2)
    with pytest.raises(ValueError, match="rollouts=1; expected >= 2"):
        rollout_values(env, None, [0], None, gamma=0.9, rollouts=1, horizon=10)
    with pytest.raises(ValueError, match="gamma=1.5"):
        rollout_values(env, None, [0], None, gamma=1.5, rollouts=2, horizon=10)
