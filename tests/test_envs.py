"""Tests for the benchmark tasks: exact values, sampling layout, CartPole oracle."""

import dataclasses
import os

import jax
import numpy as np
import pytest

from adaptive_td import envs
from adaptive_td.envs import cartpole as cartpole_module
from adaptive_td.envs.cartpole import BalancingPolicy, CartPole, rollout_values
from adaptive_td.envs.chain import WallChain
from adaptive_td.envs.maze import TwoRoomMaze
from adaptive_td.envs.tabular import TabularMDP
from adaptive_td.returns import discounted_returns


def two_state_mdp():
    """State 0 always moves to state 1 (reward 0). State 1 terminates w.p. 1/2
    with reward 1, else returns to state 0 with reward 0.

    With gamma = 1/2:  V0 = gamma V1,  V1 = 1/2 * 1 + 1/2 * gamma V0
    => V1 = 1/2 + V1 / 8 => V1 = 4/7, V0 = 2/7.
    """
    return TabularMDP(
        transitions=np.array([[0.0, 1.0, 0.0], [0.5, 0.0, 0.5]]),
        rewards=np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 1.0]]),
        start=np.array([1.0, 0.0]),
        features=np.array([[0.0], [1.0]], np.float32),
        terminal_feature=np.array([2.0], np.float32),
    )


# -- tabular ----------------------------------------------------------------


def test_exact_values_of_a_hand_solved_mdp():
    values = two_state_mdp().exact_values(0.5)

    np.testing.assert_allclose(values, [2 / 7, 4 / 7], rtol=1e-12)
    assert values.dtype == np.float64


def test_exact_values_gamma_one_and_zero():
    mdp = two_state_mdp()

    # gamma = 1: every episode ends with reward 1.
    np.testing.assert_allclose(mdp.exact_values(1.0), [1.0, 1.0], rtol=1e-12)
    np.testing.assert_allclose(mdp.exact_values(0.0), [0.0, 0.5], rtol=1e-12)


def test_tabular_mdp_rejects_bad_rows():
    with pytest.raises(ValueError, match="rows summing to 1"):
        dataclasses.replace(two_state_mdp(), transitions=np.full((2, 3), 0.5))


def test_sample_layout_and_determinism():
    mdp = WallChain().mdp
    key = jax.random.key(3)
    traj, states = mdp.sample_with_states(key, num_episodes=300, max_steps=40)
    again = mdp.sample(key, num_episodes=300, max_steps=40)
    other = mdp.sample(jax.random.key(4), num_episodes=300, max_steps=40)

    traj.validate()
    for name in ("observations", "rewards", "terminated", "truncated", "mask"):
        np.testing.assert_array_equal(getattr(traj, name), getattr(again, name))
    assert not np.array_equal(traj.observations, other.observations)
    assert traj.observations.dtype == np.float32 and traj.rewards.dtype == np.float32
    assert traj.observations.shape == (300, 41, 1) and states.shape == (300, 41)

    terminal = mdp.num_states
    ended = states == terminal
    # Valid exactly while the episode runs; terminated on the step into the
    # terminal state; truncated only on the last step of a running episode.
    np.testing.assert_array_equal(traj.mask, ~ended[:, :-1])
    np.testing.assert_array_equal(traj.terminated, ~ended[:, :-1] & ended[:, 1:])
    np.testing.assert_array_equal(traj.truncated[:, :-1], False)
    np.testing.assert_array_equal(traj.truncated[:, -1], ~ended[:, -1])
    assert np.all(traj.terminated.sum(1) + traj.truncated.sum(1) == 1)
    assert 0 < traj.truncated.sum() < 300
    # Padding: terminal observation, zero reward.
    assert np.all(traj.observations[ended] == mdp.terminal_feature)
    np.testing.assert_array_equal(traj.rewards[~traj.mask], 0.0)
    # Observations are the features of the visited states.
    running = ~ended
    np.testing.assert_array_equal(
        traj.observations[running], mdp.features[states[running]]
    )


def test_sample_rewards_follow_the_reward_table():
    mdp = WallChain().mdp
    traj, states = mdp.sample_with_states(jax.random.key(0), 500, 200)

    s, s_next = states[:, :-1], states[:, 1:]
    expected = np.where(traj.mask, mdp.rewards[np.minimum(s, 39), s_next], 0.0)
    np.testing.assert_array_equal(traj.rewards, expected.astype(np.float32))


# -- chain ------------------------------------------------------------------


def test_chain_value_jumps_across_the_wall():
    task = WallChain()
    values = task.evaluation_set().values
    w = task.wall

    value_range = values.max() - values.min()
    assert values[w - 1] - values[w] >= 0.5 * value_range
    # Both sides vary, and no step elsewhere comes close to the jump.
    assert np.ptp(values[:w]) > 0.2 and np.ptp(values[w:]) > 0.5
    steps = np.abs(np.diff(values))
    assert np.argmax(steps) == w - 1
    assert np.sort(steps)[-2] < 0.3 * steps[w - 1]


