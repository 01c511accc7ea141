"""The `adaptive-td` command line.

    adaptive-td bench [--suite quick] [--seeds N] [--out DIR] [--resume]
    adaptive-td report DIR
    adaptive-td envs
    adaptive-td fit --data PATH --method METHOD [options] --out DIR
    adaptive-td predict --checkpoint DIR --data PATH [--out FILE]

Progress and tables go to the terminal (rich); files go to `--out`. The
commands on the user's own data (fit, predict) are in `cli_data`.
"""

from __future__ import annotations

import os
import sys
import time

import click
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

from adaptive_td import outdir


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
        outdir.prepare(out)
    except OSError as error:
        raise click.ClickException(outdir.error(out, error)) from None

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
        raise click.ClickException(outdir.error(out, error)) from None
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
        raise click.ClickException(outdir.error(folder, error)) from None
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


from adaptive_td.cli_data import fit, predict  # noqa: E402

main.add_command(fit)
main.add_command(predict)


if __name__ == "__main__":
    sys.exit(main())
