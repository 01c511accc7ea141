"""Benchmark suites: TOML files under `suites/`, loaded and checked here.

A suite names its seeds, the shared training settings, the tasks (registry
names of `adaptive_td.envs` with the episodes collected per seed) and the
methods (estimator kinds with their options). `quick.toml` documents the
format in its comments; `paper.toml` shows the grids.

Grids: a task entry may carry a `[tasks.grid]` table whose every key
(`episodes` or a task argument) maps to a list of values; the entry then
stands for one *cell* per combination (the cross product, first key slowest).
A method entry's `[methods.grid]` likewise expands into one method per
combination of its options, named `"NAME (key=value, ...)"`. A cell is one
task configuration; every method is fitted on every cell, all seeds of one
method vmapped in one program.

`parse` checks everything before anything runs: it builds every task and every
estimator once (both are cheap; no ground truth is computed and nothing is
compiled), so a bad entry is a `ValueError` naming the suite and the field,
not a failure minutes into a run.
"""

from __future__ import annotations

import dataclasses
import datetime
import inspect
import itertools
import math
import os
import tomllib
from importlib import resources
from typing import Any

import optax

import adaptive_td as atd
from adaptive_td import envs, networks

KINDS = {
    "td": "TD",
    "mc": "MonteCarlo",
    "n_step": "NStepTD",
    "td_lambda": "TDLambda",
    "adaptive_td": "AdaptiveTD",
}
_TOP_KEYS = ("description", "seeds", "training", "tasks", "methods")
_TRAINING_KEYS = {"hidden_sizes", "learning_rate", "steps", "batch_size"}
# Estimator arguments the suite sets for every method: the network, optimizer,
# steps and batch size from [training], gamma from the task.
_SET_BY_SUITE = ("network", "optimizer", "gamma", "steps", "batch_size")
# The discount used to build each estimator once while checking its options.
_CHECK_GAMMA = 0.9


@dataclasses.dataclass(frozen=True)
class TaskSpec:
    """One `[[tasks]]` entry: a task, its fixed arguments and its grid."""

    name: str
    episodes: int | None  # None when the grid sets it
    kwargs: dict[str, Any]
    label: str = ""
    grid: dict[str, list[Any]] = dataclasses.field(default_factory=dict)

    def cells(self) -> list[CellSpec]:
        """One cell per combination of the grid's values (one if no grid)."""
        label = self.label or self.name
        cells = []
        for settings in combinations(self.grid):
            kwargs = {**self.kwargs, **settings}
            episodes = kwargs.pop("episodes", self.episodes)
            cell_id = label
            if settings:
                cell_id += "[" + ",".join(f"{k}={v}" for k, v in settings.items()) + "]"
            cells.append(
                CellSpec(cell_id, self.name, label, episodes, kwargs, settings)
            )
        return cells


@dataclasses.dataclass(frozen=True)
class CellSpec:
    """One task configuration of a suite: what the runner fits every method on.

    `id` is the label, followed by the grid settings in brackets when the
    task has a grid, e.g. `"chain[gamma=0.9,episodes=30]"`.
    """

    id: str
    task: str
    label: str
    episodes: int
    kwargs: dict[str, Any]
    settings: dict[str, Any]


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

    @property
    def cells(self) -> tuple[CellSpec, ...]:
        """Every cell of every task entry, in file order."""
        return tuple(cell for task in self.tasks for cell in task.cells())

    def estimator(self, method: MethodSpec, gamma: float):
        """Build the estimator of `method` for a task with discount `gamma`."""
        return _estimator(self.training, method, gamma)


def _estimator(training: dict[str, Any], method: MethodSpec, gamma: float):
    cls = getattr(atd, KINDS[method.kind])
    return cls(
        networks.mlp(tuple(training["hidden_sizes"])),
        optax.adam(training["learning_rate"]),
        gamma=gamma,
        steps=training["steps"],
        batch_size=training["batch_size"],
        **method.options,
    )


def available() -> list[str]:
    """Names of the suites shipped with the package."""
    folder = resources.files("adaptive_td.benchmarks") / "suites"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".toml"))


