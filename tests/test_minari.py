"""Tests for adaptive_td.datasets.from_minari: Minari datasets to Trajectories.

Datasets are recorded here, under a temporary MINARI_DATASETS_PATH, with
Minari's own `DataCollector` on Gymnasium's CartPole-v1 (random actions, fixed
seeds, a 30-step time limit so that episodes both terminate and truncate).
The steps are recorded independently while collecting, and the converted
batch must equal them exactly, dtypes and padding included. Inputs that
`DataCollector` cannot produce (an unfinished episode, a flag in the middle,
NaN) are written with `minari.create_dataset_from_buffers`, which stores the
episode buffers it is given as they are.
"""

import sys

import numpy as np
import pytest

minari = pytest.importorskip("minari")

import gymnasium as gym  # noqa: E402
from gymnasium import spaces  # noqa: E402
from minari.data_collector import EpisodeBuffer  # noqa: E402

from adaptive_td.datasets import from_minari  # noqa: E402

DATASET_ID = "adaptive_td/cartpole-test-v0"
# All of Minari's optional metadata, so that creating a dataset warns of none.
METADATA = dict(
    eval_env="CartPole-v1",
    algorithm_name="random",
    author="adaptive_td tests",
    author_email="tests@adaptive-td.invalid",
    code_permalink="https://adaptive-td.invalid/tests/test_minari.py",
    description="Random CartPole-v1 episodes for adaptive_td's tests.",
)
SEEDS = range(8)


@pytest.fixture(autouse=True)
def minari_path(tmp_path, monkeypatch):
    """Every test reads and writes Minari datasets under its own tmp folder."""
    path = tmp_path / "minari"
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(path))
    return path


def cartpole(max_episode_steps=30):
    return gym.make("CartPole-v1", max_episode_steps=max_episode_steps)


def collect(env, seeds, *, last_steps=None):
    """Random episodes through `DataCollector(env)`, and what was recorded.

    Each episode runs to its end, except the last one when `last_steps` is
    given: it stops after that many steps, unfinished.
    """
    collector = minari.DataCollector(env, data_format="arrow")
    collector.action_space.seed(0)
    episodes = []
    for i, seed in enumerate(seeds):
        obs, _ = collector.reset(seed=seed)
        ep = dict(obs=[obs], actions=[], rewards=[], terminated=[], truncated=[])
        stop = last_steps if i == len(seeds) - 1 else None
        while stop is None or len(ep["rewards"]) < stop:
            action = collector.action_space.sample()
            obs, reward, terminated, truncated, _ = collector.step(action)
            ep["obs"].append(obs)
            ep["actions"].append(action)
            ep["rewards"].append(reward)
            ep["terminated"].append(terminated)
            ep["truncated"].append(truncated)
            if terminated or truncated:
                break
        episodes.append(ep)
    return collector, episodes


def padded(episodes):
    """The batch `from_minari` must give: one zero-padded row per episode."""
    obs = [np.asarray(ep["obs"]) for ep in episodes]
    rewards = [np.asarray(ep["rewards"]) for ep in episodes]
    actions = [np.asarray(ep["actions"]) for ep in episodes]
    B, T = len(episodes), max(len(r) for r in rewards)
    out = dict(
        observations=np.zeros((B, T + 1, *obs[0].shape[1:]), obs[0].dtype),
        rewards=np.zeros((B, T), rewards[0].dtype),
        terminated=np.zeros((B, T), bool),
        truncated=np.zeros((B, T), bool),
        mask=np.zeros((B, T), bool),
        actions=np.zeros((B, T), actions[0].dtype),
    )
    for b, ep in enumerate(episodes):
        n = len(ep["rewards"])
        out["observations"][b, : n + 1] = obs[b]
        out["rewards"][b, :n] = rewards[b]
        out["actions"][b, :n] = actions[b]
        out["terminated"][b, :n] = ep["terminated"]
        out["truncated"][b, :n] = ep["truncated"]
        out["mask"][b, :n] = True
    return out


