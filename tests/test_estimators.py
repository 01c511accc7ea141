"""Tests for the estimators: TD, MonteCarlo, NStepTD, TDLambda and AdaptiveTD.

A registry of estimator factories runs every estimator through the same
contract (convergence to exact values on a small chain, several seeds in one
program, no recompilation, float32 under x64, any leading batch shape, keys,
determinism, the semantics of episode ends), followed by method-specific
tests. Tabular networks and a few hundred steps keep the file fast.
"""

import dataclasses
import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from compiles import count_compiles

from adaptive_td import adaptive, estimators, networks
from adaptive_td.data import Trajectories

# -- helpers ------------------------------------------------------------------


def _decaying_sgd(steps, lr=1.0):
    """SGD whose step size decays from lr to lr / 100, to reach a fixed point."""
    return optax.sgd(optax.cosine_decay_schedule(lr, steps, alpha=0.01))


def _tree_dtypes(tree):
    return {x.dtype for x in jax.tree_util.tree_leaves(tree)}


# The registry: every estimator, built from the shared keyword arguments.
# TDLambda refreshes its targets every 20 steps here: each refresh is one
# application of the lambda-return operator, and with lambda = 0.5 on the walk
# the 10 refreshes of the default period (100) in 1000 steps leave an error of
# about 0.07, the 50 of period 20 well under WALK_TOL.
REGISTRY = {
    "td": lambda **kw: estimators.TD(**kw),
    "mc": lambda **kw: estimators.MonteCarlo(**kw),
    "n_step_td": lambda **kw: estimators.NStepTD(n=3, **kw),
    "td_lambda": lambda **kw: estimators.TDLambda(lambda_=0.5, refresh_period=20, **kw),
    "adaptive_td": lambda **kw: adaptive.AdaptiveTD(ensemble_size=3, **kw),
}
NAMES = sorted(REGISTRY)


# -- the random walk ----------------------------------------------------------
#
# Five states 0..4, start in 2, step left or right with probability 1/2; leaving
# on the left ends the episode with reward 0, on the right with reward 1. With
# gamma = 1, V(i) = P(leave right from i) = (i + 1) / 6.
#
# The data set holds all 2^6 = 64 coin-flip sequences of length 6 from state 2,
# one per row, each stopped at termination or truncated after 6 steps. Every
# visit of a state is followed by each continuation in exact proportion, so
# the empirical model is exact: the fixed points of batch TD (and of MC
# regression that bootstraps truncated rows from its own values) are exactly
# V, with no sampling error to allow for, only the optimiser's.

WALK_STATES = np.arange(5)
WALK_VALUES = (WALK_STATES + 1) / 6  # [1/6, 2/6, 3/6, 4/6, 5/6]
WALK_TOL = 0.02


def test_walk_values_solve_the_linear_system():
    # (I - gamma P) V = r for the walk: each state steps left or right with
    # probability 1/2; leaving state 4 to the right (column 5, terminal)
    # pays 1. The closed form (i + 1) / 6 is its solution.
    from adaptive_td.envs.tabular import TabularMDP

    P = np.zeros((5, 6))
    R = np.zeros((5, 6))
    for i in range(5):
        P[i, i - 1 if i > 0 else 5] += 0.5
        P[i, i + 1] += 0.5
    R[4, 5] = 1.0
    mdp = TabularMDP(
        transitions=P,
        rewards=R,
        start=np.full(5, 0.2),
        features=np.eye(5, dtype=np.float32),
        terminal_feature=np.zeros(5, np.float32),
    )
    np.testing.assert_allclose(mdp.exact_values(1.0), WALK_VALUES, rtol=1e-12)


WALK_STEPS = 1000
TERMINAL = -1  # A placeholder that would index the last table entry if used.


