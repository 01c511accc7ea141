"""Tests for adaptive_td.rollouts: Gymnasium vector rollouts to Trajectories.

A hand-built rollout written out in both autoreset modes fixes the layout;
CartPole rollouts collected in both modes with the same seeds must convert to
the same rows; bad inputs raise errors that name the field.
"""

import functools

import gymnasium
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode

from adaptive_td.data import Trajectories, segment_cuts
from adaptive_td.rollouts import collect, from_vector_rollout

F, T = False, True
NAN = float("nan")
NEXT, SAME = AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP

# -- a hand-built rollout ---------------------------------------------------------
#
# Two sub-environments; observations are numbers naming the state (shape (1,)).
# Env 0: a0=0 -(1)-> a1=1 -(2)-> a2=2 terminated; reset b0=10 -(3)-> b1=11.
# Env 1: c0=20 -(4)-> c1=21 truncated; reset d0=30 -(5)-> d1=31 -(6)-> d2=32
#        terminated; reset e0=40.
# Each env takes three real steps. Collected for 4 steps in NEXT_STEP mode (the
# reset steps use up a step: env 0 resets at step 2, env 1 at step 1):
#   env 0 observations 0, 1, 2, 10, 11   rewards 1, 2, 0, 3   mask T T F T
#   env 1 observations 20, 21, 30, 31, 32 rewards 4, 0, 5, 6  mask T F T T
# Collected for 3 steps in SAME_STEP mode (a step that ends an episode returns
# the reset observation; the final one is in info["final_obs"]):
#   env 0 observations 0, 1, 10, 11      final obs a2=2 at step 1
#   env 1 observations 20, 30, 31, 40    final obs c1=21 at step 0, d2=32 at 2
# Converted, SAME_STEP rows get a masked reset row after each episode end and
# are padded to 3 + 2 steps (env 1 ends two episodes):
#   env 0 observations 0, 1, 2, 10, 11, 11 (padding repeats 11)
#         rewards 1, 2, 0, 3, 0            mask T T F T F
#   env 1 observations 20, 21, 30, 31, 32, 40
#         rewards 4, 0, 5, 6, 0            mask T F T T F
# so the NEXT_STEP batch is the first 4 steps of the SAME_STEP batch.


def _obs(rows):
    """[T+1, n_envs] numbers -> [T+1, n_envs, 1] float32 observations."""
    return np.asarray(rows, np.float32)[..., None]


def next_step_rollout():
    return dict(
        observations=_obs([[0, 20], [1, 21], [2, 30], [10, 31], [11, 32]]),
        rewards=np.array([[1.0, 4.0], [2.0, 0.0], [0.0, 5.0], [3.0, 6.0]]),
        terminated=np.array([[F, F], [T, F], [F, F], [F, T]]),
        truncated=np.array([[F, T], [F, F], [F, F], [F, F]]),
        actions=np.array([[1, 1], [0, 7], [7, 0], [1, 1]]),
    )


def same_step_rollout():
    final = np.full((3, 2, 1), NAN, np.float32)  # Read only where an episode ended.
    final[1, 0], final[0, 1], final[2, 1] = 2, 21, 32
    return dict(
        observations=_obs([[0, 20], [1, 30], [10, 31], [11, 40]]),
        rewards=np.array([[1.0, 4.0], [2.0, 5.0], [3.0, 6.0]]),
        terminated=np.array([[F, F], [T, F], [F, T]]),
        truncated=np.array([[F, T], [F, F], [F, F]]),
        actions=np.array([[1, 1], [0, 0], [1, 1]]),
        final_observations=final,
    )


def _infos(final, done):
    """The info dicts of SAME_STEP mode: 'final_obs' only on steps that end one."""
    infos = []
    for t in range(done.shape[0]):
        if not done[t].any():
            infos.append({})
            continue
        entries = np.empty(done.shape[1], dtype=object)
        for i in np.flatnonzero(done[t]):
            entries[i] = final[t, i]
        infos.append({"final_obs": entries, "_final_obs": done[t].copy()})
    return infos


