"""Run a suite: collect data, fit every method on every cell, score it.

A cell is one task configuration (see `suite.CellSpec`). For each cell, seed s
gets its own data set (`task.collect(episodes, seed=s)`) and its own PRNG key;
the seeds of one method run vmapped inside one compiled program (`fit` with a
list of data sets). An estimator is kept for each method, discount and data
shape of the last two cells' worth of fits (`_EstimatorCache`), so cells whose
data have equal shapes reuse its compiled program instead of compiling again.

`run` returns every raw number in one dict (`results.json`, see `report`);
with an output folder each finished cell is also written to
`DIR/cells/NNNN.json` as soon as it is done, atomically, so that an
interrupted run resumes from the cells it finished (`finished_cells`).
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import glob
import hashlib
import importlib.metadata
import json
import os
import platform
import time
from collections.abc import Callable

import jax
import numpy as np

from adaptive_td import envs, metrics
from adaptive_td.benchmarks import report
from adaptive_td.benchmarks.suite import CellSpec, MethodSpec, Suite

FORMAT = 2  # results.json layout; `report` reads this version
_PACKAGES = (
    "adaptive_td",
    "jax",
    "jaxlib",
    "dm-haiku",
    "optax",
    "gymnasium",
    "numpy",
    "scipy",
    "matplotlib",
    "pandas",
    "pyarrow",
    "rich",
    "click",
    "tabulate",
)


@dataclasses.dataclass(frozen=True)
class Progress:
    """What the runner is doing, for a progress display.

    `done` fits of `total` are finished (a cell's data collection counts as
    one); `cells_done` cells of `cells_total`; `cell` is the cell's id and
    `method` the method being fitted, or None while the cell collects data
    and ground truth (and `cell` is "" once the run is done).
    """

    done: int
    total: int
    cell: str
    method: str | None
    cells_done: int = 0
    cells_total: int = 0


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
    return (
        len(os.sched_getaffinity(0))
        if hasattr(os, "sched_getaffinity")
        else os.cpu_count()
    )


def config_hash(config: dict) -> str:
    """A fingerprint of a run's configuration (suite contents and seeds); a
    resumed run only reuses cells computed under the same one."""
    text = json.dumps(config, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def run(
    suite: Suite,
    *,
    seeds: int | None = None,
    out_dir: str | os.PathLike | None = None,
    resume: bool = False,
    on_progress: Callable[[Progress], None] | None = None,
) -> dict:
    """Run `suite` and return every raw number with the configuration.

    Args:
      suite: the loaded suite.
      seeds: overrides the suite's number of seeds.
      out_dir: if given, each finished cell is written to
        `out_dir/cells/NNNN.json` (atomically) as soon as it is done.
      resume: reuse the cells already in `out_dir/cells` from an earlier run of
        the same suite and seeds instead of computing them again. Without it,
        earlier cell files in `out_dir` are replaced.
      on_progress: called with a `Progress` before each step.

    Raises:
      ValueError: for seeds < 1, or `resume` with cell files written by a run
        of another configuration.
    """
    num_seeds = suite.seeds if seeds is None else seeds
    if num_seeds < 1:
        raise ValueError(f"seeds={num_seeds}; expected an integer >= 1.")
    config = {**suite.raw, "seeds": num_seeds}
    fingerprint = config_hash(config)
    cells = suite.cells
    finished = {}
    if out_dir is not None:
        if resume:
            finished = finished_cells(out_dir, fingerprint)
        else:
            clear_cells(out_dir)

    results = {
        "format": FORMAT,
        "suite": suite.name,
        "description": suite.description,
        "config": config,
        "config_hash": fingerprint,
        "environment": environment(),
        "cells": {},
    }
    per_cell = len(suite.methods) + 1
    total = len(cells) * per_cell
    estimators = _EstimatorCache(capacity=2 * len(suite.methods))
    for index, cell in enumerate(cells):
        if cell.id in finished:
            results["cells"][cell.id] = finished[cell.id]
            continue
        done = index * per_cell
        if on_progress:
            on_progress(Progress(done, total, cell.id, None, index, len(cells)))
        task, evaluation, datasets, entry = _prepare(cell, num_seeds)
        for i, method in enumerate(suite.methods):
            if on_progress:
                on_progress(
                    Progress(
                        done + 1 + i, total, cell.id, method.name, index, len(cells)
                    )
                )
            estimator = estimators.get(
                (method.name, task.gamma, _shapes(datasets)),
                functools.partial(suite.estimator, method, task.gamma),
            )
            entry["methods"][method.name] = _fit_and_score(
                estimator, method, datasets, evaluation, num_seeds
            )
        results["cells"][cell.id] = entry
        if out_dir is not None:
            _save_cell(out_dir, index, cell.id, fingerprint, entry)
    if on_progress:
        on_progress(Progress(total, total, "", None, len(cells), len(cells)))
    return results


class _EstimatorCache:
    """The estimators of the last few (method, discount, data shapes), so that
    cells with equal shapes reuse a compiled program.

    Bounded on purpose: every compiled XLA CPU program holds hundreds of
    memory mappings for as long as its estimator lives (an Adaptive TD fit
    about 600), and a process may hold 65530 (Linux's default
    vm.max_map_count); a paper-sized suite that kept every estimator crashed
    in LLVM ("Cannot allocate memory"). The least recently used estimator
    goes first.
    """

    def __init__(self, capacity: int):
        self.capacity = capacity
        self._entries: dict = {}

    def get(self, key, build):
        if key in self._entries:
            self._entries[key] = self._entries.pop(key)  # most recent last
        else:
            self._entries[key] = build()
            while len(self._entries) > self.capacity:
                self._entries.pop(next(iter(self._entries)))
        return self._entries[key]


def _shapes(datasets) -> tuple:
    """What a multi-seed fit compiles for: seeds, padded length, observations."""
    first = datasets[0]
    return (
        len(datasets),
        max(d.batch_size * d.horizon for d in datasets),
        first.obs_shape,
        str(first.observations.dtype),
    )


def _prepare(cell: CellSpec, num_seeds: int):
    """Build the cell's task, its evaluation set and one data set per seed."""
    task = envs.make(cell.task, **cell.kwargs)
    start = time.perf_counter()
    evaluation = task.evaluation_set()
    datasets = [task.collect(cell.episodes, seed=s) for s in range(num_seeds)]
    distance = getattr(task, "discontinuity_distance", None)
    entry = {
        "task": cell.task,
        "label": cell.label,
        "settings": cell.settings,
        "description": task.description,
        "gamma": task.gamma,
        "episodes": cell.episodes,
        "kwargs": cell.kwargs,
        "data": [d.summary() for d in datasets],
        "data_seconds": time.perf_counter() - start,
        "true_values": evaluation.values.tolist(),
        "true_stderr": None
        if evaluation.stderr is None
        else evaluation.stderr.tolist(),
        "labels": None if evaluation.labels is None else evaluation.labels.tolist(),
        # Walking distance of each evaluation state from the value jump
        # (chains and mazes), for the leakage profile.
        "distance": None if distance is None else distance().tolist(),
        # The maze's layout and goal cell, to draw its maps.
        "layout": list(getattr(task, "layout", [])) or None,
        "goal": list(getattr(task, "goal", [])) or None,
        "methods": {},
    }
    return task, evaluation, datasets, entry


