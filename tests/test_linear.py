"""Tests for adaptive_td.linear: closed-form LSTD(lambda) and MC projection.

Hand-solved batches first (the equations are in the comments), then identities
between the two solvers and the return kernels, then agreement with exact
values of a small chain and with the fixed points that `TD` and `MonteCarlo`
reach with a linear network.
"""

import functools

import jax
import numpy as np
import optax
import pytest

from adaptive_td import estimators, networks, returns
from adaptive_td.data import Trajectories, segment_cuts
from adaptive_td.envs.chain import WallChain
from adaptive_td.linear import lstd, mc_projection

F, T = False, True
NAN = float("nan")
A, B = 0.0, 1.0  # State indices stored as float observations.


def one_hot(num_states):
    """One-hot features of integer-valued observations [N] or [N, 1].

    Refuses NaN and out-of-range states, so a test fails if a placeholder (a
    terminal observation, padding) is ever passed to the feature map.
    """

    def phi(obs):
        s = np.asarray(obs, np.float64).reshape(len(obs))
        if not np.all((s >= 0) & (s < num_states) & (s == np.round(s))):
            raise AssertionError(f"feature map called on placeholder states {s}")
        return np.eye(num_states)[s.astype(int)]

    return phi


def _batch(observations, rewards, terminated, truncated, mask):
    return Trajectories(
        observations=np.asarray(observations, np.float64),
        rewards=np.asarray(rewards, np.float64),
        terminated=np.asarray(terminated, bool),
        truncated=np.asarray(truncated, bool),
        mask=np.asarray(mask, bool),
    ).validate()


# -- hand-solved batches --------------------------------------------------------


def example_6_4():
    """Sutton and Barto (2nd ed.), Example 6.4, gamma = 1.

    Eight episodes: A -> B -> end with rewards 0, 0; six times B -> end with
    reward 1; once B -> end with reward 0. The terminal observation is NaN.
    """
    episodes = [
        dict(observations=np.array([A, B, NAN]), rewards=np.zeros(2), terminated=T)
    ]
    for r in [1.0] * 6 + [0.0]:
        episodes.append(
            dict(observations=np.array([B, NAN]), rewards=np.array([r]), terminated=T)
        )
    return Trajectories.from_episodes(episodes, pad_value=NAN)


@pytest.mark.parametrize("lambda_", [0.0, 0.25, 0.5, 1.0])
def test_lstd_lambda_on_example_6_4(lambda_):
    # Traces: the A step has z = phi_A; the B step of the first episode has
    # z = phi_B + lambda phi_A; the other B steps z = phi_B. TD errors:
    # delta_A = V_B - V_A, delta_B = r - V_B. Component B of sum z delta = 0:
    # the eight B steps give 6 - 8 V_B = 0, V_B = 3/4. Component A:
    # (V_B - V_A) + lambda (0 - V_B) = 0, so V_A = (1 - lambda) V_B.
    # lambda = 0 is batch TD (V_A = 3/4), lambda = 1 batch MC (V_A = 0).
    w = lstd(example_6_4(), one_hot(2), gamma=1.0, lambda_=lambda_)

    np.testing.assert_allclose(w, [(1 - lambda_) * 0.75, 0.75], rtol=1e-12)


def test_mc_projection_on_example_6_4_averages_returns():
    # The only return from A is 0; the returns from B are 0, six 1s and 0.
    w = mc_projection(example_6_4(), one_hot(2), gamma=1.0)

    np.testing.assert_allclose(w, [0.0, 0.75], atol=1e-12)


def test_mc_projection_averages_every_visit_with_discount():
    # gamma = 1/2. Episode 1: A -(2)-> A -(4)-> B -(8)-> end; episode 2:
    # B -(2)-> end. Returns from A: 2 + 4/2 + 8/4 = 6 and 4 + 8/2 = 8, mean 7;
    # from B: 8 and 2, mean 5.
    traj = Trajectories.from_episodes(
        [
            dict(
                observations=np.array([A, A, B, NAN]),
                rewards=np.array([2.0, 4.0, 8.0]),
                terminated=T,
            ),
            dict(
                observations=np.array([B, NAN]), rewards=np.array([2.0]), terminated=T
            ),
        ],
        pad_value=NAN,
    )

    w = mc_projection(traj, one_hot(2), gamma=0.5)

    np.testing.assert_allclose(w, [7.0, 5.0], rtol=1e-12)


