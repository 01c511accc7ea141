"""Turn a results dict (see `runner.run`) into tables, summaries and figures.

Files written to the output folder, each atomically:
- `results.json`: every raw number, the full configuration and the versions;
- `table.md`, `table.csv`: normalised MSE per cell and method, mean and 95%
  interval over seeds, rank within the cell, and the regret: the method's
  mean nMSE divided by the better of TD's and MC's (the best in hindsight of
  the two baselines);
- `summary.md`: how often each Adaptive TD method is within 10% of the
  better of TD and MC, and the cells where it is not; with distances to a
  value jump, the leakage table (`leakage_rows`);
- `figures/`: one figure per cell (the chain's values, errors and MC-target
  use along the chain; the maze's value, error and MC-target maps; estimates
  against true values otherwise), and across cells where the suite has them:
  `leakage_profile.png` (error against distance from the value jump, log
  scale), `leakage_decay.png` (TD's fitted decay of error per step against
  the discount), `data_size.png` (nMSE against episodes per seed) and
  `coverage.png` (the fraction of true values inside the ensemble interval
  against its nominal width).

`write` needs only the results dict, so `adaptive-td report DIR` re-renders
every file from `DIR/results.json` without running anything.
"""

from __future__ import annotations

import csv
import glob
import io
import json
import math
import os
import re

import numpy as np
from tabulate import tabulate

from adaptive_td import adaptive, metrics

COLUMNS = (
    "cell",
    "method",
    "nmse_mean",
    "nmse_low",
    "nmse_high",
    "rank",
    "ratio_to_best",
    "mc_targets",
    "seconds",
)
# Adaptive TD is "close to the best" within this factor of the better of TD
# and MC (the 10%).
CLOSE = 1.10


def cells_of(results: dict) -> dict[str, dict]:
    """The cells of a results dict, by id.

    Reads both layouts: `cells` (format 2) and the first format's `tasks`
    (one cell per task, keyed by the task name).
    """
    if "cells" in results:
        return results["cells"]
    if "tasks" in results:
        return {
            name: {"task": name, "label": name, "settings": {}, **entry}
            for name, entry in results["tasks"].items()
        }
    raise ValueError(
        "results have neither 'cells' nor 'tasks'; is this a results.json "
        "written by adaptive-td bench?"
    )


def rows(results: dict) -> list[dict]:
    """One row per cell and method.

    `rank` is 1 for the method with the smallest mean nMSE in its cell (ties
    share the smaller rank). `ratio_to_best` is the method's mean nMSE divided
    by the smaller of TD's and MC's means: the regret against the best of the
    two baselines in hindsight (1.0 is as good as the better of the two; below
    1 is better than both). With several TD or MC methods (a grid), the best
    of all of them is the reference. `mc_targets` is Adaptive TD's fraction of
    MC targets over the last tenth of training, mean over seeds.
    """
    table = []
    for cell_id, entry in cells_of(results).items():
        methods = entry["methods"]
        means = {name: float(np.mean(m["nmse"])) for name, m in methods.items()}
        baselines = [
            means[name] for name, m in methods.items() if m["kind"] in ("td", "mc")
        ]
        best = float(np.nanmin(baselines)) if np.isfinite(baselines).any() else np.nan
        # NaN (a diverged method) ranks last.
        ordered = sorted(means.values(), key=lambda v: (np.isnan(v), v))
        for name, method in methods.items():
            mean, low, high = metrics.mean_interval(method["nmse"])
            table.append(
                {
                    "cell": cell_id,
                    "method": name,
                    "nmse_mean": mean,
                    "nmse_low": low,
                    "nmse_high": high,
                    "rank": 1 + _index(ordered, means[name]),
                    "ratio_to_best": mean / best if best > 0 else float("nan"),
                    "mc_targets": float(np.mean(method["mc_fraction"]))
                    if "mc_fraction" in method
                    else None,
                    "seconds": method["seconds"],
                }
            )
    return table


def _index(ordered: list[float], value: float) -> int:
    """The first position of `value` in `ordered`, NaN matching NaN."""
    if np.isnan(value):
        return next(i for i, v in enumerate(ordered) if np.isnan(v))
    return ordered.index(value)


