"""Adaptive TD: TD(0) that falls back to Monte Carlo targets per state.

Penedones, Riquelme, Vincent, Maennel, Mann, Barreto, Gelly, Neu, "Adaptive
Temporal-Difference Learning for Policy Evaluation with Per-State Uncertainty
Estimates", NeurIPS 2019. An ensemble of Monte Carlo regressors gives a
confidence interval per state; the TD network trains on the TD target where
its estimate stays inside the interval and on the MC return where it leaves
it. `AdaptiveTD` shares the interface of `adaptive_td.estimators`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from adaptive_td.estimators import (
    Run,
    ValueFunction,
    _check_positive_int,
    _check_unit,
    _Estimator,
    _mc_targets,
    _td_targets,
)

TESTS = ("estimate", "target")
FALLBACKS = ("return", "mean", "clip")
INTERVALS = ("std", "quantile")
SCHEDULES = ("sequential", "concurrent")


def interval(members, *, kind="std", width=1.0, quantile=0.1, axis=0):
    """The ensemble interval (low, high) over the member axis `axis`.

    kind="std": [mu - width sigma, mu + width sigma], sigma the sample
    standard deviation with ddof=1 (the unbiased variance estimate);
    kind="quantile": the empirical `quantile` and `1 - quantile` quantiles of
    the members (linear interpolation, NumPy's default).
    """
    if kind == "std":
        mu = members.mean(axis=axis)
        sigma = members.std(axis=axis, ddof=1)
        return mu - width * sigma, mu + width * sigma
    low = jnp.quantile(members, quantile, axis=axis)
    high = jnp.quantile(members, 1.0 - quantile, axis=axis)
    return low, high


@dataclasses.dataclass
class AdaptiveValueFunction(ValueFunction):
    """The value function fitted by `AdaptiveTD`, with its MC ensemble.

    `__call__` gives the TD network's estimate; `interval` the ensemble's
    interval I(s) under the estimator's interval rule; `uses_mc_target`
    whether V_TD(s) lies outside I(s) at the final parameters (the test of
    the default algorithm; with test="target" training tested the TD target
    instead, which needs a transition, not a state).
    """

    ensemble_params: Any = None
    interval_width: float = 1.0
    interval_kind: str = "std"
    quantile: float = 0.1

    def interval(self, observations) -> tuple[jax.Array, jax.Array]:
        """(low, high) of the ensemble interval, each `[...]` or `[S, ...]`."""
        members = self.ensemble_values(observations)
        return interval(
            members,
            kind=self.interval_kind,
            width=self.interval_width,
            quantile=self.quantile,
            axis=0 if self.num_seeds is None else 1,
        )

    def ensemble_values(self, observations) -> jax.Array:
        """Each member's value: `[K, ...]` or `[S, K, ...]`."""
        return self._evaluate(self.ensemble_params, observations, stacked=1)

    def uses_mc_target(self, observations) -> jax.Array:
        """True where V_TD(s) lies outside the interval I(s)."""
        low, high = self.interval(observations)
        v = self(observations)
        return (v < low) | (v > high)

    def _seeded_fields(self):
        return ("params", "history", "ensemble_params")


class AdaptiveTD(_Estimator):
    """Adaptive TD: TD(0) that falls back to Monte Carlo where TD leaves the
    confidence interval of an MC ensemble.

    Penedones, Riquelme, Vincent, Maennel, Mann, Barreto, Gelly, Neu,
    "Adaptive Temporal-Difference Learning for Policy Evaluation with
    Per-State Uncertainty Estimates", NeurIPS 2019. The default algorithm,
    each step an option:

    1. Train K = `ensemble_size` Monte Carlo regressors from distinct
       keys (vmapped), each for `steps` updates. The keys give distinct
       initialisations and minibatch streams; a network initialised at a
       constant (`networks.tabular`, `networks.linear`) differs across
       members through its minibatches only, unless `bootstrap=True`.
       `schedule="concurrent"` trains the members alongside the TD network
       instead, each on its own minibatches, the interval read from the
       current members at every step.
    2. For a state s, mu(s) and sigma(s) are the mean and standard deviation
       (ddof=1, the unbiased sample variance) of the members' values, and
       I(s) = [mu - k sigma, mu + k sigma] with k = `interval_width`
       (`interval="quantile"`: the empirical `quantile` and `1 - quantile`
       quantiles of the members instead).
    3. Train the TD network for `steps` updates; a sampled transition uses
       the TD target r_t + gamma V_TD(s_{t+1}) if V_TD(s_t) lies in I(s_t)
       (`test="target"`: if the TD target lies in I(s_t)), and otherwise
       the MC return G_t, bootstrapping a truncated segment from mu at its
       final observation (`fallback="mean"`: mu(s_t); `fallback="clip"`:
       the TD target clipped to I(s_t)).
    4. The estimate is V_TD.

    `bootstrap=True` trains each member on a Poisson(1) bootstrap of the
    segments (episodes, or their parts within a row): every segment gets a
    weight drawn from Poisson(1) per member and the member's loss weights
    its transitions by it, which in expectation is training on a resample
    of the episodes with replacement (the Poisson bootstrap; Hanley and
    MacGibbon, "Creating non-parametric bootstrap samples using Poisson
    frequencies", 2006).

    `history["mc_fraction"]` traces the fraction of fallback targets in each
    minibatch and `history["ensemble_loss"]` the members' losses `[K,
    steps]`; the fitted value function exposes `interval` and
    `uses_mc_target` per state.

    The default width k = 1 is a middle value of a sweep over k in {0.5, 1,
    2, 4} on the quick benchmark suite (README): smaller k falls back to MC
    more often (about 60% of targets at k = 0.5, 2-6% at k = 4 with 5 MLP
    members); k = 1 came within 20% of the better of TD and MC on all three
    tasks there.
    """

    def __init__(
        self,
        network=None,
        optimizer=None,
        *,
        gamma=0.99,
        steps=2000,
        batch_size=128,
        ensemble_size=5,
        interval_width=1.0,
        test="estimate",
        fallback="return",
        interval="std",
        quantile=0.1,
        bootstrap=False,
        schedule="sequential",
    ):
        self.ensemble_size = _check_positive_int("ensemble_size", ensemble_size)
        if self.ensemble_size < 2:
            raise ValueError(
                f"ensemble_size={ensemble_size}; an interval needs at least 2 "
                "ensemble members."
            )
        if (
            isinstance(interval_width, bool)
            or not isinstance(interval_width, (int, float, np.integer, np.floating))
            or not 0 < interval_width < np.inf
        ):
            raise ValueError(
                f"interval_width={interval_width!r}; expected a finite number > 0."
            )
        self.interval_width = float(interval_width)
        for name, value, allowed in (
            ("test", test, TESTS),
            ("fallback", fallback, FALLBACKS),
            ("interval", interval, INTERVALS),
            ("schedule", schedule, SCHEDULES),
        ):
            if value not in allowed:
                raise ValueError(
                    f"{name}={value!r}; expected one of {', '.join(allowed)}."
                )
        self.test, self.fallback = test, fallback
        self.interval, self.schedule = interval, schedule
        self.quantile = _check_unit("quantile", quantile)
        if not self.quantile < 0.5:
            raise ValueError(
                f"quantile={quantile!r}; expected a number in [0, 0.5) (the "
                "interval runs from that quantile to 1 - quantile)."
            )
        if not isinstance(bootstrap, (bool, np.bool_)):
            raise ValueError(f"bootstrap={bootstrap!r}; expected True or False.")
        self.bootstrap = bool(bootstrap)
        super().__init__(network, optimizer, gamma, steps, batch_size)

    def _config(self):
        return {
            **super()._config(),
            "ensemble_size": self.ensemble_size,
            "interval_width": self.interval_width,
            "test": self.test,
            "fallback": self.fallback,
            "interval": self.interval,
            "quantile": self.quantile,
            "bootstrap": self.bootstrap,
            "schedule": self.schedule,
        }

    # -- pieces -------------------------------------------------------------

    def _interval(self, members):
        return interval(
            members,
            kind=self.interval,
            width=self.interval_width,
            quantile=self.quantile,
        )

    def _member_loss(self, params, batch, weights):
        """A member's MC loss, its transitions weighted by the bootstrap."""
        target = _mc_targets(self._net.apply, params, batch)
        v = self._net.apply(params, batch.obs)
        return 0.5 * jnp.mean(weights * (v - target) ** 2)

    def _td_loss(self, params, batch, low, high, mu, mc_target):
        """TD loss with the per-transition choice of target."""
        apply = self._net.apply
        v = apply(params, batch.obs)
        td_target = _td_targets(apply, params, batch, self.gamma)
        tested = jax.lax.stop_gradient(v) if self.test == "estimate" else td_target
        outside = (tested < low) | (tested > high)
        if self.fallback == "return":
            fallback = mc_target
        elif self.fallback == "mean":
            fallback = mu
        else:
            fallback = jnp.clip(td_target, low, high)
        target = jnp.where(outside, fallback, td_target)
        loss = 0.5 * jnp.mean((v - target) ** 2)
        return loss, {"mc_fraction": jnp.mean(outside.astype(jnp.float32))}

    def _ensemble_targets(self, ens_params, batch):
        """Interval, mean and MC target (mean bootstrap) of each transition."""
        values = jax.vmap(self._net.apply, in_axes=(0, None))
        members = jax.lax.stop_gradient(values(ens_params, batch.obs))
        boot = jax.lax.stop_gradient(values(ens_params, batch.mc_boot_obs)).mean(0)
        mc_target = batch.mc_return + jnp.where(
            batch.mc_discount > 0, batch.mc_discount * boot, 0.0
        )
        low, high = self._interval(members)
        return low, high, members.mean(0), mc_target

    def _all_ensemble_targets(self, ens_params, data):
        """`_ensemble_targets` of every transition of `data`, 2^14 at a time:
        at once, the members' activations would take K x N x width floats
        (gigabytes for a million transitions)."""
        n = data.obs.shape[0]
        size = min(n, 1 << 14)
        count = -(-n // size)
        # Batches [count, size], the last one filled up from the start.
        take = jnp.arange(count * size) % n
        batches = jax.tree_util.tree_map(
            lambda x: x[take].reshape(count, size, *x.shape[1:]), data
        )
        out = jax.lax.map(lambda b: self._ensemble_targets(ens_params, b), batches)
        return jax.tree_util.tree_map(lambda x: x.reshape(-1)[:n], out)

    def _member_weights(self, key, data, index=None):
        """Per-member transition weights `[K, N]`: Poisson(1) per segment.

        `index` is the chunk of a streamed fit: chunk c draws its segments'
        weights with `fold_in(key, c)`, the same in every pass over the data.
        """
        n = data.segment.shape[0]
        if not self.bootstrap:
            return jnp.ones((self.ensemble_size, n), jnp.float32)
        if index is not None:
            key = jax.random.fold_in(key, index)
        # Segment indices are below the number of transitions.
        per_segment = jax.random.poisson(key, 1.0, (self.ensemble_size, n))
        return per_segment[:, data.segment].astype(jnp.float32)

    # -- the fit ------------------------------------------------------------

    def _runs(self, key, data):
        ens_key, boot_key, init_key, train_key = jax.random.split(key, 4)
        member_keys = jax.random.split(ens_key, self.ensemble_size)
        if self.schedule == "concurrent":
            return [
                self._concurrent_run(member_keys, boot_key, init_key, train_key, data)
            ]
        member_init, member_train = jax.vmap(jax.random.split, out_axes=1)(member_keys)

        # 1. The MC ensemble, members vmapped over distinct keys, each on its
        # bootstrap weights.
        ensemble = Run(
            lambda p, b: (self._member_loss(p, b[0], b[1]), {}),
            jax.vmap(lambda k: self._init(k, data))(member_init),
            member_train,
            data=lambda chunk, earlier, index: (
                chunk,
                self._member_weights(boot_key, chunk, index),
            ),
            data_axes=(None, 0),
            members=True,
        )
        # 2.-3. TD with the per-transition choice of target: the interval, mean
        # and MC target of every transition, from the trained ensemble, ride
        # along with the transitions into the minibatches.
        td = Run(
            lambda p, b: self._td_loss(p, b[0], *b[1]),
            self._init(init_key, data),
            train_key,
            data=lambda chunk, earlier, index: (
                chunk,
                self._all_ensemble_targets(earlier[0], chunk),
            ),
        )
        return [ensemble, td]

    def _finish(self, params, histories):
        if self.schedule == "concurrent":
            (td_params, ens_params), history = params[0], dict(histories[0])
            # Report the TD loss as the loss, like the sequential schedule,
            # and the members' losses as [K, steps].
            history["loss"] = history.pop("td_loss")
            history["ensemble_loss"] = jnp.swapaxes(history["ensemble_loss"], -1, -2)
            return (td_params, ens_params), history
        ens_params, td_params = params
        history = dict(histories[1])
        history["ensemble_loss"] = histories[0]["loss"]
        return (td_params, ens_params), history

    def _concurrent_run(self, member_keys, boot_key, init_key, train_key, data):
        """Members and TD network updated together, each step on K + 1
        independent minibatches: one per member, and one for the TD network
        (whose interval is read from the current members)."""
        ens_params = jax.vmap(lambda k: self._init(k, data))(member_keys)
        k = self.ensemble_size

        def loss(params, batch):
            td_params, ens_params = params
            # batch: [K + 1, batch_size, ...]; weights [K + 1, batch_size, K].
            batch, weights = batch
            members = jax.tree_util.tree_map(lambda x: x[:k], batch)
            own = jnp.diagonal(weights[:k], axis1=0, axis2=2).T  # [K, batch_size]
            member_losses = jax.vmap(self._member_loss)(ens_params, members, own)
            td_batch = jax.tree_util.tree_map(lambda x: x[k], batch)
            extra = self._ensemble_targets(ens_params, td_batch)
            td_loss, aux = self._td_loss(td_params, td_batch, *extra)
            return td_loss + member_losses.sum(), {
                **aux,
                "td_loss": td_loss,
                "ensemble_loss": member_losses,
            }

        return Run(
            loss,
            (self._init(init_key, data), ens_params),
            train_key,
            data=lambda chunk, earlier, index: (
                chunk,
                self._member_weights(boot_key, chunk, index).T,
            ),
            groups=k + 1,
        )

    def _value_function(self, out, data, num_seeds):
        (params, ens_params), history = out
        return AdaptiveValueFunction(
            apply=self._net.apply,
            params=params,
            history=jax.tree_util.tree_map(np.asarray, history),
            obs_shape=tuple(data.obs.shape[1:]),
            obs_dtype=data.obs.dtype,
            num_seeds=num_seeds,
            ensemble_params=ens_params,
            interval_width=self.interval_width,
            interval_kind=self.interval,
            quantile=self.quantile,
        )
