"""Tests for adaptive_td.returns.

Hand-checked cases for every kernel, identities between kernels, a float64
reference built from the forward-view definitions, dtypes, jit, empty inputs and
the wording of the errors.
"""

import doctest
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from adaptive_td import returns
from adaptive_td.returns import (
    discounted_returns,
    lambda_returns,
    n_step_returns,
    td_targets,
)

F, T = False, True
NAN, INF = float("nan"), float("inf")

# The hand-checked cases use gamma = 0.5, lambda_ = 0.5 and n = 2, so every
# number below is exact in binary floating point.
KERNELS = {
    "td": td_targets,
    "mc": discounted_returns,
    "lambda": functools.partial(lambda_returns, lambda_=0.5),
    "n2": functools.partial(n_step_returns, n=2),
}

# Each case: inputs, the number of leading rows to check (rows after it are
# padding), and the expected outputs per kernel. boot = 0 on terminated rows,
# v elsewhere. lambda: G_t = r_t + g (boot_t if cut_t else 0.5 v_t + 0.5 G_{t+1}).
CASES = {
    "terminated_at_end": dict(
        r=[1.0, 2.0, 4.0],
        v=[10.0, 20.0, 30.0],  # v[2] = 30 belongs to a terminal state: unused
        terminated=[F, F, T],
        truncated=[F, F, F],
        gamma=0.5,
        expected={
            "td": [6.0, 12.0, 4.0],  # 1 + .5*10, 2 + .5*20, 4 + 0
            "mc": [3.0, 4.0, 4.0],  # G2 = 4, G1 = 2 + .5*4, G0 = 1 + .5*4
            # G2 = 4; G1 = 2 + .5(.5*20 + .5*4) = 8; G0 = 1 + .5(.5*10 + .5*8) = 5.5
            "lambda": [5.5, 8.0, 4.0],
            # G0 = 1 + .5*2 + .25*20 = 7; G1 = 2 + .5*4 = 4; G2 = 4
            "n2": [7.0, 4.0, 4.0],
        },
    ),
    "truncated_at_end": dict(
        r=[1.0, 2.0, 4.0],
        v=[10.0, 20.0, 30.0],  # v[2] = 30: value of the final observation
        terminated=[F, F, F],
        truncated=[F, F, T],
        gamma=0.5,
        expected={
            "td": [6.0, 12.0, 19.0],  # last: 4 + .5*30
            "mc": [6.75, 11.5, 19.0],  # G1 = 2 + .5*19, G0 = 1 + .5*11.5
            # G1 = 2 + .5(10 + 9.5) = 11.75; G0 = 1 + .5(5 + 5.875) = 6.4375
            "lambda": [6.4375, 11.75, 19.0],
            # G0 = 1 + .5*2 + .25*20 = 7; G1 = 2 + .5*4 + .25*30 = 11.5
            "n2": [7.0, 11.5, 19.0],
        },
    ),
    "both_flags_termination_wins": dict(
        r=[1.0, 2.0, 4.0],
        v=[10.0, 20.0, 30.0],  # had truncation won, the last row would be 19
        terminated=[F, F, T],
        truncated=[F, F, T],
        gamma=0.5,
        expected={  # as terminated_at_end
            "td": [6.0, 12.0, 4.0],
            "mc": [3.0, 4.0, 4.0],
            "lambda": [5.5, 8.0, 4.0],
            "n2": [7.0, 4.0, 4.0],
        },
    ),
    "segment_cut_mid_episode": dict(
        r=[1.0, 2.0, 4.0],
        v=[10.0, 20.0, 30.0],  # no flag on the last row: it bootstraps from 30
        terminated=[F, F, F],
        truncated=[F, F, F],
        gamma=0.5,
        expected={  # as truncated_at_end
            "td": [6.0, 12.0, 19.0],
            "mc": [6.75, 11.5, 19.0],
            "lambda": [6.4375, 11.75, 19.0],
            "n2": [7.0, 11.5, 19.0],
        },
    ),
    "two_episodes_in_one_row": dict(
        # Episode 1: rows 0-1, truncated. Episode 2: rows 2-3, terminated.
        r=[1.0, 2.0, 4.0, 8.0],
        v=[10.0, 20.0, 30.0, 40.0],
        terminated=[F, F, F, T],
        truncated=[F, T, F, F],
        gamma=0.5,
        expected={
            "td": [6.0, 12.0, 19.0, 8.0],  # 1 + 5, 2 + 10, 4 + 15, 8 + 0
            # G3 = 8, G2 = 4 + .5*8 = 8; G1 = 2 + .5*20 = 12 (not 2 + .5*8),
            # G0 = 1 + .5*12 = 7
            "mc": [7.0, 12.0, 8.0, 8.0],
            # G2 = 4 + .5(.5*30 + .5*8) = 13.5; G1 = 12; G0 = 1 + .5(5 + 6) = 6.5
            "lambda": [6.5, 12.0, 13.5, 8.0],
            # G0 = 1 + .5*12 = 7; G1 = 12; G2 = 4 + .5*8 = 8; G3 = 8
            "n2": [7.0, 12.0, 8.0, 8.0],
        },
    ),
    "padding_after_termination_holds_nan_and_inf": dict(
        r=[1.0, 2.0, NAN, INF],  # rows 2-3 are padding
        v=[10.0, 20.0, NAN, -INF],
        terminated=[F, T, F, F],
        truncated=[F, F, F, F],
        gamma=0.5,
        valid=2,
        expected={
            "td": [6.0, 2.0],  # 1 + .5*10, 2 + 0
            "mc": [2.0, 2.0],  # G1 = 2, G0 = 1 + .5*2
            "lambda": [4.0, 2.0],  # G0 = 1 + .5(.5*10 + .5*2)
            "n2": [2.0, 2.0],  # G0 = 1 + .5*2, the window stops at row 1
        },
    ),
    "nan_value_on_terminated_row": dict(
        r=[1.0, 2.0, 4.0],
        v=[10.0, 20.0, NAN],
        terminated=[F, F, T],
        truncated=[F, F, F],
        gamma=0.5,
        expected={  # as terminated_at_end
            "td": [6.0, 12.0, 4.0],
            "mc": [3.0, 4.0, 4.0],
            "lambda": [5.5, 8.0, 4.0],
            "n2": [7.0, 4.0, 4.0],
        },
    ),
    "inf_value_on_terminated_row_mid_stream": dict(
        r=[1.0, 2.0, 4.0],
        v=[10.0, -INF, 30.0],  # episode 1 terminates at row 1
        terminated=[F, T, F],
        truncated=[F, F, F],
        gamma=0.5,
        expected={
            "td": [6.0, 2.0, 19.0],  # 1 + 5, 2 + 0, 4 + 15
            "mc": [2.0, 2.0, 19.0],  # G0 = 1 + .5*2
            "lambda": [4.0, 2.0, 19.0],  # G0 = 1 + .5(5 + 1)
            "n2": [2.0, 2.0, 19.0],  # G0 = 1 + .5*2
        },
    ),
    "per_step_gamma": dict(
        r=[1.0, 2.0, 4.0],
        v=[10.0, 20.0, 30.0],
        terminated=[F, F, F],
        truncated=[F, F, T],
        gamma=np.array([0.5, 1.0, 0.25]),
        expected={
            "td": [6.0, 22.0, 11.5],  # 1 + .5*10, 2 + 1*20, 4 + .25*30
            "mc": [7.75, 13.5, 11.5],  # G1 = 2 + 11.5, G0 = 1 + .5*13.5
            # G1 = 2 + 1(.5*20 + .5*11.5) = 17.75; G0 = 1 + .5(5 + 8.875) = 7.9375
            "lambda": [7.9375, 17.75, 11.5],
            # G0 = 1 + .5*22 = 12; G1 = 2 + 1*11.5 = 13.5
            "n2": [12.0, 13.5, 11.5],
        },
    ),
}


