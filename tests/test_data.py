"""Tests for adaptive_td.data.Trajectories and training.transitions.

Every batch here is small enough to write out by hand; the expected numbers
are derived in the comments next to them.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from adaptive_td import training
from adaptive_td.data import Trajectories

F, T = False, True
NAN, INF = float("nan"), float("inf")


def _three_episodes(actions=(None, None, None)):
    """Terminated (2 steps), truncated (1 step), cut mid-episode (3 steps).

    `actions[i]`, when not None, is given as episode i's actions.
    """
    episodes = [
        dict(
            observations=np.array([[0.0], [1.0], [2.0]]),
            rewards=np.array([1.0, 2.0]),
            terminated=True,
        ),
        dict(
            observations=np.array([[10.0], [11.0]]),
            rewards=np.array([5.0]),
            truncated=True,
        ),
        dict(
            observations=np.array([[20.0], [21.0], [22.0], [23.0]]),
            rewards=np.array([1.0, 1.0, 1.0]),
        ),
    ]
    for episode, acts in zip(episodes, actions):
        if acts is not None:
            episode["actions"] = np.asarray(acts)
    return episodes


def _batch(observations, rewards, terminated, truncated, mask, actions=None):
    """A batch built directly from nested lists (no validation yet)."""
    return Trajectories(
        observations=np.asarray(observations, np.float64),
        rewards=np.asarray(rewards, np.float64),
        terminated=np.asarray(terminated, bool),
        truncated=np.asarray(truncated, bool),
        mask=np.asarray(mask, bool),
        actions=actions,
    )


def _stream_row():
    """One row of a vector-env buffer with Gymnasium next-step autoreset.

    Step 0: 0 -> 1, step 1: 1 -> 2 terminated (s_2 is terminal, here NaN),
    step 2: the masked reset row 2 -> 5, step 3: 5 -> 6, step 4: 6 -> 7
    truncated.
    """
    return _batch(
        observations=[[0.0, 1.0, NAN, 5.0, 6.0, 7.0]],
        rewards=[[1.0, 2.0, 0.0, 3.0, 4.0]],
        terminated=[[F, T, F, F, F]],
        truncated=[[F, F, F, F, T]],
        mask=[[T, T, F, T, T]],
    )


# -- from_episodes ------------------------------------------------------------


def test_from_episodes_layout():
    traj = Trajectories.from_episodes(_three_episodes(), pad_value=-1.0)

    # B = 3 episodes, T = 3 (the longest), observations T + 1 = 4 per row.
    assert traj.observations.shape == (3, 4, 1)
    assert traj.rewards.shape == (3, 3)
    assert (traj.batch_size, traj.horizon, traj.obs_shape) == (3, 3, (1,))
    assert traj.num_steps == 2 + 1 + 3
    np.testing.assert_array_equal(
        traj.observations[..., 0],
        [[0, 1, 2, -1], [10, 11, -1, -1], [20, 21, 22, 23]],
    )
    np.testing.assert_array_equal(traj.rewards, [[1, 2, -1], [5, -1, -1], [1, 1, 1]])
    np.testing.assert_array_equal(traj.mask, [[T, T, F], [T, F, F], [T, T, T]])
    # The flag of how an episode ended sits on its last step.
    np.testing.assert_array_equal(traj.terminated, [[F, T, F], [F, F, F], [F, F, F]])
    np.testing.assert_array_equal(traj.truncated, [[F, F, F], [T, F, F], [F, F, F]])
    for name in ("terminated", "truncated", "mask"):
        assert getattr(traj, name).dtype == np.bool_
    assert traj.actions is None


def test_from_episodes_actions_for_all():
    traj = Trajectories.from_episodes(_three_episodes([[1, 0], [1], [0, 1, 1]]))

    # Actions are padded with 0 past each episode's end.
    np.testing.assert_array_equal(traj.actions, [[1, 0, 0], [1, 0, 0], [0, 1, 1]])
    assert np.issubdtype(traj.actions.dtype, np.integer)


def test_from_episodes_actions_for_some_rejected():
    episodes = _three_episodes([[1, 0], None, [0, 1, 1]])
    with pytest.raises(
        ValueError, match=r"episode 1 has no actions.*all .* or for none"
    ):
        Trajectories.from_episodes(episodes)


def test_from_episodes_action_count_rejected():
    episodes = _three_episodes([[0, 0], [0, 0], [0, 0]])
    with pytest.raises(ValueError, match="episode 1 has 2 actions and 1 rewards"):
        Trajectories.from_episodes(episodes)


def test_from_episodes_observation_count_t_rejected():
    # 2 rewards need 2 + 1 = 3 observations s_0, s_1, s_2.
    episode = dict(observations=np.zeros((2, 1)), rewards=np.zeros(2))
    with pytest.raises(
        ValueError, match=r"2 observations and 2 rewards; expected 3 observations"
    ):
        Trajectories.from_episodes([episode])


def test_from_episodes_zero_steps_rejected():
    episode = dict(observations=np.zeros((1, 1)), rewards=np.zeros(0))
    with pytest.raises(ValueError, match=r"episode 0 has no transition \(0 rewards\)"):
        Trajectories.from_episodes([episode])


def test_from_episodes_no_episodes_rejected():
    with pytest.raises(ValueError, match="no episodes"):
        Trajectories.from_episodes([])


def test_from_episodes_non_bool_flag_rejected():
    episode = dict(observations=np.zeros(2), rewards=np.zeros(1), terminated=1)
    with pytest.raises(ValueError, match=r"episode 0 terminated=1; expected .*bool"):
        Trajectories.from_episodes([episode])


def test_from_episodes_nan_padding_accepted():
    traj = Trajectories.from_episodes(_three_episodes(), pad_value=NAN)

    assert np.isnan(traj.rewards[1, 1:]).all()
    assert np.isnan(traj.observations[1, 2:]).all()
    assert np.isfinite(traj.rewards[traj.mask]).all()


# -- validation ---------------------------------------------------------------


def _valid_kwargs():
    """Two rows, T = 3: a terminated episode and a padded truncated one."""
    return dict(
        observations=[[0.0, 1.0, 2.0, 3.0], [4.0, 5.0, 6.0, 0.0]],
        rewards=[[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]],
        terminated=[[F, F, T], [F, F, F]],
        truncated=[[F, F, F], [F, T, F]],
        mask=[[T, T, T], [T, T, F]],
    )


def test_valid_batch_passes():
    traj = _batch(**_valid_kwargs())
    assert traj.validate() is traj


def test_observation_count_t_rejected():
    kwargs = _valid_kwargs()
    kwargs["observations"] = [row[:3] for row in kwargs["observations"]]
    with pytest.raises(ValueError, match=r"observations has shape \(2, 3\)") as info:
        _batch(**kwargs).validate()
    # The message spells out T+1 and how to fix the batch.
    assert "[B, T+1, ...] = (2, 4, ...)" in str(info.value)
    assert "final observation" in str(info.value)


@pytest.mark.parametrize("name", ["terminated", "truncated", "mask"])
def test_flag_shape_mismatch_rejected(name):
    kwargs = _valid_kwargs()
    kwargs[name] = [row + [F] for row in kwargs[name]]
    with pytest.raises(
        ValueError, match=rf"{name} has shape \(2, 4\); expected \(2, 3\) like rewards"
    ):
        _batch(**kwargs).validate()


def test_rewards_not_2d_rejected():
    kwargs = _valid_kwargs()
    traj = dataclasses.replace(_batch(**kwargs), rewards=np.zeros(3))
    with pytest.raises(
        ValueError, match=r"rewards has shape \(3,\); expected \[B, T\]"
    ):
        traj.validate()


@pytest.mark.parametrize("name", ["terminated", "truncated", "mask"])
def test_non_bool_flags_rejected(name):
    traj = _batch(**_valid_kwargs())
    traj = dataclasses.replace(traj, **{name: np.asarray(getattr(traj, name), int)})
    with pytest.raises(ValueError, match=rf"{name} has dtype int64; expected bool"):
        traj.validate()


def test_actions_shape_mismatch_rejected():
    traj = _batch(**_valid_kwargs(), actions=np.zeros((2, 4)))
    with pytest.raises(ValueError, match=r"actions has shape \(2, 4\)"):
        traj.validate()


@pytest.mark.parametrize("bad", [NAN, INF, -INF])
def test_non_finite_reward_on_valid_step_rejected(bad):
    kwargs = _valid_kwargs()
    kwargs["rewards"][1][1] = bad
    with pytest.raises(ValueError, match=r"rewards\[1, 1\] = .* on a valid step"):
        _batch(**kwargs).validate()


@pytest.mark.parametrize("bad", [NAN, INF])
def test_non_finite_in_padding_accepted(bad):
    kwargs = _valid_kwargs()
    # Row 1 step 2 is padding: its reward and the observation after it
    # (observations[1, 3]) are never used.
    kwargs["rewards"][1][2] = bad
    kwargs["observations"][1][3] = bad
    _batch(**kwargs).validate()


def test_nan_observation_of_valid_step_rejected():
    kwargs = _valid_kwargs()
    kwargs["observations"][0][1] = NAN
    with pytest.raises(
        ValueError,
        match=r"observations\[0, 1\] holds NaN or inf and is used by a valid",
    ):
        _batch(**kwargs).validate()


def test_nan_observation_after_terminal_step_accepted():
    # Row 0 terminates at step 2: s_3 is terminal, its value is 0 whatever it
    # holds, so a NaN there is fine.
    kwargs = _valid_kwargs()
    kwargs["observations"][0][3] = NAN
    _batch(**kwargs).validate()


def test_nan_observation_after_truncated_step_rejected():
    # Row 1 is truncated at step 1: s_2 is the state it bootstraps from.
    kwargs = _valid_kwargs()
    kwargs["observations"][1][2] = NAN
    with pytest.raises(ValueError, match=r"observations\[1, 2\] holds NaN"):
        _batch(**kwargs).validate()


def test_masked_gap_without_flag_rejected():
    # Step 1 is masked, step 0 has no flag and step 2 is valid again.
    traj = _batch(
        observations=[[0.0, 1.0, 2.0, 3.0]],
        rewards=[[1.0, 0.0, 1.0]],
        terminated=[[F, F, T]],
        truncated=[[F, F, F]],
        mask=[[T, F, T]],
    )
    with pytest.raises(
        ValueError, match=r"row 0 has a masked gap at step 1 .* ambiguous"
    ):
        traj.validate()


def test_masked_gap_after_flag_accepted():
    # Gymnasium next-step autoreset: flagged step, masked reset row, new episode.
    _stream_row().validate()


def test_masked_gap_after_truncation_accepted():
    traj = _stream_row()
    traj = dataclasses.replace(
        traj,
        terminated=np.array([[F, F, F, F, F]]),
        truncated=np.array([[F, T, F, F, T]]),
        # s_2 is now a real state (the bootstrap of step 1), so it must be finite.
        observations=np.array([[0.0, 1.0, 2.0, 5.0, 6.0, 7.0]]),
    )
    traj.validate()


def test_leading_masked_steps_accepted():
    traj = _batch(
        observations=[[0.0, 1.0, 2.0, 3.0]],
        rewards=[[0.0, 0.0, 1.0]],
        terminated=[[F, F, T]],
        truncated=[[F, F, F]],
        mask=[[F, F, T]],
    )
    traj.validate()


@pytest.mark.parametrize("name", ["terminated", "truncated"])
def test_flag_on_masked_step_rejected(name):
    kwargs = _valid_kwargs()
    kwargs[name][1][2] = T  # Row 1 step 2 is padding.
    with pytest.raises(
        ValueError,
        match=r"row 1 step 2 is masked out but has a terminated or truncated flag",
    ):
        _batch(**kwargs).validate()


# -- files --------------------------------------------------------------------


def _assert_same(a, b):
    for name in ("observations", "rewards", "terminated", "truncated", "mask"):
        x, y = np.asarray(getattr(a, name)), np.asarray(getattr(b, name))
        assert x.dtype == y.dtype, name
        assert x.shape == y.shape, name
        np.testing.assert_array_equal(x, y, err_msg=name)  # NaN == NaN here.
    if a.actions is None:
        assert b.actions is None
    else:
        assert np.asarray(a.actions).dtype == np.asarray(b.actions).dtype
        np.testing.assert_array_equal(a.actions, b.actions)


@pytest.mark.parametrize("with_actions", [False, True])
def test_save_load_round_trip(tmp_path, with_actions):
    actions = (None, None, None)
    if with_actions:
        actions = [np.arange(n, dtype=np.int8) for n in (2, 1, 3)]
    episodes = _three_episodes(actions)
    for ep in episodes:
        ep["observations"] = ep["observations"].astype(np.float32)
        ep["rewards"] = ep["rewards"].astype(np.float16)
    traj = Trajectories.from_episodes(episodes, pad_value=NAN)
    path = tmp_path / "batch.npz"

    traj.save(path)
    loaded = Trajectories.load(path)

    assert loaded.observations.dtype == np.float32
    assert loaded.rewards.dtype == np.float16
    assert np.isnan(loaded.rewards[1, 1:]).all()
    _assert_same(traj, loaded)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["batch.npz"]


def test_load_missing_field_rejected(tmp_path):
    traj = Trajectories.from_episodes(_three_episodes())
    path = tmp_path / "broken.npz"
    np.savez(
        path,
        observations=traj.observations,
        rewards=traj.rewards,
        terminated=traj.terminated,
        truncated=traj.truncated,
    )
    with pytest.raises(ValueError, match=r"lacks fields \['mask'\]"):
        Trajectories.load(path)


def test_load_validates(tmp_path):
    traj = Trajectories.from_episodes(_three_episodes())
    path = tmp_path / "bad.npz"
    rewards = traj.rewards.copy()
    rewards[0, 0] = NAN
    np.savez(
        path,
        observations=traj.observations,
        rewards=rewards,
        terminated=traj.terminated,
        truncated=traj.truncated,
        mask=traj.mask,
    )
    with pytest.raises(ValueError, match=r"rewards\[0, 0\] = nan"):
        Trajectories.load(path)


# -- pytree -------------------------------------------------------------------


@pytest.mark.parametrize("with_actions", [False, True])
def test_is_a_pytree(with_actions):
    actions = [np.ones(n) for n in (2, 1, 3)] if with_actions else [None] * 3
    traj = Trajectories.from_episodes(_three_episodes(actions), pad_value=NAN)

    leaves, treedef = jax.tree_util.tree_flatten(traj)
    # Five arrays, plus actions when given (None is an empty subtree).
    assert len(leaves) == (6 if with_actions else 5)
    rebuilt = jax.tree_util.tree_unflatten(treedef, leaves)
    assert isinstance(rebuilt, Trajectories)
    _assert_same(traj, rebuilt)
    halved = jax.tree_util.tree_map(lambda x: np.asarray(x) / 2, traj)
    assert isinstance(halved, Trajectories)
    np.testing.assert_array_equal(halved.rewards[0], [0.5, 1.0, NAN])


def test_jit_over_trajectories():
    traj = Trajectories.from_episodes(_three_episodes(), pad_value=NAN)

    @jax.jit
    def total_reward(t):
        return jnp.sum(jnp.where(t.mask, t.rewards, 0.0))

    # Valid rewards: 1 + 2, 5, 1 + 1 + 1 = 11; the NaN padding is selected away.
    assert float(total_reward(traj)) == 11.0
    out = jax.jit(lambda t: t)(traj)
    assert isinstance(out, Trajectories)
    out.validate()


# -- summary ------------------------------------------------------------------


def test_summary_counts():
    traj = Trajectories.from_episodes(_three_episodes())
    # 2 + 1 + 3 valid steps; one episode of each ending.
    assert traj.summary() == {
        "rows": 3,
        "horizon": 3,
        "steps": 6,
        "terminated": 1,
        "truncated": 1,
        "cut_segments": 1,
    }


def test_summary_counts_stream_and_both_flags():
    # The stream row: steps 0, 1, 3, 4 valid; one termination, one truncation.
    assert _stream_row().summary() == {
        "rows": 1,
        "horizon": 5,
        "steps": 4,
        "terminated": 1,
        "truncated": 1,
        "cut_segments": 0,
    }
    # Both flags on one step count as a termination only.
    both = _batch(
        observations=[[0.0, 1.0]],
        rewards=[[1.0]],
        terminated=[[T]],
        truncated=[[T]],
        mask=[[T]],
    )
    assert both.summary()["terminated"] == 1
    assert both.summary()["truncated"] == 0


# -- training.transitions -----------------------------------------------------


def _hand_batch():
    """Five rows, T = 4, observations named by number; NaN marks unused places.

    row 0: 1 -> 2 -> 3 -> terminal, rewards 1, 2, 4; padded.
    row 1: 11 -> 12 -> 13, rewards 2, 4, truncated after step 1; padded.
    row 2: a stream: 21 -> 22 -> terminal (rewards 1, 2, terminated), the
           masked reset row, then 31 -> 32 (reward 4, truncated).
    row 3: 41 -> 42 -> 43 -> 44 -> 45, rewards 1, 2, 4, 8, no flag: the row
           ends mid-episode and bootstraps from 45.
    row 4: 51 -> 52, reward 3, both flags set (termination wins); padded.
    """
    return _batch(
        observations=[
            [1.0, 2.0, 3.0, NAN, NAN],
            [11.0, 12.0, 13.0, NAN, NAN],
            [21.0, 22.0, NAN, 31.0, 32.0],
            [41.0, 42.0, 43.0, 44.0, 45.0],
            [51.0, NAN, NAN, NAN, NAN],
        ],
        rewards=[
            [1.0, 2.0, 4.0, NAN],
            [2.0, 4.0, NAN, NAN],
            [1.0, 2.0, NAN, 4.0],
            [1.0, 2.0, 4.0, 8.0],
            [3.0, NAN, NAN, NAN],
        ],
        terminated=[[F, F, T, F], [F, F, F, F], [F, T, F, F], [F] * 4, [T, F, F, F]],
        truncated=[[F, F, F, F], [F, T, F, F], [F, F, F, T], [F] * 4, [T, F, F, F]],
        mask=[[T, T, T, F], [T, T, F, F], [T, T, F, T], [T] * 4, [T, F, F, F]],
    )


def test_transitions_by_hand():
    data = training.transitions(_hand_batch().validate(), gamma=0.5)

    # Valid steps in row-major order: row 0 steps 0-2, row 1 steps 0-1,
    # row 2 steps 0, 1, 3, row 3 steps 0-3, row 4 step 0.
    np.testing.assert_array_equal(
        data.obs, [1, 2, 3, 11, 12, 21, 22, 31, 41, 42, 43, 44, 51]
    )
    np.testing.assert_array_equal(data.reward, [1, 2, 4, 2, 4, 1, 2, 4, 1, 2, 4, 8, 3])
    # s_{t+1}, replaced by s_t where s_{t+1} is terminal (3, 22, 51).
    np.testing.assert_array_equal(
        data.next_obs, [2, 3, 3, 12, 13, 22, 22, 32, 42, 43, 44, 45, 51]
    )
    np.testing.assert_array_equal(
        data.bootstraps, [T, T, F, T, T, T, F, T, T, T, T, T, F]
    )
    # gamma = 0.5, G_t = r_t + 0.5 G_{t+1} inside a segment:
    # row 0: G_2 = 4, G_1 = 2 + 2 = 4, G_0 = 1 + 2 = 3.
    # row 1: G_1 = 4, G_0 = 2 + 2 = 4.
    # row 2: G_1 = 2, G_0 = 1 + 1 = 2; after the reset G_3 = 4.
    # row 3: G_3 = 8, G_2 = 4 + 4 = 8, G_1 = 2 + 4 = 6, G_0 = 1 + 3 = 4.
    # row 4: G_0 = 3.
    np.testing.assert_array_equal(
        data.mc_return, [3, 4, 4, 4, 4, 2, 2, 4, 4, 6, 8, 8, 3]
    )
    # 0.5^(steps to the segment's end, counting the bootstrap step), 0 where
    # the segment ended in a terminal state.
    np.testing.assert_array_equal(
        data.mc_discount,
        [0, 0, 0, 0.25, 0.5, 0, 0, 0.5, 0.0625, 0.125, 0.25, 0.5, 0],
    )
    # The state each segment ends in; s_t itself where it ended terminal (never
    # a terminal placeholder).
    np.testing.assert_array_equal(
        data.mc_boot_obs, [1, 2, 3, 13, 13, 21, 22, 32, 45, 45, 45, 45, 51]
    )
    for name in ("obs", "next_obs", "mc_boot_obs", "reward", "mc_return"):
        assert getattr(data, name).dtype == jnp.float32, name
    assert data.bootstraps.dtype == jnp.bool_


def test_transitions_nan_never_leaks():
    data = training.transitions(_hand_batch(), gamma=0.5)
    for name, x in data._asdict().items():
        assert np.isfinite(np.asarray(x, np.float64)).all(), name


def test_transitions_padded_row_cut_mid_episode():
    # An unflagged episode shorter than the row: its last valid step is a cut.
    # gamma = 0.5: G_1 = 2, G_0 = 1 + 1 = 2; discounts 0.25 and 0.5; boot s_2.
    traj = _batch(
        observations=[[0.0, 1.0, 2.0, NAN]],
        rewards=[[1.0, 2.0, NAN]],
        terminated=[[F, F, F]],
        truncated=[[F, F, F]],
        mask=[[T, T, F]],
    )
    data = training.transitions(traj, gamma=0.5)
    np.testing.assert_array_equal(data.mc_return, [2, 2])
    np.testing.assert_array_equal(data.mc_discount, [0.25, 0.5])
    np.testing.assert_array_equal(data.mc_boot_obs, [2, 2])
    np.testing.assert_array_equal(data.next_obs, [1, 2])
    np.testing.assert_array_equal(data.bootstraps, [T, T])


def test_transitions_all_masked_rejected():
    traj = _batch(
        observations=[[0.0, 1.0]],
        rewards=[[0.0]],
        terminated=[[F]],
        truncated=[[F]],
        mask=[[F]],
    )
    with pytest.raises(ValueError, match="no valid step"):
        training.transitions(traj, gamma=0.5)


def test_transitions_number_the_segments():
    # Row 0: an episode terminated at step 1, a masked reset row, a new episode
    # (steps 3, 4) cut at the end of the row; row 1: one episode then padding.
    # Segments in row-major order: row 0 -> 0, 0, 1, 1; row 1 -> 2, 2, 2.
    traj = Trajectories(
        observations=np.arange(12.0).reshape(2, 6, 1),
        rewards=np.ones((2, 5)),
        terminated=np.array([[0, 1, 0, 0, 0], [0, 0, 0, 0, 0]], bool),
        truncated=np.zeros((2, 5), bool),
        mask=np.array([[1, 1, 0, 1, 1], [1, 1, 1, 0, 0]], bool),
    )
    np.testing.assert_array_equal(
        training.transitions(traj, 0.9).segment, [0, 0, 1, 1, 2, 2, 2]
    )