@functools.cache
def walk_trajectories():
    episodes = []
    for flips in itertools.product((-1, 1), repeat=6):
        s, obs, rewards = 2, [2], []
        for f in flips:
            s += f
            if s in (-1, 5):
                rewards.append(float(s == 5))
                obs.append(TERMINAL)
                break
            rewards.append(0.0)
            obs.append(s)
        ended = obs[-1] == TERMINAL
        episodes.append(
            dict(
                observations=np.array(obs),
                rewards=np.array(rewards),
                terminated=ended,
                truncated=not ended,
            )
        )
    return Trajectories.from_episodes(episodes)


def walk_estimator(name, **overrides):
    kw = dict(
        network=networks.tabular(5),
        optimizer=_decaying_sgd(WALK_STEPS),
        gamma=1.0,
        steps=WALK_STEPS,
        batch_size=256,
    )
    kw.update(overrides)
    return REGISTRY[name](**kw)


@functools.cache
def fitted_walk(name):
    """One estimator per name, fitted with 3 seeds; shared by the contract tests."""
    est = walk_estimator(name)
    keys = jax.random.split(jax.random.key(0), 3)
    with count_compiles() as compiled:
        value_fn = est.fit(walk_trajectories(), key=keys)
    return est, keys, value_fn, list(compiled)


@functools.cache
def fitted_walk_single(name):
    """The estimator of `fitted_walk`, fitted with the int key 7."""
    est, *_ = fitted_walk(name)
    return est.fit(walk_trajectories(), key=7)


def test_walk_data_set():
    # Leaving [0, 4] from 2 takes a net move of 3, so only odd steps can end a
    # row. At step 3: LLL or RRR, 2 paths x 2^3 free flips = 16 rows. At step
    # 5: four moves one way and one the other, the odd one among the first
    # three (else the walk left at step 3): 2 x 3 paths x 2^1 = 12 rows. So
    # 16 + 12 = 28 rows terminate and 64 - 28 = 36 are truncated at step 6,
    # with 16 * 3 + 12 * 5 + 36 * 6 = 324 steps in all.
    assert walk_trajectories().summary() == {
        "rows": 64,
        "horizon": 6,
        "steps": 324,
        "terminated": 28,
        "truncated": 36,
        "cut_segments": 0,
    }


# -- the contract -------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_converges_on_random_walk_with_several_seeds(name):
    _, _, value_fn, compiled = fitted_walk(name)

    values = np.asarray(value_fn(WALK_STATES))
    assert value_fn.num_seeds == 3
    assert values.shape == (3, 5)
    np.testing.assert_allclose(
        values, np.broadcast_to(WALK_VALUES, (3, 5)), atol=WALK_TOL
    )
    assert value_fn.history["loss"].shape == (3, WALK_STEPS)
    assert compiled, "the compile counter saw no compilation in a first fit"


@pytest.mark.parametrize("name", NAMES)
def test_second_fit_does_not_recompile(name):
    est, _, _, _ = fitted_walk(name)
    other = jax.random.split(jax.random.key(1), 3)

    with count_compiles() as compiled:
        value_fn = est.fit(walk_trajectories(), key=other)
    assert compiled == []
    np.testing.assert_allclose(
        value_fn(WALK_STATES), np.broadcast_to(WALK_VALUES, (3, 5)), atol=WALK_TOL
    )

    # The counter can fail: another number of seeds is another program.
    with count_compiles() as compiled:
        est.fit(walk_trajectories(), key=jax.random.split(jax.random.key(1), 2))
    assert compiled


@pytest.mark.parametrize("name", NAMES)
def test_same_shape_with_fewer_valid_steps_does_not_recompile(name):
    # Cut one truncated row a step early: the same [B, T] with one valid step
    # fewer is the same compiled program.
    est, keys, _, _ = fitted_walk(name)
    walk = walk_trajectories()
    row = int(np.flatnonzero(walk.truncated[:, -1])[0])
    mask, truncated = walk.mask.copy(), walk.truncated.copy()
    mask[row, -1] = truncated[row, -1] = False
    truncated[row, -2] = True
    shorter = dataclasses.replace(walk, mask=mask, truncated=truncated)
    assert shorter.num_steps == walk.num_steps - 1

    with count_compiles() as compiled:
        est.fit(shorter, key=keys)
    assert compiled == []


