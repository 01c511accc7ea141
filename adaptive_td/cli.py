"""The `adaptive-td` command line.

    adaptive-td bench [--suite quick] [--seeds N] [--out DIR] [--resume]
    adaptive-td report DIR
    adaptive-td envs
    adaptive-td fit --data PATH --method METHOD [options] --out DIR
    adaptive-td predict --checkpoint DIR --data PATH [--out FILE]

Progress and tables go to the terminal (rich); files go to `--out`.
"""

from __future__ import annotations

import dataclasses
import errno
import os
import sys
import tempfile
import time
from typing import Any

import click
import numpy as np
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from adaptive_td import checkpoint
from adaptive_td.adaptive import AdaptiveTD, AdaptiveValueFunction
from adaptive_td.estimators import TD, MonteCarlo, NStepTD, TDLambda


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main():
    """Policy evaluation with TD, Monte Carlo and Adaptive TD."""


@main.command()
@click.option(
    "--suite",
    default="quick",
    show_default=True,
    help="A shipped suite name (quick, leakage, paper) or the path of a suite "
    "TOML file.",
)
@click.option(
    "--seeds",
    type=click.IntRange(min=1),
    default=None,
    help="Number of seeds; overrides the suite's.",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    default="bench-out",
    show_default=True,
    help="Folder for results.json, table.md, table.csv, summary.md and figures/.",
)
@click.option(
    "--resume",
    is_flag=True,
    help="Reuse the cells an interrupted run of the same suite and seeds "
    "finished in --out (OUT/cells/) instead of computing them again.",
)
def bench(suite, seeds, out, resume):
    """Run a benchmark suite and report normalised MSE per cell and method."""
    from adaptive_td.benchmarks import report, runner
    from adaptive_td.benchmarks import suite as suite_lib

    console = Console(stderr=True)
    try:
        spec = suite_lib.load(suite)
    except (ValueError, OSError) as error:
        raise click.ClickException(str(error)) from None
    # The output folder is checked before the run, not after it.
    try:
        _prepare_out(out)
    except OSError as error:
        raise click.ClickException(_out_error(out, error)) from None

    earlier = len(runner.cell_files(out))
    if earlier and not resume:
        console.print(
            f"{out} holds {earlier} finished cells of an earlier run; this run "
            "replaces them (--resume would reuse them)."
        )
    start = time.perf_counter()
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} fits"),
        TimeElapsedColumn(),
        TextColumn("left"),
        TimeRemainingColumn(),
        console=console,
    ) as progress:
        bar = progress.add_task(f"suite {spec.name}", total=None)

        def on_progress(p):
            what = "collecting data and ground truth" if p.method is None else p.method
            cells = f"cell {p.cells_done + 1}/{p.cells_total}"
            description = escape(
                f"{cells} {p.cell}: {what}" if p.cell else f"suite {spec.name}: done"
            )
            progress.update(
                bar, completed=p.done, total=p.total, description=description
            )

        try:
            results = runner.run(
                spec, seeds=seeds, out_dir=out, resume=resume, on_progress=on_progress
            )
        except ValueError as error:
            # --resume over another configuration's cells.
            raise click.ClickException(str(error)) from None

    try:
        paths = report.write(results, out)
    except OSError as error:
        raise click.ClickException(_out_error(out, error)) from None
    _print_table(Console(), report.rows(results), results["config"]["seeds"])
    console.print(f"finished in {time.perf_counter() - start:.0f} s; files in {out}:")
    _print_paths(console, paths)


@main.command("report")
@click.argument("folder", type=click.Path(file_okay=False))
def report_command(folder):
    """Re-render the tables and figures of FOLDER from its results.json."""
    from adaptive_td.benchmarks import report

    try:
        results = report.load(folder)
        paths = report.write(results, folder)
    except ValueError as error:
        raise click.ClickException(str(error)) from None
    except OSError as error:
        raise click.ClickException(_out_error(folder, error)) from None
    console = Console(stderr=True)
    _print_table(Console(), report.rows(results), results["config"]["seeds"])
    console.print(f"re-rendered {len(paths)} files in {folder}:")
    _print_paths(console, paths)


