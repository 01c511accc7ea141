"""Tests for the multi-step estimators NStepTD and TDLambda, and target networks.

Targets are checked on the transition level with numbers worked out by hand
(V(s) = s, so every bootstrap value is the observation itself), then through
identities: n = 1 is TD(0), n >= the episode length is Monte Carlo, lambda = 0
is TD(0), lambda = 1 is Monte Carlo, and refreshing the lambda-returns every p
steps with lambda = 0 is TD with a target network copied every p steps. The
estimator contract (convergence, seeds, no recompilation, dtypes) runs in
test_estimators.py through its registry.
"""

import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from adaptive_td import estimators, networks, returns, training
from adaptive_td.data import Trajectories

T, F, NAN = True, False, np.nan
TERMINAL = -1


def value_is_obs(params, obs):
    """V(s) = params * s: with params = 1 every value is its observation."""
    return params * obs


ONE = jnp.float32(1.0)


def hand_batch():
    """Four rows, T = 5, observations named by number; NaN marks unused places.

    row 0: 1 -> 2 -> 3 -> terminal, rewards 1, 2, 4; padded.
    row 1: 11 -> 12 -> 13 -> 14, rewards 1, 2, 4, truncated after step 2.
    row 2: a stream: 21 -> 22 -> terminal (rewards 1, 2), the masked reset
           row, then 31 -> 32 -> 33 (rewards 4, 8) cut by the end of the row.
    row 3: 41 -> ... -> 45 -> terminal, rewards 1, 2, 4, 8, 16.
    """
    return Trajectories(
        observations=np.array(
            [
                [1.0, 2.0, 3.0, NAN, NAN, NAN],
                [11.0, 12.0, 13.0, 14.0, NAN, NAN],
                [21.0, 22.0, NAN, 31.0, 32.0, 33.0],
                [41.0, 42.0, 43.0, 44.0, 45.0, NAN],
            ]
        ),
        rewards=np.array(
            [
                [1.0, 2.0, 4.0, NAN, NAN],
                [1.0, 2.0, 4.0, NAN, NAN],
                [1.0, 2.0, NAN, 4.0, 8.0],
                [1.0, 2.0, 4.0, 8.0, 16.0],
            ]
        ),
        terminated=np.array(
            [[F, F, T, F, F], [F] * 5, [F, T, F, F, F], [F, F, F, F, T]]
        ),
        truncated=np.array([[F] * 5, [F, F, T, F, F], [F] * 5, [F] * 5]),
        mask=np.array([[T, T, T, F, F], [T, T, T, F, F], [T, T, F, T, T], [T] * 5]),
    ).validate()


# -- NStepTD targets ----------------------------------------------------------


def test_n_step_parts_by_hand():
    data = training.multistep(hand_batch(), gamma=0.5, n=2)
    ns = data.n_step

    # Valid steps in row-major order: row 0 steps 0-2, row 1 steps 0-2,
    # row 2 steps 0, 1, 3, 4, row 3 steps 0-4.
    np.testing.assert_array_equal(
        data.obs, [1, 2, 3, 11, 12, 13, 21, 22, 31, 32, 41, 42, 43, 44, 45]
    )
    # Two rewards per window, r_t + r_{t+1} / 2, fewer where the segment ends
    # first: row 0 step 2 terminates (4), row 1 step 2 is truncated (4), row 2
    # steps 0-1 terminate at step 1 (1 + 1, then 2), row 2 step 4 is the last
    # of its row (8), row 3 step 4 terminates (16).
    np.testing.assert_array_equal(
        ns.ret, [2, 4, 4, 2, 4, 4, 2, 2, 8, 8, 2, 4, 8, 16, 16]
    )
    # 0.5^2 for a full window, 0.5 for a one-step window at a truncation or
    # cut, 0 where the window meets a termination.
    np.testing.assert_array_equal(
        ns.discount,
        [0.25, 0, 0, 0.25, 0.25, 0.5, 0, 0, 0.25, 0.5, 0.25, 0.25, 0.25, 0, 0],
    )
    # s_{t+m}: two steps on, or the final observation (14 after the
    # truncation, 33 at the row's end); s_t itself where the window ends
    # terminal (never the NaN placeholder).
    np.testing.assert_array_equal(
        ns.boot_obs, [3, 2, 3, 13, 14, 14, 21, 22, 33, 33, 43, 44, 45, 44, 45]
    )
    for name, x in ns._asdict().items():
        assert x.dtype == jnp.float32, name

    # With V(s) = s: ret + discount * s_{t+m}.
    targets = estimators._n_step_targets(value_is_obs, ONE, data)
    np.testing.assert_array_equal(
        targets,
        [2.75, 4, 4, 5.25, 7.5, 11, 2, 2, 16.25, 24.5, 12.75, 15, 19.25, 16, 16],
    )