def load(name_or_path: str) -> Suite:
    """Load a suite file by path, or a shipped suite by name.

    Raises:
      ValueError: for a path that is a directory, a file that cannot be read
        or is not valid TOML (naming the path), an unknown name (listing the
        shipped suites), or bad contents (see `parse`).
    """
    if os.path.exists(name_or_path) and not os.path.isdir(name_or_path):
        name = os.path.splitext(os.path.basename(name_or_path))[0]
        try:
            with open(name_or_path, "rb") as f:
                raw = tomllib.load(f)
        except OSError as error:
            raise ValueError(
                f"suite file {name_or_path!r} cannot be read: "
                f"{error.strerror or error}."
            ) from error
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
            raise ValueError(
                f"suite file {name_or_path!r} is not valid TOML: {error}."
            ) from error
    elif name_or_path in available():
        name = name_or_path
        path = resources.files("adaptive_td.benchmarks") / "suites" / f"{name}.toml"
        raw = tomllib.loads(path.read_text())
    elif os.path.isdir(name_or_path):
        raise ValueError(
            f"suite {name_or_path!r} is a directory, not a suite file; pass the "
            f"path of a .toml file or a shipped suite: {', '.join(available())}."
        )
    else:
        raise ValueError(
            f"suite {name_or_path!r} is neither a file nor a shipped suite; "
            f"shipped suites: {', '.join(available())}."
        )
    return parse(name, raw)


def parse(name: str, raw: dict[str, Any]) -> Suite:
    """Check a suite's fields and build a `Suite`.

    Every task is built once with its keyword arguments and every method's
    estimator once with its options, so that whatever their constructors
    reject is found here.

    Raises:
      ValueError: naming the suite, the field (`tasks[1].name`,
        `training.steps`, `methods[2]`), what was given and what is allowed.
    """
    where = f"suite {name!r}"
    unknown = [key for key in raw if key not in _TOP_KEYS]
    if unknown:
        raise ValueError(
            f"{where}: unknown top-level key(s) {', '.join(map(repr, unknown))}; "
            f"allowed keys: {', '.join(_TOP_KEYS)}."
        )
    _reject_dates(where, raw)
    description = raw.get("description", "")
    if not isinstance(description, str):
        raise ValueError(f"{where}: description = {description!r}; expected a string.")
    seeds = raw.get("seeds", 3)
    if not _is_int(seeds) or seeds < 1:
        raise ValueError(f"{where}: seeds = {seeds!r}; expected an integer >= 1.")
    training = _parse_training(where, raw.get("training", {}))
    tasks = _parse_tasks(where, raw.get("tasks", []))
    methods = _parse_methods(where, raw.get("methods", []), training)
    ids = [cell.id for task in tasks for cell in task.cells()]
    repeated = sorted({i for i in ids if ids.count(i) > 1})
    if repeated:
        raise ValueError(
            f"{where}: the cells {', '.join(map(repr, repeated))} appear more "
            "than once (grid values that print alike, such as 0 and 0.0, or "
            '-1.0 and "-1.0"); results are keyed by cell, so make each '
            "grid value distinct."
        )
    if not tasks or not methods:
        raise ValueError(f"{where}: needs at least one [[tasks]] and one [[methods]].")
    if not {"td", "mc"} <= {m.kind for m in methods}:
        raise ValueError(
            f"{where}: needs a 'td' and an 'mc' method; ratios are taken against "
            "the better of the two."
        )

    return Suite(
        name=name,
        description=description,
        seeds=seeds,
        training=training,
        tasks=tuple(tasks),
        methods=tuple(methods),
        raw=raw,
    )


def _parse_training(where: str, training: Any) -> dict[str, Any]:
    if not isinstance(training, dict):
        raise ValueError(
            f"{where}: training = {training!r}; expected a [training] table with "
            f"keys {sorted(_TRAINING_KEYS)}."
        )
    if set(training) != _TRAINING_KEYS:
        raise ValueError(
            f"{where}: [training] has keys {sorted(training)}; expected exactly "
            f"{sorted(_TRAINING_KEYS)}."
        )
    sizes = training["hidden_sizes"]
    if (
        not isinstance(sizes, list)
        or not sizes
        or not all(_is_int(size) and size >= 1 for size in sizes)
    ):
        raise ValueError(
            f"{where}: training.hidden_sizes = {sizes!r}; expected a non-empty "
            "list of integers >= 1, e.g. [64, 64]."
        )
    rate = training["learning_rate"]
    if not _is_number(rate) or not (math.isfinite(rate) and rate > 0):
        raise ValueError(
            f"{where}: training.learning_rate = {rate!r}; expected a finite "
            "number > 0, e.g. 1e-3."
        )
    for key in ("steps", "batch_size"):
        if not _is_int(training[key]) or training[key] < 1:
            raise ValueError(
                f"{where}: training.{key} = {training[key]!r}; expected an "
                "integer >= 1."
            )
    return dict(training)