EXPECTED_SAME = dict(
    observations=_obs([[0, 1, 2, 10, 11, 11], [20, 21, 30, 31, 32, 40]]).reshape(
        2, 6, 1
    ),
    rewards=np.array([[1.0, 2.0, 0.0, 3.0, 0.0], [4.0, 0.0, 5.0, 6.0, 0.0]]),
    terminated=np.array([[F, T, F, F, F], [F, F, F, T, F]]),
    truncated=np.array([[F, F, F, F, F], [T, F, F, F, F]]),
    mask=np.array([[T, T, F, T, F], [T, F, T, T, F]]),
    # Actions of masked rows are 0 (the environment ignored them).
    actions=np.array([[1, 0, 0, 1, 0], [1, 0, 0, 1, 0]]),
)


def assert_same_batch(a: Trajectories, b: Trajectories):
    for name in ("observations", "rewards", "terminated", "truncated", "mask"):
        x, y = np.asarray(getattr(a, name)), np.asarray(getattr(b, name))
        assert x.dtype == y.dtype, name
        np.testing.assert_array_equal(x, y, err_msg=name)
    if a.actions is None or b.actions is None:
        assert a.actions is None and b.actions is None
    else:
        np.testing.assert_array_equal(a.actions, b.actions, err_msg="actions")


def test_hand_built_same_step_layout():
    traj = from_vector_rollout(**same_step_rollout(), autoreset_mode=SAME)

    for name, expected in EXPECTED_SAME.items():
        np.testing.assert_array_equal(getattr(traj, name), expected, err_msg=name)
    assert traj.observations.dtype == np.float32


def test_hand_built_next_step_layout_is_the_same_step_prefix():
    traj = from_vector_rollout(**next_step_rollout(), autoreset_mode=NEXT)

    for name, expected in EXPECTED_SAME.items():
        width = 5 if name == "observations" else 4
        np.testing.assert_array_equal(
            getattr(traj, name), expected[:, :width], err_msg=name
        )


def test_final_observations_as_info_dicts_or_object_array():
    rollout = same_step_rollout()
    final = rollout.pop("final_observations")
    done = rollout["terminated"] | rollout["truncated"]
    expected = from_vector_rollout(
        **rollout, final_observations=final, autoreset_mode=SAME
    )

    from_infos = from_vector_rollout(
        **rollout, final_observations=_infos(final, done), autoreset_mode="SameStep"
    )
    objects = np.empty(done.shape, dtype=object)
    for t, i in np.argwhere(done):
        objects[t, i] = final[t, i]
    from_objects = from_vector_rollout(
        **rollout, final_observations=objects, autoreset_mode=SAME
    )

    assert_same_batch(from_infos, expected)
    assert_same_batch(from_objects, expected)


def test_string_modes_and_no_actions():
    rollout = next_step_rollout()
    del rollout["actions"]

    traj = from_vector_rollout(**rollout, autoreset_mode="NextStep")

    assert traj.actions is None
    np.testing.assert_array_equal(traj.mask, EXPECTED_SAME["mask"][:, :4])


def test_initial_done_masks_the_first_step():
    # Continuing a NEXT_STEP rollout whose last step ended env 1's episode: its
    # step 0 here is the reset step.
    rollout = next_step_rollout()
    rollout["truncated"][0, 1] = False
    rollout["rewards"][0, 1] = 0.0

    traj = from_vector_rollout(
        **rollout, autoreset_mode=NEXT, initial_done=np.array([F, T])
    )

    np.testing.assert_array_equal(traj.mask, [[T, T, F, T], [F, T, T, T]])


def test_no_episode_end_needs_no_final_observations():
    traj = from_vector_rollout(
        _obs([[0, 1], [2, 3]]),
        np.ones((1, 2)),
        np.zeros((1, 2), bool),
        np.zeros((1, 2), bool),
        autoreset_mode=SAME,
    )

    assert traj.summary()["cut_segments"] == 2 and traj.horizon == 1


# -- CartPole in both modes -------------------------------------------------------
#
# Three CartPoles with a 20-step time limit. The policy is a deterministic
# function of the observation (a coin read from the digits of the pole's
# angular velocity, close to a random policy), so the reset step of NEXT_STEP
# mode draws nothing and both modes see the same episodes: some fall
# (terminated) and some reach the limit (truncated).

NUM_STEPS = 100