def _args(case):
    return (
        np.array(case["r"]),
        np.array(case["v"]),
        np.array(case["terminated"]),
        np.array(case["truncated"]),
    )


@pytest.mark.parametrize("kernel", sorted(KERNELS))
@pytest.mark.parametrize("case_name", sorted(CASES))
def test_hand_checked_cases(case_name, kernel):
    case = CASES[case_name]
    out = np.asarray(KERNELS[kernel](*_args(case), gamma=case["gamma"]))
    valid = case.get("valid", len(case["r"]))

    assert out.shape == (len(case["r"]),)
    assert np.isfinite(out[:valid]).all()
    np.testing.assert_array_equal(out[:valid], case["expected"][kernel])


def test_n_step_bootstraps_with_gamma_to_the_n():
    r = np.ones(5)
    v = np.full(5, 8.0)
    flags = np.zeros(5, bool)

    out = n_step_returns(r, v, flags, flags, gamma=0.5, n=3)

    # Full windows: 1 + .5 + .25 + .5**3 * 8 = 2.75. Row 3: the window meets the
    # cut at row 4, 1 + .5 + .25*8 = 3.5. Row 4: 1 + .5*8 = 5.
    np.testing.assert_array_equal(out, [2.75, 2.75, 2.75, 3.5, 5.0])