def _print_paths(console, paths):
    """The files written, with the per-cell figures counted, not listed."""
    cells = [p for kind, p in paths.items() if kind.startswith("figure ")]
    for kind, path in paths.items():
        if not kind.startswith("figure "):
            console.print(f"  {path}")
    if cells:
        folder = os.path.dirname(cells[0])
        console.print(f"  {folder}/: {len(cells)} per-cell figures")


@main.command()
def envs():
    """List the registered tasks."""
    from adaptive_td import envs as envs_lib

    for name, (_, description) in envs_lib.TASKS.items():
        click.echo(f"{name:12s} {description}")


def _prepare_out(out):
    """Create `out` and check that a file can be written in it."""
    os.makedirs(out, exist_ok=True)
    try:
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as error:
        # Name the folder, not the probe file.
        raise OSError(error.errno, error.strerror, out) from error


def _out_error(out, error: OSError) -> str:
    reason = error.strerror or str(error)
    if error.filename is not None and os.fspath(error.filename) != os.fspath(out):
        reason += f" ({error.filename})"
    return f"cannot write results to --out {os.fspath(out)!r}: {reason}."


# The terminal table: table.md's columns less the fit seconds (the last one),
# with short headers, so that it fits 80 columns without wrapping.
_TERMINAL_HEADERS = ("cell", "method", "nMSE", "95% interval", "rank", "÷ best", "MC")


# Longer tables are left to table.md.
_TERMINAL_ROWS = 60


def _print_table(console, rows, num_seeds):
    from adaptive_td.benchmarks import report

    _, body = report.formatted(rows, num_seeds)
    table = Table(
        title=f"normalised MSE against ground truth: mean and 95% interval over "
        f"{num_seeds} seeds",
        caption="rank: within the cell; ÷ best: mean nMSE over the better of TD's "
        "and MC's; MC: Adaptive TD's share of Monte Carlo targets; fit seconds "
        "in table.md",
    )
    for i, column in enumerate(_TERMINAL_HEADERS):
        table.add_column(
            column,
            justify="left" if i < 2 else "right",
            no_wrap=i >= 2,
            overflow="fold",
        )
    if len(body) > _TERMINAL_ROWS:
        console.print(
            f"{len(body)} rows: the full table is in table.md and table.csv, the "
            "summary in summary.md."
        )
        return
    for row in body:
        # Text, not markup: cell ids hold brackets ("chain[gamma=0.9]").
        table.add_row(*(Text(value) for value in row[: len(_TERMINAL_HEADERS)]))
    console.print(table)


# -- fit and predict: the user's own trajectories -------------------------------

# Method-specific options: the method, the estimator argument, the flag and
# its default.
_METHOD_OPTIONS = (
    ("td-lambda", "lambda_", "--lambda", 0.9),
    ("n-step", "n", "--n", 5),
    ("adaptive-td", "ensemble_size", "--ensemble-size", 5),
    ("adaptive-td", "interval_width", "--interval-width", 1.0),
)


_ESTIMATORS = {
    "td": TD,
    "mc": MonteCarlo,
    "td-lambda": TDLambda,
    "n-step": NStepTD,
    "adaptive-td": AdaptiveTD,
}


@dataclasses.dataclass
class _Rows:
    """Transitions read from a file, and their rows for the output table.

    `observations[i]` is s_t of `table` row i, in the file's row order.
    """

    trajectories: Any
    table: Any
    observations: np.ndarray
    episode_ids: np.ndarray