def _kernel_targets(kernel, traj, gamma, **kw):
    """The kernel on the [B, T] layout with V(s) = s, read at each transition."""
    lay = training.layout(traj)
    g = kernel(
        lay.reward,
        value_is_obs(ONE, lay.obs[:, 1:]),
        lay.terminated,
        lay.truncated,
        gamma=gamma,
        **kw,
    )
    return g[lay.row, lay.col]


@pytest.mark.parametrize("n", [1, 2, 3, 5, 10])
def test_n_step_targets_are_the_kernel_on_the_layout(n):
    data = training.multistep(hand_batch(), gamma=0.5, n=n)

    np.testing.assert_allclose(
        estimators._n_step_targets(value_is_obs, ONE, data),
        _kernel_targets(returns.n_step_returns, hand_batch(), 0.5, n=n),
        rtol=1e-6,
    )


def test_n_step_one_is_td_zero():
    data = training.multistep(hand_batch(), gamma=0.5, n=1)
    ns, tr = data.n_step, data.transitions

    np.testing.assert_array_equal(ns.ret, tr.reward)
    np.testing.assert_array_equal(ns.discount, np.where(tr.bootstraps, 0.5, 0.0))
    np.testing.assert_array_equal(ns.boot_obs, tr.next_obs)
    np.testing.assert_array_equal(
        estimators._n_step_targets(value_is_obs, ONE, data),
        estimators._td_targets(value_is_obs, ONE, tr, 0.5),
    )


@pytest.mark.parametrize("n", [5, 6, 100])
def test_n_step_beyond_the_episode_is_monte_carlo(n):
    # The longest segment has 5 steps.
    data = training.multistep(hand_batch(), gamma=0.5, n=n)
    ns, tr = data.n_step, data.transitions

    np.testing.assert_array_equal(ns.ret, tr.mc_return)
    np.testing.assert_array_equal(ns.discount, tr.mc_discount)
    np.testing.assert_array_equal(ns.boot_obs, tr.mc_boot_obs)
    np.testing.assert_array_equal(
        estimators._n_step_targets(value_is_obs, ONE, data),
        estimators._mc_targets(value_is_obs, ONE, tr),
    )


# -- TDLambda targets -----------------------------------------------------------


def test_layout_by_hand():
    lay = training.layout(hand_batch())

    # Places no valid step reads (padding, terminal placeholders) hold the
    # first valid observation, 1.
    np.testing.assert_array_equal(
        lay.obs,
        [
            [1, 2, 3, 1, 1, 1],
            [11, 12, 13, 14, 1, 1],
            [21, 22, 1, 31, 32, 33],
            [41, 42, 43, 44, 45, 1],
        ],
    )
    np.testing.assert_array_equal(
        lay.reward,
        [[1, 2, 4, 0, 0], [1, 2, 4, 0, 0], [1, 2, 0, 4, 8], [1, 2, 4, 8, 16]],
    )
    np.testing.assert_array_equal(lay.terminated, hand_batch().terminated)
    # Every cut that is not a termination: truncation, masked steps, the cut
    # at the end of row 2.
    np.testing.assert_array_equal(
        lay.truncated,
        [[F, F, F, T, T], [F, F, T, T, T], [F, F, T, F, T], [F] * 5],
    )
    np.testing.assert_array_equal(
        lay.row, [0, 0, 0, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 3]
    )
    np.testing.assert_array_equal(
        lay.col, [0, 1, 2, 0, 1, 2, 0, 1, 3, 4, 0, 1, 2, 3, 4]
    )


