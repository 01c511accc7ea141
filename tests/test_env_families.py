"""Tests for the chain and maze families and their Gymnasium versions."""

import dataclasses
import hashlib
import warnings

import gymnasium
import jax
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from adaptive_td import envs
from adaptive_td.envs import gym_env
from adaptive_td.envs.chain import WallChain
from adaptive_td.envs.maze import LAYOUTS, GridMaze, TwoRoomMaze
from adaptive_td.returns import discounted_returns

# sha256 of `collect(20, seed=0)` and of the evaluation observations of the
# default "chain" and "maze" tasks. The README's benchmark table depends on
# these batches: never change them. The exact values come from a float64
# linear solve whose last bits depend on the BLAS build, so they are pinned
# to 1e-12 instead of by hash (a hash of them failed on another CPU).
DEFAULT_HASHES = {
    "chain": "54add6cea46e537f719defa3a54d7e411a47e356b838606f184635feec5cb866",
    "maze": "7ae86dcad61c6c94bb8811a1da3178f769136795bc877f0c366cbd6a28464d67",
}
# V of the first, the middle and the last evaluation state.
DEFAULT_VALUES = {
    "chain": [1.5486797575561213, 0.18940297392871727, 0.938003118589353],
    "maze": [0.0643269623075133, 0.2947254289194894, 0.39091929373038964],
}
FIELDS = ("observations", "rewards", "terminated", "truncated", "mask")


def default_hash(name):
    task = envs.make(name)
    batch = task.collect(20, seed=0)
    digest = hashlib.sha256()
    for field in FIELDS:
        digest.update(np.ascontiguousarray(getattr(batch, field)).tobytes())
    digest.update(task.evaluation_set().observations.tobytes())
    return digest.hexdigest()


def bellman_residual(task):
    mdp = task.mdp
    values = task.exact_values()
    backup = mdp.expected_rewards + task.gamma * mdp.transitions[:, :-1] @ values
    return np.max(np.abs(values - backup))