@main.command()
@click.option(
    "--data",
    type=click.Path(exists=True, dir_okay=False),
    required=True,
    help="Transitions: a .parquet file (one row per transition, the schema of "
    "adaptive_td.datasets.from_dataframe) or a .npz file written by "
    "Trajectories.save.",
)
@click.option(
    "--method",
    type=click.Choice(checkpoint.METHODS),
    required=True,
    help="td: TD(0); mc: Monte Carlo regression; td-lambda: lambda-returns; "
    "n-step: n-step TD; adaptive-td: TD falling back to MC outside an MC "
    "ensemble's interval.",
)
@click.option(
    "--gamma",
    type=click.FloatRange(0.0, 1.0),
    default=0.99,
    show_default=True,
    help="Discount factor.",
)
@click.option(
    "--network",
    type=click.Choice(("mlp", "linear", "tabular")),
    default="mlp",
    show_default=True,
    help="mlp: ReLU layers of --hidden sizes; linear: on the flattened "
    "observation; tabular: one value per integer state index.",
)
@click.option(
    "--hidden",
    default=None,
    help="Hidden layer sizes of the mlp, comma-separated.  [default: 64,64]",
)
@click.option(
    "--num-states",
    type=click.IntRange(min=1),
    default=None,
    help="Size of the tabular network's table.  [default: the largest state "
    "index in the data + 1]",
)
@click.option(
    "--steps",
    type=click.IntRange(min=1),
    default=2000,
    show_default=True,
    help="Training steps (for adaptive-td: of each ensemble member, then of "
    "the TD network).",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=128,
    show_default=True,
    help="Transitions per minibatch.",
)
@click.option(
    "--learning-rate",
    type=click.FloatRange(min=0.0, min_open=True),
    default=1e-3,
    show_default=True,
    help="Adam learning rate.",
)
@click.option(
    "--lambda",
    "lambda_",
    type=click.FloatRange(0.0, 1.0),
    default=None,
    help="td-lambda only: the trace parameter.  [default: 0.9]",
)
@click.option(
    "--n",
    type=click.IntRange(min=1),
    default=None,
    help="n-step only: rewards per window.  [default: 5]",
)
@click.option(
    "--ensemble-size",
    type=click.IntRange(min=2),
    default=None,
    help="adaptive-td only: Monte Carlo ensemble members.  [default: 5]",
)
@click.option(
    "--interval-width",
    type=click.FloatRange(min=0.0, min_open=True),
    default=None,
    help="adaptive-td only: k of the interval mean +- k std.  [default: 1.0]",
)
@click.option(
    "--seed",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Seed of initialisation and minibatches.",
)
@click.option(
    "--extra-columns",
    type=click.Choice(("raise", "ignore")),
    default="raise",
    show_default=True,
    help="Parquet columns outside the schema: reject them, or leave them out "
    "of the fit (they are still copied to values.parquet).",
)
@click.option(
    "--allow-unfinished",
    is_flag=True,
    help="Accept episodes whose last step is neither terminated nor truncated "
    "(a log cut mid-episode); they bootstrap from their last next observation.",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    required=True,
    help="Folder for values.parquet, checkpoint/ and loss.png.",
)
def fit(
    data,
    method,
    gamma,
    network,
    hidden,
    num_states,
    steps,
    batch_size,
    learning_rate,
    lambda_,
    n,
    ensemble_size,
    interval_width,
    seed,
    extra_columns,
    allow_unfinished,
    out,
):
    """Fit a value estimator to the transitions in --data.

    Writes into --out: values.parquet (the input's transitions, in the
    file's row order with all its columns, plus `value`, the estimate of
    V(s_t), and for adaptive-td `interval_low` and `interval_high`),
    checkpoint/ (for `adaptive-td predict` and adaptive_td.checkpoint.load)
    and loss.png (the training loss).
    """
    import optax

    given = dict(
        lambda_=lambda_, n=n, ensemble_size=ensemble_size, interval_width=interval_width
    )
    options = {}
    for owner, name, flag, default in _METHOD_OPTIONS:
        if owner == method:
            options[name] = default if given[name] is None else given[name]
        elif given[name] is not None:
            raise click.UsageError(
                f"{flag} applies to --method {owner} only, not {method}.",
            )
    if network != "mlp" and hidden is not None:
        raise click.UsageError(
            f"--hidden applies to --network mlp only, not {network}.",
        )
    if network != "tabular" and num_states is not None:
        raise click.UsageError(
            f"--num-states applies to --network tabular only, not {network}.",
        )
    hidden_sizes = _hidden_sizes("64,64" if hidden is None else hidden)

    rows = _read_rows(data, extra_columns=extra_columns, unfinished=allow_unfinished)
    _print_summary(Console(), data, rows)
    spec = _network_spec(network, hidden_sizes, num_states, rows)
    try:
        _prepare_out(out)
    except OSError as error:
        raise click.ClickException(_out_error(out, error)) from None

    config = {
        "method": method,
        "network": spec,
        "gamma": gamma,
        "options": {
            "steps": steps,
            "batch_size": batch_size,
            "optimizer": "adam",
            "learning_rate": learning_rate,
            "seed": seed,
            **options,
        },
    }
    console = Console(stderr=True)
    what = f"{steps} steps of batch {batch_size}"
    if method == "adaptive-td":
        what = f"{options['ensemble_size']} MC members, then TD; {what} each"
    start = time.perf_counter()
    with console.status(f"fitting {method} ({what}) ..."):
        try:
            estimator = _ESTIMATORS[method](
                checkpoint.network(spec),
                optax.adam(learning_rate),
                gamma=gamma,
                steps=steps,
                batch_size=batch_size,
                **options,
            )
            value_fn = estimator.fit(rows.trajectories, key=seed)
        except ValueError as error:
            raise click.ClickException(str(error)) from None
    loss = np.asarray(value_fn.history["loss"])
    console.print(
        f"fitted {method} in {time.perf_counter() - start:.1f} s; loss "
        f"{loss[0]:.4g} at the first step, {loss[-1]:.4g} at the last.",
        soft_wrap=True,
    )

    paths = [
        os.path.join(out, "values.parquet"),
        os.path.join(out, "checkpoint"),
        os.path.join(out, "loss.png"),
    ]
    try:
        _write_values(paths[0], rows.table, _values(value_fn, rows.observations))
        checkpoint.save(paths[1], config, value_fn)
        _plot_loss(paths[2], value_fn.history, f"{method} on {os.path.basename(data)}")
    except OSError as error:
        raise click.ClickException(_out_error(out, error)) from None
    console.print(f"files in {out}:", markup=False, highlight=False, soft_wrap=True)
    for path in paths:
        console.print(f"  {path}", markup=False, highlight=False, soft_wrap=True)


