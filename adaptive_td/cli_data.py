"""`adaptive-td fit` and `adaptive-td predict`: the user's own trajectories.

    adaptive-td fit --data PATH --method METHOD [options] --out DIR
    adaptive-td predict --checkpoint DIR --data PATH [--out FILE]

Both read --data through `adaptive_td.streaming`: a Parquet file in chunks of
whole episodes (`--chunk-size` rows), a `.npz` file or a folder of `.npz`
shards one file at a time, so neither holds more than a chunk in memory. A
data set of at most one chunk is fitted exactly as `estimator.fit` fits it in
memory; a larger one is fitted chunk by chunk (`streaming.fit`). Values are
written chunk by chunk into one Parquet file, next to the input's rows.
"""

from __future__ import annotations

import os
import time

import click
import numpy as np
from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from adaptive_td import checkpoint, outdir, streaming, training
from adaptive_td.adaptive import AdaptiveTD
from adaptive_td.estimators import TD, MonteCarlo, NStepTD, TDLambda

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


@click.command()
@click.option(
    "--data",
    type=click.Path(exists=True),
    required=True,
    help="Transitions: a .parquet file (one row per transition, the schema of "
    "adaptive_td.datasets.from_dataframe), a .npz file written by "
    "Trajectories.save, or a folder of such .npz files (shards, read in name "
    "order).",
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
    "--epochs",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Passes over the data; the --steps updates are shared among the "
    "chunks of all passes in proportion to their transitions.",
)
@click.option(
    "--chunk-size",
    type=click.IntRange(min=1),
    default=streaming.DEFAULT_CHUNK_SIZE,
    show_default=True,
    help="Parquet rows (transitions) read and trained on at a time; a chunk "
    "ends at an episode boundary. Data of at most this many rows is fitted in "
    "one piece, exactly as in memory.",
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
    epochs,
    chunk_size,
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

    Data larger than --chunk-size rows is read and trained on one chunk of
    whole episodes at a time, with bounded memory: the --steps updates (of
    each run; adaptive-td trains its ensemble, then its TD network) are
    shared among the chunks of --epochs passes, in proportion to their
    transitions, and each chunk's minibatches are drawn from that chunk.
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

    console = Console(stderr=True)
    with _progress(console, "rows") as progress:
        bar = progress.add_task(f"checking {os.path.basename(data)}", total=None)
        source = _source(
            data,
            chunk_size=chunk_size,
            extra_columns=extra_columns,
            unfinished=allow_unfinished,
            progress=lambda done, total: progress.update(
                bar, completed=done, total=total
            ),
        )
    _print_summary(Console(), data, source)
    _check_no_value_columns(source, data)
    spec = _network_spec(network, hidden_sizes, num_states, source)
    data_dtype = np.dtype(source.summary["obs_dtype"])
    network_dtype = np.dtype(training._obs_dtype(data_dtype))
    if data_dtype != network_dtype:
        console.print(
            f"note: the observations ({data_dtype}) reach the network as "
            f"{network_dtype}, as in every estimator; predict takes {data_dtype} "
            "data for this checkpoint the same way.",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
    try:
        outdir.prepare(out)
    except OSError as error:
        raise click.ClickException(outdir.error(out, error)) from None

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
            "epochs": epochs,
            "chunk_size": chunk_size,
            "data_obs_dtype": data_dtype.name,
            **options,
        },
    }
    try:
        estimator = _ESTIMATORS[method](
            checkpoint.network(spec),
            optax.adam(learning_rate),
            gamma=gamma,
            steps=steps,
            batch_size=batch_size,
            **options,
        )
    except ValueError as error:
        raise click.ClickException(str(error)) from None
    what = f"{steps} updates of batch {batch_size}"
    if method == "adaptive-td":
        what = f"{options['ensemble_size']} MC members, then TD; {what} each"
    start = time.perf_counter()
    with _progress(console, "updates") as progress:
        bar = progress.add_task(f"fitting {method} ({what})", total=None)
        try:
            value_fn = streaming.fit(
                estimator,
                source,
                key=seed,
                epochs=epochs,
                progress=lambda done, total: progress.update(
                    bar, completed=done, total=total
                ),
            )
        except (ValueError, OSError) as error:
            raise click.ClickException(_message(error)) from None
    seconds = time.perf_counter() - start
    loss = np.asarray(value_fn.history["loss"])
    updates = steps * (2 if method == "adaptive-td" else 1)
    drawn = steps * batch_size / source.summary["transitions"]
    console.print(
        f"fitted {method} in {seconds:.1f} s ({updates / seconds:.0f} updates/s; "
        f"each transition drawn {drawn:.3g} times on average); loss {loss[0]:.4g} "
        f"at the first update, {loss[-1]:.4g} at the last.",
        soft_wrap=True,
        highlight=False,
    )

    paths = [
        os.path.join(out, "values.parquet"),
        os.path.join(out, "checkpoint"),
        os.path.join(out, "loss.png"),
    ]
    try:
        with _ParquetRows(paths[0]) as rows:
            for chunk, columns in streaming.evaluate(value_fn, source):
                rows.write(chunk.table, columns)
        checkpoint.save(paths[1], config, value_fn)
        _plot_loss(paths[2], value_fn.history, f"{method} on {os.path.basename(data)}")
    except OSError as error:
        raise click.ClickException(outdir.error(out, error)) from None
    except ValueError as error:
        raise click.ClickException(_message(error)) from None
    console.print(f"files in {out}:", markup=False, highlight=False, soft_wrap=True)
    for path in paths:
        console.print(f"  {path}", markup=False, highlight=False, soft_wrap=True)