def _fit_and_score(estimator, method: MethodSpec, datasets, evaluation, num_seeds):
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
        # The loss curve, at most 200 points per seed.
        "loss_curve": _thin(value_fn.history["loss"]).tolist(),
    }
    if "mc_fraction" in value_fn.history:
        # Fraction of MC targets over the last tenth of training, per seed;
        # per evaluation state at the final parameters; and the ensemble's
        # values [S, K, M], from which any interval width can be scored.
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
        cell["ensemble"] = np.asarray(
            value_fn.ensemble_values(evaluation.observations), np.float64
        ).tolist()
    return cell


def _thin(curves: np.ndarray, points: int = 200) -> np.ndarray:
    """`[S, steps]` curves averaged over equal windows to at most `points`."""
    curves = np.asarray(curves, np.float64)
    steps = curves.shape[1]
    if steps <= points:
        return curves
    edges = np.linspace(0, steps, points + 1).astype(int)
    return np.stack(
        [curves[:, a:b].mean(axis=1) for a, b in zip(edges[:-1], edges[1:])], axis=1
    )


# -- the run folder -------------------------------------------------------------


def _cells_dir(out_dir) -> str:
    return os.path.join(out_dir, "cells")


def cell_files(out_dir) -> list[str]:
    """The cell files of an earlier run in `out_dir`, in cell order."""
    return sorted(glob.glob(os.path.join(_cells_dir(out_dir), "*.json")))


def _save_cell(out_dir, index: int, cell_id: str, fingerprint: str, entry: dict):
    folder = _cells_dir(out_dir)
    os.makedirs(folder, exist_ok=True)
    record = {"id": cell_id, "config_hash": fingerprint, "entry": entry}
    report.write_text(
        os.path.join(folder, f"{index:04d}.json"), json.dumps(record) + "\n"
    )


def finished_cells(out_dir, fingerprint: str) -> dict[str, dict]:
    """The cells an earlier run of the same configuration wrote to `out_dir`.

    Raises:
      ValueError: if a cell file was written under another configuration
        (naming the file), or cannot be parsed.
    """
    finished = {}
    for path in cell_files(out_dir):
        try:
            with open(path, encoding="utf-8") as f:
                record = json.load(f)
            cell_id, their_hash, entry = (
                record["id"],
                record["config_hash"],
                record["entry"],
            )
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise ValueError(
                f"--resume: cell file {path!r} cannot be read ({error}); delete it "
                "to compute that cell again."
            ) from error
        try:
            report.check_cell(entry, f"--resume: cell file {path!r}")
        except ValueError as error:
            raise ValueError(f"{error} Delete it to compute that cell again.") from None
        if their_hash != fingerprint:
            raise ValueError(
                f"--resume: {out_dir!s} holds cells of another configuration "
                f"({path} has config_hash {their_hash}, this run {fingerprint}); "
                "resume with the same suite and --seeds, or choose another --out."
            )
        finished[cell_id] = entry
    return finished


def clear_cells(out_dir) -> None:
    """Remove an earlier run's cell files from `out_dir`."""
    for path in cell_files(out_dir):
        os.remove(path)