def test_lstd0_equals_tabular_values_of_the_empirical_chain():
    # Same data, TD(0): from A, half the steps go to A (reward 2), half to B
    # (reward 4); B always ends, rewards 8 and 2. Empirical chain:
    # V_B = (8 + 2) / 2 = 5, V_A = (2 + 4) / 2 + 1/2 (V_A / 2 + V_B / 2)
    #     = 3 + V_A / 4 + 5 / 4, so V_A = (17 / 4) / (3 / 4) = 17 / 3.
    traj = Trajectories.from_episodes(
        [
            dict(
                observations=np.array([A, A, B, NAN]),
                rewards=np.array([2.0, 4.0, 8.0]),
                terminated=T,
            ),
            dict(
                observations=np.array([B, NAN]), rewards=np.array([2.0]), terminated=T
            ),
        ],
        pad_value=NAN,
    )

    np.testing.assert_allclose(
        lstd(traj, one_hot(2), gamma=0.5), [17 / 3, 5.0], rtol=1e-12
    )


# The truncation example, gamma = 1/2. Episode 1: A -(1)-> A -(1)-> B, truncated
# (B is a real state worth V_B). Episode 2: B -(4)-> end, so V_B = 4.
# With lambda, the A steps have traces phi_A and (1 + gamma lambda) phi_A and TD
# errors delta_0 = 1 + V_A / 2 - V_A and delta_1 = 1 + V_B / 2 - V_A = 3 - V_A.
# delta_0 + (1 + lambda / 2) delta_1 = 0 gives
#     V_A = (4 + 3 lambda / 2) / (3 / 2 + lambda / 2):
# 8/3 at lambda = 0 (TD: V_A = 1 + (V_A + V_B) / 4), 19/7 at lambda = 1/2, and
# 11/4 at lambda = 1 (MC: returns 1 + 1/2 + 4/4 = 5/2 and 1 + 4/2 = 3).
TRUNCATION_VALUES = {0.0: 8 / 3, 0.5: 19 / 7, 1.0: 11 / 4}


def truncation_layouts():
    """The truncation example in four layouts that must give the same weights."""
    two_rows = _batch(
        [[A, A, B], [B, NAN, NAN]],
        [[1.0, 1.0], [4.0, NAN]],
        [[F, F], [T, F]],
        [[F, T], [F, F]],
        [[T, T], [T, F]],
    )
    # Episode 1 unflagged at the end of its row: cut mid-episode, the same as
    # a truncation.
    cut_row = _batch(
        [[A, A, B], [B, NAN, NAN]],
        [[1.0, 1.0], [4.0, NAN]],
        [[F, F], [T, F]],
        [[F, F], [F, F]],
        [[T, T], [T, F]],
    )
    # (A stream with episode 2 starting right after the truncated step is
    # rejected by Trajectories.validate: its s_{t+1} would be both the final
    # observation and the next start. The reset-row layout below is the way.)
    # NEXT_STEP layout: a masked reset row (final B -> reset B) between them,
    # with a NaN reward there.
    reset_row = _batch(
        [[A, A, B, B, NAN]],
        [[1.0, 1.0, NAN, 4.0]],
        [[F, F, F, T]],
        [[F, T, F, F]],
        [[T, T, F, T]],
    )
    # Episode 2 first, then episode 1, then padding.
    reordered = _batch(
        [[B, NAN, A, A, B, NAN]],
        [[4.0, NAN, 1.0, 1.0, NAN]],
        [[T, F, F, F, F]],
        [[F, F, F, T, F]],
        [[T, F, T, T, F]],
    )
    return dict(
        two_rows=two_rows,
        cut_row=cut_row,
        reset_row=reset_row,
        reordered=reordered,
    )