def test_chain_evaluation_set_covers_every_state():
    task = WallChain()
    eval_set = task.evaluation_set()

    assert eval_set.observations.shape == (40, 1)
    assert eval_set.observations.dtype == np.float32
    assert eval_set.stderr is None
    np.testing.assert_array_equal(eval_set.labels, np.arange(40))
    np.testing.assert_allclose(eval_set.observations[:, 0], np.arange(40) / 39)


def test_chain_wall_blocks_the_walk():
    mdp = WallChain(wall=4).mdp

    assert mdp.transitions[3, 4] == 0.0 and mdp.transitions[4, 3] == 0.0
    assert mdp.transitions[3, 3] == pytest.approx(0.6)
    assert mdp.transitions[4, 4] == pytest.approx(0.4)


@pytest.mark.parametrize("start", [1, 20])
def test_chain_returns_agree_with_exact_values(start):
    task = WallChain()
    values = task.exact_values()
    one_hot = np.eye(task.mdp.num_states)[start]
    mdp = dataclasses.replace(task.mdp, start=one_hot)
    traj, states = mdp.sample_with_states(jax.random.key(start), 4000, 200)

    # Bootstrap truncated episodes from the exact value of their last state.
    v_next = np.append(values, 0.0)[states[:, 1:]]
    g = discounted_returns(
        traj.rewards.astype(np.float64),
        v_next,
        traj.terminated,
        traj.truncated,
        gamma=task.gamma,
    )[:, 0]

    g = np.asarray(g)
    stderr = g.std(ddof=1) / np.sqrt(len(g))
    assert abs(g.mean() - values[start]) < 4 * stderr


# -- maze -------------------------------------------------------------------


def test_maze_values_satisfy_the_bellman_equation():
    task = TwoRoomMaze()
    mdp = task.mdp
    values = task.exact_values()

    backup = mdp.expected_rewards + task.gamma * mdp.transitions[:, :-1] @ values
    np.testing.assert_allclose(values, backup, rtol=1e-10, atol=1e-12)
    assert np.all((values > 0) & (values < 1))


def test_maze_layout_and_value_jump():
    task = TwoRoomMaze()
    eval_set = task.evaluation_set()
    grid = task.value_grid(eval_set.values)

    assert grid.shape == task.grid.shape
    assert np.all(np.isnan(grid[task.walls])) and np.isnan(grid[task.goal])
    assert eval_set.labels.shape == (len(eval_set), 2)
    assert eval_set.observations.min() == 0.0 and eval_set.observations.max() == 1.0
    # Below the goal, across the wall (column 7), the value collapses.
    assert grid[7, 8] - grid[7, 6] > 0.5 * np.ptp(eval_set.values)


def test_maze_each_move_is_a_quarter():
    mdp = TwoRoomMaze().mdp

    assert np.all(np.isin(np.round(mdp.transitions * 4, 12), [0, 1, 2, 3, 4]))


def test_maze_rejects_layouts_without_one_goal():
    with pytest.raises(ValueError, match="exactly one"):
        TwoRoomMaze(layout=("####", "#..#", "####"))


# -- cartpole ---------------------------------------------------------------


def segment_lengths(traj):
    """(length, terminated) of every episode that ends inside the batch."""
    out = []
    for b in range(traj.batch_size):
        length = 0
        for t in range(traj.horizon):
            if not traj.mask[b, t]:
                continue
            length += 1
            if traj.terminated[b, t] or traj.truncated[b, t]:
                out.append((length, bool(traj.terminated[b, t])))
                length = 0
    return out


def test_cartpole_collection_layout():
    task = CartPole(num_envs=8)
    traj = task.collect(num_episodes=40, seed=1)
    again = task.collect(num_episodes=40, seed=1)

    traj.validate()
    np.testing.assert_array_equal(traj.observations, again.observations)
    assert traj.batch_size == 8
    flagged = traj.terminated | traj.truncated
    assert 40 <= flagged.sum() < 48
    assert not np.any(traj.terminated & traj.truncated)
    # The step after every episode end is the masked reset step, and only it.
    np.testing.assert_array_equal(~traj.mask[:, 1:], flagged[:, :-1])
    assert np.all(traj.mask[:, 0])
    np.testing.assert_array_equal(traj.rewards, traj.mask.astype(np.float32))
    # After the reset step the observation is a fresh start state.
    b, t = np.nonzero(~traj.mask)
    assert np.all(np.abs(traj.observations[b, t + 1]) <= 0.05)
    # Time-limit ends are truncated at exactly 500 steps, falls are terminated.
    ends = segment_lengths(traj)
    assert any(not term for _, term in ends) and any(term for _, term in ends)
    for length, term in ends:
        assert length <= 500
        assert term or length == 500
    # Every row's last step cuts a running episode (or ends one).
    assert traj.mask[:, -1].all() or flagged[:, -2].any()


