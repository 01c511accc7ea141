"""Error metrics against ground truth, and their summaries over seeds.

All functions work on NumPy arrays in float64. Values of several seeds come
as `[S, M]` (seeds by evaluation states); one value per seed as `[S]`.
"""

from __future__ import annotations

import numpy as np
import scipy.stats


def mse(estimates, true_values, weights=None) -> np.ndarray:
    """Mean squared error over the last axis (weighted if `weights` given)."""
    estimates = np.asarray(estimates, np.float64)
    true_values = np.asarray(true_values, np.float64)
    if estimates.shape[-1:] != true_values.shape[-1:]:
        raise ValueError(
            f"mse: estimates have shape {estimates.shape} and true_values "
            f"{true_values.shape}; the last axes (evaluation states) must match."
        )
    return np.average((estimates - true_values) ** 2, axis=-1, weights=weights)


def normalised_mse(estimates, true_values, weights=None) -> np.ndarray:
    """MSE / Var[V^pi] over the evaluation states: 1.0 is as bad as the mean."""
    true_values = np.asarray(true_values, np.float64)
    mean = np.average(true_values, weights=weights)
    variance = np.average((true_values - mean) ** 2, weights=weights)
    if not variance > 0:
        raise ValueError(
            "normalised_mse: the true values are constant over the evaluation "
            "states, so the normalisation Var[V^pi] is 0; use mse instead."
        )
    return mse(estimates, true_values, weights) / variance


def mean_interval(samples, confidence: float = 0.95) -> tuple[float, float, float]:
    """Mean of per-seed numbers with a Student-t confidence interval.

    Returns (mean, low, high). With one sample the interval is (nan, nan).
    """
    x = np.asarray(samples, np.float64).ravel()
    if x.size == 0:
        raise ValueError("mean_interval: got no samples.")
    mean = float(x.mean())
    if x.size < 2:
        return mean, float("nan"), float("nan")
    half = scipy.stats.t.ppf(0.5 + confidence / 2, x.size - 1) * x.std(ddof=1)
    half /= np.sqrt(x.size)
    return mean, mean - half, mean + half