# -- defaults ---------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(DEFAULT_HASHES))
def test_defaults_are_bit_identical(name):
    assert default_hash(name) == DEFAULT_HASHES[name]
    values = envs.make(name).evaluation_set().values
    np.testing.assert_allclose(
        values[[0, len(values) // 2, -1]], DEFAULT_VALUES[name], rtol=1e-12
    )


def test_default_maze_is_the_two_room_grid_maze():
    task = TwoRoomMaze()

    assert isinstance(task, GridMaze) and task.name == "maze"
    assert task.layout == LAYOUTS["two_rooms"] and task.goal == (6, 8)
    np.testing.assert_array_equal(
        task.exact_values(), GridMaze(layout="two_rooms").exact_values()
    )


# -- chain ------------------------------------------------------------------


def test_two_state_chain_solved_by_hand():
    # State 0: left exits with 2, right hits the wall.  V0 = 1 + V0 / 4.
    # State 1: left hits the wall, right exits with 1.  V1 = 1/2 + V1 / 4.
    task = WallChain(num_states=2, wall=1, p_right=0.5, gamma=0.5)

    np.testing.assert_allclose(task.exact_values(), [4 / 3, 2 / 3], rtol=1e-12)


def test_deterministic_drift_and_cliff_solved_by_hand():
    # Always right: state 0 sits at the wall forever (V = 0); 1 -> 2 -> 3 -> exit.
    drift = WallChain(num_states=4, wall=1, p_right=1.0, gamma=0.5)
    # A cliff at state 2: 1 -> 2 -> falls with -1.
    cliff = WallChain(num_states=4, wall=1, p_right=1.0, gamma=0.5, cliff=2)

    np.testing.assert_allclose(drift.exact_values(), [0, 0.25, 0.5, 1], atol=1e-12)
    np.testing.assert_allclose(cliff.exact_values(), [0, -0.5, -1, 1], atol=1e-12)
    traj, states = cliff.mdp.sample_with_states(jax.random.key(0), 50, 10)
    np.testing.assert_array_equal(traj.rewards[states[:, 0] == 2, 0], -1.0)
    assert np.all(traj.terminated[states[:, 0] == 2, 0])


@pytest.mark.parametrize(
    "kwargs, shape",
    [
        ({}, (1,)),
        ({"observation": "one_hot"}, (40,)),
        ({"observation": "aliased"}, (39,)),
        ({"observation": "aliased", "aliases": [(0, 20, 30), (5, 6)]}, (37,)),
    ],
)
def test_chain_observation_shapes(kwargs, shape):
    task = WallChain(**kwargs)
    traj = task.collect(4, seed=0)

    assert task.obs_shape == shape
    assert traj.observations.shape == (4, task.max_steps + 1, *shape)
    assert task.evaluation_set().observations.shape == (40, *shape)


def test_aliased_states_share_one_observation():
    default = WallChain(observation="aliased").mdp.features
    chosen = WallChain(observation="aliased", aliases=[(0, 20, 30)]).mdp.features

    np.testing.assert_array_equal(default[3], default[4])  # beside the wall
    assert len(np.unique(default, axis=0)) == 39
    np.testing.assert_array_equal(chosen[0], chosen[20])
    np.testing.assert_array_equal(chosen[0], chosen[30])
    assert len(np.unique(chosen, axis=0)) == 38


def test_chain_rejects_bad_options():
    with pytest.raises(ValueError, match="observation='pixels'"):
        WallChain(observation="pixels")
    with pytest.raises(ValueError, match="disjoint"):
        WallChain(observation="aliased", aliases=[(1, 2), (2, 3)])
    with pytest.raises(ValueError, match="aliases need"):
        WallChain(aliases=[(1, 2)])
    with pytest.raises(ValueError, match="cliff=40"):
        WallChain(cliff=40)


# -- maze -------------------------------------------------------------------


def test_one_cell_maze_solved_by_hand():
    # Three of four moves hit a wall; the fourth enters the goal.
    layout = ("####", "#.G#", "####")
    random = GridMaze(layout=layout, gamma=0.5)
    directed = GridMaze(layout=layout, gamma=0.5, policy="goal_directed", epsilon=0.2)

    # V = 1/4 + (3/4) V / 2, and with p = 0.8 + 0.2 / 4 toward the goal,
    # V = p + (1 - p) V / 2.
    np.testing.assert_allclose(random.exact_values(), [0.4], rtol=1e-12)
    np.testing.assert_allclose(directed.exact_values(), [0.85 / 0.925], rtol=1e-12)


def test_trap_ends_the_episode_with_its_reward():
    # (1, 2) <- (1, 3): from (1, 2) left is the trap, from (1, 3) right the goal.
    task = GridMaze(layout=("######", "#T..G#", "######"), gamma=0.5)

    p = task.mdp.transitions
    r = task.mdp.rewards
    assert p[0, 2] == 0.25 and r[0, 2] == -1.0
    assert p[1, 2] == 0.25 and r[1, 2] == 1.0


def test_goal_directed_policy_never_heads_for_a_trap_that_pays_like_the_goal():
    # From (1, 2): left enters the trap, right and down lead towards the goal.
    # A trap paying the goal's reward must still not count as the goal.
    layout = ("#######", "#T....#", "#.....#", "#....G#", "#######")
    for trap_reward in (-1.0, 1.0):
        maze = GridMaze(
            layout=layout,
            policy="goal_directed",
            epsilon=0.0,
            goal_reward=1.0,
            trap_reward=trap_reward,
        )
        i = [tuple(c) for c in maze.cells.tolist()].index((1, 2))
        np.testing.assert_allclose(maze.policy_probs()[i], [0.0, 0.5, 0.0, 0.5])


def test_maze_rejects_a_cell_between_goal_and_trap():
    with pytest.raises(ValueError, match="both the goal and a trap"):
        GridMaze(layout=("#####", "#T.G#", "#####"))
    with pytest.raises(ValueError, match="layout='mines'"):
        GridMaze(layout="mines")


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
@pytest.mark.parametrize("policy", ["random", "goal_directed"])
def test_every_layout_satisfies_the_bellman_equation(layout, policy):
    task = GridMaze(layout=layout, policy=policy)
    move_p, _ = task.action_model()
    probs = task.policy_probs()

    assert bellman_residual(task) < 1e-10
    np.testing.assert_allclose(
        np.einsum("sa,ast->st", probs, move_p), task.mdp.transitions, atol=1e-14
    )
    # A trap makes some values negative; the goal bounds all of them by 1.
    assert np.all(task.exact_values() < 1.0)
    if policy == "goal_directed":
        assert np.all(task.exact_values() > 0.5)


def test_sampled_returns_agree_with_exact_values():
    task = GridMaze(
        layout="four_rooms", policy="goal_directed", epsilon=0.3, reward_noise=0.5
    )
    values = task.exact_values()
    start = 0  # top-left corner of the top-left room
    mdp = dataclasses.replace(task.mdp, start=np.eye(task.mdp.num_states)[start])
    traj, states = mdp.sample_with_states(jax.random.key(1), 3000, task.max_steps)

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


@pytest.mark.parametrize(
    "observation, shape",
    [("xy", (2,)), ("one_hot", (102,)), ("image", (13, 13, 3))],
)
def test_maze_observation_shapes(observation, shape):
    task = GridMaze(layout="four_rooms", observation=observation)
    traj, states = task.mdp.sample_with_states(jax.random.key(0), 3, 50)
    eval_set = task.evaluation_set()

    assert task.obs_shape == shape
    assert traj.observations.shape == (3, 51, *shape)
    assert traj.observations.dtype == np.float32
    assert eval_set.observations.shape == (102, *shape)
    if observation == "image":
        walls, agent, exits = np.moveaxis(eval_set.observations, -1, 0)
        np.testing.assert_array_equal(walls, np.broadcast_to(task.walls, walls.shape))
        np.testing.assert_array_equal(agent.sum((1, 2)), 1.0)
        rows, cols = task.cells.T
        np.testing.assert_array_equal(agent[np.arange(102), rows, cols], 1.0)
        assert exits[0][task.goal] == 1.0 and exits[0][tuple(task.traps[0])] == -1.0


# -- both families ----------------------------------------------------------

NOISY = [
    ("chain", dict(reward_noise=0.3, observation="one_hot")),
    ("maze", dict(layout="labyrinth", reward_noise=0.3, observation="image")),
]


@pytest.mark.parametrize("name, kwargs", NOISY)
def test_seeded_collection_is_deterministic(name, kwargs):
    task = envs.make(name, **kwargs)
    batch, again = task.collect(8, seed=5), task.collect(8, seed=5)
    other = task.collect(8, seed=6)

    for field in FIELDS:
        np.testing.assert_array_equal(getattr(batch, field), getattr(again, field))
    assert not np.array_equal(batch.rewards, other.rewards)


@pytest.mark.parametrize("name, kwargs", NOISY)
def test_reward_noise_changes_rewards_not_values(name, kwargs):
    noisy = envs.make(name, **kwargs)
    exact = envs.make(name, **{**kwargs, "reward_noise": 0.0})
    batch, clean = noisy.collect(8, seed=0), exact.collect(8, seed=0)

    np.testing.assert_array_equal(noisy.exact_values(), exact.exact_values())
    # The same episodes, other rewards on the valid steps and none on padding.
    np.testing.assert_array_equal(batch.observations, clean.observations)
    np.testing.assert_array_equal(batch.mask, clean.mask)
    assert np.all(batch.rewards[batch.mask] != clean.rewards[batch.mask])
    np.testing.assert_array_equal(batch.rewards[~batch.mask], 0.0)
    noise = batch.rewards[batch.mask] - clean.rewards[batch.mask]
    assert abs(noise.std() - 0.3) < 0.05 and abs(noise.mean()) < 0.05


def test_chain_action_model_averages_to_the_policy():
    task = WallChain(p_right=0.7, cliff=10)
    move_p, move_r = task.action_model()

    mixed = 0.3 * move_p[0] + 0.7 * move_p[1]
    np.testing.assert_allclose(mixed, task.mdp.transitions, atol=1e-14)
    np.testing.assert_array_equal(move_r[:, 10, -1], -1.0)


# -- Gymnasium --------------------------------------------------------------


@pytest.mark.parametrize(
    "env_id, kwargs",
    [
        ("adaptive_td/Chain-v0", {}),
        ("adaptive_td/Chain-v0", dict(observation="aliased", reward_noise=0.1)),
        ("adaptive_td/Maze-v0", dict(layout="two_rooms")),
        ("adaptive_td/Maze-v0", dict(layout="four_rooms", observation="image")),
        ("adaptive_td/Maze-v0", dict(layout="open_room", observation="one_hot")),
    ],
)
def test_registered_envs_pass_the_checker(env_id, kwargs):
    env = gymnasium.make(env_id, **kwargs)

    assert isinstance(env.unwrapped, gymnasium.Env)
    assert env.spec.max_episode_steps == 200
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(env.unwrapped)
    obs, _ = env.reset(seed=0)
    assert obs.shape == env.unwrapped.task.obs_shape
    env.close()


def test_gym_maze_follows_the_moves():
    env = gym_env.make_maze_env(layout=("#####", "#..G#", "#####"))
    env.reset(seed=0)
    env.unwrapped.state = 0  # the cell (1, 1)

    _, reward, terminated, _, info = env.step(0)  # up: a wall
    assert (reward, terminated, info["state"]) == (0.0, False, 0)
    env.step(3)  # right, to (1, 2)
    obs, reward, terminated, truncated, _ = env.step(3)  # right, into the goal
    assert (reward, terminated, truncated) == (1.0, True, False)
    np.testing.assert_array_equal(obs, env.mdp.terminal_feature)


def test_registration_is_idempotent():
    before = dict(gymnasium.registry)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gym_env.register()

    assert gymnasium.registry.keys() == before.keys()
    assert gym_env.CHAIN_ID in before and gym_env.MAZE_ID in before


@pytest.mark.parametrize(
    "name, kwargs",
    [("chain", {"reward_noise": 0.3}), ("maze", {"observation": "image"})],
)
def test_sampling_several_seeds_in_one_vmapped_call_equals_one_at_a_time(name, kwargs):
    task = envs.make(name, **kwargs)
    keys = jax.random.split(jax.random.key(0), 3)
    many = task.mdp.sample_seeds(keys, 7, 50)
    assert len(many) == 3
    for key, batch in zip(keys, many):
        one = task.mdp.sample(key, 7, 50)
        for field in ("observations", "rewards", "terminated", "truncated", "mask"):
            np.testing.assert_array_equal(getattr(batch, field), getattr(one, field))
    assert not np.array_equal(many[0].mask, many[1].mask)


def test_chain_distance_from_the_wall_is_signed_and_with_a_cliff_unsigned():
    chain = WallChain(num_states=6, wall=2)
    np.testing.assert_array_equal(chain.discontinuity_distance(), [-2, -1, 0, 1, 2, 3])
    # Jumps at states 1 and 2 (beside the wall) and at the cliff state 4.
    cliff = WallChain(num_states=7, wall=2, cliff=4)
    np.testing.assert_array_equal(cliff.discontinuity_distance(), [1, 0, 0, 1, 0, 1, 2])


def test_maze_distance_from_cells_beside_an_inner_wall_by_hand():
    # The inner wall cell (1, 3) parts (1, 2) and (1, 4); both are at 0, the
    # other cells at their walking distance from them.
    layout = ("#######", "#..#.G#", "#.....#", "#######")
    maze = GridMaze(layout=layout, gamma=0.9)
    distance = dict(zip(map(tuple, maze.cells.tolist()), maze.discontinuity_distance()))
    assert distance[(1, 2)] == 0 and distance[(1, 4)] == 0
    assert distance[(1, 1)] == 1 and distance[(2, 3)] == 2 and distance[(2, 1)] == 2
    assert GridMaze(layout=("#####", "#..G#", "#####")).discontinuity_distance() is None