def test_lambda_targets_by_hand():
    lay = training.layout(hand_batch())

    g = estimators._lambda_targets(value_is_obs, ONE, lay, 0.5, 0.5)

    # G_t = r_t + 0.5 (0.5 V(s_{t+1}) + 0.5 G_{t+1}), V(s) = s.
    # Row 0: G_2 = 4 (terminal), G_1 = 2 + 0.5 (1.5 + 2) = 3.75,
    #        G_0 = 1 + 0.5 (1 + 1.875) = 2.4375.
    # Row 1: G_2 = 4 + 0.5 * 14 = 11 (truncated), G_1 = 2 + 0.5 (6.5 + 5.5) = 8,
    #        G_0 = 1 + 0.5 (6 + 4) = 6.
    np.testing.assert_array_equal(g[:6], [2.4375, 3.75, 4, 6, 8, 11])
    assert g.shape == (15,) and g.dtype == jnp.float32


def test_lambda_zero_is_td_and_lambda_one_is_monte_carlo():
    traj = hand_batch()
    data = training.multistep(traj, gamma=0.5, with_layout=True)
    tr = data.transitions

    zero = estimators._lambda_targets(value_is_obs, ONE, data.layout, 0.5, 0.0)
    one = estimators._lambda_targets(value_is_obs, ONE, data.layout, 0.5, 1.0)
    half = estimators._lambda_targets(value_is_obs, ONE, data.layout, 0.5, 0.5)

    np.testing.assert_array_equal(
        zero, estimators._td_targets(value_is_obs, ONE, tr, 0.5)
    )
    np.testing.assert_allclose(
        one, estimators._mc_targets(value_is_obs, ONE, tr), rtol=1e-6
    )
    np.testing.assert_array_equal(
        half, _kernel_targets(returns.lambda_returns, traj, 0.5, lambda_=0.5)
    )


# -- identities between fitted estimators -------------------------------------
#
# A random walk on states 0..4 from state 2, reward 1 for leaving on the right:
# all 64 coin-flip sequences of six steps, one per row, each terminated on
# leaving or truncated after six steps. Fitted for 30 steps: the same key
# gives the same minibatches, so estimators with the same targets reach the
# same parameters.


@functools.cache
def walk():
    episodes = []
    for flips in itertools.product((-1, 1), repeat=6):
        s, obs, rewards = 2, [2], []
        for f in flips:
            s += f
            rewards.append(float(s == 5))
            obs.append(TERMINAL if s in (-1, 5) else s)
            if s in (-1, 5):
                break
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


def _walk_fit(cls, **kw):
    est = cls(
        networks.tabular(5),
        optax.sgd(0.5),
        gamma=1.0,
        steps=30,
        batch_size=32,
        **kw,
    )
    return est.fit(walk(), key=3)


@functools.cache
def walk_fit(name, **kw):
    cls = {
        "td": estimators.TD,
        "mc": estimators.MonteCarlo,
        "n_step": estimators.NStepTD,
        "lambda": estimators.TDLambda,
    }[name]
    return _walk_fit(cls, **kw)


def assert_same_fit(a, b):
    np.testing.assert_allclose(
        a.params["~"]["values"], b.params["~"]["values"], atol=1e-6
    )
    np.testing.assert_allclose(
        a.history["loss"], b.history["loss"], rtol=1e-5, atol=1e-7
    )