@pytest.mark.parametrize("layout", sorted(truncation_layouts()))
@pytest.mark.parametrize("lambda_", sorted(TRUNCATION_VALUES))
def test_truncation_bootstraps_and_traces_stop_at_segments(lambda_, layout):
    traj = truncation_layouts()[layout]

    w = lstd(traj, one_hot(2), gamma=0.5, lambda_=lambda_)

    np.testing.assert_allclose(w, [TRUNCATION_VALUES[lambda_], 4.0], rtol=1e-12)


@pytest.mark.parametrize("layout", sorted(truncation_layouts()))
def test_mc_projection_bootstraps_truncation_from_the_fit(layout):
    w = mc_projection(truncation_layouts()[layout], one_hot(2), gamma=0.5)

    np.testing.assert_allclose(w, [11 / 4, 4.0], rtol=1e-12)


def test_termination_does_not_bootstrap():
    # Episode 1 terminated instead of truncated: the second A step earns 1 and
    # stops, so V_A = 1 + (V_A / 2 + 0) / 2 at lambda = 0, V_A = 4/3; and
    # (1 - V_A / 2) + (1 + lambda / 2)(1 - V_A) = 0 in general. The NaN after
    # the terminal step is never passed to the feature map.
    traj = _batch(
        [[A, A, NAN], [B, NAN, NAN]],
        [[1.0, 1.0], [4.0, NAN]],
        [[F, T], [T, F]],
        [[F, F], [F, F]],
        [[T, T], [T, F]],
    )
    for lambda_ in (0.0, 0.5, 1.0):
        expected = (2 + lambda_ / 2) / (3 / 2 + lambda_ / 2)
        w = lstd(traj, one_hot(2), gamma=0.5, lambda_=lambda_)
        np.testing.assert_allclose(w, [expected, 4.0], rtol=1e-12)
    np.testing.assert_allclose(
        mc_projection(traj, one_hot(2), gamma=0.5), [5 / 4, 4.0], rtol=1e-12
    )


def test_identity_features_and_bias():
    # Deterministic chain x = 0 -> 1 -> 2 -> end, rewards 1, 2, 4, gamma = 1/2,
    # fitted with V(x) = w x + c (identity feature plus bias). TD errors:
    #   delta_0 = 1 + (w + c)/2 - c    = 1 + w/2 - c/2
    #   delta_1 = 2 + (2w + c)/2 - (w + c) = 2 - c/2
    #   delta_2 = 4 - (2w + c)           (terminal: no bootstrap)
    # Bias row:  delta_0 + delta_1 + delta_2 = 7 - 3w/2 - 2c = 0.
    # x row:     0 delta_0 + 1 delta_1 + 2 delta_2 = 10 - 4w - 5c/2 = 0.
    # So c = 7/2 - 3w/4 and 10 - 4w - 35/4 + 15w/8 = 0: w = 10/17, c = 52/17.
    traj = Trajectories.from_episodes(
        [
            dict(
                observations=np.array([[0.0], [1.0], [2.0], [NAN]]),
                rewards=np.array([1.0, 2.0, 4.0]),
                terminated=T,
            )
        ],
        pad_value=NAN,
    )

    w = lstd(traj, None, gamma=0.5, bias=True)

    np.testing.assert_allclose(w, [10 / 17, 52 / 17], rtol=1e-12)
    w_explicit = lstd(
        traj, lambda x: np.concatenate([x, np.ones_like(x)], axis=1), gamma=0.5
    )
    np.testing.assert_allclose(w_explicit, w, rtol=1e-12)
    np.testing.assert_allclose(
        lstd(traj, "identity", gamma=0.5, bias=True), w, rtol=1e-12
    )


# -- a sampled chain --------------------------------------------------------------
#
# WallChain with 6 states and a wall between states 1 and 2, discount 0.98,
# episodes cut after 30 steps (about 2% are truncated). Observations are the
# state indices; the terminal index 6 marks the terminal state and the padding,
# which `one_hot(6)` refuses, so none of them may reach the feature map.

CHAIN = WallChain(num_states=6, wall=2, max_steps=30)


@functools.cache
def chain_states(num_episodes=4000, seed=0):
    traj, states = CHAIN.mdp.sample_with_states(
        jax.random.key(seed), num_episodes, CHAIN.max_steps
    )
    return Trajectories(
        observations=states,
        rewards=np.asarray(traj.rewards),
        terminated=np.asarray(traj.terminated),
        truncated=np.asarray(traj.truncated),
        mask=np.asarray(traj.mask),
    ).validate()


