"""The figures of a benchmark run, drawn from its results dict alone.

`write_all` draws one figure per cell (`cell_figure`) and, where the suite
has what they need, the figures across cells: the leakage profile and decay
(cells with distances to a value jump), nMSE against data size (grids over
`episodes`) and the coverage of the ensemble intervals (Adaptive TD methods).
The arithmetic behind them lives in `report` and is tested there.
"""

from __future__ import annotations

import os

import matplotlib.pyplot as plt
import numpy as np
import scipy.stats

from adaptive_td import plotting
from adaptive_td.benchmarks import report

# Nominal interval widths k at which coverage is scored.
WIDTHS = np.linspace(0.0, 4.0, 41)
# At most this many panels in a row.
_COLUMNS = 4


def write_all(results: dict, folder: str | os.PathLike) -> dict[str, str]:
    """Draw every figure into `folder` (created); return the paths by kind."""
    os.makedirs(folder, exist_ok=True)
    paths = {}
    cells = report.cells_of(results)
    for cell_id, name in file_names(cells).items():
        path = os.path.join(folder, f"{name}.png")
        plotting.save(cell_figure(cell_id, cells[cell_id]), path)
        paths[f"figure {cell_id}"] = path
    drawers = {
        "leakage_profile": leakage_profile,
        "leakage_decay": leakage_decay,
        "data_size": data_size,
        "coverage": coverage,
    }
    for name, draw in drawers.items():
        fig = draw(results)
        if fig is not None:
            path = os.path.join(folder, f"{name}.png")
            plotting.save(fig, path)
            paths[name] = path
    return paths


# The names of the figures across cells, which no cell's file may take.
ACROSS = ("leakage_profile", "leakage_decay", "data_size", "coverage")
# Longest file stem of a per-cell figure (file systems allow 255 bytes).
_MAX_STEM = 100


def file_names(cells) -> dict[str, str]:
    """A distinct file stem per cell id: `report.slug` of the id, cut to
    100 characters; where that is empty, taken already (two ids that slug
    alike) or the name of an across-cell figure, the cell's position is
    appended (`-3`)."""
    names, taken = {}, set(ACROSS)
    for position, cell_id in enumerate(cells):
        stem = report.slug(cell_id)[:_MAX_STEM]
        if not stem or stem in taken:
            stem = f"{stem or 'cell'}-{position}"
        taken.add(stem)
        names[cell_id] = stem
    return names