def test_n_step_windows_stop_at_termination():
    r = np.ones(5)
    v = np.full(5, 8.0)
    terminated = np.array([F, F, T, F, F])
    truncated = np.zeros(5, bool)

    out = n_step_returns(r, v, terminated, truncated, gamma=0.5, n=3)

    # Rows 0-2 end at the terminal state: 1 + .5 + .25, 1 + .5, 1. Rows 3-4 as
    # above: 3.5 and 5.
    np.testing.assert_array_equal(out, [1.75, 1.5, 1.0, 3.5, 5.0])


# Random inputs: both flags, NaN values on terminated rows, and NaN/inf padding
# after the last flag of some rows.


def _random_batch(seed, batch=6, time=11, per_step_gamma=True):
    rng = np.random.default_rng(seed)
    r = rng.normal(size=(batch, time))
    v = rng.normal(size=(batch, time))
    terminated = rng.random((batch, time)) < 0.15
    truncated = rng.random((batch, time)) < 0.15
    v[terminated] = NAN
    valid = np.full(batch, time)
    for b in range(0, batch, 2):
        flagged = np.flatnonzero(terminated[b] | truncated[b])
        if flagged.size and flagged[-1] < time - 1:
            valid[b] = flagged[-1] + 1
            r[b, valid[b] :] = NAN
            v[b, valid[b] :] = INF
    if per_step_gamma:
        gamma = rng.uniform(0.0, 1.0, size=(batch, time))
    else:
        gamma = 0.9
    return (r, v, terminated, truncated), gamma, valid


def _reference_n_step(r, v, terminated, truncated, gamma, n):
    """Forward view: discounted sum over the window, then one bootstrap."""
    time = len(r)
    out = np.zeros(time)
    for t in range(time):
        total, discount = 0.0, 1.0
        for k in range(n):
            i = t + k
            total += discount * r[i]
            discount *= gamma[i]
            cut = terminated[i] or truncated[i] or i == time - 1
            if cut or k == n - 1:
                total += 0.0 if terminated[i] else discount * v[i]
                break
        out[t] = total
    return out


def _reference_lambda(r, v, terminated, truncated, gamma, lambda_):
    """Forward view: a lambda-weighted mix of n-step returns up to the cut."""
    time = len(r)
    cut = terminated | truncated
    cut[-1] = True
    n_step = [None] + [
        _reference_n_step(r, v, terminated, truncated, gamma, n)
        for n in range(1, time + 1)
    ]
    out = np.zeros(time)
    for t in range(time):
        horizon = int(np.flatnonzero(cut[t:])[0]) + 1
        out[t] = sum(
            (1 - lambda_) * lambda_ ** (n - 1) * n_step[n][t] for n in range(1, horizon)
        )
        out[t] += lambda_ ** (horizon - 1) * n_step[horizon][t]
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_inputs_match_float64_reference(seed):
    args, gamma, valid = _random_batch(seed)
    outs = {
        "td": td_targets(*args, gamma=gamma),
        "mc": discounted_returns(*args, gamma=gamma),
        "lambda": lambda_returns(*args, gamma=gamma, lambda_=0.7),
        "n3": n_step_returns(*args, gamma=gamma, n=3),
    }

    for b in range(len(valid)):
        row = [np.asarray(x[b]) for x in args]
        expected = {
            "td": _reference_n_step(*row, gamma[b], 1),
            "mc": _reference_n_step(*row, gamma[b], row[0].size),
            "lambda": _reference_lambda(*row, gamma[b], 0.7),
            "n3": _reference_n_step(*row, gamma[b], 3),
        }
        for name, out in outs.items():
            got = np.asarray(out[b, : valid[b]])
            assert got.dtype == np.float64
            assert np.isfinite(got).all(), name
            np.testing.assert_allclose(
                got, expected[name][: valid[b]], rtol=1e-12, atol=1e-12, err_msg=name
            )