def formatted(table: list[dict], num_seeds: int) -> tuple[list[str], list[list[str]]]:
    """Headers and rows of the table as strings, numbers rounded for reading."""
    headers = [
        "cell",
        "method",
        "nMSE",
        f"95% interval ({num_seeds} seeds)",
        "rank",
        "÷ best of TD, MC",
        "MC targets",
        "fit seconds",
    ]
    body = [
        [
            r["cell"],
            r["method"],
            f"{r['nmse_mean']:.4f}",
            f"[{r['nmse_low']:.4f}, {r['nmse_high']:.4f}]",
            str(r["rank"]),
            f"{r['ratio_to_best']:.2f}",
            "" if r["mc_targets"] is None else f"{100 * r['mc_targets']:.1f}%",
            f"{r['seconds']:.1f}",
        ]
        for r in table
    ]
    return headers, body


def markdown(table: list[dict], num_seeds: int) -> str:
    """The table as GitHub Markdown."""
    headers, body = formatted(table, num_seeds)
    return tabulate(body, headers, tablefmt="github", disable_numparse=True) + "\n"


# -- the summary -----------------------------------------------------------------


def adaptive_summary(results: dict, close: float = CLOSE) -> list[dict]:
    """For each Adaptive TD method: in how many cells its mean nMSE is within
    `close` times the better of TD and MC, and the cells where it is not.

    Returns one dict per Adaptive TD method: `method`, `cells` (how many),
    `close` (how many within the factor), `wins` (cells where it beats both,
    ratio < 1), and `misses`: `[(cell, ratio, best baseline name)]` sorted by
    ratio, worst first.
    """
    table = rows(results)
    cells = cells_of(results)
    out = []
    adaptive = [
        name
        for name, m in next(iter(cells.values()))["methods"].items()
        if m["kind"] == "adaptive_td"
    ]
    for name in adaptive:
        mine = [r for r in table if r["method"] == name]
        misses = []
        for r in mine:
            if not r["ratio_to_best"] <= close:
                methods = cells[r["cell"]]["methods"]
                baseline = min(
                    (m for m in methods if methods[m]["kind"] in ("td", "mc")),
                    key=lambda m: np.mean(methods[m]["nmse"]),
                )
                misses.append((r["cell"], r["ratio_to_best"], baseline))
        out.append(
            {
                "method": name,
                "cells": len(mine),
                "close": sum(r["ratio_to_best"] <= close for r in mine),
                "wins": sum(r["ratio_to_best"] < 1.0 for r in mine),
                "misses": sorted(misses, key=lambda m: -m[1]),
            }
        )
    return out


def summary_markdown(results: dict) -> str:
    """`summary.md`: Adaptive TD against the better of TD and MC, the methods
    that rank first most often, and the leakage table where there is one."""
    lines = [f"# Suite {results.get('suite', '?')}: summary", ""]
    for s in adaptive_summary(results):
        lines.append(
            f"**{s['method']}** is within {round(100 * (CLOSE - 1))}% of the better "
            f"of TD and MC in {s['close']} of {s['cells']} cells, and better than "
            f"both in {s['wins']}."
        )
        if s["misses"]:
            lines.append("")
            lines.append("Where it is not (its ratio to the better baseline):")
            lines.append("")
            for cell, ratio, baseline in s["misses"]:
                lines.append(f"- `{cell}`: {ratio:.2f} × {baseline}")
        lines.append("")
    firsts: dict[str, int] = {}
    table = rows(results)
    for r in table:
        if r["rank"] == 1:
            firsts[r["method"]] = firsts.get(r["method"], 0) + 1
    if firsts:
        lines.append("Ranked first (smallest mean nMSE) in a cell:")
        lines.append("")
        for name, count in sorted(firsts.items(), key=lambda x: -x[1]):
            lines.append(f"- {name}: {count} of {len(cells_of(results))} cells")
        lines.append("")
    leakage = leakage_rows(results)
    if leakage:
        lines.append("## Leakage")
        lines.append("")
        lines.append(
            "MSE by walking distance d from the value jump (mean over seeds "
            "and states): near the jump (0 ≤ d ≤ 2) and in the far half of the "
            "distances (d ≥ d_max / 2); decay: the fitted factor by which the "
            "squared error changes per step away from the jump, fitted over the "
            "nearer half of the distances (below 1: the error is concentrated "
            "at the jump and decays away from it; near 1: no such structure)."
        )
        lines.append("")
        lines.append(leakage_markdown(leakage))
    return "\n".join(lines) + "\n"


# -- the leakage study -------------------------------------------------------------