def _parse_tasks(where: str, entries: Any) -> list[TaskSpec]:
    if not isinstance(entries, list):
        raise ValueError(
            f"{where}: tasks = {entries!r}; expected [[tasks]] tables, each with "
            "a name and episodes."
        )
    tasks = []
    for i, entry in enumerate(entries):
        field = f"tasks[{i}]"
        if not isinstance(entry, dict):
            raise ValueError(
                f"{where}: {field} = {entry!r}; expected a [[tasks]] table with a "
                "name and episodes."
            )
        grid_table = entry.get("grid", {})
        has_grid_episodes = isinstance(grid_table, dict) and "episodes" in grid_table
        if "name" not in entry or not ("episodes" in entry or has_grid_episodes):
            raise ValueError(
                f"{where}: {field} needs 'name' and 'episodes' (or a grid over "
                "episodes)."
            )
        kwargs = dict(entry)
        name, episodes = kwargs.pop("name"), kwargs.pop("episodes", None)
        label = kwargs.pop("label", name)
        grid = _parse_grid(where, field, kwargs.pop("grid", {}))
        if not isinstance(name, str) or name not in envs.TASKS:
            raise ValueError(
                f"{where}: {field}.name = {name!r}; expected one of the registered "
                f"tasks: {', '.join(sorted(envs.TASKS))}."
            )
        if (
            not isinstance(label, str)
            or not label.strip()
            or any(c in label for c in "[|`")
            or not label.isprintable()
        ):
            raise ValueError(
                f"{where}: {field}.label = {label!r}; expected a non-empty string "
                "of printable characters without '[', '|' or '`' (it names the "
                "entry's cells in tables, Markdown and file names)."
            )
        given = [] if episodes is None else [episodes]
        for value in [*given, *grid.get("episodes", [])]:
            if not _is_int(value) or value < 1:
                at = "episodes" if value is episodes else "grid.episodes"
                raise ValueError(
                    f"{where}: {field}.{at} = {value!r}; expected an integer "
                    ">= 1 (episodes collected per seed)."
                )
        both = sorted(set(grid) & (set(kwargs) | ({"episodes"} if given else set())))
        if both:
            raise ValueError(
                f"{where}: {field} sets {', '.join(map(repr, both))} both as an "
                "argument and in its grid; keep one."
            )
        _check_keywords(
            f"{where}: {field}",
            f"task {name!r}",
            envs.TASKS[name][0],
            {**kwargs, **{k: v for k, v in grid.items() if k != "episodes"}},
            (),
        )
        spec = TaskSpec(name, episodes, kwargs, label, grid)
        for cell in spec.cells():
            try:
                envs.make(name, **cell.kwargs)
            except (TypeError, ValueError) as error:
                raise ValueError(
                    f"{where}: {field} (task {name!r}) rejects its arguments "
                    f"{cell.kwargs}: {error}"
                ) from error
        tasks.append(spec)
    _check_unique(
        where,
        "tasks",
        [t.label for t in tasks],
        "so each task may appear once, or give each entry its own label",
        key="label",
        given=[("label" in e) if isinstance(e, dict) else False for e in entries],
    )
    return tasks


