"""Figures of value functions: along a chain, on a maze, against the truth.

Every function draws on matplotlib axes the caller owns and returns them, so
figures compose; `save` writes a figure to PNG with the non-interactive Agg
backend.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def chain_values(ax, positions, true_values, estimates: Mapping[str, np.ndarray]):
    """True values along a chain beside each method's estimates.

    `estimates[name]` is `[M]` or `[S, M]` (seeds): the mean is drawn as a line
    and each seed faintly.
    """
    order = np.argsort(positions)
    x = np.asarray(positions)[order]
    ax.plot(x, np.asarray(true_values)[order], "k-", lw=2.5, label="true $V^\\pi$")
    for (name, values), color in zip(estimates.items(), colors_of(estimates).values()):
        values = np.atleast_2d(np.asarray(values))[:, order]
        for row in values:
            ax.plot(x, row, color=color, lw=0.7, alpha=0.3)
        ax.plot(x, values.mean(0), color=color, lw=1.8, label=name)
    ax.set_xlabel("state")
    ax.set_ylabel("value")
    _legend(ax)
    return ax


def chain_errors(ax, positions, true_values, estimates: Mapping[str, np.ndarray]):
    """Absolute error along a chain (mean over seeds), on a log scale."""
    order = np.argsort(positions)
    x = np.asarray(positions)[order]
    truth = np.asarray(true_values)[order]
    for (name, values), color in zip(estimates.items(), colors_of(estimates).values()):
        values = np.atleast_2d(np.asarray(values))[:, order]
        ax.semilogy(x, np.abs(values - truth).mean(0), color=color, lw=1.8, label=name)
    ax.set_xlabel("state")
    ax.set_ylabel("|error|, mean over seeds")
    _legend(ax)
    return ax


def chain_mc_usage(ax, positions, uses_mc: Mapping[str, np.ndarray], colors=None):
    """Where Adaptive TD trains on MC targets: the fraction of seeds per state.

    `uses_mc[name]` is `[S, M]` bool (or `[M]`); `colors[name]` optionally
    matches the bars to the lines of the other panels.
    """
    order = np.argsort(positions)
    x = np.asarray(positions)[order]
    width = 0.8 / max(1, len(uses_mc))
    for i, (name, used) in enumerate(uses_mc.items()):
        used = np.atleast_2d(np.asarray(used, float))[:, order]
        offset = (i - (len(uses_mc) - 1) / 2) * width
        color = None if colors is None else colors[name]
        ax.bar(x + offset, used.mean(0), width, label=name, color=color)
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("state")
    ax.set_ylabel("MC target used\n(fraction of seeds)")
    _legend(ax)
    return ax


def grid(cells, values, shape=None) -> np.ndarray:
    """Scatter per-cell values into a 2-D array, NaN where no cell is given."""
    cells = np.asarray(cells, int)
    if shape is None:
        # As wide a margin after the last cell as before the first.
        shape = tuple(cells.max(0) + cells.min(0) + 1)
    out = np.full(shape, np.nan)
    out[cells[:, 0], cells[:, 1]] = values
    return out


def maze_map(
    ax,
    cells,
    values,
    *,
    title="",
    vmin=None,
    vmax=None,
    cmap="viridis",
    goal=None,
    shape=None,
):
    """A value map of a grid maze; cells without a value (walls) are grey.

    `goal`, a `(row, col)` cell, is marked with a "G" (it has no value of its
    own: it is terminal). `shape`, the layout's (rows, columns), sizes the map;
    without it the map spans the cells with a margin as wide as the first
    cell's (right for layouts framed by one wall all round).
    """
    image = np.ma.masked_invalid(grid(cells, values, shape))
    if goal is not None:
        ax.text(goal[1], goal[0], "G", ha="center", va="center", color="white")
    colormap = plt.get_cmap(cmap).copy()
    colormap.set_bad("0.25")
    shown = ax.imshow(image, cmap=colormap, vmin=vmin, vmax=vmax)
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])
    # Arrows on the colour bar where values lie outside [vmin, vmax].
    finite = image.compressed()
    below = vmin is not None and finite.size > 0 and finite.min() < vmin
    above = vmax is not None and finite.size > 0 and finite.max() > vmax
    extend = (
        "both" if below and above else "min" if below else "max" if above else "neither"
    )
    plt.colorbar(shown, ax=ax, fraction=0.046, pad=0.04, extend=extend)
    return ax


def against_truth(ax, true_values, estimates: Mapping[str, np.ndarray]):
    """Estimated against true values (all seeds), with the identity line."""
    truth = np.asarray(true_values)
    for (name, values), color in zip(estimates.items(), colors_of(estimates).values()):
        values = np.atleast_2d(np.asarray(values))
        ax.scatter(
            np.broadcast_to(truth, values.shape),
            values,
            s=5,
            alpha=0.4,
            color=color,
            label=name,
        )
    low, high = truth.min(), truth.max()
    ax.plot([low, high], [low, high], "k--", lw=1, label="identity")
    ax.set_xlabel("true $V^\\pi$")
    ax.set_ylabel("estimate")
    _legend(ax, markerscale=3)
    return ax


def _legend(ax, **kwargs):
    """A legend inside the axes for a few entries, beside them for many (so
    that it hides no data)."""
    entries = len(ax.get_legend_handles_labels()[1])
    if entries > 4:
        ax.legend(
            frameon=False,
            fontsize=7,
            loc="upper left",
            bbox_to_anchor=(1.01, 1.0),
            **kwargs,
        )
    else:
        ax.legend(frameon=False, **kwargs)


def save(fig, path: str | os.PathLike) -> None:
    """Write `fig` to PNG atomically and close it."""
    path = os.fspath(path)
    tmp = path + ".tmp.png"
    fig.savefig(tmp, dpi=120, bbox_inches="tight")
    os.replace(tmp, path)
    plt.close(fig)


def colors_of(names) -> dict[str, str]:
    """The colour of each of `names` in the figures here: matplotlib's default
    cycle for up to 10 names, tab20 for up to 20, repeating beyond that."""
    names = list(names)
    if len(names) <= 10:
        palette = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    else:
        palette = [matplotlib.colors.to_hex(c) for c in plt.get_cmap("tab20").colors]
    return {name: palette[i % len(palette)] for i, name in enumerate(names)}