def test_chain_sample_has_terminations_and_truncations():
    summary = chain_states().summary()

    assert summary["terminated"] > 1000 and summary["truncated"] > 10


def test_lstd0_one_hot_is_the_empirical_chain_exactly():
    # Certainty equivalence: with one-hot features, LSTD(0) solves the Bellman
    # equation of the Markov chain estimated by counting the valid transitions
    # (a truncated step counts as the real transition it is).
    traj = chain_states()
    states = np.asarray(traj.observations)
    rows, cols = np.nonzero(traj.mask)
    s, s_next = states[rows, cols], states[rows, cols + 1]
    counts = np.zeros((6, 7))
    np.add.at(counts, (s, s_next), 1.0)
    reward_sums = np.bincount(s, np.asarray(traj.rewards)[rows, cols], minlength=6)
    visits = counts.sum(1)
    p_hat = counts[:, :6] / visits[:, None]
    v_hat = np.linalg.solve(np.eye(6) - CHAIN.gamma * p_hat, reward_sums / visits)

    w = lstd(traj, one_hot(6), gamma=CHAIN.gamma)

    np.testing.assert_allclose(w, v_hat, rtol=1e-10)


@pytest.mark.parametrize("lambda_", [0.0, 0.5, 1.0])
def test_one_hot_estimates_approach_exact_chain_values(lambda_):
    # About 31,000 transitions: the largest error is about 0.01 for each
    # lambda; the values range from 0.81 to 1.82.
    exact = CHAIN.exact_values()

    w = lstd(chain_states(), one_hot(6), gamma=CHAIN.gamma, lambda_=lambda_)

    np.testing.assert_allclose(w, exact, atol=0.03)


@pytest.mark.parametrize("lambda_", [0.3, 0.8])
def test_lstd_is_the_fixed_point_of_the_lambda_return(lambda_):
    # sum_t phi_t (G^lambda_t(w) - phi_t . w) = 0 over the valid steps, with
    # G^lambda from the library's kernel, v_t = V_w(s_{t+1}), and the segment
    # cuts of `segment_cuts` (masked steps are cuts and are left out of the sum).
    traj = chain_states(500, seed=1)
    states = np.asarray(traj.observations)
    mask, terminated = np.asarray(traj.mask), np.asarray(traj.terminated)

    w = lstd(traj, one_hot(6), gamma=CHAIN.gamma, lambda_=lambda_)

    values = np.append(w, 0.0)[states]  # Index 6 (terminal, padding) -> 0.
    g = returns.lambda_returns(
        np.where(mask, np.asarray(traj.rewards, np.float64), 0.0),
        values[:, 1:],
        terminated,
        segment_cuts(traj) & ~terminated,
        gamma=CHAIN.gamma,
        lambda_=lambda_,
    )
    rows, cols = np.nonzero(mask)
    residual = np.asarray(g)[rows, cols] - values[rows, cols]
    phi = np.eye(7)[states[rows, cols]]
    np.testing.assert_allclose(phi.T @ residual / len(rows), 0.0, atol=1e-12)


def test_lstd1_equals_mc_projection():
    # The identity holds with or without truncations (the truncated tail is
    # bootstrapped from the fit in both); check it on terminated-only data and
    # on the sample with truncations, with one-hot and with x-plus-bias
    # features.
    terminated_only = CHAIN.mdp.sample(jax.random.key(2), 500, 100)
    assert terminated_only.summary()["truncated"] == 0
    x_traj = CHAIN.collect(500, seed=3)
    assert x_traj.summary()["truncated"] > 0
    cases = [
        (terminated_only, None, True),
        (x_traj, None, True),
        (chain_states(), one_hot(6), False),
    ]
    for traj, features, bias in cases:
        w_mc = mc_projection(traj, features, gamma=CHAIN.gamma, bias=bias)
        w_lstd = lstd(traj, features, gamma=CHAIN.gamma, lambda_=1.0, bias=bias)
        np.testing.assert_allclose(w_lstd, w_mc, rtol=1e-9)


