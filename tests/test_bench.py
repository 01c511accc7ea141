"""The metrics, the report arithmetic, suites, and `adaptive-td bench` end to end."""

import csv
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from adaptive_td import metrics
from adaptive_td.benchmarks import report
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
        "tasks": {
            "toy": {
                "methods": {
                    "TD": {**cell, "kind": "td", "nmse": [0.4, 0.6]},
                    "MC": {**cell, "kind": "mc", "nmse": [0.2, 0.2]},
                    "ATD": {
                        **cell,
                        "kind": "adaptive_td",
                        "nmse": [0.3, 0.1],
                        "mc_fraction": [0.5, 0.25],
                    },
                }
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
    text = report.markdown(report.rows(_results()), num_seeds=2)
    assert "| toy    | TD       | 0.5000 |" in text
    assert "2.50" in text and "37.5%" in text


# -- suites --------------------------------------------------------------------


def test_quick_suite_is_shipped_and_valid():
    assert "quick" in suite_lib.available()
    quick = suite_lib.load("quick")
    assert [t.name for t in quick.tasks] == ["chain", "maze", "cartpole"]
    assert {m.kind for m in quick.methods} == {"td", "mc", "adaptive_td"}


@pytest.mark.parametrize(
    "change, message",
    [
        ({"seeds": 0}, "seeds = 0"),
        ({"training": {"steps": 1}}, r"\[training\] has keys"),
        ({"methods": [{"name": "X", "kind": "sarsa"}]}, "kind = 'sarsa'"),
        ({"methods": [{"kind": "td"}]}, "needs a 'td' and an 'mc'"),
        ({"tasks": [{"name": "chain"}]}, "needs 'name' and 'episodes'"),
    ],
)
def test_bad_suites_are_rejected_with_the_field(change, message):
    raw = {**suite_lib.load("quick").raw, **change}
    with pytest.raises(ValueError, match=message):
        suite_lib.parse("bad", raw)


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
    assert set(results["tasks"]) == {"chain", "maze", "cartpole"}
    for entry in results["tasks"].values():
        assert set(entry["methods"]) == {"TD", "MC", "Adaptive TD"}
        for cell in entry["methods"].values():
            assert len(cell["nmse"]) == 2
            assert np.all(np.isfinite(cell["nmse"]))
            assert np.shape(cell["estimates"]) == (2, len(entry["true_values"]))
    assert results["config"]["training"]["steps"] == 30
    assert "jax" in results["environment"]["versions"]

    with open(out / "table.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 9
    assert tuple(rows[0]) == report.COLUMNS
    table = (out / "table.md").read_text()
    assert "Adaptive TD" in table and "cartpole" in table
    for task in ("chain", "maze", "cartpole"):
        png = (out / f"{task}.png").read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
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