@pytest.mark.parametrize("name", NAMES)
def test_float32_under_x64(name):
    assert jax.config.jax_enable_x64  # Set by conftest.py.
    _, _, value_fn, _ = fitted_walk(name)

    assert _tree_dtypes(value_fn.params) == {jnp.dtype(jnp.float32)}
    assert value_fn(WALK_STATES).dtype == jnp.float32
    assert value_fn.history["loss"].dtype == np.float32
    if isinstance(value_fn, adaptive.AdaptiveValueFunction):
        assert _tree_dtypes(value_fn.ensemble_params) == {jnp.dtype(jnp.float32)}
        low, high = value_fn.interval(WALK_STATES)
        assert low.dtype == high.dtype == jnp.float32


@pytest.mark.parametrize("name", NAMES)
def test_any_leading_batch_shape(name):
    _, _, value_fn, _ = fitted_walk(name)
    flat = np.asarray(value_fn(WALK_STATES))  # [3, 5]
    grid = np.array([[0, 1, 2], [4, 4, 3]])

    assert value_fn(grid).shape == (3, 2, 3)
    np.testing.assert_array_equal(value_fn(grid), flat[:, grid])
    assert value_fn(np.int64(4)).shape == (3,)
    np.testing.assert_array_equal(value_fn(np.int64(4)), flat[:, 4])
    assert value_fn(np.zeros((0,), int)).shape == (3, 0)
    one = value_fn.seed(1)
    assert one.num_seeds is None
    np.testing.assert_array_equal(one(grid), flat[1, grid])


@pytest.mark.parametrize("name", NAMES)
def test_int_typed_and_raw_keys(name):
    est, keys, batch_fn, _ = fitted_walk(name)
    by_int = fitted_walk_single(name)

    assert by_int.num_seeds is None
    assert by_int(WALK_STATES).shape == (5,)
    assert by_int.history["loss"].shape == (WALK_STEPS,)
    np.testing.assert_allclose(by_int(WALK_STATES), WALK_VALUES, atol=WALK_TOL)

    typed, raw, key_1 = jax.random.key(7), jax.random.PRNGKey(7), keys[1]
    with count_compiles() as compiled:
        by_typed = est.fit(walk_trajectories(), key=typed)
        by_raw = est.fit(walk_trajectories(), key=raw)
        alone = est.fit(walk_trajectories(), key=key_1)
    assert compiled == []  # One key or another: the same program.
    np.testing.assert_array_equal(by_typed(WALK_STATES), by_int(WALK_STATES))
    np.testing.assert_array_equal(by_raw(WALK_STATES), by_int(WALK_STATES))
    # Seed 1 of the vmapped fit is the fit with key 1 alone.
    np.testing.assert_allclose(
        alone(WALK_STATES), batch_fn.seed(1)(WALK_STATES), rtol=1e-5, atol=1e-6
    )


@pytest.mark.parametrize("name", NAMES)
def test_deterministic_given_key_and_distinct_across_keys(name):
    est, keys, first, _ = fitted_walk(name)

    again = est.fit(walk_trajectories(), key=keys)
    np.testing.assert_array_equal(again(WALK_STATES), first(WALK_STATES))
    np.testing.assert_array_equal(again.history["loss"], first.history["loss"])

    values = np.asarray(first(WALK_STATES))
    for i, j in itertools.combinations(range(3), 2):
        assert not np.array_equal(values[i], values[j]), (i, j)


# -- episode ends ---------------------------------------------------------------
#
# Two states, gamma = 1/2. Row 0: B (state 1) -> terminal with reward 1, so
# V(B) = 1. Row 1: A (state 0) -> B with reward 2, ending in one of four ways:
#   truncated:  B is a real state, V(A) = 2 + 1/2 * V(B) = 2.5;
#   cut (no flag, the row just ends): the same, 2.5;
#   terminated: nothing is bootstrapped, V(A) = 2;
#   both flags: termination wins, 2.
# Monte Carlo's return of A is then exactly its TD target, so every estimator
# has these values as its fixed point.