@main.command()
@click.option(
    "--checkpoint",
    "checkpoint_dir",
    type=click.Path(),
    required=True,
    help="A checkpoint folder written by `adaptive-td fit` (OUT/checkpoint).",
)
@click.option(
    "--data",
    type=click.Path(exists=True, dir_okay=False),
    required=True,
    help="Observations: a .parquet file of transitions (the schema of "
    "adaptive_td.datasets.from_dataframe), a .npz file written by "
    "Trajectories.save, or a .npy array [N, *obs_shape].",
)
@click.option(
    "--out",
    type=click.Path(),
    default="predictions.parquet",
    show_default=True,
    help="The Parquet file to write; an existing folder gets "
    "predictions.parquet inside it.",
)
def predict(checkpoint_dir, data, out):
    """Evaluate a fitted value function on the observations in --data.

    Writes a Parquet file with the input's rows (for .npy input, one
    `observation` column) and `value`, plus `interval_low` and
    `interval_high` for an adaptive-td checkpoint. Columns outside the
    transition schema are copied, not rejected; episodes need not end with a
    flag.

    Observations must have the checkpoint's shape. Observations of another
    dtype than the checkpoint's are converted to it only when that changes no
    value (e.g. int8 state indices for an int32 checkpoint, or float64 values
    that float32 holds exactly); otherwise (float64 values that float32 would
    round, integers out of range) predict stops and names both dtypes, and
    the data must be converted on purpose first. Floats are never accepted
    for an integer (tabular) checkpoint.
    """
    try:
        value_fn = checkpoint.load(checkpoint_dir)
    except ValueError as error:
        raise click.ClickException(str(error)) from None
    rows = _read_rows(data, extra_columns="ignore", unfinished=True, arrays=True)
    shape = tuple(rows.observations.shape[1:])
    if shape != tuple(value_fn.obs_shape):
        raise click.ClickException(
            f"{data} has observations of shape {shape}; the checkpoint "
            f"{checkpoint_dir} was fitted on observations of shape "
            f"{tuple(value_fn.obs_shape)}."
        )
    observations = rows.observations
    dtype = np.dtype(value_fn.obs_dtype)
    # Floats for an integer checkpoint are left to the value function, which
    # rejects them; any other conversion must give back every value exactly.
    if observations.dtype != dtype and not (
        np.issubdtype(dtype, np.integer) and observations.dtype.kind == "f"
    ):
        with np.errstate(over="ignore", invalid="ignore"):
            cast = observations.astype(dtype)
            back = cast.astype(observations.dtype)
        changed = back != observations
        if observations.dtype.kind == "f":
            changed &= ~(np.isnan(back) & np.isnan(observations))
        if changed.any():
            at = tuple(int(k) for k in np.argwhere(changed)[0])
            element = f"[{', '.join(map(str, at[1:]))}]" if at[1:] else ""
            raise click.ClickException(
                f"{data} has observations of dtype {observations.dtype}; the "
                f"checkpoint {checkpoint_dir} was fitted on {dtype} observations, "
                f"and converting to {dtype} would change their values (row "
                f"{at[0]}: observation{element} {observations[at].item()!r} "
                f"would become {cast[at].item()!r}). Convert the data to {dtype} "
                "first if that is intended."
            )
        observations = cast
    try:
        values = _values(value_fn, observations)
    except ValueError as error:
        raise click.ClickException(str(error)) from None

    if os.path.isdir(out):
        out = os.path.join(out, "predictions.parquet")
    folder = os.path.dirname(out) or "."
    try:
        if os.path.exists(folder) and not os.path.isdir(folder):
            raise NotADirectoryError(errno.ENOTDIR, f"{folder} is not a folder")
        os.makedirs(folder, exist_ok=True)
        _write_values(out, rows.table, values)
    except OSError as error:
        reason = error.strerror or str(error)
        raise click.ClickException(
            f"cannot write predictions to --out {out!r}: {reason}."
        ) from None
    console = Console(stderr=True)
    console.print(
        f"{len(rows.observations)} values from {checkpoint_dir} written to {out} "
        f"(columns {', '.join(values)}).",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )


def _hidden_sizes(text) -> tuple[int, ...]:
    """'64,64' as (64, 64)."""
    try:
        sizes = tuple(int(part) for part in text.split(","))
    except ValueError:
        sizes = ()
    if not sizes or any(size < 1 for size in sizes):
        raise click.BadParameter(
            f"{text!r}; expected layer sizes >= 1 separated by commas, e.g. 64,64.",
            param_hint="--hidden",
        )
    return sizes


def _read_rows(path, *, extra_columns, unfinished, arrays=False) -> _Rows:
    """Read transitions from Parquet or .npz (or, with `arrays`, observations
    from .npy); any problem with the file is a one-line ClickException."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from adaptive_td import datasets
    from adaptive_td.data import Trajectories

    kinds = (
        "a .parquet (or .pq), .npz or .npy" if arrays else "a .parquet (or .pq) or .npz"
    )
    extension = os.path.splitext(path)[1].lower()
    try:
        if extension in (".parquet", ".pq"):
            trajectories = datasets.read_parquet(
                path, extra_columns=extra_columns, allow_unfinished=unfinished
            )
            table = pq.read_table(path)
            ids = table.column("episode_id").to_numpy(zero_copy_only=False)
            steps = table.column("step").to_numpy(zero_copy_only=False)
            # read_parquet holds episodes in increasing id order, step t at t.
            episode = np.searchsorted(np.unique(ids), ids)
            observations = np.asarray(trajectories.observations)[episode, steps]
        elif extension == ".npz":
            trajectories = Trajectories.load(path)
            columns = datasets.transition_columns(trajectories)
            table = datasets.arrow_table(columns)
            observations = columns["observation"]
            ids = columns["episode_id"]
        elif extension == ".npy" and arrays:
            observations = np.load(path, allow_pickle=False)
            if observations.ndim == 0 or observations.dtype.kind not in "biuf":
                raise ValueError(
                    f"{path} holds an array of shape {observations.shape} and "
                    f"dtype {observations.dtype}; expected observations "
                    "[N, *obs_shape] of numbers."
                )
            trajectories, ids = None, None
            table = datasets.arrow_table({"observation": observations})
        else:
            raise click.ClickException(
                f"--data {path}: unknown file type {extension or '(none)'!r}; "
                f"expected {kinds} file."
            )
    except (ValueError, OSError, pa.ArrowException) as error:
        message = str(error).strip().replace("\n", " ")
        for python, flag in (
            ("extra_columns='ignore'", "--extra-columns ignore"),
            ("allow_unfinished=True", "--allow-unfinished"),
        ):
            if python in message:
                message += f" (On the command line: {flag}.)"
        raise click.ClickException(message) from None
    return _Rows(trajectories, table, observations, ids)


def _print_summary(console, path, rows: _Rows) -> None:
    """Episodes, transitions, episode lengths and ends of the data."""
    summary = rows.trajectories.summary()
    _, lengths = np.unique(rows.episode_ids, return_counts=True)
    obs = rows.observations
    table = Table(title=Text(f"data: {path}"), show_header=False)
    table.add_column("", justify="left")
    table.add_column("", justify="right")
    for name, value in (
        ("episodes", f"{len(lengths)}"),
        ("transitions", f"{summary['steps']}"),
        (
            "episode length (min / mean / max)",
            f"{lengths.min()} / {lengths.mean():.1f} / {lengths.max()}",
        ),
        ("terminated", f"{summary['terminated']}"),
        ("truncated", f"{summary['truncated']}"),
        ("cut mid-episode", f"{summary['cut_segments']}"),
        ("observation shape, dtype", f"{tuple(obs.shape[1:])}, {obs.dtype}"),
    ):
        table.add_row(Text(name), Text(value))
    console.print(table)


def _network_spec(network, hidden_sizes, num_states, rows: _Rows) -> dict:
    """The checkpoint's network spec for the --network options and the data."""
    if network == "mlp":
        return {"kind": "mlp", "hidden_sizes": list(hidden_sizes)}
    if network == "linear":
        return {"kind": "linear"}
    traj = rows.trajectories
    obs = np.asarray(traj.observations)
    if obs.dtype.kind not in "iu" or obs.ndim != 2:
        raise click.ClickException(
            f"--network tabular needs one integer state index per observation; "
            f"the data has observations of shape {tuple(obs.shape[2:])} and dtype "
            f"{obs.dtype}. Use --network mlp or linear."
        )
    # The states of every step, s_t and s_{t+1}, terminal ones included; not
    # the padding.
    mask = np.asarray(traj.mask)
    read = np.zeros(obs.shape, bool)
    read[:, :-1] |= mask
    read[:, 1:] |= mask
    smallest, largest = int(obs[read].min()), int(obs[read].max())
    if smallest < 0 or (num_states is not None and largest >= num_states):
        raise click.ClickException(
            f"--network tabular: the data has state indices from {smallest} to "
            f"{largest}; expected 0 to --num-states - 1"
            + (f" = {num_states - 1}." if num_states is not None else ".")
        )
    return {
        "kind": "tabular",
        "num_states": largest + 1 if num_states is None else num_states,
    }


