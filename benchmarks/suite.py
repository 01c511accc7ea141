"""Benchmark suites: TOML files under `suites/`, loaded and checked here.

A suite names its seeds, the shared training settings, the tasks (registry
names of `adaptive_td.envs` with the episodes collected per seed) and the
methods (estimator kinds with their options). `quick.toml` documents the
format in its comments.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from importlib import resources
from typing import Any

import optax

import adaptive_td as atd
from adaptive_td import networks

KINDS = {"td": "TD", "mc": "MonteCarlo", "adaptive_td": "AdaptiveTD"}
_TRAINING_KEYS = {"hidden_sizes", "learning_rate", "steps", "batch_size"}


@dataclasses.dataclass(frozen=True)
class TaskSpec:
    name: str
    episodes: int
    kwargs: dict[str, Any]


@dataclasses.dataclass(frozen=True)
class MethodSpec:
    name: str
    kind: str
    options: dict[str, Any]


@dataclasses.dataclass(frozen=True)
class Suite:
    name: str
    description: str
    seeds: int
    training: dict[str, Any]
    tasks: tuple[TaskSpec, ...]
    methods: tuple[MethodSpec, ...]
    raw: dict[str, Any]

    def estimator(self, method: MethodSpec, gamma: float):
        """Build the estimator of `method` for a task with discount `gamma`."""
        cls = getattr(atd, KINDS[method.kind])
        return cls(
            networks.mlp(tuple(self.training["hidden_sizes"])),
            optax.adam(self.training["learning_rate"]),
            gamma=gamma,
            steps=self.training["steps"],
            batch_size=self.training["batch_size"],
            **method.options,
        )


def available() -> list[str]:
    """Names of the suites shipped with the package."""
    folder = resources.files("adaptive_td.benchmarks") / "suites"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".toml"))


def load(name_or_path: str) -> Suite:
    """Load a shipped suite by name, or a suite file by path."""
    if os.path.exists(name_or_path):
        name = os.path.splitext(os.path.basename(name_or_path))[0]
        with open(name_or_path, "rb") as f:
            raw = tomllib.load(f)
    elif name_or_path in available():
        name = name_or_path
        path = resources.files("adaptive_td.benchmarks") / "suites" / f"{name}.toml"
        raw = tomllib.loads(path.read_text())
    else:
        raise ValueError(
            f"suite {name_or_path!r} is neither a file nor a shipped suite; "
            f"shipped suites: {', '.join(available())}."
        )
    return parse(name, raw)


def parse(name: str, raw: dict[str, Any]) -> Suite:
    """Check a suite's fields and build a `Suite`; errors name the field."""
    where = f"suite {name!r}"
    seeds = raw.get("seeds", 3)
    if not isinstance(seeds, int) or seeds < 1:
        raise ValueError(f"{where}: seeds = {seeds!r}; expected an integer >= 1.")
    training = raw.get("training", {})
    unknown = set(training) - _TRAINING_KEYS
    if unknown or not _TRAINING_KEYS <= set(training):
        raise ValueError(
            f"{where}: [training] has keys {sorted(training)}; expected exactly "
            f"{sorted(_TRAINING_KEYS)}."
        )
    tasks = []
    for i, entry in enumerate(raw.get("tasks", [])):
        entry = dict(entry)
        if "name" not in entry or "episodes" not in entry:
            raise ValueError(f"{where}: tasks[{i}] needs 'name' and 'episodes'.")
        tasks.append(TaskSpec(entry.pop("name"), int(entry.pop("episodes")), entry))
    methods = []
    for i, entry in enumerate(raw.get("methods", [])):
        entry = dict(entry)
        kind = entry.pop("kind", None)
        if kind not in KINDS:
            raise ValueError(
                f"{where}: methods[{i}] kind = {kind!r}; expected one of "
                f"{sorted(KINDS)}."
            )
        methods.append(MethodSpec(entry.pop("name", kind), kind, entry))
    if not tasks or not methods:
        raise ValueError(f"{where}: needs at least one [[tasks]] and one [[methods]].")
    if not {"td", "mc"} <= {m.kind for m in methods}:
        raise ValueError(
            f"{where}: needs a 'td' and an 'mc' method; ratios are taken against "
            "the better of the two."
        )
    return Suite(
        name=name,
        description=raw.get("description", ""),
        seeds=seeds,
        training=training,
        tasks=tuple(tasks),
        methods=tuple(methods),
        raw=raw,
    )