ENDINGS = {
    "truncated": ((False, True), 2.5),
    "cut": ((False, False), 2.5),
    "terminated": ((True, False), 2.0),
    "both": ((True, True), 2.0),
}


def two_state_trajectories(ending):
    (terminated, truncated), _ = ENDINGS[ending]
    return Trajectories(
        observations=np.array([[1, TERMINAL], [0, 1]]),
        rewards=np.array([[1.0], [2.0]]),
        terminated=np.array([[True], [terminated]]),
        truncated=np.array([[False], [truncated]]),
        mask=np.array([[True], [True]]),
    )


@functools.cache
def two_state_estimator(name):
    return REGISTRY[name](
        network=networks.tabular(2),
        optimizer=optax.sgd(0.5),
        gamma=0.5,
        steps=300,
        batch_size=16,
    )


@pytest.mark.parametrize("ending", sorted(ENDINGS))
@pytest.mark.parametrize("name", NAMES)
def test_truncation_bootstraps_and_termination_does_not(name, ending):
    est = two_state_estimator(name)

    value_fn = est.fit(two_state_trajectories(ending), key=0)

    # Targets are deterministic, so plain SGD reaches the fixed point.
    np.testing.assert_allclose(
        value_fn(np.array([0, 1])), [ENDINGS[ending][1], 1.0], atol=1e-4
    )


# -- TD and MC against exact solutions ----------------------------------------


def test_td_and_mc_exact_on_deterministic_chain():
    # 0 -> 1 -> 2 -> terminal with rewards 1, 2, 4 and gamma = 1/2:
    # V(2) = 4, V(1) = 2 + 4/2 = 4, V(0) = 1 + 4/2 = 3 (TD and MC agree).
    traj = Trajectories.from_episodes(
        [
            dict(
                observations=np.array([0, 1, 2, TERMINAL]),
                rewards=np.array([1.0, 2.0, 4.0]),
                terminated=True,
            )
        ]
    )
    for cls in (estimators.TD, estimators.MonteCarlo):
        est = cls(
            networks.tabular(3), optax.sgd(0.1), gamma=0.5, steps=2000, batch_size=8
        )
        value_fn = est.fit(traj, key=0)
        np.testing.assert_allclose(value_fn(np.arange(3)), [3.0, 4.0, 4.0], atol=1e-4)


def test_batch_td_and_mc_differ_as_in_sutton_barto_example_6_4():
    # Sutton and Barto, Reinforcement Learning: An Introduction (2nd ed.),
    # Example 6.4. Eight episodes, gamma = 1: A -> B -> end with rewards 0, 0;
    # six times B -> end with reward 1; once B -> end with reward 0.
    # Batch MC: V(B) = 6/8 = 0.75, V(A) = its only return, 0.
    # Batch TD: V(B) = 0.75, V(A) = 0 + V(B) = 0.75.
    A, B = 0, 1
    episodes = [
        dict(observations=np.array([A, B, B]), rewards=np.zeros(2), terminated=True)
    ]
    for r in [1.0] * 6 + [0.0]:
        episodes.append(
            dict(observations=np.array([B, B]), rewards=np.array([r]), terminated=True)
        )
    traj = Trajectories.from_episodes(episodes)
    kw = dict(gamma=1.0, steps=1000, batch_size=256)

    td = estimators.TD(networks.tabular(2), _decaying_sgd(1000), **kw).fit(traj, key=0)
    mc = estimators.MonteCarlo(networks.tabular(2), _decaying_sgd(1000), **kw).fit(
        traj, key=0
    )

    np.testing.assert_allclose(td(np.array([A, B])), [0.75, 0.75], atol=0.02)
    np.testing.assert_allclose(mc(np.array([A, B])), [0.0, 0.75], atol=0.02)


# -- function approximation ---------------------------------------------------


