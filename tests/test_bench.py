"""The metrics, the report arithmetic, suites, and `adaptive-td bench` end to end."""

import copy
import csv
import datetime
import io
import json
import os
import shutil
import subprocess
import sys
import tomllib

import click
import numpy as np
import pytest
from click.testing import CliRunner
from rich.console import Console

import adaptive_td as atd
from adaptive_td import cli, envs, metrics
from adaptive_td.benchmarks import figures, report, runner
from adaptive_td.benchmarks import suite as suite_lib

# -- metrics -------------------------------------------------------------------


def test_mse_and_normalised_mse_by_hand():
    # errors (1, -1, 0, 0) -> MSE 0.5; truth (0, 2, 4, 6) has mean 3 and
    # variance (9 + 1 + 1 + 9) / 4 = 5 -> nMSE 0.1.
    truth = np.array([0.0, 2.0, 4.0, 6.0])
    estimate = np.array([1.0, 1.0, 4.0, 6.0])
    assert metrics.mse(estimate, truth) == pytest.approx(0.5)
    assert metrics.normalised_mse(estimate, truth) == pytest.approx(0.1)
    # Seeds on the leading axis give one number per seed.
    both = metrics.normalised_mse(np.stack([estimate, truth]), truth)
    np.testing.assert_allclose(both, [0.1, 0.0])


def test_normalised_mse_rejects_constant_truth():
    with pytest.raises(ValueError, match="constant"):
        metrics.normalised_mse(np.ones(3), np.ones(3))


def test_mse_rejects_mismatched_states():
    with pytest.raises(ValueError, match="last axes"):
        metrics.mse(np.ones((2, 3)), np.ones(4))


def test_mean_interval_by_hand():
    # (1, 2, 3): mean 2, sample sd 1, t(0.975, df=2) = 4.3027 ->
    # half-width 4.3027 / sqrt(3) = 2.4841.
    mean, low, high = metrics.mean_interval([1.0, 2.0, 3.0])
    assert mean == pytest.approx(2.0)
    assert low == pytest.approx(2.0 - 2.4841, abs=1e-4)
    assert high == pytest.approx(2.0 + 2.4841, abs=1e-4)
    mean, low, high = metrics.mean_interval([5.0])
    assert mean == 5.0 and np.isnan(low) and np.isnan(high)


# -- report arithmetic ---------------------------------------------------------


def _results():
    cell = {"seconds": 1.0, "estimates": [[0.0]], "true_values": [0.0]}
    return {
        "config": {"seeds": 2},
        "cells": {
            "toy": {
                "gamma": 0.9,
                "methods": {
                    "TD": {**cell, "kind": "td", "nmse": [0.4, 0.6]},
                    "MC": {**cell, "kind": "mc", "nmse": [0.2, 0.2]},
                    "ATD": {
                        **cell,
                        "kind": "adaptive_td",
                        "nmse": [0.3, 0.1],
                        "mc_fraction": [0.5, 0.25],
                    },
                },
            }
        },
    }


def test_rows_ratio_to_best_of_td_and_mc():
    rows = {r["method"]: r for r in report.rows(_results())}
    # Means: TD 0.5, MC 0.2, ATD 0.2; the best of TD and MC is MC's 0.2.
    assert rows["TD"]["ratio_to_best"] == pytest.approx(2.5)
    assert rows["MC"]["ratio_to_best"] == pytest.approx(1.0)
    assert rows["ATD"]["ratio_to_best"] == pytest.approx(1.0)
    assert rows["ATD"]["mc_targets"] == pytest.approx(0.375)
    assert rows["TD"]["mc_targets"] is None
    # Ranks by mean nMSE within the cell; MC and ATD tie at 0.2.
    assert [rows[m]["rank"] for m in ("TD", "MC", "ATD")] == [3, 1, 1]
    text = report.markdown(report.rows(_results()), num_seeds=2)
    assert "| toy    | TD       | 0.5000 |" in text
    assert "2.50" in text and "37.5%" in text