@click.command()
@click.option(
    "--checkpoint",
    "checkpoint_dir",
    type=click.Path(),
    required=True,
    help="A checkpoint folder written by `adaptive-td fit` (OUT/checkpoint).",
)
@click.option(
    "--data",
    type=click.Path(exists=True),
    required=True,
    help="Observations: a .parquet file of transitions (the schema of "
    "adaptive_td.datasets.from_dataframe), a .npz file written by "
    "Trajectories.save or a folder of them, or a .npy array [N, *obs_shape].",
)
@click.option(
    "--chunk-size",
    type=click.IntRange(min=1),
    default=streaming.DEFAULT_CHUNK_SIZE,
    show_default=True,
    help="Rows read and evaluated at a time.",
)
@click.option(
    "--out",
    type=click.Path(),
    default="predictions.parquet",
    show_default=True,
    help="The Parquet file to write; an existing folder gets "
    "predictions.parquet inside it.",
)
def predict(checkpoint_dir, data, chunk_size, out):
    """Evaluate a fitted value function on the observations in --data.

    Writes a Parquet file with the input's rows (for .npy input, one
    `observation` column) and `value`, plus `interval_low` and
    `interval_high` for an adaptive-td checkpoint (input columns of those
    names, such as those of fit's values.parquet, are replaced, and the
    message says so). Columns outside the transition schema are copied, not
    rejected; episodes need not end with a flag. The data is read and
    evaluated --chunk-size rows at a time; as for fit, a Parquet file of
    more rows needs each episode's rows together.

    Observations must have the checkpoint's shape. Observations of another
    dtype than the checkpoint's are converted to it when they have the dtype
    of the data the checkpoint was fitted on (fit converted those the same
    way: float64 observations reach the networks as float32), or when the
    conversion changes no value (e.g. int8 state indices for an int32
    checkpoint, or float64 values that float32 holds exactly); otherwise
    (float64 values that float32 would round for a checkpoint fitted on
    float32 data, integers out of range) predict stops and names both
    dtypes, and the data must be converted on purpose first. Floats are never
    accepted for an integer (tabular) checkpoint.
    """
    try:
        value_fn = checkpoint.load(checkpoint_dir)
        config = checkpoint.read_config(checkpoint_dir)
        fitted_on = config["options"].get("data_obs_dtype")
        num_states = config["network"].get("num_states")
    except ValueError as error:
        raise click.ClickException(str(error)) from None
    if os.path.isdir(out):
        out = os.path.join(out, "predictions.parquet")
    folder = os.path.dirname(out) or "."
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise click.ClickException(
            f"cannot write predictions to --out {out!r}: {folder} is not a folder."
        )
    chunks = _observation_chunks(data, chunk_size)
    count, names, replaced = 0, ["value"], set()
    try:
        os.makedirs(folder, exist_ok=True)
        with _ParquetRows(out) as rows:
            for table, observations, first_row in chunks:
                observations = _convert(
                    observations, value_fn, data, checkpoint_dir, first_row, fitted_on
                )
                if num_states is not None and observations.dtype.kind in "iu":
                    bad = np.flatnonzero(
                        (observations < 0) | (observations >= num_states)
                    )
                    if bad.size:
                        raise click.ClickException(
                            f"{data}: row {first_row + int(bad[0])} has state "
                            f"{observations[bad[0]]}; the tabular checkpoint "
                            f"{checkpoint_dir} knows states 0 to {num_states - 1}."
                        )
                replaced.update(c for c in table.column_names if c in _VALUE_COLUMNS)
                try:
                    columns = streaming.values(value_fn, observations)
                except ValueError as error:
                    raise click.ClickException(str(error)) from None
                rows.write(table, columns)
                count, names = count + len(observations), list(columns)
    except OSError as error:
        reason = error.strerror or str(error)
        raise click.ClickException(
            f"cannot write predictions to --out {out!r}: {reason}."
        ) from None
    note = ""
    if replaced:
        note = f"; the input's columns {sorted(replaced)} are replaced by them"
    Console(stderr=True).print(
        f"{count} values from {checkpoint_dir} written to {out} "
        f"(columns {', '.join(names)}{note}).",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )


def _observation_chunks(path, chunk_size):
    """(table, observations, first row) of each chunk of --data for predict."""
    from adaptive_td import datasets

    if os.path.splitext(path)[1].lower() != ".npy":
        source = _source(
            path, chunk_size=chunk_size, extra_columns="ignore", unfinished=True
        )
        for chunk in source.chunks():
            yield chunk.table, chunk.observations, chunk.first_row
        return
    try:
        observations = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError) as error:
        raise click.ClickException(f"--data {path}: {_message(error)}") from None
    if observations.ndim == 0 or observations.dtype.kind not in "biuf":
        raise click.ClickException(
            f"{path} holds an array of shape {observations.shape} and dtype "
            f"{observations.dtype}; expected observations [N, *obs_shape] of numbers."
        )
    if len(observations) == 0:
        raise click.ClickException(
            f"{path} holds no observations (shape {observations.shape})."
        )
    for first in range(0, len(observations), chunk_size):
        part = np.asarray(observations[first : first + chunk_size])
        if part.dtype.kind == "f":
            bad = np.argwhere(~np.isfinite(part.reshape(len(part), -1)).all(1))
            if bad.size:
                row = first + int(bad[0, 0])
                raise click.ClickException(
                    f"{path}: observation {row} is {part[row - first].tolist()}; "
                    "observations must be finite (NaN and inf are not allowed)."
                )
        yield datasets.arrow_table({"observation": part}), part, first


def _convert(observations, value_fn, data, checkpoint_dir, first_row, fitted_on):
    """The observations in the checkpoint's dtype, if that loses nothing or
    they have the dtype of the data the checkpoint was fitted on (`fitted_on`,
    converted the same way there)."""
    shape = tuple(observations.shape[1:])
    if shape != tuple(value_fn.obs_shape):
        raise click.ClickException(
            f"{data} has observations of shape {shape}; the checkpoint "
            f"{checkpoint_dir} was fitted on observations of shape "
            f"{tuple(value_fn.obs_shape)}."
        )
    dtype = np.dtype(value_fn.obs_dtype)
    # Floats for an integer checkpoint are left to the value function, which
    # rejects them; any other conversion must give back every value exactly.
    if observations.dtype == dtype or (
        np.issubdtype(dtype, np.integer) and observations.dtype.kind == "f"
    ):
        return observations
    if observations.dtype.name == fitted_on:
        return observations.astype(dtype)
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
            f"{first_row + at[0]}: observation{element} "
            f"{observations[at].item()!r} would become {cast[at].item()!r}). "
            f"Convert the data to {dtype} first if that is intended."
        )
    return cast


_VALUE_COLUMNS = ("value", "interval_low", "interval_high")


def _check_no_value_columns(source, data) -> None:
    """fit adds columns to the input's rows; an input column of the same name
    would be lost from values.parquet."""
    names = _column_names(source)
    taken = [c for c in _VALUE_COLUMNS if c in names]
    if taken:
        raise click.ClickException(
            f"--data {data} has columns {taken}; values.parquet adds the fitted "
            f"{', '.join(_VALUE_COLUMNS)} to the input's columns, which would "
            "replace them. Rename or drop them first."
        )


def _column_names(source) -> list[str]:
    return getattr(source, "columns", [])