def assert_batch(traj, expected):
    for name, value in expected.items():
        got = np.asarray(getattr(traj, name))
        assert got.dtype == value.dtype, (name, got.dtype, value.dtype)
        assert got.shape == value.shape, (name, got.shape, value.shape)
        np.testing.assert_array_equal(got, value, err_msg=name)


def rollout(seed, steps):
    """`steps` random CartPole steps (none of them the last), as lists."""
    env = cartpole()
    env.action_space.seed(seed)
    obs, _ = env.reset(seed=seed)
    ep = dict(observations=[obs], actions=[], rewards=[])
    for _ in range(steps):
        action = env.action_space.sample()
        obs, reward, terminated, truncated, _ = env.step(action)
        assert not (terminated or truncated), "pick a seed with a longer episode"
        ep["observations"].append(obs)
        ep["actions"].append(action)
        ep["rewards"].append(reward)
    return ep


def from_buffers(*episodes, dataset_id="adaptive_td/cartpole-buffers-v0"):
    """A Minari dataset holding `episodes` (dicts of EpisodeBuffer fields)."""
    buffers = [EpisodeBuffer(**ep) for ep in episodes]
    return minari.create_dataset_from_buffers(
        dataset_id, buffers, env=cartpole(), data_format="arrow", **METADATA
    )


def steps(seed, n, *, terminations=None, truncations=None):
    ep = rollout(seed, n)
    ep["terminations"] = terminations or [False] * n
    ep["truncations"] = truncations or [False] * n
    return ep


# -- a recorded CartPole dataset ------------------------------------------------


@pytest.fixture
def recorded():
    collector, episodes = collect(cartpole(), SEEDS)
    created = collector.create_dataset(dataset_id=DATASET_ID, **METADATA)
    collector.close()
    return created, episodes


def test_cartpole_matches_the_recording(recorded):
    created, episodes = recorded
    dataset = minari.load_dataset(DATASET_ID)
    traj = from_minari(dataset)
    expected = padded(episodes)
    assert_batch(traj, expected)
    assert traj.observations.dtype == np.float32
    assert traj.rewards.dtype == np.float64
    assert traj.actions.dtype == np.int64

    n_term = sum(ep["terminated"][-1] for ep in episodes)
    n_trunc = sum(ep["truncated"][-1] and not ep["terminated"][-1] for ep in episodes)
    assert n_term >= 1 and n_trunc >= 1, "the seeds must give both kinds of end"
    summary = traj.summary()
    assert (summary["terminated"], summary["truncated"]) == (n_term, n_trunc)
    assert summary["rows"] == len(episodes) and summary["cut_segments"] == 0
    assert summary["steps"] == sum(len(ep["rewards"]) for ep in episodes)

    # The id string, and the dataset create_dataset returned, give the same.
    assert_batch(from_minari(DATASET_ID), expected)
    assert_batch(from_minari(created), expected)


def test_episode_indices_select_and_order(recorded):
    _, episodes = recorded
    want = padded([episodes[5], episodes[0], episodes[2]])
    assert_batch(from_minari(DATASET_ID, episode_indices=[5, 0, 2]), want)
    assert_batch(from_minari(DATASET_ID, episode_indices=np.array([5, 0, 2])), want)
    assert_batch(
        from_minari(DATASET_ID, episode_indices=range(3)), padded(episodes[:3])
    )
    # A filtered dataset converts its own episodes, in its order.
    dataset = minari.load_dataset(DATASET_ID)
    ended = dataset.filter_episodes(lambda ep: bool(ep.truncations[-1]))
    kept = [ep for ep in episodes if ep["truncated"][-1]]
    assert_batch(from_minari(ended), padded(kept))


@pytest.mark.parametrize(
    "indices, message",
    [
        ([], "episode_indices is empty"),
        ([1, 3, 1], r"repeats episode ids \[1\]"),
        ([0, 99], r"'adaptive_td/cartpole-test-v0' has no episodes with ids \[99\]"),
        ([-1], r"no episodes with ids \[-1\]"),
        ([0.0, 1.0], "expected a sequence of integer episode ids"),
        ([True], "expected a sequence of integer episode ids"),
        ("01", "expected a sequence of integer episode ids"),
        (3, "expected a sequence of integer episode ids"),
        ([[0, 1]], "expected a sequence of integer episode ids"),
    ],
)
def test_bad_episode_indices(recorded, indices, message):
    with pytest.raises(ValueError, match=message):
        from_minari(DATASET_ID, episode_indices=indices)


