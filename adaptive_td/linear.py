"""Closed-form linear value estimates: LSTD(lambda) and the Monte Carlo projection.

Both functions take a `Trajectories` batch and a feature map phi, and return the
weights w of the linear estimate V(s) = phi(s) . w, solved in float64 NumPy on
the host. They are references for tests and analysis: the fixed points that
semi-gradient `TD` / `TDLambda` and `MonteCarlo` with a linear network reach
when trained to convergence on the same data (uniform sampling of the valid
steps, so every step has the same weight).

Notation. The valid steps of the batch split into segments: an episode, or the
part of one inside a row. A segment ends at its cut step c: a terminated step,
a truncated step, or the last valid step before a masked gap or the end of the
row (a segment cut mid-episode); see `adaptive_td.data`. For a valid step t,

    phi_t  = phi(s_t)
    phi'_t = 0 if terminated_t, else phi(s_{t+1})
    delta_t(w) = r_t + gamma phi'_t . w - phi_t . w

So a truncated or cut step bootstraps fully from V(s_{t+1}), the observation
stored after it (the final observation of the segment), and a terminated step
never bootstraps: the observation after it is never passed to `features`, so a
placeholder there (NaN included) is harmless. Masked steps are never read
either: their rewards and observations may hold anything.

Feature maps. `features` is a callable mapping observations `[N, *obs_shape]`
to `[N, d]` (NumPy or JAX arrays; it is called on the observations that are
used only), or None / "identity" for the flattened observations themselves
(`[N, prod(obs_shape)]`, integer and bool observations cast to float). With
`bias=True` a constant column of ones is appended, so the last weight is the
intercept; `adaptive_td.networks.linear()` is V(s) = x . w + b on the flattened
observation x, the same as `features=None, bias=True`. To evaluate a fit:

    phi = features(obs)                       # [N, d]
    if bias: phi = np.concatenate([phi, np.ones((len(phi), 1))], axis=1)
    values = phi @ w

Ridge. Both systems are solved as (A / N + ridge I) w = b / N, with N the number
of valid steps, so `ridge` does not depend on the size of the data set. A
system whose condition number exceeds 1e12 is rejected as singular.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from adaptive_td.data import Trajectories, segment_cuts

__all__ = ["lstd", "mc_projection"]

FeatureMap = Callable[[Any], Any] | str | None

# Systems with a larger condition number are treated as singular.
_MAX_CONDITION = 1e12


def lstd(
    trajectories: Trajectories,
    features: FeatureMap = None,
    *,
    gamma: float,
    lambda_: float = 0.0,
    ridge: float = 0.0,
    bias: bool = False,
) -> np.ndarray:
    """Solve LSTD(lambda) for linear value weights.

    With eligibility traces that restart at every segment start,

        z_t = phi_t                          t the first step of its segment,
        z_t = phi_t + gamma lambda z_{t-1}   otherwise,

        A = sum_t z_t (phi_t - gamma phi'_t)^T,   b = sum_t z_t r_t,

    summed over the valid steps, and w solves (A / N + ridge I) w = b / N. The
    trace never crosses a segment boundary (a flagged step, a masked gap, a row
    end), so a masked reset row between two episodes of a stream separates
    them.

    This is the fixed point of the offline semi-gradient lambda-return update,

        sum_t phi_t (G^lambda_t(w) - phi_t . w) = 0,
        G^lambda_t = r_t + gamma ((1 - lambda) phi_{t+1} . w + lambda G^lambda_{t+1})
                                                            (t before the cut c),
        G^lambda_c = r_c + gamma phi'_c . w                 (the cut step),

    which is `adaptive_td.returns.lambda_returns` with v_t = phi'_t . w: at a
    truncated or cut step the lambda-return bootstraps fully from V(s_{c+1}),
    and after a termination from nothing. (Rewrite G^lambda_t - phi_t . w as
    sum_{k=t..c} (gamma lambda)^(k-t) delta_k and exchange the sums.)
    ``lambda_=0`` is LSTD(0), the fixed point of semi-gradient TD(0); with
    one-hot features it equals the exact values of the data's empirical Markov
    chain. ``lambda_=1`` equals `mc_projection`.

    References: Bradtke and Barto, "Linear least-squares algorithms for
    temporal difference learning" (1996); Boyan, "Technical update:
    least-squares temporal difference learning" (2002).

    Args:
      trajectories: a `Trajectories` batch; validated here.
      features: a callable `[N, *obs_shape] -> [N, d]`, or None / "identity"
        for the flattened observations.
      gamma: the discount, in [0, 1].
      lambda_: the trace parameter, in [0, 1].
      ridge: >= 0, added to the diagonal of A / N.
      bias: append a constant feature 1 (its weight comes last).

    Returns:
      The weights w, `[d]` float64 (`[d + 1]` with `bias`).

    Raises:
      ValueError: for bad arguments, a batch without valid steps, a feature map
        of the wrong shape or with non-finite values, or a singular system
        (naming the likely cause; pass ``ridge > 0``).

    Example:
      >>> import numpy as np
      >>> from adaptive_td import Trajectories
      >>> from adaptive_td.linear import lstd
      >>> batch = Trajectories.from_episodes(
      ...     [dict(observations=np.array([0, 1, 2]),
      ...           rewards=np.array([1.0, 2.0]), terminated=True)])
      >>> lstd(batch, lambda s: np.eye(3)[s, :2], gamma=0.5).tolist()
      [2.0, 2.0]
    """
    fn = "lstd"
    gamma = _unit(fn, "gamma", gamma)
    lambda_ = _unit(fn, "lambda_", lambda_)
    ridge = _ridge(fn, ridge)
    steps = _Steps(fn, trajectories, features, bias)

    # Forward in segment position: every step at position k of its segment
    # takes the trace of the flat step just before it (position k - 1).
    z = steps.phi.copy()
    if gamma * lambda_ > 0:
        for k in range(1, steps.max_length):
            at = np.flatnonzero(steps.position == k)
            z[at] += gamma * lambda_ * z[at - 1]

    a = z.T @ (steps.phi - gamma * steps.phi_next)
    b = z.T @ steps.reward
    return _solve(fn, a, b, steps, ridge)


def mc_projection(
    trajectories: Trajectories,
    features: FeatureMap = None,
    *,
    gamma: float,
    ridge: float = 0.0,
    bias: bool = False,
) -> np.ndarray:
    """Regress phi(s_t) on Monte Carlo returns; return the linear weights.

    For a valid step t of a segment that ends at its cut step c,

        G_t = sum_{k=t..c} gamma^(k-t) r_k + gamma^(c-t+1) phi'_c . w,

    and w solves the least-squares normal equations

        sum_t phi_t (G_t - phi_t . w) = 0    (plus ridge, as in `lstd`).

    A terminated segment has phi'_c = 0, so G_t is the plain discounted return
    and w is the ordinary least-squares fit. A truncated or cut segment
    bootstraps its tail from the linear fit itself (the same w), so w is a
    fixed point rather than a plain regression; this is what `MonteCarlo`
    converges to, since it bootstraps from its own stop-gradient value, and it
    equals ``lstd(..., lambda_=1)`` (computed here without traces, from the
    returns directly). With one-hot features and terminated episodes, w is the
    average return from each state (every visit counts).

    Args:
      trajectories: a `Trajectories` batch; validated here.
      features: a callable `[N, *obs_shape] -> [N, d]`, or None / "identity"
        for the flattened observations.
      gamma: the discount, in [0, 1].
      ridge: >= 0, added to the diagonal of A / N.
      bias: append a constant feature 1 (its weight comes last).

    Returns:
      The weights w, `[d]` float64 (`[d + 1]` with `bias`).

    Raises:
      ValueError: as for `lstd`.
    """
    fn = "mc_projection"
    gamma = _unit(fn, "gamma", gamma)
    ridge = _ridge(fn, ridge)
    steps = _Steps(fn, trajectories, features, bias)

    # Backward in distance to the segment end: the discounted reward sum and the
    # discounted bootstrap features phi'_c of every step, from the step after it.
    ret = steps.reward.copy()
    boot = gamma * steps.phi_next
    for k in range(1, steps.max_length):
        at = np.flatnonzero(steps.to_end == k)
        ret[at] += gamma * ret[at + 1]
        boot[at] = gamma * boot[at + 1]

    a = steps.phi.T @ (steps.phi - boot)
    b = steps.phi.T @ ret
    return _solve(fn, a, b, steps, ridge)


class _Steps:
    """The valid steps of a batch, flattened in row-major order, with features.

    Attributes:
      phi: `[N, d]` phi(s_t).
      phi_next: `[N, d]` phi(s_{t+1}), 0 on terminated steps.
      reward: `[N]` r_t.
      position: `[N]` index of the step within its segment (0 at its start).
      to_end: `[N]` number of steps after it in its segment (0 at the cut).
      max_length: the length of the longest segment.
    """

    def __init__(self, fn, traj, features, bias):
        if not isinstance(traj, Trajectories):
            raise ValueError(
                f"{fn}: trajectories is a {type(traj).__name__}; expected "
                "adaptive_td.Trajectories (see Trajectories.from_episodes)."
            )
        traj.validate()
        if not isinstance(bias, (bool, np.bool_)):
            raise ValueError(f"{fn}: bias={bias!r}; expected True or False.")
        mask = np.asarray(traj.mask)
        if not mask.any():
            raise ValueError(
                f"{fn}: the trajectories hold no valid step (mask is all False)."
            )
        obs = np.asarray(traj.observations)
        terminated = np.asarray(traj.terminated)
        cut = segment_cuts(traj)
        B, T = mask.shape

        rows, cols = np.nonzero(mask)
        term = terminated[rows, cols]
        boots = ~term
        self.reward = np.asarray(traj.rewards, np.float64)[rows, cols]

        # Features only where they are used: s_t of valid steps, and s_{t+1}
        # where it is not terminal.
        phi = _featurize(
            fn,
            features,
            np.concatenate([obs[rows, cols], obs[rows[boots], cols[boots] + 1]]),
        )
        n = rows.size
        if bias:
            phi = np.concatenate([phi, np.ones((phi.shape[0], 1))], axis=1)
        self.phi = phi[:n]
        self.phi_next = np.zeros_like(self.phi)
        self.phi_next[boots] = phi[n:]

        # Segment positions: a step starts a segment when the step before it in
        # its row is a cut (flagged, masked, or absent at t = 0).
        starts = np.ones((B, T), bool)
        starts[:, 1:] = cut[:, :-1]
        steps = np.broadcast_to(np.arange(T), (B, T))
        start = np.maximum.accumulate(np.where(starts, steps, 0), axis=1)
        end = np.flip(
            np.minimum.accumulate(np.flip(np.where(cut, steps, T), 1), axis=1), 1
        )
        self.position = (steps - start)[rows, cols]
        self.to_end = (end - steps)[rows, cols]
        self.max_length = int(self.position.max()) + 1


def _featurize(fn, features, obs):
    """phi of `obs` `[N, *obs_shape]`: `[N, d]` float64, finite."""
    n = obs.shape[0]
    if features is None or (isinstance(features, str) and features == "identity"):
        phi = obs.reshape(n, -1).astype(np.float64)
    elif callable(features):
        phi = np.asarray(features(obs), np.float64)
        if phi.ndim != 2 or phi.shape[0] != n:
            raise ValueError(
                f"{fn}: features mapped observations of shape {obs.shape} to shape "
                f"{phi.shape}; expected [N, d] = ({n}, d), one feature vector per "
                "observation."
            )
    else:
        raise ValueError(
            f"{fn}: features={features!r}; expected a callable from observations "
            "[N, *obs_shape] to features [N, d], or None / 'identity'."
        )
    if phi.shape[1] == 0:
        raise ValueError(f"{fn}: features have dimension 0; expected d >= 1.")
    bad = np.argwhere(~np.isfinite(phi))
    if bad.size:
        raise ValueError(
            f"{fn}: the features of a used observation are not finite "
            f"(feature {bad[0][1]} is {phi[tuple(bad[0])]}); the feature map must "
            "give finite values on every s_t of a valid step and on every "
            "non-terminal s_{t+1}."
        )
    return phi


def _solve(fn, a, b, steps, ridge):
    """Solve (a / N + ridge I) w = b / N; explain a singular system."""
    n, d = steps.phi.shape
    matrix = a / n + ridge * np.eye(d)
    singular_values = np.linalg.svd(matrix, compute_uv=False)
    largest, smallest = singular_values[0], singular_values[-1]
    if not smallest > largest / _MAX_CONDITION:
        condition = np.inf if smallest == 0 else largest / smallest
        raise ValueError(
            f"{fn}: the {d}x{d} linear system is singular (condition number "
            f"{condition:.3g}): {_singular_cause(steps, ridge)} Pass ridge > 0 "
            "(e.g. ridge=1e-6) to regularise it, or change the features."
        )

    return np.linalg.solve(matrix, b / n)


def _singular_cause(steps, ridge):
    phi = steps.phi
    unused = np.flatnonzero(~np.any(phi != 0, axis=0))
    if ridge == 0 and unused.size:
        shown = unused[:10].tolist()
        return (
            f"feature column(s) {shown}{' ...' if unused.size > 10 else ''} are zero "
            "at every visited state s_t (with one-hot features: states never "
            "visited, or only reached as the final observation)."
        )
    gram = phi.T @ phi
    if ridge == 0 and np.linalg.matrix_rank(gram) < phi.shape[1]:
        return (
            "the features are linearly dependent on the visited states (e.g. "
            "one-hot features together with bias=True, or fewer distinct "
            "states than features)."
        )
    return (
        "the features are linearly independent on the visited states, but the "
        "TD system is not (e.g. gamma = 1 with segments that never terminate, "
        "so a constant value is not pinned down)."
    )


def _unit(fn, name, value):
    if (
        isinstance(value, (bool, np.bool_))
        or np.ndim(value) != 0
        or not np.issubdtype(np.asarray(value).dtype, np.number)
        or not 0.0 <= float(value) <= 1.0
    ):
        raise ValueError(f"{fn}: {name}={value!r}; expected a number in [0, 1].")
    return float(value)


def _ridge(fn, value):
    if (
        isinstance(value, (bool, np.bool_))
        or np.ndim(value) != 0
        or not np.issubdtype(np.asarray(value).dtype, np.number)
        or not 0.0 <= float(value) < np.inf
    ):
        raise ValueError(f"{fn}: ridge={value!r}; expected a finite number >= 0.")
    return float(value)