def _progress(console, unit) -> Progress:
    """A progress bar counting `unit`, with time spent and left."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} " + unit),
        TimeElapsedColumn(),
        TextColumn("left"),
        TimeRemainingColumn(),
        console=console,
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


def _message(error: Exception) -> str:
    """An error as one line, with the command line's flag for a Python
    argument the message suggests."""
    message = str(error).strip().replace("\n", " ")
    for python, flag in (
        ("extra_columns='ignore'", "--extra-columns ignore"),
        ("allow_unfinished=True", "--allow-unfinished"),
        ("a larger chunk size", "a larger --chunk-size"),
    ):
        if python in message:
            message += f" (On the command line: {flag}.)"
    return message


def _source(
    path, *, chunk_size, extra_columns, unfinished, progress=None
) -> streaming.Source:
    """--data as a streaming source; any problem with it is a one-line
    ClickException."""
    import pyarrow as pa

    extension = os.path.splitext(path)[1].lower()
    try:
        if os.path.isdir(path):
            shards = sorted(
                os.path.join(path, name)
                for name in os.listdir(path)
                if name.lower().endswith(".npz")
            )
            if not shards:
                raise click.ClickException(
                    f"--data {path}: the folder holds no .npz file; expected "
                    "shards written by Trajectories.save."
                )
            return streaming.NpzShards(shards)
        if extension in (".parquet", ".pq"):
            return streaming.ParquetSource(
                path,
                chunk_size=chunk_size,
                extra_columns=extra_columns,
                allow_unfinished=unfinished,
                progress=progress,
            )
        if extension == ".npz":
            return streaming.NpzShards([path])
    except (ValueError, OSError, pa.ArrowException) as error:
        raise click.ClickException(_message(error)) from None
    raise click.ClickException(
        f"--data {path}: unknown file type {extension or '(none)'!r}; expected a "
        ".parquet (or .pq) or .npz file, or a folder of .npz files."
    )


def _print_summary(console, path, source: streaming.Source) -> None:
    """Episodes, transitions, episode lengths and ends of the data."""
    summary = source.summary
    table = Table(title=Text(f"data: {path}"), show_header=False)
    table.add_column("", justify="left")
    table.add_column("", justify="right")
    lengths = (
        f"{summary['min_length']} / {summary['mean_length']:.1f} / "
        f"{summary['max_length']}"
    )
    for name, value in (
        ("episodes", f"{summary['episodes']}"),
        ("transitions", f"{summary['transitions']}"),
        ("episode length (min / mean / max)", lengths),
        ("terminated", f"{summary['terminated']}"),
        ("truncated", f"{summary['truncated']}"),
        ("cut mid-episode", f"{summary['cut']}"),
        (
            "observation shape, dtype",
            f"{summary['obs_shape']}, {summary['obs_dtype']}",
        ),
        ("chunks", f"{summary['chunks']}"),
    ):
        table.add_row(Text(name), Text(value))
    console.print(table)


def _network_spec(network, hidden_sizes, num_states, source) -> dict:
    """The checkpoint's network spec for the --network options and the data."""
    if network == "mlp":
        return {"kind": "mlp", "hidden_sizes": list(hidden_sizes)}
    if network == "linear":
        return {"kind": "linear"}
    summary = source.summary
    dtype = np.dtype(summary["obs_dtype"])
    if dtype.kind not in "iu" or summary["obs_shape"] != ():
        raise click.ClickException(
            f"--network tabular needs one integer state index per observation; "
            f"the data has observations of shape {summary['obs_shape']} and dtype "
            f"{dtype}. Use --network mlp or linear."
        )
    # The states of every step, s_t and s_{t+1}, terminal ones included.
    smallest, largest = summary["state_min"], summary["state_max"]
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


class _ParquetRows:
    """Tables written to one Parquet file chunk by chunk, each with value
    columns added (replacing columns of the same names); the file is
    written under a temporary name and moved into place when all went well."""

    def __init__(self, path):
        self.path, self.tmp, self.writer = path, path + ".tmp", None

    def __enter__(self):
        return self

    def write(self, table, columns: dict[str, np.ndarray]) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        for name, values in columns.items():
            if name in table.column_names:
                table = table.drop_columns([name])
            table = table.append_column(name, pa.array(values))
        if self.writer is None:
            self.writer = pq.ParquetWriter(self.tmp, table.schema)
        self.writer.write_table(table)

    def __exit__(self, kind, value, traceback):
        if self.writer is not None:
            self.writer.close()
        if kind is None:
            os.replace(self.tmp, self.path)
        elif os.path.exists(self.tmp):
            os.remove(self.tmp)
        return False


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