def coin_policy(obs, rng):
    return (np.abs(obs[:, 3]) * 1e4 % 2 < 1).astype(np.int64)


def _cartpoles(mode):
    return gymnasium.vector.SyncVectorEnv(
        [lambda: gymnasium.make("CartPole-v1", max_episode_steps=20)] * 3,
        autoreset_mode=mode,
    )


@functools.cache
def cartpole_rollouts():
    same = collect(_cartpoles(SAME), coin_policy, NUM_STEPS, seed=0)
    # NEXT_STEP needs one extra step per episode end to cover the same
    # transitions; the SAME_STEP batch is padded to exactly that width.
    next_ = collect(_cartpoles(NEXT), coin_policy, same.horizon, seed=0)
    return same, next_


def test_cartpole_rollout_has_both_endings_and_validates():
    same, next_ = cartpole_rollouts()

    for traj in (same, next_):
        traj.validate()
        summary = traj.summary()
        assert summary["terminated"] >= 5 and summary["truncated"] >= 5
        assert summary["rows"] == 3
    ends = np.sum(same.terminated | same.truncated, axis=1)
    assert len(set(ends.tolist())) > 1  # Rows of unequal length: padding is used.
    assert same.horizon == NUM_STEPS + ends.max()


def test_cartpole_both_modes_give_the_same_rows():
    same, next_ = cartpole_rollouts()
    done = np.asarray(same.terminated | same.truncated)

    assert same.horizon == next_.horizon
    for i in range(3):
        # Row i of SAME_STEP holds NUM_STEPS real steps and one reset row per
        # episode end; NEXT_STEP covers the same steps and then continues.
        width = NUM_STEPS + int(done[i].sum())
        np.testing.assert_array_equal(
            same.observations[i, : width + 1], next_.observations[i, : width + 1]
        )
        for name in ("rewards", "terminated", "truncated", "mask", "actions"):
            np.testing.assert_array_equal(
                getattr(same, name)[i, :width],
                getattr(next_, name)[i, :width],
                err_msg=name,
            )
        assert not same.mask[i, width:].any()


def test_cartpole_next_step_is_a_prefix_with_equal_steps():
    # The identity that needs no padding: NUM_STEPS steps in NEXT_STEP mode are
    # the first NUM_STEPS steps of the converted SAME_STEP rollout.
    same, _ = cartpole_rollouts()
    next_ = collect(_cartpoles(NEXT), coin_policy, NUM_STEPS, seed=0)

    prefix = Trajectories(
        same.observations[:, : NUM_STEPS + 1],
        same.rewards[:, :NUM_STEPS],
        same.terminated[:, :NUM_STEPS],
        same.truncated[:, :NUM_STEPS],
        same.mask[:, :NUM_STEPS],
        same.actions[:, :NUM_STEPS],
    )
    assert_same_batch(next_, prefix)


def _segments(traj):
    """(row, first step, last step) of every segment with valid steps."""
    mask, cut = np.asarray(traj.mask), segment_cuts(traj)
    out = []
    for b in range(traj.batch_size):
        start = None
        for t in range(traj.horizon):
            if mask[b, t] and start is None:
                start = t
            if mask[b, t] and cut[b, t]:
                out.append((b, start, t))
                start = None
    return out


def test_cartpole_time_limit_is_truncated_with_the_final_observation():
    same, next_ = cartpole_rollouts()

    time_limit_cuts = 0
    for traj in (same, next_):
        obs = np.asarray(traj.observations)
        for b, first, last in _segments(traj):
            length = last - first + 1
            if traj.terminated[b, last]:
                # The pole fell or the cart left the track, within the limit
                # (on the 20th step both flags can be set: termination wins).
                final = obs[b, last + 1]
                assert length <= 20
                assert abs(final[2]) > 0.2095 or abs(final[0]) > 2.4
            elif traj.truncated[b, last]:
                # The 20-step time limit; the pole is still up.
                time_limit_cuts += 1
                assert length == 20
                final = obs[b, last + 1]
                assert abs(final[2]) < 0.2095 and abs(final[0]) < 2.4
                # The bootstrap state continues the episode (the cart moved by
                # one step from s_t); the reset observation comes after it, in
                # a masked reset row.
                assert abs(final[0] - obs[b, last, 0]) < 0.05
                if last + 1 < traj.horizon:
                    assert not traj.mask[b, last + 1]
                    assert not np.array_equal(final, obs[b, last + 2])
                    assert np.all(np.abs(obs[b, last + 2]) <= 0.05)
    assert time_limit_cuts >= 10