def test_not_a_dataset():
    with pytest.raises(ValueError, match="got a dict; expected a minari.MinariDataset"):
        from_minari({"observations": []})
    with pytest.raises(FileNotFoundError):
        from_minari("adaptive_td/no-such-dataset-v0")


def test_without_minari(monkeypatch):
    monkeypatch.setitem(sys.modules, "minari", None)
    with pytest.raises(
        ImportError, match="from_minari needs minari: pip install minari"
    ):
        from_minari(DATASET_ID)


# -- spaces ---------------------------------------------------------------------


# TransformObservation's function makes the env spec unserialisable for Minari.
@pytest.mark.filterwarnings("ignore:env_spec is not serializable:UserWarning")
def test_dict_observations_raise():
    env = cartpole()
    dict_env = gym.wrappers.TransformObservation(
        env,
        lambda obs: {"state": obs},
        spaces.Dict({"state": env.observation_space}),
    )
    collector, _ = collect(dict_env, [0, 1])
    collector.create_dataset(dataset_id="adaptive_td/cartpole-dict-v0", **METADATA)
    collector.close()
    with pytest.raises(ValueError) as info:
        from_minari("adaptive_td/cartpole-dict-v0")
    message = str(info.value)
    assert "observation space Dict('state': Box(" in message
    assert "FlattenObservation" in message and "flatten" in message.lower()

    # The fix the message suggests works.
    flat_env = gym.wrappers.FlattenObservation(
        gym.wrappers.TransformObservation(
            cartpole(),
            lambda obs: {"state": obs},
            spaces.Dict({"state": env.observation_space}),
        )
    )
    collector, episodes = collect(flat_env, [0, 1])
    collector.create_dataset(dataset_id="adaptive_td/cartpole-flat-v0", **METADATA)
    collector.close()
    assert_batch(from_minari("adaptive_td/cartpole-flat-v0"), padded(episodes))


def test_discrete_observations():
    collector, episodes = collect(
        gym.make("FrozenLake-v1", max_episode_steps=20), [0, 1, 2]
    )
    collector.create_dataset(
        dataset_id="adaptive_td/frozenlake-test-v0",
        **{**METADATA, "eval_env": "FrozenLake-v1"},
    )
    collector.close()
    traj = from_minari("adaptive_td/frozenlake-test-v0")
    assert traj.obs_shape == ()
    assert_batch(traj, padded(episodes))


# -- episode ends -----------------------------------------------------------------


def test_data_collector_truncates_an_episode_left_unfinished():
    # DataCollector marks the episode it holds at create_dataset as truncated
    # (minari 0.5: DataCollector._flush_to_storage), so it cannot record an
    # unfinished one; the converter passes the flag on.
    collector, episodes = collect(cartpole(), [0, 1, 2], last_steps=4)
    assert len(episodes[-1]["rewards"]) == 4 and not episodes[-1]["truncated"][-1]
    collector.create_dataset(dataset_id=DATASET_ID, **METADATA)
    collector.close()
    episodes[-1]["truncated"][-1] = True
    assert_batch(from_minari(DATASET_ID), padded(episodes))


def test_unfinished_episode_needs_allow_unfinished():
    finished = steps(3, 6, truncations=[False] * 5 + [True])
    unfinished = steps(4, 5)
    dataset = from_buffers(finished, unfinished)
    with pytest.raises(
        ValueError,
        match=r"episode 1 has no end: its last step 4 is neither terminated nor "
        r"truncated .* allow_unfinished=True",
    ):
        from_minari(dataset)
    traj = from_minari(dataset, allow_unfinished=True)
    expected = padded(
        [
            dict(
                obs=ep["observations"],
                actions=ep["actions"],
                rewards=ep["rewards"],
                terminated=ep["terminations"],
                truncated=ep["truncations"],
            )
            for ep in (finished, unfinished)
        ]
    )
    assert_batch(traj, expected)
    assert traj.summary()["cut_segments"] == 1 and traj.summary()["truncated"] == 1