@pytest.mark.parametrize(
    "network", [networks.linear(), networks.mlp((8,))], ids=["linear", "mlp"]
)
def test_vector_observations_shapes_and_dtypes(network):
    # One-hot features of the walk's states, as float64 under x64.
    walk = walk_trajectories()
    onehot = np.eye(5)[np.where(walk.observations == TERMINAL, 0, walk.observations)]
    traj = Trajectories(
        onehot, walk.rewards, walk.terminated, walk.truncated, walk.mask
    )
    est = estimators.TD(network, optax.adam(1e-2), gamma=1.0, steps=20, batch_size=32)

    value_fn = est.fit(traj, key=0)

    assert _tree_dtypes(value_fn.params) == {jnp.dtype(jnp.float32)}
    features = np.eye(5)  # [5, 5] float64
    flat = value_fn(features)
    assert flat.shape == (5,) and flat.dtype == jnp.float32
    grid = features[np.array([[0, 1, 2], [4, 4, 3]])]  # [2, 3, 5]
    assert value_fn(grid).shape == (2, 3)
    np.testing.assert_allclose(
        value_fn(grid), np.asarray(flat)[[[0, 1, 2], [4, 4, 3]]], rtol=1e-6
    )
    assert value_fn(features[0]).shape == ()
    with pytest.raises(ValueError, match=r"observations have shape \(4, 3\); expected"):
        value_fn(np.zeros((4, 3)))


# -- Adaptive TD ----------------------------------------------------------------


def test_adaptive_history_interval_and_target_choice():
    value_fn = fitted_walk_single("adaptive_td")  # K = 3 members, k = 2.
    obs = np.array([[0, 1, 2], [4, 4, 3]])

    mc_fraction = value_fn.history["mc_fraction"]
    assert mc_fraction.shape == (WALK_STEPS,)
    assert ((mc_fraction >= 0) & (mc_fraction <= 1)).all()
    ensemble_loss = value_fn.history["ensemble_loss"]
    assert ensemble_loss.shape == (3, WALK_STEPS)
    assert (ensemble_loss[:, -100:].mean(1) < ensemble_loss[:, :100].mean(1)).all()

    low, high = value_fn.interval(obs)
    assert low.shape == high.shape == (2, 3)
    assert (low < high).all()  # The members differ, so sigma > 0.
    # I(s) = mu +- k sigma over the 3 members, sigma with ddof = 1, and the
    # documented default k = 1.
    assert value_fn.interval_width == 1.0
    members = np.asarray(value_fn.ensemble_values(obs), np.float64)
    assert members.shape == (3, 2, 3)
    mu, sigma = members.mean(0), members.std(0, ddof=1)
    np.testing.assert_allclose(low, mu - sigma, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(high, mu + sigma, rtol=1e-5, atol=1e-6)

    uses_mc = value_fn.uses_mc_target(obs)
    assert uses_mc.dtype == jnp.bool_ and uses_mc.shape == (2, 3)
    v = value_fn(obs)
    np.testing.assert_array_equal(uses_mc, (v < low) | (v > high))


def test_adaptive_several_seeds_shapes():
    _, _, value_fn, _ = fitted_walk("adaptive_td")
    obs = np.array([[0, 1, 2], [4, 4, 3]])

    assert value_fn.history["mc_fraction"].shape == (3, WALK_STEPS)
    assert value_fn.history["ensemble_loss"].shape == (3, 3, WALK_STEPS)
    low, high = value_fn.interval(obs)
    assert low.shape == high.shape == (3, 2, 3)
    assert value_fn.ensemble_values(obs).shape == (3, 3, 2, 3)
    assert value_fn.uses_mc_target(obs).shape == (3, 2, 3)
    one = value_fn.seed(2)
    np.testing.assert_array_equal(one.interval(obs)[0], low[2])


def test_adaptive_huge_interval_is_td():
    # With k = 1e9 the interval holds every TD estimate: only TD targets.
    est = walk_estimator("adaptive_td", interval_width=1e9)
    value_fn = est.fit(walk_trajectories(), key=0)

    np.testing.assert_array_equal(value_fn.history["mc_fraction"], 0.0)
    assert not value_fn.uses_mc_target(WALK_STATES).any()
    np.testing.assert_allclose(value_fn(WALK_STATES), WALK_VALUES, atol=WALK_TOL)


def test_adaptive_tiny_interval_is_mc():
    # With k = 1e-6 the interval is a point: V_TD(s) is (almost) never in it.
    est = walk_estimator("adaptive_td", interval_width=1e-6)
    value_fn = est.fit(walk_trajectories(), key=0)

    assert value_fn.history["mc_fraction"].mean() > 0.95
    assert value_fn.uses_mc_target(WALK_STATES).mean() > 0.5
    np.testing.assert_allclose(value_fn(WALK_STATES), WALK_VALUES, atol=WALK_TOL)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(ensemble_size=1), r"ensemble_size=1; an interval needs at least 2"),
        (dict(ensemble_size=0), r"ensemble_size=0; expected an integer >= 1"),
        (dict(interval_width=0.0), r"interval_width=0.0; expected a finite number > 0"),
        (dict(interval_width=-1), r"interval_width=-1; expected a finite number > 0"),
        (dict(interval_width=float("inf")), r"interval_width=inf; expected a finite"),
        (dict(interval_width=True), r"interval_width=True; expected a finite"),
        (dict(gamma=True), r"gamma=True; expected a number in \[0, 1\]"),
    ],
)
def test_adaptive_constructor_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        adaptive.AdaptiveTD(networks.tabular(2), optax.sgd(0.1), **kwargs)


