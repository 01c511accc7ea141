"""Run a suite: collect data, fit every method on every task, score it.

For each task, seed s gets its own data set (`task.collect(episodes, seed=s)`)
and its own PRNG key; the seeds of one method run vmapped inside one compiled
program (`fit` with a list of data sets). Every number lands in the returned
results dict, which `report` turns into files.
"""

from __future__ import annotations

import datetime
import importlib.metadata
import platform
import time
from collections.abc import Callable

import jax
import numpy as np

from adaptive_td import envs, metrics
from adaptive_td.benchmarks.suite import Suite

_PACKAGES = ("adaptive_td", "jax", "jaxlib", "dm-haiku", "optax", "gymnasium", "numpy")


def environment() -> dict[str, str]:
    """Library versions and the machine, for the record."""
    versions = {}
    for name in _PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {platform.system()}, "
        f"{_cpu_count()} CPU cores, JAX backend {jax.default_backend()}",
        "python": platform.python_version(),
        "versions": versions,
    }


def _cpu_count() -> int:
    import os

    return (
        len(os.sched_getaffinity(0))
        if hasattr(os, "sched_getaffinity")
        else os.cpu_count()
    )


def run(
    suite: Suite,
    *,
    seeds: int | None = None,
    on_cell: Callable[[str, str | None], None] | None = None,
) -> dict:
    """Run `suite` and return every raw number with the configuration.

    Args:
      suite: the loaded suite.
      seeds: overrides the suite's number of seeds.
      on_cell: called as `on_cell(task, method)` before each fit and
        `on_cell(task, None)` while a task collects data (progress display).
    """
    num_seeds = suite.seeds if seeds is None else seeds
    if num_seeds < 1:
        raise ValueError(f"seeds={num_seeds}; expected an integer >= 1.")
    results = {
        "suite": suite.name,
        "description": suite.description,
        "config": {**suite.raw, "seeds": num_seeds},
        "environment": environment(),
        "tasks": {},
    }
    for spec in suite.tasks:
        if on_cell:
            on_cell(spec.name, None)
        task = envs.make(spec.name, **spec.kwargs)
        start = time.perf_counter()
        evaluation = task.evaluation_set()
        datasets = [task.collect(spec.episodes, seed=s) for s in range(num_seeds)]
        entry = {
            "description": task.description,
            "gamma": task.gamma,
            "episodes": spec.episodes,
            "kwargs": spec.kwargs,
            "data": [d.summary() for d in datasets],
            "data_seconds": time.perf_counter() - start,
            "true_values": evaluation.values.tolist(),
            "true_stderr": None
            if evaluation.stderr is None
            else evaluation.stderr.tolist(),
            "labels": None if evaluation.labels is None else evaluation.labels.tolist(),
            # The maze's goal cell, to mark on its maps.
            "goal": list(getattr(task, "goal", [])) or None,
            "methods": {},
        }
        for method in suite.methods:
            if on_cell:
                on_cell(spec.name, method.name)
            entry["methods"][method.name] = _fit_and_score(
                suite, method, task, datasets, evaluation, num_seeds
            )
        results["tasks"][spec.name] = entry
    return results


def _fit_and_score(suite, method, task, datasets, evaluation, num_seeds) -> dict:
    estimator = suite.estimator(method, task.gamma)
    keys = jax.random.split(jax.random.key(0), num_seeds)
    start = time.perf_counter()
    value_fn = estimator.fit(datasets, key=keys)
    estimates = np.asarray(value_fn(evaluation.observations), np.float64)
    seconds = time.perf_counter() - start
    cell = {
        "kind": method.kind,
        "options": method.options,
        "seconds": seconds,
        "estimates": estimates.tolist(),
        "mse": metrics.mse(estimates, evaluation.values).tolist(),
        "nmse": metrics.normalised_mse(estimates, evaluation.values).tolist(),
        "final_loss": value_fn.history["loss"][:, -100:].mean(axis=1).tolist(),
    }
    if "mc_fraction" in value_fn.history:
        # Fraction of MC targets over the last tenth of training, per seed,
        # and per evaluation state at the final parameters.
        tail = max(1, estimator.steps // 10)
        cell["mc_fraction"] = (
            value_fn.history["mc_fraction"][:, -tail:].mean(1).tolist()
        )
        cell["uses_mc_target"] = np.asarray(
            value_fn.uses_mc_target(evaluation.observations)
        ).tolist()
        low, high = value_fn.interval(evaluation.observations)
        inside = (np.asarray(low) <= evaluation.values) & (
            evaluation.values <= np.asarray(high)
        )
        cell["interval_coverage"] = inside.mean(axis=1).tolist()
    return cell
