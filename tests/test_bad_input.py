"""Bad input found by trying to break the library: each gets a clear ValueError.

Each case is a user mistake that once gave a deep NumPy/JAX error or, worse,
a silently wrong answer.
"""

import dataclasses

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import adaptive_td as atd
from adaptive_td import networks


def _episode(n=3, **extra):
    return dict(
        observations=np.arange(n + 1, dtype=np.float32)[:, None],
        rewards=np.ones(n, np.float32),
        terminated=True,
        **extra,
    )


def _traj():
    return atd.Trajectories.from_episodes([_episode(), _episode(2)])


def _td(network=None, **kwargs):
    kwargs = {"gamma": 0.9, "steps": 5, "batch_size": 4, **kwargs}
    return atd.TD(network or networks.mlp((4,)), optax.sgd(0.1), **kwargs)


# -- building batches ----------------------------------------------------------


def test_single_episode_mapping_is_not_iterated_as_keys():
    with pytest.raises(ValueError, match="single mapping; expected a sequence"):
        atd.Trajectories.from_episodes(_episode())


def test_episodes_from_a_generator_are_accepted():
    traj = atd.Trajectories.from_episodes(_episode(k) for k in (1, 2))
    assert traj.batch_size == 2


def test_ragged_observations_name_the_episode():
    bad = dict(observations=[[0.0], [1.0, 2.0]], rewards=[1.0], terminated=True)
    with pytest.raises(
        ValueError, match="episode 1 observations is not a rectangular array"
    ):
        atd.Trajectories.from_episodes([_episode(), bad])


def test_actions_with_different_shapes_name_the_episode():
    episodes = [_episode(actions=np.zeros((3, 2))), _episode(actions=np.zeros(3))]
    with pytest.raises(ValueError, match=r"episode 1 actions have shape \(\)"):
        atd.Trajectories.from_episodes(episodes)


def test_nan_padding_cannot_be_stored_in_integer_observations():
    episode = dict(observations=np.arange(3), rewards=np.ones(2), terminated=True)
    with pytest.raises(ValueError, match="pad_value=nan cannot be stored"):
        atd.Trajectories.from_episodes([episode], pad_value=np.nan)


def test_complex_rewards_are_rejected():
    traj = _traj()
    bad = dataclasses.replace(traj, rewards=traj.rewards.astype(np.complex64))
    with pytest.raises(ValueError, match="rewards has dtype complex64; expected real"):
        bad.validate()


def test_empty_batch_validates_and_fit_says_no_valid_step():
    traj = atd.Trajectories(
        observations=np.zeros((0, 4, 1), np.float32),
        rewards=np.zeros((0, 3), np.float32),
        terminated=np.zeros((0, 3), bool),
        truncated=np.zeros((0, 3), bool),
        mask=np.zeros((0, 3), bool),
    )
    traj.validate()
    with pytest.raises(ValueError, match="no valid step"):
        _td().fit(traj, key=0)


def test_observations_with_no_numbers_are_rejected():
    traj = _traj()
    bad = dataclasses.replace(traj, observations=np.zeros((2, 4, 0), np.float32))
    with pytest.raises(ValueError, match="must hold at least one number"):
        bad.validate()


# -- files ----------------------------------------------------------------------


def test_load_rejects_unknown_fields_newer_versions_and_junk(tmp_path):
    traj = _traj()
    arrays = {f.name: getattr(traj, f.name) for f in dataclasses.fields(traj)}
    del arrays["actions"]
    np.savez(tmp_path / "extra.npz", **arrays, weights=np.ones(3))
    with pytest.raises(ValueError, match=r"unknown fields \['weights'\]"):
        atd.Trajectories.load(tmp_path / "extra.npz")
    np.savez(tmp_path / "new.npz", **arrays, format_version=np.asarray(99))
    with pytest.raises(ValueError, match="format_version 99"):
        atd.Trajectories.load(tmp_path / "new.npz")
    (tmp_path / "junk.npz").write_bytes(b"not an archive at all")
    with pytest.raises(ValueError, match="is not an .npz file"):
        atd.Trajectories.load(tmp_path / "junk.npz")


# -- estimators ------------------------------------------------------------------


def test_network_with_column_output_is_rejected_not_broadcast():
    # An [N, 1] output against [N] targets would broadcast to [N, N] and
    # train on garbage.
    def column(x):
        return hk.Linear(1)(x)

    with pytest.raises(ValueError, match=r"values of shape \(2, 1\); expected \(2,\)"):
        _td(column).fit(_traj(), key=0)


