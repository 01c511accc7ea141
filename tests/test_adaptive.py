"""Adaptive TD's options: each one checked against what it must do."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import adaptive_td as atd
from adaptive_td import adaptive, networks, training

# The 5-state random walk (Sutton and Barto, example 6.2) with gamma = 1:
# start in the middle, exit left with reward 0 or right with reward 1;
# V(i) = (i + 1) / 6.
TRUE = np.arange(1, 6) / 6
STEPS = 1500


@functools.cache
def walk():
    rng = np.random.default_rng(0)
    episodes = []
    for _ in range(1000):
        s, states, rewards = 2, [2], []
        while 0 <= s <= 4:
            s += rng.choice([-1, 1])
            rewards.append(float(s == 5))
            states.append(min(max(s, 0), 4))  # the exit state's index is ignored
        episodes.append(
            dict(
                observations=np.array(states),
                rewards=np.array(rewards),
                terminated=True,
            )
        )
    return atd.Trajectories.from_episodes(episodes)


def fit(key=0, **options):
    options = {"ensemble_size": 3, **options}
    schedule = optax.linear_schedule(0.1, 0.005, STEPS)
    est = atd.AdaptiveTD(
        networks.tabular(5),
        optax.sgd(schedule),
        gamma=1.0,
        steps=STEPS,
        batch_size=128,
        **options,
    )
    return est.fit(walk(), key=key)


STATES = jnp.arange(5)


# -- the interval rule, by hand ------------------------------------------------


def test_std_interval_by_hand():
    # Members 1, 2, 3: mean 2, sample sd (ddof=1) 1 -> k = 2 gives [0, 4].
    low, high = adaptive.interval(jnp.array([1.0, 2.0, 3.0]), kind="std", width=2.0)
    assert (float(low), float(high)) == (0.0, 4.0)


def test_quantile_interval_by_hand():
    # Members 0 ... 4, quantile 0.25: positions 1 and 3 -> [1, 3].
    members = jnp.arange(5.0)
    low, high = adaptive.interval(members, kind="quantile", quantile=0.25)
    assert (float(low), float(high)) == (1.0, 3.0)


# -- options -------------------------------------------------------------------


def test_default_converges_and_reports():
    value_fn = fit()
    np.testing.assert_allclose(value_fn(STATES), TRUE, atol=0.05)
    assert value_fn.history["ensemble_loss"].shape == (3, STEPS)


@pytest.mark.parametrize("fallback", ["mean", "clip"])
def test_fallback_to_the_mean_or_clipping_pulls_td_onto_the_ensemble(fallback):
    # With a vanishing interval almost every target is the fallback: mu(s_t),
    # or the TD target clipped to [mu, mu], which is mu too. So V_TD ends at
    # the ensemble mean.
    value_fn = fit(fallback=fallback, interval_width=1e-6)
    mu = value_fn.ensemble_values(STATES).mean(0)
    np.testing.assert_allclose(value_fn(STATES), mu, atol=0.02)
    assert value_fn.history["mc_fraction"][-200:].mean() > 0.9


def test_testing_the_td_target_instead_of_the_estimate():
    wide = fit(test="target", interval_width=1e9)
    assert wide.history["mc_fraction"].max() == 0.0  # every TD target inside
    narrow = fit(test="target", interval_width=1e-6)
    assert narrow.history["mc_fraction"][-200:].mean() > 0.9


def test_quantile_interval_in_the_value_function():
    value_fn = fit(interval="quantile", quantile=0.25, ensemble_size=4)
    members = np.asarray(value_fn.ensemble_values(STATES), np.float64)
    low, high = value_fn.interval(STATES)
    np.testing.assert_allclose(low, np.quantile(members, 0.25, axis=0), atol=1e-6)
    np.testing.assert_allclose(high, np.quantile(members, 0.75, axis=0), atol=1e-6)


def test_bootstrap_weights_are_poisson_per_segment():
    est = atd.AdaptiveTD(
        networks.tabular(5), optax.sgd(0.1), ensemble_size=4, bootstrap=True
    )
    data = training.transitions(walk(), 1.0)
    weights = np.asarray(est._member_weights(jax.random.key(0), data))
    segment = np.asarray(data.segment)
    assert weights.shape == (4, len(segment))
    # One weight per member and segment, shared by the segment's transitions.
    for member in weights:
        for seg in np.unique(segment)[:20]:
            assert len(np.unique(member[segment == seg])) == 1
    per_segment = weights[:, np.unique(segment, return_index=True)[1]]
    assert abs(per_segment.mean() - 1.0) < 0.1  # Poisson(1) has mean 1 ...
    assert (per_segment == 0).mean() > 0.25  # ... and P(0) = e^-1 = 0.37.
    assert not np.array_equal(weights[0], weights[1])
    plain = atd.AdaptiveTD(networks.tabular(5), optax.sgd(0.1), ensemble_size=4)
    assert (np.asarray(plain._member_weights(jax.random.key(0), data)) == 1).all()


def test_bootstrap_widens_the_interval_of_tabular_members():
    # Tabular members start at zero, so without resampling they differ only
    # through their minibatches; resampling episodes spreads them further.
    def width(value_fn):
        low, high = value_fn.interval(STATES)
        return float(jnp.mean(high - low))

    assert width(fit(bootstrap=True)) > 2 * width(fit())


def test_concurrent_schedule_converges_and_reports():
    value_fn = fit(schedule="concurrent")
    # Tabular members start at zero: only their own minibatches set them
    # apart. Shared minibatches would make them identical (a zero-width
    # interval, so MC targets everywhere).
    spread = np.ptp(np.asarray(value_fn.ensemble_values(STATES)), axis=0)
    assert (spread > 0).all()
    assert value_fn.history["mc_fraction"][-200:].mean() < 0.9
    np.testing.assert_allclose(value_fn(STATES), TRUE, atol=0.06)
    assert value_fn.history["loss"].shape == (STEPS,)
    assert value_fn.history["ensemble_loss"].shape == (3, STEPS)
    assert value_fn.history["mc_fraction"].shape == (STEPS,)


def test_options_with_several_seeds():
    keys = jax.random.split(jax.random.key(1), 2)
    value_fn = fit(keys, bootstrap=True, schedule="concurrent", interval="quantile")
    assert value_fn(STATES).shape == (2, 5)
    assert value_fn.ensemble_values(STATES).shape == (2, 3, 5)
    low, high = value_fn.interval(STATES)
    assert low.shape == high.shape == (2, 5) and bool((low <= high).all())


@pytest.mark.parametrize(
    "options, message",
    [
        ({"test": "value"}, "test='value'; expected one of estimate, target"),
        ({"fallback": "zero"}, "fallback='zero'; expected one of return, mean, clip"),
        ({"interval": "iqr"}, "interval='iqr'; expected one of std, quantile"),
        ({"schedule": "first"}, "schedule='first'; expected one of"),
        ({"quantile": 0.5}, r"quantile=0.5; expected a number in \[0, 0.5\)"),
        ({"quantile": -0.1}, r"quantile=-0.1; expected a number in \[0, 1\]"),
        ({"bootstrap": "yes"}, "bootstrap='yes'; expected True or False"),
    ],
)
def test_option_validation(options, message):
    with pytest.raises(ValueError, match=message):
        atd.AdaptiveTD(networks.tabular(5), optax.sgd(0.1), **options)