def test_same_step_truncation_bootstraps_from_info_final_obs():
    # Step a SAME_STEP env by hand and convert the raw arrays and info dicts:
    # after each truncated step the row holds info["final_obs"], never the
    # reset observation that env.step returned.
    env = _cartpoles(SAME)
    obs, _ = env.reset(seed=1)
    observations, rewards, terminated, truncated, infos = [obs], [], [], [], []
    for _ in range(60):
        obs, reward, term, trunc, info = env.step(coin_policy(obs, None))
        for store, x in zip(
            (observations, rewards, terminated, truncated, infos),
            (obs, reward, term, trunc, info),
        ):
            store.append(x)
    truncated = np.stack(truncated)
    assert np.any(truncated & ~np.stack(terminated))

    traj = from_vector_rollout(
        np.stack(observations),
        np.stack(rewards),
        np.stack(terminated),
        truncated,
        autoreset_mode=SAME,
        final_observations=infos,
    )

    for i in range(3):
        steps = np.flatnonzero(traj.mask[i])  # Position of each real step.
        for t in np.flatnonzero(truncated[:, i]):
            u = steps[t]
            assert traj.truncated[i, u]
            np.testing.assert_array_equal(
                traj.observations[i, u + 1], infos[t]["final_obs"][i]
            )
            assert not np.array_equal(
                traj.observations[i, u + 1], observations[t + 1][i]
            )
            np.testing.assert_array_equal(
                traj.observations[i, u + 2], observations[t + 1][i]
            )


def test_cartpole_reset_rows_are_masked_with_zero_reward():
    same, next_ = cartpole_rollouts()

    for traj in (same, next_):
        done = np.asarray(traj.terminated | traj.truncated)
        after = np.zeros_like(done)
        after[:, 1:] = done[:, :-1]
        assert not np.any(traj.mask & after)
        assert np.all(np.asarray(traj.rewards)[~np.asarray(traj.mask)] == 0)
        # Reset observations are CartPole's start states, |x| <= 0.05.
        obs = np.asarray(traj.observations)
        resets = obs[:, 1:][after]
        assert resets.size and np.all(np.abs(resets) <= 0.05)


def test_cartpole_disabled_mode_gives_the_same_rows_as_same_step():
    # With autoreset disabled, collect resets ended sub-environments itself;
    # the episodes (and their reset states) are those of SAME_STEP mode.
    same, _ = cartpole_rollouts()
    disabled = collect(
        _cartpoles(AutoresetMode.DISABLED), coin_policy, NUM_STEPS, seed=0
    )
    assert_same_batch(disabled, same)


def test_disabled_mode_needs_final_observations():
    rollout = same_step_rollout()
    rollout.pop("final_observations", None)
    with pytest.raises(
        ValueError, match="final_observations is None, but in DISABLED mode"
    ):
        from_vector_rollout(**rollout, autoreset_mode=AutoresetMode.DISABLED)


def test_collect_rejects_plain_envs():
    with pytest.raises(ValueError, match="env.metadata has no 'autoreset_mode'"):
        collect(gymnasium.make("CartPole-v1"), coin_policy, 5, seed=0)
    with pytest.raises(ValueError, match="num_steps=0; expected an int >= 1"):
        collect(_cartpoles(NEXT), coin_policy, 0, seed=0)


# -- bad inputs ------------------------------------------------------------------


def _next(**changes):
    rollout = next_step_rollout()
    rollout.update(changes)
    return rollout


def _same(**changes):
    rollout = same_step_rollout()
    rollout.update(changes)
    return rollout