def leakage_profile(entry: dict) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Squared error against distance from the value jump, per method.

    Returns `{method: (d, mse)}`: the distinct finite distances `d` of the
    cell's evaluation states (ascending) and the mean over seeds and over the
    states at each distance of the squared error. Empty if the cell records no
    distances. Distances may be signed (the wall chain's short side of the
    wall is negative); the summaries (`decay_rate`, `leakage_rows`) read the
    side d >= 0.
    """
    if entry.get("distance") is None:
        return {}
    distance = np.asarray(entry["distance"], np.float64)
    truth = np.asarray(entry["true_values"], np.float64)
    finite = np.isfinite(distance)
    levels = np.unique(distance[finite])
    out = {}
    for name, method in entry["methods"].items():
        squared = (np.asarray(method["estimates"], np.float64) - truth) ** 2
        per_state = squared.mean(axis=0)
        out[name] = (
            levels,
            np.array([per_state[distance == d].mean() for d in levels]),
        )
    return out


def decay_rate(d: np.ndarray, mse: np.ndarray) -> float:
    """The factor rho by which `mse` changes per unit of `d` near the jump:
    the least-squares fit of log(mse) = a + d log(rho) over the nearer half
    of the distances on the side d >= 0 (from d = 0 to half the largest).
    rho well below 1 means the error is concentrated at the jump and decays
    away from it (leakage); rho near 1 means no such structure. NaN with
    fewer than three positive points to fit."""
    d = np.asarray(d, np.float64)
    mse = np.asarray(mse, np.float64)
    near = (d >= 0) & (d <= d.max() / 2) & (mse > 0)
    if near.sum() < 3:
        return float("nan")
    slope = np.polyfit(d[near], np.log(mse[near]), 1)[0]
    return float(np.exp(slope))


def leakage_rows(results: dict, near: float = 2.0) -> list[dict]:
    """Per cell with distances and per method: MSE near the jump (d <= `near`),
    far from it (d at least half the largest distance), and the fitted
    per-step decay (`decay_rate`)."""
    out = []
    for cell_id, entry in cells_of(results).items():
        for name, (d, mse) in leakage_profile(entry).items():
            far = d.max() / 2
            close = (d >= 0) & (d <= near)
            near_mse = mse[close].mean() if np.any(close) else float("nan")
            far_mse = mse[d >= far].mean()
            out.append(
                {
                    "cell": cell_id,
                    "label": entry.get("label", cell_id),
                    "gamma": entry["gamma"],
                    "method": name,
                    "kind": entry["methods"][name]["kind"],
                    "mse_near": float(near_mse),
                    "mse_far": float(far_mse),
                    "decay": decay_rate(d, mse),
                }
            )
    return out


def leakage_markdown(leakage: list[dict]) -> str:
    body = [
        [
            r["cell"],
            f"{r['gamma']:g}",
            r["method"],
            f"{r['mse_near']:.2e}",
            f"{r['mse_far']:.2e}",
            "" if math.isnan(r["decay"]) else f"{r['decay']:.3f}",
        ]
        for r in leakage
    ]
    headers = [
        "cell",
        "γ",
        "method",
        "MSE, 0 ≤ d ≤ 2",
        "MSE, d ≥ d_max/2",
        "decay / step",
    ]
    return tabulate(body, headers, tablefmt="github", disable_numparse=True) + "\n"


# -- interval coverage and data size ---------------------------------------------


def coverage_curve(entry_method: dict, truth, widths) -> np.ndarray:
    """The fraction of evaluation states (mean over seeds) whose true value
    lies in [mu - k sigma, mu + k sigma] of the stored ensemble values, for
    each k in `widths` (`adaptive.interval`, the rule Adaptive TD trains with)."""
    members = np.asarray(entry_method["ensemble"], np.float64)  # [S, K, M]
    truth = np.asarray(truth, np.float64)
    curve = []
    for k in widths:
        low, high = adaptive.interval(members, kind="std", width=k, axis=1)
        curve.append(((low <= truth) & (truth <= high)).mean())
    return np.array(curve)


def data_size_series(results: dict) -> dict[str, dict[str, tuple]]:
    """nMSE against episodes per seed, for suites whose grids vary `episodes`.

    Returns `{label: {method: (episodes, mean, low, high)}}`: for each task
    label whose cells take at least two episode counts, the mean nMSE over
    seeds and over the cells' other settings at each count, with the 95%
    interval of the per-seed numbers pooled over those cells.
    """
    grouped: dict[str, dict[int, list[dict]]] = {}
    for entry in cells_of(results).values():
        label = entry.get("label", entry.get("task"))
        grouped.setdefault(label, {}).setdefault(entry["episodes"], []).append(entry)
    out = {}
    for label, by_size in grouped.items():
        if len(by_size) < 2:
            continue
        sizes = sorted(by_size)
        names = list(by_size[sizes[0]][0]["methods"])
        series = {}
        for name in names:
            stats = [
                metrics.mean_interval(
                    np.concatenate([e["methods"][name]["nmse"] for e in by_size[n]])
                )
                for n in sizes
            ]
            series[name] = (np.array(sizes), *map(np.array, zip(*stats)))
        out[label] = series
    return out


# -- writing the folder ------------------------------------------------------------


def load(out_dir: str | os.PathLike) -> dict:
    """The results dict of a finished run folder (`DIR/results.json`).

    Raises:
      ValueError: naming the path if it is missing or not a results file.
    """
    path = os.path.join(out_dir, "results.json")
    try:
        with open(path, encoding="utf-8") as f:
            results = json.load(f)
    except FileNotFoundError:
        raise ValueError(
            f"{os.fspath(out_dir)!r} has no results.json; pass the --out folder "
            "of a finished adaptive-td bench run."
        ) from None
    except (OSError, ValueError) as error:
        raise ValueError(f"{path!r} cannot be read as JSON: {error}.") from error
    if not isinstance(results, dict) or "config" not in results:
        raise ValueError(f"{path!r} is not a results file of adaptive-td bench.")
    check(results, where=path)
    return results


# Keys every cell and every method of a results dict must have to be reported.
_CELL_KEYS = ("description", "gamma", "true_values", "methods")
_METHOD_KEYS = ("kind", "nmse", "estimates", "seconds")


def check(results: dict, where: str = "results") -> None:
    """Raise `ValueError` naming the cell, method and key if `results` lack
    what the tables and figures read (a hand-edited or truncated file)."""
    fmt = results.get("format", 1)
    if fmt not in (1, 2):
        raise ValueError(
            f"{where}: format {fmt!r}; this version of adaptive_td reads formats "
            "1 and 2."
        )
    if not isinstance(results.get("config"), dict) or "seeds" not in results["config"]:
        raise ValueError(f"{where}: config.seeds is missing.")
    cells = cells_of(results)
    if not cells:
        raise ValueError(f"{where}: holds no cells.")
    for cell_id, entry in cells.items():
        check_cell(entry, f"{where}: cell {cell_id!r}")


def check_cell(entry: dict, where: str) -> None:
    """The cell-level part of `check`."""
    if not isinstance(entry, dict):
        raise ValueError(f"{where} is not a table of results.")
    for key in _CELL_KEYS:
        if key not in entry:
            raise ValueError(f"{where} has no {key!r}.")
    if not entry["methods"]:
        raise ValueError(f"{where} has no methods.")
    for name, method in entry["methods"].items():
        for key in _METHOD_KEYS:
            if key not in method:
                raise ValueError(f"{where}, method {name!r} has no {key!r}.")


def slug(cell_id: str) -> str:
    """A file name for a cell id: `maze[gamma=0.9,episodes=30]` becomes
    `maze_gamma-0.9_episodes-30`."""
    text = cell_id.replace("=", "-").replace("[", "_").replace(",", "_")
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_")


def write(results: dict, out_dir: str | os.PathLike) -> dict[str, str]:
    """Write every output file into `out_dir`; return their paths by kind."""
    # Here, not at the top: figures builds on this module's arithmetic.
    from adaptive_td.benchmarks import figures

    os.makedirs(out_dir, exist_ok=True)
    table = rows(results)
    paths = {
        "json": os.path.join(out_dir, "results.json"),
        "markdown": os.path.join(out_dir, "table.md"),
        "csv": os.path.join(out_dir, "table.csv"),
        "summary": os.path.join(out_dir, "summary.md"),
    }
    write_text(paths["json"], json.dumps(results, indent=1) + "\n")
    write_text(paths["markdown"], markdown(table, results["config"]["seeds"]))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(table)
    write_text(paths["csv"], buffer.getvalue())
    write_text(paths["summary"], summary_markdown(results))
    folder = os.path.join(out_dir, "figures")
    # figures/ belongs to the report: drawings of an earlier suite go.
    for old in glob.glob(os.path.join(folder, "*.png")):
        os.remove(old)
    paths.update(figures.write_all(results, folder))
    return paths


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write `text` to `path` atomically: a reader (or an interrupted run)
    sees the old file or the new one, never a part."""
    path = os.fspath(path)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