def _values(value_fn, observations) -> dict[str, np.ndarray]:
    """`value` (and the interval of an adaptive-td fit) per observation."""
    columns = {"value": np.asarray(value_fn(observations))}
    if isinstance(value_fn, AdaptiveValueFunction):
        low, high = value_fn.interval(observations)
        columns["interval_low"] = np.asarray(low)
        columns["interval_high"] = np.asarray(high)
    return columns


def _write_values(path, table, columns: dict[str, np.ndarray]) -> None:
    """`table` with `columns` added (replacing columns of the same names),
    written to the Parquet file `path` via a temporary name."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    for name, values in columns.items():
        if name in table.column_names:
            table = table.drop_columns([name])
        table = table.append_column(name, pa.array(values))
    tmp = path + ".tmp"
    pq.write_table(table, tmp)
    os.replace(tmp, path)


def _plot_loss(path, history, title) -> None:
    """The training loss per step on a log scale (and the ensemble's)."""
    from adaptive_td import plotting

    fig, ax = plotting.plt.subplots(figsize=(6, 3.5))
    if "ensemble_loss" in history:
        for i, member in enumerate(np.asarray(history["ensemble_loss"])):
            label = "MC ensemble members" if i == 0 else None
            ax.plot(member, color="0.6", lw=0.7, label=label)
        ax.plot(history["loss"], lw=1.2, label="TD network")
        ax.legend(frameon=False)
    else:
        ax.plot(history["loss"], lw=1.2)
    ax.set_yscale("log")
    ax.set_xlabel("training step")
    ax.set_ylabel("minibatch loss, mean of (V - target)² / 2")
    ax.set_title(title)
    plotting.save(fig, path)


if __name__ == "__main__":
    sys.exit(main())