@pytest.mark.parametrize(
    "key, match",
    [
        ("abc", "key='abc'; expected"),
        (None, "key=None; expected"),
        (True, "key=True; expected"),
        (2**70, r"int seed must be in \[0, 2\*\*63\)"),
        (-1, r"int seed must be in \[0, 2\*\*63\)"),
        (1.5, "key has dtype float"),
    ],
)
def test_bad_keys(key, match):
    with pytest.raises(ValueError, match=match):
        _td().fit(_traj(), key=key)


def test_numpy_int_scalar_key_is_a_seed_and_empty_key_batch_is_rejected():
    a = _td().fit(_traj(), key=np.array(3))
    b = _td().fit(_traj(), key=3)
    np.testing.assert_array_equal(a(np.zeros((2, 1))), b(np.zeros((2, 1))))
    with pytest.raises(ValueError, match="empty batch of keys"):
        _td().fit(_traj(), key=jax.random.split(jax.random.key(0), 0))


def test_fit_on_batches_of_different_observation_shapes():
    other = atd.Trajectories.from_episodes(
        [dict(observations=np.zeros((3, 2)), rewards=np.ones(2), terminated=True)]
    )
    keys = jax.random.split(jax.random.key(0), 2)
    with pytest.raises(ValueError, match=r"batch 1 has observations of shape \(2,\)"):
        _td().fit([_traj(), other], key=keys)
    with pytest.raises(ValueError, match="empty list"):
        _td().fit([], key=keys)


def test_float_queries_to_an_integer_trained_function_are_rejected():
    episode = dict(observations=np.arange(4), rewards=np.ones(3), terminated=True)
    value_fn = _td().fit(atd.Trajectories.from_episodes([episode]), key=0)
    assert value_fn(np.arange(4)).shape == (4,)
    with pytest.raises(ValueError, match="trained on integer observations"):
        value_fn(np.array([0.0, 0.4]))


def test_empty_query_gives_empty_values_and_seed_out_of_range():
    value_fn = _td().fit(_traj(), key=jax.random.split(jax.random.key(0), 3))
    assert value_fn(np.zeros((0, 1))).shape == (3, 0)
    with pytest.raises(ValueError, match=r"i=5; this value function holds 3 seeds"):
        value_fn.seed(5)


def test_zero_dimensional_array_gamma_is_a_number():
    assert _td(gamma=np.array(0.9)).gamma == pytest.approx(0.9)
    assert _td(gamma=jnp.float32(0.5)).gamma == 0.5
    with pytest.raises(ValueError, match=r"gamma=.*expected a number in \[0, 1\]"):
        _td(gamma=np.array([0.9, 0.8]))


# -- networks --------------------------------------------------------------------


def test_network_factories_check_their_arguments():
    with pytest.raises(ValueError, match="num_states=2.5; expected an integer"):
        networks.tabular(2.5)
    with pytest.raises(ValueError, match="hidden_sizes=32; expected a sequence"):
        networks.mlp(32)


def test_tabular_index_out_of_range_is_nan_not_clamped():
    net = hk.without_apply_rng(hk.transform(networks.tabular(2)))
    params = net.init(jax.random.key(0), jnp.arange(2))
    values = net.apply(params, jnp.array([0, 1, 5]))
    assert np.isnan(values[2]) and not np.isnan(values[:2]).any()


def test_valid_step_right_after_a_truncation_is_ambiguous():
    # observations[0, 1] cannot be both the truncated episode's final
    # observation and the next episode's first state.
    traj = atd.Trajectories(
        observations=np.array([[[0.0], [1.0], [2.0]]]),
        rewards=np.array([[1.0, 2.0]]),
        terminated=np.array([[False, False]]),
        truncated=np.array([[True, False]]),
        mask=np.array([[True, True]]),
    )
    with pytest.raises(ValueError, match="row 0 step 0 is truncated and step 1"):
        traj.validate()
    # After a termination the terminal observation is never read, so the next
    # episode may start right there.
    dataclasses.replace(
        traj, terminated=traj.truncated, truncated=traj.terminated
    ).validate()


def test_kernels_name_non_numeric_arguments():
    flags = np.zeros(2, bool)
    with pytest.raises(ValueError, match="td_targets: r_t has dtype <U1; expected"):
        atd.returns.td_targets(
            np.array(["a", "b"]), np.zeros(2), flags, flags, gamma=0.9
        )
    with pytest.raises(ValueError, match="gamma=None of dtype object"):
        atd.returns.td_targets(np.zeros(2), np.zeros(2), flags, flags, gamma=None)