# -- suites --------------------------------------------------------------------


def test_quick_suite_is_shipped_and_valid():
    assert "quick" in suite_lib.available()
    quick = suite_lib.load("quick")
    assert [t.name for t in quick.tasks] == ["chain", "maze", "cartpole"]
    assert {m.kind for m in quick.methods} == {"td", "mc", "adaptive_td"}


def _quick_with(*edits):
    """The quick suite's raw dict with `(path, value)` edits, e.g.
    `(("tasks", 1, "name"), "mase")`."""
    raw = copy.deepcopy(suite_lib.load("quick").raw)
    for path, value in edits:
        *parents, last = path
        target = raw
        for key in parents:
            target = target[key]
        target[last] = value
    return raw


@pytest.mark.parametrize(
    "path, value, message",
    [
        (("seeds",), 0, "seeds = 0; expected an integer >= 1"),
        (
            ("seed",),
            3,
            r"unknown top-level key\(s\) 'seed'; allowed keys: "
            "description, seeds, training, tasks, methods",
        ),
        (("description",), 3, "description = 3; expected a string"),
        (("training",), {"steps": 1}, r"\[training\] has keys"),
        (
            ("training", "hidden_sizes"),
            [],
            r"training\.hidden_sizes = \[\]; "
            "expected a non-empty list of integers >= 1",
        ),
        (("training", "hidden_sizes"), [64, 0], r"training\.hidden_sizes = "),
        (("training", "hidden_sizes"), "64", r"training\.hidden_sizes = '64'"),
        (
            ("training", "learning_rate"),
            "fast",
            r"training\.learning_rate = "
            "'fast'; expected a finite number > 0",
        ),
        (("training", "learning_rate"), 0.0, r"training\.learning_rate = 0\.0"),
        (("training", "learning_rate"), float("nan"), r"training\.learning_rate = nan"),
        (("training", "learning_rate"), float("inf"), r"training\.learning_rate = inf"),
        (
            ("training", "steps"),
            "10",
            r"training\.steps = '10'; expected an "
            "integer >= 1",
        ),
        (("training", "batch_size"), 0, r"training\.batch_size = 0"),
        (("tasks",), "chain", r"tasks = 'chain'; expected \[\[tasks\]\] tables"),
        (("tasks", 0), "chain", r"tasks\[0\] = 'chain'; expected a \[\[tasks\]\]"),
        (("tasks",), [{"name": "chain"}], r"tasks\[0\] needs 'name' and 'episodes'"),
        (
            ("tasks", 1, "name"),
            "mase",
            r"tasks\[1\]\.name = 'mase'; expected one "
            "of the registered tasks: acrobot, cartpole, chain, maze, mountain_car, "
            "pendulum",
        ),
        (("tasks", 1, "name"), ["maze"], r"tasks\[1\]\.name = \['maze'\]"),
        (
            ("tasks", 1, "episodes"),
            "abc",
            r"tasks\[1\]\.episodes = 'abc'; "
            "expected an integer >= 1",
        ),
        (("tasks", 0, "episodes"), 0, r"tasks\[0\]\.episodes = 0; expected"),
        (("tasks", 0, "episodes"), 2.5, r"tasks\[0\]\.episodes = 2\.5"),
        (
            ("tasks", 0, "foo"),
            1,
            r"tasks\[0\]: unknown option\(s\) 'foo' for "
            "task 'chain'; allowed: num_states, wall, p_right",
        ),
        (
            ("tasks", 1, "gamma"),
            2.0,
            r"tasks\[1\] \(task 'maze'\) rejects its "
            r"arguments \{'gamma': 2\.0\}: .*gamma=2\.0",
        ),
        (
            ("tasks", 0, "num_states"),
            1,
            r"tasks\[0\] \(task 'chain'\) rejects "
            ".*num_states=1",
        ),
        (
            ("tasks", 2, "num_envs"),
            "many",
            r"tasks\[2\] \(task 'cartpole'\) "
            "rejects its arguments",
        ),
        (
            ("tasks", 2, "eval_seed"),
            datetime.date(2024, 1, 1),
            r"tasks\[2\]\.eval_seed = .*dates and times are not supported",
        ),
        (
            ("tasks", 1, "name"),
            "chain",
            r"tasks\[1\]\.name = 'chain' repeats "
            r"tasks\[0\]\.name",
        ),
        (
            ("methods",),
            [{"name": "X", "kind": "sarsa"}],
            r"methods\[0\]\.kind = 'sarsa'; expected one of",
        ),
        (("methods", 0, "kind"), ["td"], r"methods\[0\]\.kind = \['td'\]"),
        (("methods",), [{"kind": "td"}], "needs a 'td' and an 'mc'"),
        (
            ("methods", 2, "width"),
            3,
            r"methods\[2\]: unknown option\(s\) "
            "'width' for kind 'adaptive_td'; allowed: ensemble_size, "
            "interval_width",
        ),
        (
            ("methods", 0, "ensemble_size"),
            3,
            r"methods\[0\]: unknown option\(s\) "
            "'ensemble_size' for kind 'td'; allowed: target_update_period",
        ),
        (
            ("methods", 2, "interval_width"),
            -1,
            r"methods\[2\] \('Adaptive TD', "
            "kind 'adaptive_td'\\) rejects its options .*interval_width=-1",
        ),
        (("methods", 2, "ensemble_size"), 1, r"methods\[2\] .*ensemble_size=1"),
        (
            ("methods", 1, "steps"),
            5,
            r"methods\[1\] sets 'steps', which the "
            "suite sets for every method",
        ),
        (("methods", 0, "gamma"), 0.5, r"methods\[0\] sets 'gamma'"),
        (
            ("methods", 1, "name"),
            "TD",
            r"methods\[1\]\.name = 'TD' repeats "
            r"methods\[0\]\.name; results are keyed by name",
        ),
    ],
)
def test_bad_suites_are_rejected_with_the_field(path, value, message):
    with pytest.raises(ValueError, match=r"^suite 'bad': " + message):
        suite_lib.parse("bad", _quick_with((path, value)))