def combinations(grid: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """Every combination of a grid's values, the first key slowest; one empty
    combination for an empty grid."""
    return [dict(zip(grid, values)) for values in itertools.product(*grid.values())]


def _parse_grid(where: str, field: str, grid: Any) -> dict[str, list[Any]]:
    """A `grid` table: each key a non-empty list of distinct values."""
    if not isinstance(grid, dict):
        raise ValueError(
            f"{where}: {field}.grid = {grid!r}; expected a table whose keys map "
            "to lists of values, e.g. grid = {{ gamma = [0.9, 0.99] }}."
        )
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise ValueError(
                f"{where}: {field}.grid.{key} = {values!r}; expected a non-empty "
                "list of values."
            )
        if any(a == b for i, a in enumerate(values) for b in values[i + 1 :]):
            raise ValueError(
                f"{where}: {field}.grid.{key} = {values!r} repeats a value; each "
                "value would give the same cell twice."
            )
    return dict(grid)


def _parse_methods(
    where: str, entries: Any, training: dict[str, Any]
) -> list[MethodSpec]:
    if not isinstance(entries, list):
        raise ValueError(
            f"{where}: methods = {entries!r}; expected [[methods]] tables, each "
            "with a kind."
        )
    methods = []
    for i, entry in enumerate(entries):
        field = f"methods[{i}]"
        if not isinstance(entry, dict):
            raise ValueError(
                f"{where}: {field} = {entry!r}; expected a [[methods]] table with "
                "a kind."
            )
        options = dict(entry)
        kind = options.pop("kind", None)
        if not isinstance(kind, str) or kind not in KINDS:
            raise ValueError(
                f"{where}: {field}.kind = {kind!r}; expected one of {sorted(KINDS)}."
            )
        name = options.pop("name", kind)
        if not isinstance(name, str) or not name:
            raise ValueError(
                f"{where}: {field}.name = {name!r}; expected a non-empty string."
            )
        grid = _parse_grid(where, field, options.pop("grid", {}))
        fixed = [key for key in [*options, *grid] if key in _SET_BY_SUITE]
        if fixed:
            raise ValueError(
                f"{where}: {field} sets {', '.join(map(repr, fixed))}, which the "
                "suite sets for every method: steps and batch_size (and the "
                "network and optimizer) from [training], gamma from the task."
            )
        both = sorted(set(grid) & set(options))
        if both:
            raise ValueError(
                f"{where}: {field} sets {', '.join(map(repr, both))} both as an "
                "option and in its grid; keep one."
            )
        cls = getattr(atd, KINDS[kind])
        _check_keywords(
            f"{where}: {field}",
            f"kind {kind!r}",
            cls,
            {**options, **grid},
            _SET_BY_SUITE,
        )
        for settings in combinations(grid):
            label = name
            if settings:
                label += " (" + ", ".join(f"{k}={v}" for k, v in settings.items()) + ")"
            method = MethodSpec(label, kind, {**options, **settings})
            try:
                _estimator(training, method, _CHECK_GAMMA)
            except (TypeError, ValueError) as error:
                raise ValueError(
                    f"{where}: {field} ({label!r}, kind {kind!r}) rejects its "
                    f"options {method.options}: {error}"
                ) from error
            methods.append(method)
    _check_unique(
        where, "methods", [m.name for m in methods], "so give each method its own"
    )
    return methods


def _check_keywords(
    where: str, what: str, factory, given: dict[str, Any], fixed: tuple[str, ...]
) -> None:
    """Reject keyword arguments that `factory` does not take, listing those it
    does (less `fixed`, the ones the suite sets itself)."""
    parameters = inspect.signature(factory).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return
    accepted = [
        p.name
        for p in parameters
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name not in fixed
    ]
    unknown = [key for key in given if key not in accepted]
    if unknown:
        raise ValueError(
            f"{where}: unknown option(s) {', '.join(map(repr, unknown))} for "
            f"{what}; allowed: {', '.join(accepted) or 'none'}."
        )


def _check_unique(
    where: str,
    field: str,
    names: list[str],
    fix: str,
    key: str = "name",
    given: list[bool] | None = None,
) -> None:
    """Reject a repeated name; `given[i]` says entry i set `key` itself (else
    its `name` stands in for it)."""
    first = {}
    for i, name in enumerate(names):
        if name in first:
            j = first[name]
            own = given is None or given[i]
            raise ValueError(
                f"{where}: {field}[{i}].{key if own else 'name'} = {name!r} "
                f"repeats {field}[{j}].{key if given is None or given[j] else 'name'}"
                f"; results are keyed by {key}, {fix}."
            )
        first[name] = i


def _reject_dates(where: str, value: Any, field: str = "") -> None:
    """TOML dates and times would only fail when results.json is written."""
    if isinstance(value, (datetime.date, datetime.time)):
        raise ValueError(
            f"{where}: {field} = {value!r}; TOML dates and times are not "
            "supported in suites."
        )
    if isinstance(value, dict):
        for key, item in value.items():
            _reject_dates(where, item, f"{field}.{key}" if field else key)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _reject_dates(where, item, f"{field}[{i}]")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