def test_flag_before_the_last_step_raises():
    joined = steps(3, 6, terminations=[False, False, True, False, False, True])
    dataset = from_buffers(steps(4, 2, truncations=[False, True]), joined)
    with pytest.raises(
        ValueError,
        match=r"episode 1 step 2 is terminated, but the episode has 6 steps and only "
        r"its last step \(5\) may end it",
    ):
        from_minari(dataset)
    truncated = steps(3, 4, truncations=[True, False, False, True])
    with pytest.raises(ValueError, match="episode 0 step 0 is truncated"):
        from_minari(from_buffers(truncated, dataset_id="adaptive_td/trunc-v0"))


def test_nan_and_inf_raise_naming_episode_and_step():
    ep = steps(3, 5, truncations=[False] * 4 + [True])
    ep["observations"][3] = np.array([0.0, np.nan, 0.0, 0.0], np.float32)
    ok = steps(4, 2, truncations=[False, True])
    with pytest.raises(
        ValueError,
        match=r"episode 1 step 3: observation \(observations\[3\]\) is \[ 0\. nan",
    ):
        from_minari(from_buffers(ok, ep))

    ep = steps(3, 5, truncations=[False] * 4 + [True])
    ep["rewards"][2] = float("inf")
    with pytest.raises(ValueError, match=r"episode 0 step 2: reward is inf"):
        from_minari(from_buffers(ep, dataset_id="adaptive_td/inf-v0"))

    # The final observation: inf raises after a truncation, and is allowed
    # after a termination (a terminal observation is never read).
    ep = steps(3, 5, truncations=[False] * 4 + [True])
    ep["observations"][5] = np.full(4, np.inf, np.float32)
    with pytest.raises(
        ValueError,
        match=r"episode 0 step 4 \(the last\): its next observation "
        r"\(observations\[5\]\) is \[inf",
    ):
        from_minari(from_buffers(ep, dataset_id="adaptive_td/final-v0"))
    ep["truncations"] = [False] * 5
    ep["terminations"] = [False] * 4 + [True]
    traj = from_minari(from_buffers(ep, dataset_id="adaptive_td/terminal-v0"))
    assert np.isinf(traj.observations[0, 5]).all() and traj.terminated[0, 4]


def test_episodes_minari_storage_cannot_hold(recorded, monkeypatch):
    # Minari's storages always return consistent lengths and bool flags; an
    # EpisodeData built by hand (or a future storage) is still checked.
    dataset = minari.load_dataset(DATASET_ID)
    good = next(dataset.iterate_episodes([3]))
    T = len(good.rewards)

    def serve(**changes):
        fields = {
            k: getattr(good, k)
            for k in (
                "id",
                "observations",
                "actions",
                "rewards",
                "terminations",
                "truncations",
                "infos",
            )
        }
        episode = minari.EpisodeData(**{**fields, **changes})
        monkeypatch.setattr(
            dataset, "iterate_episodes", lambda indices=None: iter([episode])
        )
        return dataset

    with pytest.raises(
        ValueError,
        match=rf"episode 3 has {T} observations and {T} rewards; expected {T + 1} "
        "observations",
    ):
        from_minari(serve(observations=good.observations[:-1]))
    with pytest.raises(ValueError, match=rf"episode 3 has {T - 1} actions"):
        from_minari(serve(actions=good.actions[:-1]))
    with pytest.raises(ValueError, match=r"episode 3 terminations has .* dtype int64"):
        from_minari(serve(terminations=good.terminations.astype(np.int64)))
    with pytest.raises(ValueError, match=r"episode 3 truncations has shape"):
        from_minari(serve(truncations=good.truncations[:-1]))
    with pytest.raises(ValueError, match=r"episode 3 observations is a dict"):
        from_minari(serve(observations={"state": good.observations}))
    with pytest.raises(ValueError, match=r"episode 3 rewards has shape \(0,\)"):
        from_minari(serve(rewards=good.rewards[:0]))
    with pytest.raises(ValueError, match=r"gave 1 episodes for the 2 episode"):
        from_minari(serve(), episode_indices=[3, 4])