def _panels(count: int, width: float = 4.2, height: float = 3.4):
    columns = min(count, _COLUMNS)
    rows = -(-count // columns)
    fig, axes = plt.subplots(
        rows, columns, figsize=(width * columns, height * rows), squeeze=False
    )
    axes = axes.ravel()
    for ax in axes[count:]:
        ax.axis("off")
    return fig, axes[:count]


def cell_figure(cell_id: str, entry: dict):
    """The figure of one cell, chosen by its labels: integer state indices
    `[M]` draw a chain, integer cells `[M, 2]` a maze; anything else (no
    labels, or simulator states) estimates against true values."""
    truth = np.asarray(entry["true_values"])
    estimates = {
        name: np.asarray(m["estimates"]) for name, m in entry["methods"].items()
    }
    labels = None if entry.get("labels") is None else np.asarray(entry["labels"])
    if labels is not None and labels.dtype.kind not in "iu":
        labels = None
    uses_mc = {
        name: np.asarray(m["uses_mc_target"])
        for name, m in entry["methods"].items()
        if "uses_mc_target" in m
    }
    title = f"{cell_id}: {entry['description']}"
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
        axes[0].set_title(title, fontsize=9)
        return fig
    if labels is not None and labels.ndim == 2 and labels.shape[1] == 2:
        return _maze_figure(title, entry, labels, truth, estimates, uses_mc)
    fig, ax = plt.subplots(figsize=(6, 5))
    plotting.against_truth(ax, truth, estimates)
    ax.set_title(title, fontsize=9)
    return fig


def _maze_figure(title, entry, labels, truth, estimates, uses_mc):
    """True values, then each method's mean estimate, its error and (Adaptive
    TD) the fraction of seeds using MC targets, on shared colour scales."""
    goal = entry.get("goal")
    layout = entry.get("layout")
    shape = None if not layout else (len(layout), len(layout[0]))
    lo, hi = truth.min(), truth.max()
    errors = {name: np.abs(v.mean(0) - truth) for name, v in estimates.items()}
    worst = max(e.max() for e in errors.values())
    panels = [("true $V^\\pi$", truth, dict(vmin=lo, vmax=hi))]
    for name, values in estimates.items():
        panels.append((name, values.mean(0), dict(vmin=lo, vmax=hi)))
    for name in estimates:
        panels.append(
            (
                f"|mean − true| {name}",
                errors[name],
                dict(vmin=0.0, vmax=worst, cmap="magma"),
            )
        )
    for name, used in uses_mc.items():
        fraction = np.atleast_2d(used).astype(float).mean(0)
        panels.append(
            (f"MC targets, {name}", fraction, dict(vmin=0.0, vmax=1.0, cmap="Reds"))
        )
    fig, axes = _panels(len(panels), width=4.0, height=3.0)
    for ax, (name, values, style) in zip(axes, panels):
        plotting.maze_map(
            ax, labels, values, title=name, goal=goal, shape=shape, **style
        )
        ax.title.set_fontsize(9)
    fig.suptitle(f"{title} (mean over seeds)", fontsize=9)
    return fig


def leakage_profile(results: dict):
    """Per cell with distances: MSE against distance from the value jump, one
    line per method, log scale. None if no cell has distances."""
    cells = {
        cell_id: report.leakage_profile(entry)
        for cell_id, entry in report.cells_of(results).items()
    }
    cells = {cell_id: p for cell_id, p in cells.items() if p}
    if not cells:
        return None
    fig, axes = _panels(len(cells))
    for ax, (cell_id, profile) in zip(axes, cells.items()):
        for (name, (d, mse)), color in zip(
            profile.items(), plotting.colors_of(profile).values()
        ):
            ax.semilogy(d, mse, "o-", ms=3, lw=1.4, color=color, label=name)
        if d.min() < 0:
            ax.axvline(-0.5, color="0.6", lw=1, ls="--")
            ax.text(
                -0.5,
                1.0,
                " wall",
                transform=ax.get_xaxis_transform(),
                va="top",
                fontsize=7,
                color="0.4",
            )
        ax.set_title(cell_id, fontsize=9)
        ax.set_xlabel("distance from the value jump (steps; < 0: other side)")
        ax.set_ylabel("MSE (mean over seeds)")
    axes[0].legend(frameon=False, fontsize=8)
    fig.suptitle("Error profile away from the discontinuity", fontsize=10)
    fig.tight_layout()
    return fig


def leakage_decay(results: dict):
    """How TD's error away from the jump changes with the discount, for each
    task label with at least two discounts: top, TD's MSE against distance
    (d >= 0) with one line per discount; bottom, each method's fitted decay
    of MSE per step (`report.decay_rate`) against the discount, with gamma^2
    for reference. None if there is no such label."""
    leakage = report.leakage_rows(results)
    labels = {}
    for r in leakage:
        labels.setdefault(r["label"], []).append(r)
    labels = {k: v for k, v in labels.items() if len({r["gamma"] for r in v}) >= 2}
    if not labels:
        return None
    cells = report.cells_of(results)
    fig, axes = plt.subplots(
        2, len(labels), figsize=(4.6 * len(labels), 7), squeeze=False
    )
    for column, (label, entries) in enumerate(labels.items()):
        top, bottom = axes[0, column], axes[1, column]
        td = [r for r in entries if r["kind"] == "td"]
        shades = plt.get_cmap("viridis")(np.linspace(0.0, 0.85, len(td)))
        for r, shade in zip(sorted(td, key=lambda r: r["gamma"]), shades):
            d, mse = report.leakage_profile(cells[r["cell"]])[r["method"]]
            side = d >= 0
            top.semilogy(
                d[side],
                mse[side],
                "o-",
                ms=2.5,
                lw=1.3,
                color=shade,
                label=f"γ = {r['gamma']:g}",
            )
        top.set_title(f"{label}: TD's error away from the jump", fontsize=9)
        top.set_xlabel("distance from the value jump (steps)")
        top.set_ylabel("MSE (mean over seeds)")
        top.legend(frameon=False, fontsize=7)
        names = list(dict.fromkeys(r["method"] for r in entries))
        for name, color in zip(names, plotting.colors_of(names).values()):
            mine = sorted(
                (r["gamma"], r["decay"]) for r in entries if r["method"] == name
            )
            gammas, decays = zip(*mine)
            bottom.plot(gammas, decays, "o-", color=color, label=name)
        gammas = np.array(sorted({r["gamma"] for r in entries}))
        bottom.plot(gammas, gammas**2, "k:", lw=1, label="$\\gamma^2$")
        bottom.set_xlabel("discount $\\gamma$")
        bottom.set_ylabel("fitted decay of MSE per step")
        bottom.legend(frameon=False, fontsize=7)
    fig.tight_layout()
    return fig


def data_size(results: dict):
    """nMSE against episodes per seed (log-log), one panel per task label
    with at least two data sizes; TD, MC and Adaptive TD solid, the other
    estimators dashed. Intervals over seeds are in table.md (with a few seeds
    they are too wide to draw usefully). None if the suite varies no data
    size."""
    series = report.data_size_series(results)
    if not series:
        return None
    kinds = {
        name: method["kind"]
        for entry in report.cells_of(results).values()
        for name, method in entry["methods"].items()
    }
    fig, axes = _panels(len(series))
    for ax, (label, methods) in zip(axes, series.items()):
        for (name, (n, mean, _, _)), color in zip(
            methods.items(), plotting.colors_of(methods).values()
        ):
            main = kinds.get(name) in ("td", "mc", "adaptive_td")
            style = dict(lw=1.8 if main else 1.0, ls="-" if main else "--")
            ax.plot(n, mean, marker="o", ms=3, color=color, label=name, **style)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xticks(n, [str(int(x)) for x in n])
        ax.minorticks_off()
        ax.set_title(f"{label} (mean over seeds and other settings)", fontsize=9)
        ax.set_xlabel("episodes per seed")
        ax.set_ylabel("nMSE")
    axes[0].legend(frameon=False, fontsize=7)
    fig.tight_layout()
    return fig


def coverage(results: dict):
    """The fraction of evaluation states whose true value lies in the
    ensemble interval mu +- k sigma against k, per Adaptive TD method (mean
    over the cells of each task label), with the Gaussian nominal coverage
    2 Phi(k) - 1 for reference. None if no method stored its ensemble."""
    curves: dict[str, dict[str, list[np.ndarray]]] = {}
    for entry in report.cells_of(results).values():
        label = entry.get("label", entry.get("task"))
        for name, method in entry["methods"].items():
            if "ensemble" in method:
                curve = report.coverage_curve(method, entry["true_values"], WIDTHS)
                curves.setdefault(label, {}).setdefault(name, []).append(curve)
    if not curves:
        return None
    # The colours of the other figures: over all of a cell's methods.
    names = list(next(iter(report.cells_of(results).values()))["methods"])
    colors = plotting.colors_of(names)
    fig, axes = _panels(len(curves))
    for ax, (label, methods) in zip(axes, curves.items()):
        for name, runs in methods.items():
            ax.plot(
                WIDTHS, np.mean(runs, axis=0), color=colors[name], label=name, lw=1.4
            )
        ax.plot(
            WIDTHS,
            2 * scipy.stats.norm.cdf(WIDTHS) - 1,
            "k:",
            lw=1,
            label="Gaussian nominal",
        )
        ax.set_ylim(0, 1.02)
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("interval width k (μ ± kσ of the ensemble)")
        ax.set_ylabel("true value inside the interval")
    axes[0].legend(frameon=False, fontsize=7)
    fig.tight_layout()
    return fig