def test_parse_builds_tasks_and_estimators_but_runs_nothing(monkeypatch):
    # parse builds every task and estimator to check their arguments; none of
    # that may collect data, compute ground truth or fit.
    def boom(*args, **kwargs):
        raise AssertionError("parse must not run this")

    for cls in (envs.TabularTask, envs.CartPole):
        for method in ("collect", "evaluation_set"):
            monkeypatch.setattr(cls, method, boom)
    monkeypatch.setattr(envs.TabularMDP, "exact_values", boom)
    for cls in (atd.TD, atd.MonteCarlo, atd.AdaptiveTD):
        monkeypatch.setattr(cls, "fit", boom)
    quick = suite_lib.parse("quick", suite_lib.load("quick").raw)
    assert len(quick.tasks) == 3 and len(quick.methods) == 3


def test_malformed_toml_names_the_file_and_the_problem(tmp_path):
    text = "seeds = 3\n[training\n"
    with pytest.raises(tomllib.TOMLDecodeError) as decode:
        tomllib.loads(text)
    path = tmp_path / "broken.toml"
    path.write_text(text)
    with pytest.raises(ValueError) as error:
        suite_lib.load(str(path))
    assert str(path) in str(error.value) and str(decode.value) in str(error.value)
    path.write_bytes(b"\xff\xfe")
    with pytest.raises(ValueError, match="broken.toml' is not valid TOML"):
        suite_lib.load(str(path))


def test_a_directory_is_not_a_suite(tmp_path):
    with pytest.raises(ValueError, match="is a directory, not a suite file"):
        suite_lib.load(str(tmp_path))