def test_per_step_lambda_matches_backward_loop():
    args, gamma, valid = _random_batch(3, per_step_gamma=False)
    lam = np.random.default_rng(4).uniform(0.0, 1.0, size=args[0].shape)

    out = np.asarray(lambda_returns(*args, gamma=gamma, lambda_=lam))

    r, v, terminated, truncated = args
    for b in range(len(valid)):
        expected = np.zeros(r.shape[1])
        for t in reversed(range(r.shape[1])):
            if terminated[b, t]:
                expected[t] = r[b, t]
            elif truncated[b, t] or t == r.shape[1] - 1:
                expected[t] = r[b, t] + gamma * v[b, t]
            else:
                mix = (1 - lam[b, t]) * v[b, t] + lam[b, t] * expected[t + 1]
                expected[t] = r[b, t] + gamma * mix
        n = valid[b]
        np.testing.assert_allclose(out[b, :n], expected[:n], rtol=1e-12, atol=1e-12)


# Identities between kernels.


@pytest.mark.parametrize("seed", [0, 1])
def test_lambda_zero_equals_td_targets(seed):
    args, gamma, _ = _random_batch(seed)
    np.testing.assert_allclose(
        lambda_returns(*args, gamma=gamma, lambda_=0.0),
        td_targets(*args, gamma=gamma),
        rtol=1e-14,
    )


@pytest.mark.parametrize("seed", [0, 1])
def test_lambda_one_equals_discounted_returns(seed):
    args, gamma, _ = _random_batch(seed)
    np.testing.assert_allclose(
        lambda_returns(*args, gamma=gamma, lambda_=1.0),
        discounted_returns(*args, gamma=gamma),
        rtol=1e-14,
    )


def test_n_step_one_equals_td_targets():
    args, gamma, _ = _random_batch(5)
    np.testing.assert_allclose(
        n_step_returns(*args, gamma=gamma, n=1),
        td_targets(*args, gamma=gamma),
        rtol=1e-14,
    )


@pytest.mark.parametrize("n", [11, 12, 10**6])
def test_n_step_with_n_at_least_t_equals_discounted_returns(n):
    args, gamma, _ = _random_batch(6, time=11)
    np.testing.assert_allclose(
        n_step_returns(*args, gamma=gamma, n=n),
        discounted_returns(*args, gamma=gamma),
        rtol=1e-14,
    )


def test_discounted_returns_never_reads_values_inside_an_episode():
    r = np.array([1.0, 2.0, 4.0])
    v = np.array([NAN, INF, 30.0])  # only the cut row's value may be read
    flags = np.zeros(3, bool)

    out = discounted_returns(r, v, flags, flags, gamma=0.5)

    np.testing.assert_array_equal(out, [6.75, 11.5, 19.0])  # as truncated_at_end


# Batching, jit, gradients.


@jax.jit
def _all_kernels(*args, gamma):
    return {
        "td": td_targets(*args, gamma=gamma),
        "mc": discounted_returns(*args, gamma=gamma),
        "lambda": lambda_returns(*args, gamma=gamma, lambda_=0.8),
        "n3": n_step_returns(*args, gamma=gamma, n=3),
    }