def test_cartpole_oracle_of_a_falling_state_is_one():
    # The pole is past 12 degrees after one step whatever the action.
    falling = np.array([[0.0, 0.0, 0.2, 5.0]])
    values, stderr = rollout_values(BalancingPolicy(), falling, 4, 0.98, 100, 0)

    np.testing.assert_array_equal(values, [1.0])
    np.testing.assert_array_equal(stderr, [0.0])


def test_cartpole_oracle_is_discounted_survival():
    # gamma = 0 counts one reward; a long horizon bounds the value by 1/(1-g).
    states = np.zeros((3, 4))
    values, _ = rollout_values(BalancingPolicy(), states, 2, 0.0, 1, 0)
    np.testing.assert_array_equal(values, [1.0, 1.0, 1.0])

    task = CartPole(gamma=0.9)
    values, stderr = rollout_values(task.policy, states, 4, 0.9, task.horizon, 0)
    assert np.all(values <= 10.0) and np.all(values > 10.0 - 1e-3)


def test_cartpole_evaluation_set_and_cache(tmp_path, monkeypatch):
    kwargs = dict(eval_states=12, eval_rollouts=8, eval_seed=5, cache_dir=tmp_path)
    task = CartPole(**kwargs)
    eval_set = task.evaluation_set()

    assert eval_set.observations.shape == (12, 4)
    assert eval_set.observations.dtype == np.float32
    assert eval_set.values.dtype == np.float64
    assert np.all((eval_set.values >= 0) & (eval_set.values <= 1 / (1 - task.gamma)))
    assert np.all(eval_set.stderr >= 0) and np.any(eval_set.stderr > 0)
    assert np.all(np.isfinite(eval_set.stderr))
    np.testing.assert_array_equal(
        eval_set.observations, eval_set.labels.astype(np.float32)
    )
    assert os.path.isfile(task.cache_path())
    assert [p.name for p in tmp_path.iterdir()] == [os.path.basename(task.cache_path())]

    # A second task with the same settings reads the file instead of computing.
    def fail(self):
        raise AssertionError("recomputed instead of reading the cache")

    monkeypatch.setattr(CartPole, "_compute_evaluation_set", fail)
    cached = CartPole(**kwargs).evaluation_set()
    for name in ("observations", "values", "stderr", "labels"):
        np.testing.assert_array_equal(getattr(cached, name), getattr(eval_set, name))
        assert getattr(cached, name).dtype == getattr(eval_set, name).dtype


def test_cartpole_cache_key_and_corrupt_file(tmp_path, monkeypatch):
    task = CartPole(eval_states=4, eval_rollouts=2, cache_dir=tmp_path)
    assert (
        task.cache_path()
        != CartPole(eval_states=4, eval_rollouts=3, cache_dir=tmp_path).cache_path()
    )
    assert (
        task.cache_path()
        != CartPole(
            gamma=0.9, eval_states=4, eval_rollouts=2, cache_dir=tmp_path
        ).cache_path()
    )
    with open(task.cache_path(), "wb") as f:
        f.write(b"not an npz file")

    values = task.evaluation_set().values
    assert values.shape == (4,)
    assert cartpole_module._load(task.cache_path(), task._cache_key()) is not None

    monkeypatch.setenv("ADAPTIVE_TD_CACHE", str(tmp_path / "from_env"))
    assert CartPole().cache_dir == str(tmp_path / "from_env")


# -- registry ---------------------------------------------------------------


def test_make_unknown_name():
    with pytest.raises(
        ValueError,
        match=r"unknown task 'pong'; known tasks: acrobot, cartpole, chain, maze, "
        r"mountain_car, pendulum",
    ):
        envs.make("pong")


@pytest.mark.parametrize("name", sorted(envs.TASKS))
def test_every_task_meets_the_contract(name, tmp_path):
    kwargs = {}
    if name == "cartpole":
        kwargs = dict(eval_states=5, eval_rollouts=2, cache_dir=tmp_path)
    task = envs.make(name, **kwargs)
    traj = task.collect(num_episodes=6, seed=0)
    eval_set = task.evaluation_set()

    assert isinstance(task, envs.Task) and task.name == name
    assert envs.TASKS[name][1] == task.description
    traj.validate()
    assert traj.obs_shape == task.obs_shape
    assert traj.observations.dtype == np.float32
    assert eval_set.observations.shape[1:] == task.obs_shape
    assert eval_set.values.dtype == np.float64
    np.testing.assert_array_equal(
        traj.observations, task.collect(num_episodes=6, seed=0).observations
    )