# -- validation -----------------------------------------------------------------

GOOD = dict(gamma=0.5, steps=10, batch_size=4)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(gamma=-0.1), r"gamma=-0.1; expected a number in \[0, 1\]"),
        (dict(gamma=1.5), r"gamma=1.5; expected a number in \[0, 1\]"),
        (dict(gamma=float("nan")), r"gamma=nan"),
        (dict(steps=0), r"steps=0; expected an integer >= 1"),
        (dict(steps=2.5), r"steps=2.5; expected an integer >= 1"),
        (dict(batch_size=0), r"batch_size=0; expected an integer >= 1"),
        (dict(optimizer="adam"), r"optimizer='adam'; expected an optax"),
        (dict(network=3), r"network=3; expected a function"),
    ],
)
@pytest.mark.parametrize("name", NAMES)
def test_constructor_validation(name, kwargs, match):
    kw = dict(network=networks.tabular(2), optimizer=optax.sgd(0.1), **GOOD)
    kw.update(kwargs)
    with pytest.raises(ValueError, match=match):
        REGISTRY[name](**kw)


@pytest.mark.parametrize("gamma", [0.0, 1.0])
@pytest.mark.parametrize("name", NAMES)
def test_constructor_accepts_gamma_bounds(name, gamma):
    est = REGISTRY[name](
        network=networks.tabular(2),
        optimizer=optax.sgd(0.1),
        **{**GOOD, "gamma": gamma},
    )
    assert est.gamma == gamma


@pytest.mark.parametrize("name", NAMES)
def test_fit_rejects_non_trajectories(name):
    est, *_ = fitted_walk(name)
    walk = walk_trajectories()
    as_dict = {"observations": walk.observations, "rewards": walk.rewards}
    with pytest.raises(ValueError, match=r"fit: trajectories is a dict; expected"):
        est.fit(as_dict, key=0)


@pytest.mark.parametrize("name", NAMES)
def test_fit_validates_trajectories(name):
    est, *_ = fitted_walk(name)
    bad = two_state_trajectories("truncated")
    bad.rewards[1, 0] = np.nan
    with pytest.raises(ValueError, match=r"rewards\[1, 0\] = nan on a valid step"):
        est.fit(bad, key=0)


def test_fit_rejects_bad_key():
    est, *_ = fitted_walk("td")
    with pytest.raises(ValueError, match=r"key has dtype float"):
        est.fit(walk_trajectories(), key=0.5)