def test_batch_axes_equal_per_row_results():
    args, gamma, _ = _random_batch(7, batch=6)
    batched = _all_kernels(*args, gamma=gamma)
    nested = _all_kernels(*(x.reshape(2, 3, -1) for x in args), gamma=gamma[0])

    for b in range(6):
        row = _all_kernels(*(x[b] for x in args), gamma=gamma[b])
        for name in batched:
            np.testing.assert_array_equal(batched[name][b], row[name], err_msg=name)
        row = _all_kernels(*(x[b] for x in args), gamma=gamma[0])
        for name in nested:
            got = nested[name][b // 3, b % 3]
            np.testing.assert_array_equal(got, row[name], err_msg=name)


def test_vmap_equals_batched():
    args, gamma, _ = _random_batch(8)
    batched = _all_kernels(*args, gamma=gamma)
    mapped = jax.vmap(lambda *a: _all_kernels(*a[:4], gamma=a[4]))(*args, gamma)

    for name in batched:
        np.testing.assert_allclose(mapped[name], batched[name], rtol=1e-14)


def test_jit_equals_eager_with_traced_gamma_and_lambda():
    args, gamma, _ = _random_batch(9)
    lam = 0.6

    eager = {
        "td": td_targets(*args, gamma=gamma),
        "mc": discounted_returns(*args, gamma=gamma),
        "lambda": lambda_returns(*args, gamma=gamma, lambda_=lam),
        "n3": n_step_returns(*args, gamma=gamma, n=3),
    }
    jitted = {
        "td": jax.jit(td_targets)(*args, gamma=gamma),
        "mc": jax.jit(discounted_returns)(*args, gamma=gamma),
        "lambda": jax.jit(lambda_returns)(*args, gamma=gamma, lambda_=lam),
        "n3": jax.jit(n_step_returns, static_argnames="n")(*args, gamma=gamma, n=3),
    }

    for name in eager:
        np.testing.assert_allclose(jitted[name], eager[name], rtol=1e-14, err_msg=name)


def test_values_gradient_ignores_padding():
    case = CASES["padding_after_termination_holds_nan_and_inf"]
    r, v, terminated, truncated = _args(case)

    for kernel in KERNELS.values():
        grad = jax.grad(
            lambda v, kernel=kernel: kernel(r, v, terminated, truncated, gamma=0.5)[
                :2
            ].sum()
        )(v)
        assert np.isfinite(grad).all()
        assert grad[1] == 0.0 and grad[2] == 0.0 and grad[3] == 0.0


# Dtypes and empty inputs.


@pytest.mark.parametrize("kernel", sorted(KERNELS))
def test_float32_stays_float32(kernel):
    r, v, terminated, truncated = _args(CASES["truncated_at_end"])
    out = KERNELS[kernel](
        r.astype(np.float32),
        v.astype(np.float32),
        terminated,
        truncated,
        gamma=np.full(3, 0.5),  # a float64 gamma does not promote the output
    )
    assert out.dtype == jnp.float32
    np.testing.assert_array_equal(out, CASES["truncated_at_end"]["expected"][kernel])


@pytest.mark.parametrize("kernel", sorted(KERNELS))
def test_int_and_bool_rewards_give_float_outputs(kernel):
    terminated = np.array([F, F, T])
    truncated = np.array([F, F, F])
    ints = KERNELS[kernel](
        np.array([1, 2, 4]), np.array([10, 20, 30]), terminated, truncated, gamma=0.5
    )
    bools = KERNELS[kernel](
        np.array([T, F, T]), np.array([1.0, 2.0, 3.0]), terminated, truncated, gamma=1
    )

    assert ints.dtype == jnp.float64  # the default float with x64 enabled
    assert bools.dtype == jnp.float64
    np.testing.assert_array_equal(ints, CASES["terminated_at_end"]["expected"][kernel])
    # gamma = 1, rewards 1, 0, 1, values 1, 2, (3 unused): td [1 + 1, 0 + 2, 1];
    # mc [1 + 0 + 1, 0 + 1, 1]; lambda G1 = 0 + (.5*2 + .5*1) = 1.5,
    # G0 = 1 + (.5*1 + .5*1.5) = 2.25; n2 G0 = 1 + 0 + 2 = 3, G1 = 0 + 1.
    expected = {
        "td": [2, 2, 1],
        "mc": [2, 1, 1],
        "lambda": [2.25, 1.5, 1],
        "n2": [3, 1, 1],
    }
    np.testing.assert_array_equal(bools, expected[kernel])


def test_gamma_is_not_rounded_to_half_precision_rewards():
    r = jnp.ones(1000, jnp.bfloat16)
    flags = jnp.zeros(1000, bool)

    out = discounted_returns(r, jnp.zeros_like(r), flags, flags, gamma=0.999)

    # (1 - .999**1000) / (1 - .999) = 632.3; a gamma rounded to bfloat16 (1.0)
    # would give 1000.
    assert out.dtype == jnp.bfloat16
    assert abs(float(out[0]) - 632.3) < 4.0


@pytest.mark.parametrize("shape", [(0,), (3, 0), (0, 4)])
@pytest.mark.parametrize("kernel", sorted(KERNELS))
def test_empty_inputs_give_empty_outputs(kernel, shape):
    rewards = np.zeros(shape, np.int32)
    flags = np.zeros(shape, bool)

    out = KERNELS[kernel](rewards, rewards, flags, flags, gamma=0.9)

    assert out.shape == shape
    assert jnp.issubdtype(out.dtype, jnp.floating)


# Errors.


def _ok_args():
    return _args(CASES["terminated_at_end"])


@pytest.mark.parametrize(
    "gamma, given",
    [
        (1.5, "1.5"),
        (-0.1, "-0.1"),
        (NAN, "nan"),
        (np.array([0.5, 1.2, 0.9]), r"an array with 1 entries outside it, e\.g\. 1\.2"),
    ],
)
@pytest.mark.parametrize("kernel", sorted(KERNELS))
def test_gamma_outside_unit_interval_raises(kernel, gamma, given):
    name = getattr(KERNELS[kernel], "func", KERNELS[kernel]).__name__
    with pytest.raises(
        ValueError, match=rf"{name}: gamma must lie in \[0, 1\], got {given}"
    ):
        KERNELS[kernel](*_ok_args(), gamma=gamma)


@pytest.mark.parametrize("lambda_", [1.2, -0.5])
def test_lambda_outside_unit_interval_raises(lambda_):
    with pytest.raises(
        ValueError,
        match=rf"lambda_returns: lambda_ must lie in \[0, 1\], got {lambda_}",
    ):
        lambda_returns(*_ok_args(), gamma=0.9, lambda_=lambda_)


@pytest.mark.parametrize("n", [0, -2, 2.0, True, "3"])
def test_bad_n_raises(n):
    with pytest.raises(
        ValueError, match=rf"n_step_returns: n must be a Python int >= 1 .*got {n!r}"
    ):
        n_step_returns(*_ok_args(), gamma=0.9, n=n)


@pytest.mark.parametrize("position", range(4))
def test_mismatched_shapes_raise(position):
    args = list(_ok_args())
    args[position] = np.concatenate([args[position], args[position][:1]])

    with pytest.raises(
        ValueError,
        match=r"td_targets: r_t, v_t, terminated_t and truncated_t must have "
        r"identical shapes \[\.\.\., T\], got r_t \(\d,\), v_t",
    ):
        td_targets(*args, gamma=0.9)


@pytest.mark.parametrize("flags", [np.array([0.0, 0.0, 1.0]), np.array([0, 0, 1])])
def test_non_bool_flags_raise(flags):
    r, v, _, truncated = _ok_args()
    with pytest.raises(
        ValueError,
        match=r"discounted_returns: terminated_t must have dtype bool, got "
        rf"{flags.dtype}; .* terminated_t != 0",
    ):
        discounted_returns(r, v, flags, truncated, gamma=0.9)


def test_gamma_not_broadcastable_raises():
    with pytest.raises(
        ValueError,
        match=r"lambda_returns: gamma must be a scalar or an array broadcastable "
        r"to the rewards' shape \(3,\), got shape \(2,\)",
    ):
        lambda_returns(*_ok_args(), gamma=np.array([0.5, 0.5]), lambda_=0.5)


def test_scalar_inputs_raise():
    with pytest.raises(ValueError, match=r"td_targets: the arrays must have a time"):
        td_targets(1.0, 2.0, False, False, gamma=0.5)


def test_traced_gamma_is_not_range_checked():
    # Under jit the value is unknown; the range check only runs on concrete values.
    out = jax.jit(td_targets)(*_ok_args(), gamma=jnp.asarray(2.0))
    np.testing.assert_array_equal(out, [21.0, 42.0, 4.0])


def test_docstring_examples_run():
    failures, tried = doctest.testmod(returns, verbose=False)
    assert tried >= 4 and failures == 0