def test_unknown_suite_lists_the_shipped_ones():
    with pytest.raises(ValueError, match="shipped suites: .*quick"):
        suite_lib.load("no-such-suite")


# -- the command line, for real ------------------------------------------------

TINY_SUITE = """
description = "tiny"
seeds = 2
[training]
hidden_sizes = [8]
learning_rate = 1e-2
steps = 30
batch_size = 16
[[tasks]]
name = "chain"
episodes = 8
[[tasks]]
name = "maze"
episodes = 8
[[tasks]]
name = "cartpole"
episodes = 4
[[methods]]
name = "TD"
kind = "td"
[[methods]]
name = "MC"
kind = "mc"
[[methods]]
name = "Adaptive TD"
kind = "adaptive_td"
ensemble_size = 3
"""


def _command():
    exe = shutil.which("adaptive-td")
    return [exe] if exe else [sys.executable, "-m", "adaptive_td.cli"]


def test_bench_end_to_end(tmp_path):
    suite_file = tmp_path / "tiny.toml"
    suite_file.write_text(TINY_SUITE)
    out = tmp_path / "out"
    done = subprocess.run(
        [*_command(), "bench", "--suite", str(suite_file), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr

    results = json.loads((out / "results.json").read_text())
    assert set(results["cells"]) == {"chain", "maze", "cartpole"}
    for entry in results["cells"].values():
        assert set(entry["methods"]) == {"TD", "MC", "Adaptive TD"}
        for cell in entry["methods"].values():
            assert len(cell["nmse"]) == 2
            assert np.all(np.isfinite(cell["nmse"]))
            assert np.shape(cell["estimates"]) == (2, len(entry["true_values"]))
    assert results["config"]["training"]["steps"] == 30
    # The coverage curve rebuilt from the stored ensemble agrees, at the
    # method's own width (k = 1, the default), with the interval coverage the
    # fitted value function measured.
    for entry in results["cells"].values():
        atd_cell = entry["methods"]["Adaptive TD"]
        (rebuilt,) = report.coverage_curve(atd_cell, entry["true_values"], [1.0])
        assert rebuilt == pytest.approx(np.mean(atd_cell["interval_coverage"]))
    assert "jax" in results["environment"]["versions"]

    with open(out / "table.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 9
    assert tuple(rows[0]) == report.COLUMNS
    table = (out / "table.md").read_text()
    assert "Adaptive TD" in table and "cartpole" in table
    for name in ("chain", "maze", "cartpole", "leakage_profile", "coverage"):
        png = (out / "figures" / f"{name}.png").read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    assert "within 10% of the better of TD and MC" in (out / "summary.md").read_text()
    # The table is printed for the user, too.
    assert "normalised MSE" in done.stdout


def test_bench_bad_suite_is_a_clear_error_not_a_traceback(tmp_path):
    done = subprocess.run(
        [*_command(), "bench", "--suite", "nonexistent", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    assert "shipped suites" in done.stderr


# -- the command line, in process (no training) --------------------------------


@pytest.fixture
def no_run(monkeypatch):
    """Fail the test if `bench` gets as far as running the suite."""

    def run(*args, **kwargs):
        raise AssertionError("bench ran the suite despite a bad input")

    monkeypatch.setattr(runner, "run", run)


def _bench(*args):
    return CliRunner().invoke(cli.main, ["bench", *args])


def _one_line_error(result) -> str:
    """The message of a clean failure: exit 1, no exception, one line."""
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    return lines[0]


def test_bench_rejects_a_bad_suite_before_running(tmp_path, no_run):
    suite_file = tmp_path / "typo.toml"
    suite_file.write_text(TINY_SUITE.replace('name = "maze"', 'name = "mase"'))
    out = tmp_path / "out"
    message = _one_line_error(_bench("--suite", str(suite_file), "--out", str(out)))
    assert "suite 'typo': tasks[1].name = 'mase'" in message
    assert "acrobot, cartpole, chain, maze, mountain_car, pendulum" in message
    assert not out.exists()


def test_bench_malformed_toml_is_one_line(tmp_path, no_run):
    suite_file = tmp_path / "broken.toml"
    suite_file.write_text('seeds = 3\n[[tasks]\nname = "chain"\n')
    message = _one_line_error(_bench("--suite", str(suite_file)))
    assert str(suite_file) in message and "not valid TOML" in message


def test_bench_suite_directory_is_one_line(tmp_path, no_run):
    message = _one_line_error(_bench("--suite", str(tmp_path)))
    assert "is a directory, not a suite file" in message


def test_bench_unusable_out_fails_before_running(tmp_path, no_run):
    afile = tmp_path / "afile"
    afile.write_text("")
    message = _one_line_error(_bench("--out", str(afile / "sub")))
    assert f"cannot write results to --out '{afile / 'sub'}'" in message


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() == 0,
    reason="root may write to read-only folders",
)
def test_bench_unwritable_out_fails_before_running(tmp_path, no_run):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    message = _one_line_error(_bench("--out", str(locked)))
    assert "cannot write results to --out" in message and "ermission" in message


def test_bench_defaults_quick_suite_and_bench_out(tmp_path, monkeypatch):
    # No arguments: the quick suite, results in ./bench-out, made before the run.

    seen = {}

    def run(suite, *, seeds, out_dir, resume, on_progress):
        seen.update(suite=suite.name, seeds=seeds, out=os.path.isdir("bench-out"))
        raise click.ClickException("stopped by the test")

    monkeypatch.setattr(runner, "run", run)
    monkeypatch.chdir(tmp_path)
    result = _bench()
    assert "stopped by the test" in result.output
    assert seen == {"suite": "quick", "seeds": None, "out": True}


def test_terminal_table_fits_80_columns():
    results = _results()
    cells = results["cells"].pop("toy")["methods"]
    cells["Adaptive TD"] = cells.pop("ATD")
    cells["MC"]["nmse"] = [2.5, 3.5]
    results["cells"]["cartpole"] = {"methods": cells}
    rows = report.rows(results)
    console = Console(width=80, record=True, file=io.StringIO())
    cli._print_table(console, rows, num_seeds=2)
    lines = console.export_text().splitlines()
    assert max(len(line) for line in lines) <= 80
    _, body = report.formatted(rows, 2)
    for row in body:
        # Each table row on one line, its interval unbroken.
        assert any(row[1] in line and row[3] in line for line in lines), row
    assert "normalised MSE" in lines[0]


def test_figure_of_a_task_labelled_by_float_states_is_a_scatter():
    # Simulator states [M, 2] (e.g. MountainCar's position and velocity) are
    # not maze cells.
    entry = {
        "description": "two-dimensional states",
        "true_values": [1.0, 2.0, 3.0],
        "labels": [[0.5, -0.01], [0.2, 0.03], [-0.4, 0.0]],
        "methods": {"TD": {"estimates": [[1.1, 2.0, 2.9]]}},
    }
    fig = figures.cell_figure("toy", entry)
    assert len(fig.axes) == 1
    assert fig.axes[0].get_xlabel() == "true $V^\\pi$"


def test_chain_figure_gives_every_one_of_many_methods_its_own_colour():
    # More methods than matplotlib's 10-colour cycle (the paper suite has 11).
    names = [f"method {i}" for i in range(12)]
    entry = {
        "description": "toy chain",
        "true_values": [1.0, 0.0, 0.5],
        "labels": [0, 1, 2],
        "methods": {
            name: {"estimates": [[1.05, 0.1, 0.4]], "uses_mc_target": [[1, 0, 0]]}
            for name in names
        },
    }
    fig = figures.cell_figure("toy", entry)
    lines = [line for line in fig.axes[0].get_lines() if line.get_label() in names]
    assert len(lines) == 12
    assert len({line.get_color() for line in lines}) == 12
    assert len(fig.axes[2].patches) == 12 * 3