def test_mc_projection_on_terminated_data_is_least_squares():
    # No truncation: ordinary least squares of the discounted returns.
    traj = CHAIN.mdp.sample(jax.random.key(2), 500, 100)
    g = returns.discounted_returns(
        np.where(traj.mask, np.asarray(traj.rewards, np.float64), 0.0),
        np.zeros(traj.rewards.shape),
        np.asarray(traj.terminated),
        np.asarray(traj.truncated),
        gamma=CHAIN.gamma,
    )
    rows, cols = np.nonzero(traj.mask)
    x = np.asarray(traj.observations, np.float64)[rows, cols]
    design = np.concatenate([x, np.ones_like(x)], axis=1)
    expected, *_ = np.linalg.lstsq(design, np.asarray(g)[rows, cols], rcond=None)

    w = mc_projection(traj, None, gamma=CHAIN.gamma, bias=True)

    np.testing.assert_allclose(w, expected, rtol=1e-9)


# -- the estimators reach these fixed points ----------------------------------------
#
# `networks.linear()` is V(x) = w x + b on WallChain's scalar observation, the
# same model as `features=None, bias=True`. Plain SGD on uniform minibatches has
# the closed-form weights as its only stationary point; a step size decaying to
# 1/1000 of its start and large batches bring the float32 fit to within 2e-3 of
# them (about 7e-4 observed for TD, 2e-4 for MC), while the TD and MC weights
# differ by more than 0.1 on this data.

FIT_TOL = 2e-3
FIT_STEPS = 10_000


def _linear_weights(value_fn):
    p = value_fn.params["linear"]
    return np.concatenate([np.asarray(p["w"])[:, 0], np.asarray(p["b"])])


def _fit(cls, traj, **options):
    est = cls(
        networks.linear(),
        optax.sgd(optax.cosine_decay_schedule(1.0, FIT_STEPS, alpha=1e-3)),
        gamma=CHAIN.gamma,
        steps=FIT_STEPS,
        batch_size=4096,
        **options,
    )
    return _linear_weights(est.fit(traj, key=0))


def test_semi_gradient_td_converges_to_lstd0():
    traj = CHAIN.collect(500, seed=1)
    w_lstd = lstd(traj, None, gamma=CHAIN.gamma, bias=True)
    w_mc = mc_projection(traj, None, gamma=CHAIN.gamma, bias=True)
    assert np.abs(w_lstd - w_mc).max() > 0.1

    w = _fit(estimators.TD, traj)

    np.testing.assert_allclose(w, w_lstd, atol=FIT_TOL)


def test_td_lambda_converges_to_lstd_lambda():
    # Lambda-returns refreshed every 10 steps from the current weights: the
    # fixed point is LSTD(0.5)'s, distinct from both LSTD(0) and MC's.
    traj = CHAIN.collect(500, seed=1)
    w_half = lstd(traj, None, gamma=CHAIN.gamma, lambda_=0.5, bias=True)
    w_zero = lstd(traj, None, gamma=CHAIN.gamma, bias=True)
    assert np.abs(w_half - w_zero).max() > 0.05

    w = _fit(estimators.TDLambda, traj, lambda_=0.5, refresh_period=10)

    np.testing.assert_allclose(w, w_half, atol=FIT_TOL)


@pytest.mark.parametrize("data", ["terminated", "with_truncations"])
def test_monte_carlo_converges_to_mc_projection(data):
    # With truncations, MonteCarlo bootstraps the tail from its own
    # stop-gradient value: the fixed point that `mc_projection` solves.
    if data == "terminated":
        traj = CHAIN.mdp.sample(jax.random.key(1), 500, 100)
        assert traj.summary()["truncated"] == 0
    else:
        traj = CHAIN.collect(500, seed=1)
        assert traj.summary()["truncated"] > 0
    w_mc = mc_projection(traj, None, gamma=CHAIN.gamma, bias=True)

    w = _fit(estimators.MonteCarlo, traj)

    np.testing.assert_allclose(w, w_mc, atol=FIT_TOL)


# -- singular systems and bad arguments ---------------------------------------------