BAD = {
    "unknown_mode": (_next(), "next", r"autoreset_mode='next'; expected one of"),
    "rewards_1d": (
        _next(rewards=np.ones(4)),
        NEXT,
        r"rewards has shape \(4,\); expected \[T, n_envs\]",
    ),
    "observations_T": (
        _next(observations=_obs(np.zeros((4, 2)))),
        NEXT,
        r"observations has shape \(4, 2, 1\); expected \[T\+1, n_envs, \*obs_shape\]"
        r" = \(5, 2, \.\.\.\).*env.reset",
    ),
    "terminated_shape": (
        _next(terminated=np.zeros((4, 3), bool)),
        NEXT,
        r"terminated has shape \(4, 3\); expected \(4, 2\)",
    ),
    "truncated_dtype": (
        _next(truncated=np.zeros((4, 2), int)),
        NEXT,
        "truncated has dtype int64; expected bool",
    ),
    "actions_shape": (
        _next(actions=np.zeros((3, 2))),
        NEXT,
        r"actions has shape \(3, 2\); expected \[T, n_envs, \.\.\.\] "
        r"= \(4, 2, \.\.\.\)",
    ),
    "flag_on_reset_step": (
        _next(truncated=np.array([[F, T], [F, T], [F, F], [F, F]])),
        NEXT,
        "sub-environment 1 has terminated or truncated set at step 1, a NEXT_STEP "
        "reset step.*SAME_STEP",
    ),
    "final_in_next_mode": (
        _next(final_observations=np.zeros((4, 2, 1))),
        NEXT,
        "final_observations is given in NEXT_STEP mode",
    ),
    "final_missing": (
        _same(final_observations=None),
        SAME,
        "final_observations is None, but in SAME_STEP mode the episode of "
        "sub-environment 1 ended at step 0",
    ),
    "final_shape": (
        _same(final_observations=np.zeros((3, 2))),
        SAME,
        r"final_observations has shape \(3, 2\); expected the list of info dicts",
    ),
    "infos_count": (
        _same(final_observations=[{}, {}]),
        SAME,
        "final_observations is a list of 2 info dicts; expected 3",
    ),
    "infos_missing_one": (
        _same(
            final_observations=[
                {},
                {"final_obs": np.array([[2.0], None], dtype=object)},
                {},
            ]
        ),
        SAME,
        "final_observations has no final observation for sub-environment 1 at "
        "step 0, where its episode ended",
    ),
    "infos_wrong_obs_shape": (
        _same(
            final_observations=[
                {"final_obs": np.array([None, np.zeros(2)], dtype=object)},
                {"final_obs": np.array([np.zeros(1), None], dtype=object)},
                {"final_obs": np.array([None, np.zeros(1)], dtype=object)},
            ]
        ),
        SAME,
        r"final_observations\[0\]\['final_obs'\]\[1\] has shape \(2,\); expected "
        r"\(1,\)",
    ),
    "initial_done_in_same_mode": (
        _same(initial_done=np.array([T, F])),
        SAME,
        "initial_done is set in SAME_STEP mode",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_inputs_name_the_field(case):
    rollout, mode, match = BAD[case]

    with pytest.raises(ValueError, match=f"from_vector_rollout: {match}"):
        from_vector_rollout(**rollout, autoreset_mode=mode)


@pytest.mark.parametrize("mode", ["NextStep", "SameStep"])
def test_non_finite_rollouts_name_the_step_and_sub_environment(mode):
    obs = np.zeros((5, 2, 1))
    rewards = np.zeros((4, 2))
    flags = np.zeros((4, 2), bool)
    rewards[3, 1] = np.inf
    with pytest.raises(
        ValueError, match="step 3 of sub-environment 1 returned reward inf"
    ):
        from_vector_rollout(obs, rewards, flags, flags, autoreset_mode=mode)
    rewards[3, 1] = 0.0
    obs[2, 0, 0] = np.nan
    with pytest.raises(
        ValueError,
        match=r"observation step 1 returned for sub-environment 0 "
        r"\(observations\[2, 0\]\) is not finite",
    ):
        from_vector_rollout(obs, rewards, flags, flags, autoreset_mode=mode)


def test_terminal_observations_may_hold_nan():
    obs = np.zeros((3, 1, 1))
    obs[1, 0, 0] = np.nan  # returned by the step that terminated
    terminated = np.array([[True], [False]])
    traj = from_vector_rollout(
        obs,
        np.zeros((2, 1)),
        terminated,
        np.zeros((2, 1), bool),
        autoreset_mode="NextStep",
    )
    assert traj.num_steps == 1
