"""Acrobot, MountainCar and Pendulum tasks: data, batched physics and oracle."""

import math
import os

import gymnasium as gym
import numpy as np
import pytest

from adaptive_td.envs.classic import (
    Acrobot,
    AcrobotPolicy,
    MountainCar,
    Pendulum,
    acrobot_step,
    mountain_car_step,
    pendulum_step,
)

TASKS = (Acrobot, MountainCar, Pendulum)
TINY = dict(eval_states=6, eval_rollouts=8, num_envs=4)


def _random_states(task_cls, n, rng):
    if task_cls is Acrobot:
        return np.column_stack(
            [
                rng.uniform(-np.pi, np.pi, (n, 2)),
                rng.uniform(-4 * np.pi, 4 * np.pi, n),
                rng.uniform(-9 * np.pi, 9 * np.pi, n),
            ]
        )
    if task_cls is MountainCar:
        states = np.column_stack(
            [rng.uniform(-1.2, 0.6, n), rng.uniform(-0.07, 0.07, n)]
        )
        states[: n // 10, 0] = -1.2  # at the left wall, where velocity is zeroed
        return states
    return np.column_stack([rng.uniform(-10, 10, n), rng.uniform(-8, 8, n)])


def _random_actions(task_cls, n, rng):
    if task_cls is Pendulum:
        return rng.uniform(-3, 3, (n, 1)).astype(np.float32)  # clipping included
    return rng.integers(0, 3, n)


@pytest.mark.parametrize(
    "task_cls, step",
    [
        (Acrobot, acrobot_step),
        (MountainCar, mountain_car_step),
        (Pendulum, pendulum_step),
    ],
)
def test_batched_physics_matches_gymnasium_step_for_step(task_cls, step):
    rng = np.random.default_rng(0)
    states = _random_states(task_cls, 300, rng)
    actions = _random_actions(task_cls, 300, rng)
    env = gym.make(task_cls.env_id).unwrapped
    env.reset(seed=0)

    next_states, rewards, terminated = step(states, actions)

    for i in range(len(states)):
        env.state = states[i].copy()
        _, reward, term, trunc, _ = env.step(actions[i])
        # Equal up to the last bits: Gymnasium squares NumPy scalars with C pow
        # (powf for Pendulum's float32 torque), the batch by multiplication.
        np.testing.assert_allclose(next_states[i], env.state, rtol=0, atol=1e-12)
        assert abs(rewards[i] - reward) <= 1e-9
        assert terminated[i] == term and not trunc
    if task_cls is MountainCar:
        np.testing.assert_array_equal(next_states[:30, 1] >= 0, True)


@pytest.mark.parametrize("task_cls", TASKS)
def test_collect_valid_deterministic_and_flags(task_cls):
    task = task_cls(cache=False, num_envs=4)

    traj = task.collect(num_episodes=6, seed=3)
    again = task.collect(num_episodes=6, seed=3)
    other = task.collect(num_episodes=6, seed=4)

    traj.validate()
    assert traj.observations.shape[0] == 4
    assert traj.observations.shape[2:] == task.obs_shape
    for name in ("observations", "rewards", "terminated", "truncated", "mask"):
        np.testing.assert_array_equal(getattr(traj, name), getattr(again, name))
    assert not np.array_equal(traj.observations[:, :5], other.observations[:, :5])
    ended = np.asarray(traj.terminated) | np.asarray(traj.truncated)
    assert ended.sum() >= 6
    _check_episode_lengths(traj, task.max_episode_steps)


def test_time_limit_cuts_are_truncated_never_terminated():
    # Random actions rarely swing the Acrobot up within 500 steps.
    task = Acrobot(policy=AcrobotPolicy(epsilon=1.0), cache=False, num_envs=2)
    traj = task.collect(num_episodes=2, seed=0)

    assert np.asarray(traj.truncated).sum() >= 1
    _check_episode_lengths(traj, 500)
    pendulum = Pendulum(cache=False, num_envs=2).collect(num_episodes=2, seed=0)
    assert not np.asarray(pendulum.terminated).any()
    assert np.asarray(pendulum.truncated).sum() == 2
    _check_episode_lengths(pendulum, 200)


def _check_episode_lengths(traj, limit):
    """Truncated episodes last exactly `limit` steps, terminated ones at most."""
    term, trunc = np.asarray(traj.terminated), np.asarray(traj.truncated)
    mask = np.asarray(traj.mask)
    assert not (term & trunc).any()
    for row in range(mask.shape[0]):
        length = 0
        for t in range(mask.shape[1]):
            if not mask[row, t]:
                assert length == 0  # a reset step follows an episode end
                continue
            length += 1
            if trunc[row, t]:
                assert length == limit
                length = 0
            elif term[row, t]:
                assert length <= limit
                length = 0
            else:
                assert length < limit


@pytest.mark.parametrize("task_cls", TASKS)
def test_oracle_tiny_config_values_within_bounds(task_cls, tmp_path):
    task = task_cls(cache_dir=tmp_path, **TINY)
    rmax = task.max_abs_reward

    eval_set = task.evaluation_set()

    assert len(eval_set) == 6
    assert eval_set.observations.shape == (6, *task.obs_shape)
    assert eval_set.labels.shape == (6, task.state_dim)
    # Acrobot and MountainCar rewards are in [-1, 0]; Pendulum's in [-rmax, 0].
    assert np.all(eval_set.values <= 0)
    assert np.all(eval_set.values >= -rmax / (1 - task.gamma))
    assert np.all(eval_set.stderr >= 0) and np.all(np.isfinite(eval_set.stderr))
    assert task.gamma**task.horizon / (1 - task.gamma) * rmax < task.tol
    # The observations are those of the restored states.
    np.testing.assert_array_equal(
        type(task).observe(eval_set.labels), eval_set.observations
    )


@pytest.mark.parametrize("task_cls", TASKS)
def test_oracle_agrees_with_gymnasium_rollouts(task_cls):
    """Batched rollouts equal a loop over Gymnasium envs on the same streams."""
    task = task_cls(cache=False)
    traj, states = task.collect_with_states(num_episodes=2, seed=5, num_envs=2)
    start = states[0, [0, 40]]
    num_rollouts, horizon = 16, 300

    batched = task.rollout_returns(start, num_rollouts, seed=7, horizon=horizon)
    reference = _gymnasium_returns(task, start, num_rollouts, seed=7, horizon=horizon)

    if task_cls is Acrobot:
        # Chaotic: last-bit differences may grow, so compare statistically.
        se = np.hypot(batched.std(1), reference.std(1)) / math.sqrt(num_rollouts)
        assert np.all(np.abs(batched.mean(1) - reference.mean(1)) <= 4 * se + 1e-9)
    else:
        np.testing.assert_allclose(batched, reference, rtol=1e-9)


def _gymnasium_returns(task, start, num_rollouts, seed, horizon):
    rng = np.random.default_rng(seed)
    envs = []
    for state in np.repeat(start, num_rollouts, axis=0):
        env = gym.make(task.env_id).unwrapped
        env.reset(seed=0)
        env.state = state.copy()
        envs.append(env)
    obs = type(task).observe(np.stack([np.asarray(e.state) for e in envs]))
    returns = np.zeros(len(envs))
    alive = np.ones(len(envs), bool)
    for t in range(horizon):
        actions = task.policy(obs, rng)
        obs = obs.copy()
        for i, env in enumerate(envs):
            if alive[i]:
                obs[i], reward, terminated, _, _ = env.step(actions[i])
                returns[i] += task.gamma**t * reward
                alive[i] = not terminated
        if not alive.any():
            break
    return returns.reshape(len(start), num_rollouts)


def test_cache_round_trip_and_corrupt_file(tmp_path):
    task = MountainCar(cache_dir=tmp_path, **TINY)
    first = task.evaluation_set()
    path = task.cache_path()
    assert os.path.exists(path)
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]

    loaded = MountainCar(cache_dir=tmp_path, **TINY).evaluation_set()
    for name in ("observations", "values", "stderr", "labels"):
        np.testing.assert_array_equal(getattr(first, name), getattr(loaded, name))

    with open(path, "wb") as f:
        f.write(b"not an npz file")
    redone = MountainCar(cache_dir=tmp_path, **TINY).evaluation_set()
    np.testing.assert_array_equal(first.values, redone.values)
    np.testing.assert_array_equal(first.stderr, redone.stderr)
    with np.load(path) as data:  # rewritten
        np.testing.assert_array_equal(data["values"], first.values)

    other = MountainCar(cache_dir=tmp_path, gamma=0.9, **TINY)
    assert other.cache_path() != path


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError, match="gamma=1.0"):
        Acrobot(gamma=1.0)
    with pytest.raises(ValueError, match="eval_rollouts=1"):
        Pendulum(eval_rollouts=1)
    with pytest.raises(ValueError, match="epsilon=2"):
        AcrobotPolicy(epsilon=2)
    with pytest.raises(ValueError, match=r"expected \[M, 2\]"):
        MountainCar(cache=False).rollout_returns(np.zeros((3, 4)), 2, seed=0)