@pytest.mark.parametrize(
    "fit, same_as",
    [
        (("n_step", (("n", 1),)), ("td", ())),
        (("n_step", (("n", 6),)), ("mc", ())),
        (("lambda", (("lambda_", 0.0), ("refresh_period", 1))), ("td", ())),
        (("lambda", (("lambda_", 1.0), ("refresh_period", 1))), ("mc", ())),
        # Refreshing TD(0) targets every 7 steps is a target network copied
        # every 7 steps, including the last, shorter period (30 = 4 * 7 + 2).
        (
            ("lambda", (("lambda_", 0.0), ("refresh_period", 7))),
            ("td", (("target_update_period", 7),)),
        ),
        # A target network copied every step is no target network.
        (("td", (("target_update_period", 1),)), ("td", ())),
        (("n_step", (("n", 3), ("target_update_period", 1))), ("n_step", (("n", 3),))),
        (
            ("lambda", (("refresh_period", 5), ("target_update_period", 1))),
            ("lambda", (("refresh_period", 5),)),
        ),
    ],
    ids=[
        "n1-td",
        "n6-mc",
        "lambda0-td",
        "lambda1-mc",
        "lambda0-refresh7-td-target7",
        "td-target1",
        "n_step-target1",
        "lambda-target1",
    ],
)
def test_fits_that_must_agree(fit, same_as):
    a = walk_fit(fit[0], **dict(fit[1]))
    b = walk_fit(same_as[0], **dict(same_as[1]))

    assert a.history["loss"].shape == (30,)
    assert_same_fit(a, b)


def test_walk_fits_bootstrap_at_all():
    # Guard for the identities above: the targets do differ between methods.
    td = walk_fit("td")
    mc = walk_fit("mc")
    lam = walk_fit("lambda", refresh_period=5)
    assert not np.allclose(td.params["~"]["values"], mc.params["~"]["values"])
    assert not np.allclose(lam.params["~"]["values"], td.params["~"]["values"])


# -- target networks and refresh periods on a chain ------------------------------
#
# 0 -> 1 -> 2 -> terminal with rewards 0, 0, 1 and gamma = 1: V = [1, 1, 1].
# The tabular network starts at V = 0, so a target network that is never
# copied again (period > steps) bootstraps from zeros: TD learns only the last
# step, V = [0, 0, 1]; 2-step TD the last two, [0, 1, 1]; lambda = 1/2 the
# lambda-returns of V = 0: G_2 = 1, G_1 = 0 + (0 + 1) / 2 = 1/2,
# G_0 = 0 + (0 + 1/2) / 2 = 1/4.


def chain():
    return Trajectories.from_episodes(
        [
            dict(
                observations=np.array([0, 1, 2, TERMINAL]),
                rewards=np.array([0.0, 0.0, 1.0]),
                terminated=True,
            )
        ]
    )


def chain_fit(est_cls, steps=200, **kw):
    est = est_cls(
        networks.tabular(3), optax.sgd(0.5), gamma=1.0, steps=steps, batch_size=8, **kw
    )
    return est.fit(chain(), key=0)(np.arange(3))


FROZEN = 10**6


@pytest.mark.parametrize(
    "est_cls, kw, values",
    [
        (estimators.TD, {}, [0, 0, 1]),
        (estimators.NStepTD, {"n": 2}, [0, 1, 1]),
        (estimators.TDLambda, {"lambda_": 0.5, "refresh_period": 1}, [0.25, 0.5, 1]),
    ],
    ids=["td", "n_step", "lambda"],
)
def test_frozen_target_network_bootstraps_from_initial_values(est_cls, kw, values):
    np.testing.assert_allclose(
        chain_fit(est_cls, target_update_period=FROZEN, **kw), values, atol=1e-5
    )


def test_lambda_targets_computed_once_when_refresh_period_exceeds_steps():
    values = chain_fit(estimators.TDLambda, lambda_=0.5, refresh_period=FROZEN)
    np.testing.assert_allclose(values, [0.25, 0.5, 1], atol=1e-5)


