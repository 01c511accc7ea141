"""Turn a results dict (see `runner.run`) into tables, JSON and figures.

Files written to the output folder, each atomically:
- `results.json`: every raw number and the full configuration;
- `table.md`, `table.csv`: normalised MSE per task and method, mean and 95%
  interval over seeds, and the ratio to the better of TD and MC;
- `<task>.png`: the chain's values and errors along the chain, the maze's
  value maps, and estimates against true values for the other tasks.
"""

from __future__ import annotations

import csv
import io
import json
import os

import matplotlib.pyplot as plt
import numpy as np
from tabulate import tabulate

from adaptive_td import metrics, plotting

COLUMNS = (
    "task",
    "method",
    "nmse_mean",
    "nmse_low",
    "nmse_high",
    "ratio_to_best",
    "mc_targets",
    "seconds",
)


def rows(results: dict) -> list[dict]:
    """One row per task and method.

    `ratio_to_best` is the method's mean normalised MSE divided by the smaller
    of TD's and MC's means (1.0 is as good as the better of the two in
    hindsight). `mc_targets` is Adaptive TD's fraction of MC targets over the
    last tenth of training, mean over seeds.
    """
    table = []
    for task, entry in results["tasks"].items():
        cells = entry["methods"]
        means = {name: float(np.mean(c["nmse"])) for name, c in cells.items()}
        best = min(
            means[name] for name, c in cells.items() if c["kind"] in ("td", "mc")
        )
        for name, cell in cells.items():
            mean, low, high = metrics.mean_interval(cell["nmse"])
            table.append(
                {
                    "task": task,
                    "method": name,
                    "nmse_mean": mean,
                    "nmse_low": low,
                    "nmse_high": high,
                    "ratio_to_best": mean / best if best > 0 else float("nan"),
                    "mc_targets": float(np.mean(cell["mc_fraction"]))
                    if "mc_fraction" in cell
                    else None,
                    "seconds": cell["seconds"],
                }
            )
    return table


def formatted(table: list[dict], num_seeds: int) -> tuple[list[str], list[list[str]]]:
    """Headers and rows of the table as strings, numbers rounded for reading."""
    headers = [
        "task",
        "method",
        "nMSE",
        f"95% interval ({num_seeds} seeds)",
        "÷ best of TD, MC",
        "MC targets",
        "fit seconds",
    ]
    body = [
        [
            r["task"],
            r["method"],
            f"{r['nmse_mean']:.4f}",
            f"[{r['nmse_low']:.4f}, {r['nmse_high']:.4f}]",
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


def write(results: dict, out_dir: str | os.PathLike) -> dict[str, str]:
    """Write every output file into `out_dir`; return their paths by kind."""
    os.makedirs(out_dir, exist_ok=True)
    table = rows(results)
    paths = {
        "json": os.path.join(out_dir, "results.json"),
        "markdown": os.path.join(out_dir, "table.md"),
        "csv": os.path.join(out_dir, "table.csv"),
    }
    _write_text(paths["json"], json.dumps(results, indent=1) + "\n")
    _write_text(paths["markdown"], markdown(table, results["config"]["seeds"]))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(table)
    _write_text(paths["csv"], buffer.getvalue())
    for task, entry in results["tasks"].items():
        paths[f"figure_{task}"] = os.path.join(out_dir, f"{task}.png")
        plotting.save(figure(task, entry), paths[f"figure_{task}"])
    return paths


def figure(task: str, entry: dict):
    """The figure of one task, chosen by its labels: integer state indices
    `[M]` draw a chain, integer cells `[M, 2]` a maze; anything else (no
    labels, or simulator states) estimates against true values."""
    truth = np.asarray(entry["true_values"])
    estimates = {
        name: np.asarray(c["estimates"]) for name, c in entry["methods"].items()
    }
    labels = None if entry["labels"] is None else np.asarray(entry["labels"])
    if labels is not None and labels.dtype.kind not in "iu":
        labels = None
    uses_mc = {
        name: np.asarray(c["uses_mc_target"])
        for name, c in entry["methods"].items()
        if "uses_mc_target" in c
    }
    if labels is not None and labels.ndim == 1:
        panels = 3 if uses_mc else 2
        fig, axes = plt.subplots(panels, 1, figsize=(8, 3.3 * panels), sharex=True)
        plotting.chain_values(axes[0], labels, truth, estimates)
        plotting.chain_errors(axes[1], labels, truth, estimates)
        if uses_mc:
            colors = plotting.colors_of(estimates)
            plotting.chain_mc_usage(axes[2], labels, uses_mc, colors)
        for ax in axes:
            ax.xaxis.set_tick_params(labelbottom=True)
        axes[0].set_title(f"{task}: {entry['description']}", fontsize=9)
        return fig
    if labels is not None and labels.ndim == 2 and labels.shape[1] == 2:
        n = 1 + 2 * len(estimates)
        fig, axes = plt.subplots(2, (n + 1) // 2, figsize=(4 * ((n + 1) // 2), 6))
        axes = axes.ravel()
        lo, hi = truth.min(), truth.max()
        goal = entry.get("goal")
        plotting.maze_map(
            axes[0], labels, truth, title="true $V^\\pi$", vmin=lo, vmax=hi, goal=goal
        )
        errors = {name: np.abs(v.mean(0) - truth) for name, v in estimates.items()}
        worst = max(e.max() for e in errors.values())
        for i, (name, values) in enumerate(estimates.items()):
            mean = values.mean(0)
            plotting.maze_map(
                axes[1 + i], labels, mean, title=name, vmin=lo, vmax=hi, goal=goal
            )
            plotting.maze_map(
                axes[1 + len(estimates) + i],
                labels,
                errors[name],
                title=f"|error| {name}",
                goal=goal,
                vmin=0.0,
                vmax=worst,
                cmap="magma",
            )
        for ax in axes[n:]:
            ax.axis("off")
        fig.suptitle(f"{task}: {entry['description']} (mean over seeds)", fontsize=9)
        return fig
    fig, ax = plt.subplots(figsize=(6, 5))
    plotting.against_truth(ax, truth, estimates)
    ax.set_title(f"{task}: {entry['description']}", fontsize=9)
    return fig


def _write_text(path: str, text: str) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)