def test_singular_unvisited_state_names_the_column_and_ridge_fixes_it():
    # State 2 is only ever reached as the final observation of a truncated
    # episode: its one-hot column is zero at every s_t.
    traj = _batch([[0.0, 1.0, 2.0]], [[1.0, 1.0]], [[F, F]], [[F, T]], [[T, T]])

    with pytest.raises(ValueError, match=r"lstd: .*singular.*column\(s\) \[2\].*ridge"):
        lstd(traj, one_hot(3), gamma=0.5)
    with pytest.raises(ValueError, match=r"mc_projection: .*singular.*ridge"):
        mc_projection(traj, one_hot(3), gamma=0.5)

    w = lstd(traj, one_hot(3), gamma=0.5, ridge=1e-8)
    assert np.all(np.isfinite(w))


def test_singular_dependent_features():
    with pytest.raises(ValueError, match="linearly dependent.*bias=True.*ridge"):
        lstd(example_6_4(), one_hot(2), gamma=1.0, bias=True)


def test_singular_td_system():
    # One state looping on itself with gamma = 1, cut by truncation: the TD
    # errors r + V - V do not depend on V, so A = 0 while phi is fine.
    traj = _batch([[0.0, 0.0, 0.0]], [[1.0, 1.0]], [[F, F]], [[F, T]], [[T, T]])

    with pytest.raises(ValueError, match="TD system is not"):
        lstd(traj, one_hot(1), gamma=1.0)
    # The return 1 + 1 + V bootstraps from the fit too: MC is singular as well.
    with pytest.raises(ValueError, match="mc_projection: .*singular"):
        mc_projection(traj, one_hot(1), gamma=1.0)


def test_ridge_shrinks_towards_zero():
    w0 = lstd(example_6_4(), one_hot(2), gamma=1.0)
    w1 = lstd(example_6_4(), one_hot(2), gamma=1.0, ridge=1.0)

    assert np.all(np.abs(w1) < np.abs(w0))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(gamma=1.5), r"lstd: gamma=1.5; expected a number in \[0, 1\]"),
        (dict(gamma=0.5, lambda_=-0.1), r"lambda_=-0.1; expected a number in"),
        (dict(gamma=0.5, ridge=-1.0), r"ridge=-1.0; expected a finite number >= 0"),
        (dict(gamma=0.5, ridge=np.inf), "ridge=inf"),
        (dict(gamma=0.5, bias=1), r"bias=1; expected True or False"),
        (
            dict(gamma=0.5, features="one_hot"),
            "features='one_hot'; expected a callable",
        ),
        (
            dict(gamma=0.5, features=lambda s: np.ones(len(s))),
            r"features mapped observations of shape \(10, 1\) to shape \(10,\); "
            r"expected \[N, d\]",
        ),
        (
            dict(gamma=0.5, features=lambda s: np.full((len(s), 2), np.nan)),
            "features of a used observation are not finite",
        ),
        (dict(gamma=0.5, features=lambda s: np.ones((len(s), 0))), "dimension 0"),
    ],
)
def test_bad_arguments(kwargs, match):
    traj = Trajectories.from_episodes(
        [
            dict(
                observations=np.array([[0.0], [1.0], [2.0], [3.0], [4.0]]),
                rewards=np.ones(4),
            ),
            dict(observations=np.array([[0.0], [1.0]]), rewards=np.ones(1)),
        ]
    )
    with pytest.raises(ValueError, match=match):
        lstd(traj, **kwargs)


def test_bad_trajectories():
    with pytest.raises(ValueError, match="lstd: trajectories is a dict"):
        lstd({}, gamma=0.5)
    empty = _batch([[0.0, 1.0]], [[1.0]], [[F]], [[F]], [[F]])
    with pytest.raises(ValueError, match="mc_projection: .*no valid step"):
        mc_projection(empty, gamma=0.5)
    bad = Trajectories(
        np.zeros((1, 2)),
        np.zeros((1, 1)),
        np.zeros((1, 1), int),
        np.zeros((1, 1), bool),
        np.ones((1, 1), bool),
    )
    with pytest.raises(ValueError, match="terminated has dtype"):
        lstd(bad, gamma=0.5)