@pytest.mark.parametrize("steps, values", [(200, [0, 1, 1]), (300, [1, 1, 1])])
def test_target_network_is_copied_every_period(steps, values):
    # Copies at steps 0, 100, 200: each period of 100 steps regresses on TD
    # targets of the values the previous one reached, one more step back.
    np.testing.assert_allclose(
        chain_fit(estimators.TD, steps=steps, target_update_period=100),
        values,
        atol=1e-5,
    )


def test_without_target_network_the_chain_is_learned():
    for est_cls, kw in [
        (estimators.TD, {}),
        (estimators.NStepTD, {"n": 2}),
        (estimators.TDLambda, {"lambda_": 0.5, "refresh_period": 1}),
    ]:
        np.testing.assert_allclose(chain_fit(est_cls, **kw), [1, 1, 1], atol=1e-5)


# -- several data sets in one fit ---------------------------------------------------


@pytest.mark.parametrize(
    "est_cls, kw",
    [(estimators.NStepTD, {"n": 2}), (estimators.TDLambda, {"refresh_period": 4})],
    ids=["n_step", "lambda"],
)
def test_list_of_batches_of_different_shapes(est_cls, kw):
    # The walk ([64, 6]) and the chain ([1, 3]): the chain's layout is padded
    # to [64, 6] with masked steps, which must not change its targets.
    est = est_cls(
        networks.tabular(5), optax.sgd(0.5), gamma=0.9, steps=20, batch_size=8, **kw
    )
    keys = jax.random.split(jax.random.key(0), 2)
    both = est.fit([walk(), chain()], key=keys)

    assert both.num_seeds == 2
    for i, traj in enumerate([walk(), chain()]):
        alone = est.fit(traj, key=keys[i])
        np.testing.assert_allclose(
            both.seed(i)(np.arange(5)), alone(np.arange(5)), rtol=1e-5, atol=1e-6
        )


# -- construction -------------------------------------------------------------------


@pytest.mark.parametrize(
    "est_cls, kwargs, match",
    [
        (estimators.NStepTD, dict(n=0), r"n=0; expected an integer >= 1"),
        (estimators.NStepTD, dict(n=1.5), r"n=1.5; expected an integer >= 1"),
        (estimators.NStepTD, dict(n=True), r"n=True; expected an integer >= 1"),
        (estimators.TDLambda, dict(lambda_=1.5), r"lambda_=1.5; expected a number"),
        (estimators.TDLambda, dict(lambda_=-0.1), r"lambda_=-0.1; expected a number"),
        (
            estimators.TDLambda,
            dict(refresh_period=0),
            r"refresh_period=0; expected an integer >= 1",
        ),
        (
            estimators.TDLambda,
            dict(refresh_period=2.0),
            r"refresh_period=2.0; expected an integer >= 1",
        ),
        *[
            (
                cls,
                dict(target_update_period=bad),
                rf"target_update_period={bad!r}; expected None or an integer >= 1",
            )
            for cls in (estimators.TD, estimators.NStepTD, estimators.TDLambda)
            for bad in (0, 1.5, True)
        ],
    ],
)
def test_constructor_validation(est_cls, kwargs, match):
    with pytest.raises(ValueError, match=match):
        est_cls(networks.tabular(2), optax.sgd(0.1), **kwargs)


def test_defaults_and_repr():
    n_step = estimators.NStepTD()
    lam = estimators.TDLambda(lambda_=1)
    assert (n_step.n, n_step.target_update_period) == (5, None)
    assert (lam.lambda_, lam.refresh_period) == (1.0, 20)
    assert "n=5" in repr(n_step) and "target_update_period=None" in repr(n_step)
    assert "lambda_=1.0" in repr(lam) and "refresh_period=20" in repr(lam)
    assert estimators.TD(target_update_period=np.int64(3)).target_update_period == 3
