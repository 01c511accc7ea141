"""Suite grids, the report's arithmetic (leakage, coverage, data size,
summary), and running a suite for real: resume, reproducibility, compiled
programs shared across cells, and `adaptive-td report`."""

import json
import os

import numpy as np
import pytest
from click.testing import CliRunner
from compiles import count_compiles

from adaptive_td import cli
from adaptive_td.benchmarks import figures, report, runner
from adaptive_td.benchmarks import suite as suite_lib

# -- grids ------------------------------------------------------------------------


def _suite(tasks, methods=None):
    raw = {
        "seeds": 2,
        "training": {
            "hidden_sizes": [8],
            "learning_rate": 1e-2,
            "steps": 20,
            "batch_size": 16,
        },
        "tasks": tasks,
        "methods": methods
        or [{"name": "TD", "kind": "td"}, {"name": "MC", "kind": "mc"}],
    }
    return raw


def test_task_grid_expands_to_the_cross_product_first_key_slowest():
    raw = _suite(
        [
            {
                "name": "chain",
                "label": "wall chain",
                "p_right": 0.7,
                "grid": {"gamma": [0.9, 0.99], "episodes": [5, 50]},
            },
            {"name": "maze", "episodes": 3},
        ]
    )
    cells = suite_lib.parse("grid", raw).cells
    assert [c.id for c in cells] == [
        "wall chain[gamma=0.9,episodes=5]",
        "wall chain[gamma=0.9,episodes=50]",
        "wall chain[gamma=0.99,episodes=5]",
        "wall chain[gamma=0.99,episodes=50]",
        "maze",
    ]
    assert cells[1].kwargs == {"p_right": 0.7, "gamma": 0.9}
    assert cells[1].episodes == 50 and cells[1].task == "chain"
    assert cells[1].settings == {"gamma": 0.9, "episodes": 50}
    assert cells[4].kwargs == {} and cells[4].episodes == 3


def test_method_grid_names_each_combination():
    methods = [
        {"name": "TD", "kind": "td"},
        {"name": "MC", "kind": "mc"},
        {
            "name": "ATD",
            "kind": "adaptive_td",
            "ensemble_size": 3,
            "grid": {"interval_width": [0.5, 2.0]},
        },
    ]
    parsed = suite_lib.parse(
        "grid", _suite([{"name": "chain", "episodes": 5}], methods)
    )
    names = [m.name for m in parsed.methods]
    assert names == ["TD", "MC", "ATD (interval_width=0.5)", "ATD (interval_width=2.0)"]
    assert parsed.methods[3].options == {"ensemble_size": 3, "interval_width": 2.0}


@pytest.mark.parametrize(
    "task, message",
    [
        ({"name": "chain", "episodes": 5, "grid": {"gamma": 0.9}}, "grid.gamma = 0.9"),
        ({"name": "chain", "episodes": 5, "grid": {"gamma": []}}, "non-empty list"),
        (
            {"name": "chain", "episodes": 5, "grid": {"gamma": [0.9, 0.9]}},
            "repeats a value",
        ),
        (
            {"name": "chain", "episodes": 5, "gamma": 0.9, "grid": {"gamma": [0.5]}},
            "'gamma' both as an argument and in its grid",
        ),
        (
            {"name": "chain", "episodes": 5, "grid": {"episodes": [5]}},
            "'episodes' both as an argument and in its grid",
        ),
        ({"name": "chain", "grid": {"gamma": [0.9]}}, "needs 'name' and 'episodes'"),
        (
            {"name": "chain", "grid": {"episodes": [5, 0]}},
            r"grid.episodes = 0; expected an integer >= 1",
        ),
        (
            {"name": "chain", "episodes": 5, "grid": {"gamma": [0.9, 1.5]}},
            "rejects its arguments",
        ),
        (
            {"name": "chain", "episodes": 5, "grid": {"wal": [3]}},
            "wal",
        ),
        ({"name": "chain", "episodes": 5, "label": "a[b]"}, "without '\\['"),
        ({"name": "chain", "episodes": 5, "label": "a|b"}, "'\\|'"),
        ({"name": "chain", "episodes": 5, "label": "x\ny"}, "printable"),
        ({"name": "chain", "episodes": 5, "label": "   "}, "non-empty"),
        (
            {"name": "chain", "episodes": 5, "grid": {"r_left": [0, 0.0]}},
            "repeats a value",
        ),
        (
            {"name": "chain", "episodes": 5, "grid": {"r_left": [-1.0, "-1.0"]}},
            r"the cells 'chain\[r_left=-1.0\]' appear more than once",
        ),
        (
            {"name": "chain", "episodes": 5, "grid": {"max_steps": [20.5]}},
            "max_steps=20.5; expected an integer",
        ),
    ],
)
def test_bad_grids_are_rejected_with_the_field(task, message):
    with pytest.raises(ValueError, match=message):
        suite_lib.parse("bad", _suite([task]))


def test_two_entries_of_one_task_need_their_own_labels():
    tasks = [{"name": "chain", "episodes": 5}, {"name": "chain", "episodes": 9}]
    with pytest.raises(ValueError, match=r"tasks\[1\].name = 'chain' repeats"):
        suite_lib.parse("bad", _suite(tasks))
    tasks[1]["label"] = "more data"
    assert len(suite_lib.parse("ok", _suite(tasks)).cells) == 2


@pytest.mark.parametrize("name", ["quick", "leakage", "paper"])
def test_shipped_suites_parse(name):
    suite = suite_lib.load(name)
    assert {"td", "mc", "adaptive_td"} <= {m.kind for m in suite.methods}
    assert len({c.id for c in suite.cells}) == len(suite.cells)


# -- report arithmetic, by hand ---------------------------------------------------


def _entry(distance, truth, methods, **extra):
    return {
        "distance": distance,
        "true_values": truth,
        "gamma": 0.9,
        "label": "toy",
        "episodes": 10,
        "methods": methods,
        **extra,
    }


def test_leakage_profile_averages_seeds_then_states_at_each_distance():
    # Errors per state: seed 0 (1, 2, 0, 3), seed 1 (1, 0, 2, 3); squared and
    # averaged over seeds: (1, 2, 2, 9). Distances (1, 0, 0, 4): at d=0 the
    # states 1 and 2 give 2, at d=1 state 0 gives 1, at d=4 state 3 gives 9;
    # the inf state is left out.
    entry = _entry(
        [1, 0, 0, 4, float("inf")],
        [0, 0, 0, 0, 0],
        {"TD": {"kind": "td", "estimates": [[1, 2, 0, 3, 7], [1, 0, 2, -3, 7]]}},
    )
    d, mse = report.leakage_profile(entry)["TD"]
    np.testing.assert_array_equal(d, [0, 1, 4])
    np.testing.assert_allclose(mse, [2, 1, 9])
    assert report.leakage_profile({"distance": None, "methods": {}}) == {}


def test_decay_rate_recovers_a_geometric_profile():
    # MSE halving per step from the jump; the far half (d > 10) is ignored,
    # and so is the other side of the wall (d < 0).
    d = np.arange(-3.0, 21.0)
    mse = np.where(d < 0, 5.0, 4 * 0.5**d)
    mse[d > 10] = 1.0
    assert report.decay_rate(d, mse) == pytest.approx(0.5)
    # A flat profile decays by a factor 1 per step.
    assert report.decay_rate(d, np.full(d.shape, 0.3)) == pytest.approx(1.0)
    assert np.isnan(report.decay_rate(d[:5], mse[:5]))


def test_leakage_rows_near_and_far():
    # d_max = 12: the far half is d >= 6.
    d = [0, 1, 2, 10, 12]
    entry = _entry(
        d, [0.0] * 5, {"TD": {"kind": "td", "estimates": [[1, 1, 1, 0.1, 0.1]]}}
    )
    (row,) = report.leakage_rows({"config": {}, "cells": {"toy": entry}})
    assert row["mse_near"] == pytest.approx(1.0)
    assert row["mse_far"] == pytest.approx(0.01)
    assert row["gamma"] == 0.9 and row["method"] == "TD"


def test_coverage_curve_by_hand():
    # Two members at one seed: (0, 2) at state 0 -> mu 1, sigma sqrt(2) with
    # ddof=1; (1, 1) at state 1 -> mu 1, sigma 0. Truth (2, 1): state 0 is
    # inside from k = 1/sqrt(2); state 1 is inside at every k (gap 0 <= 0).
    method = {"ensemble": [[[0.0, 1.0], [2.0, 1.0]]]}
    curve = report.coverage_curve(method, [2.0, 1.0], [0.0, 0.5, 0.75, 3.0])
    np.testing.assert_allclose(curve, [0.5, 0.5, 1.0, 1.0])


def test_data_size_series_pools_other_settings():
    def cell(episodes, noise, td, mc):
        return {
            "label": "chain",
            "episodes": episodes,
            "settings": {"episodes": episodes, "reward_noise": noise},
            "methods": {"TD": {"nmse": td}, "MC": {"nmse": mc}},
        }

    results = {
        "cells": {
            "a": cell(10, 0.0, [1.0, 3.0], [2.0, 2.0]),
            "b": cell(10, 0.5, [2.0, 2.0], [4.0, 4.0]),
            "c": cell(100, 0.0, [0.5, 0.5], [1.0, 1.0]),
            "single": {**cell(7, 0.0, [1.0], [1.0]), "label": "maze"},
        }
    }
    series = report.data_size_series(results)
    assert set(series) == {"chain"}  # the maze has one data size
    n, mean, low, high = series["chain"]["TD"]
    np.testing.assert_array_equal(n, [10, 100])
    np.testing.assert_allclose(mean, [2.0, 0.5])
    assert low[0] < 2.0 < high[0]


def test_summary_counts_cells_within_ten_percent():
    def cell(td, mc, atd):
        return {
            "gamma": 0.9,
            "methods": {
                "TD": {"kind": "td", "nmse": [td], "seconds": 1.0},
                "MC": {"kind": "mc", "nmse": [mc], "seconds": 1.0},
                "ATD": {"kind": "adaptive_td", "nmse": [atd], "seconds": 1.0},
            },
        }

    # Ratios to the better baseline: 0.9 (wins), 1.05 (close), 1.5 (miss, MC best).
    results = {
        "suite": "toy",
        "config": {"seeds": 1},
        "cells": {
            "a": cell(1.0, 2.0, 0.9),
            "b": cell(2.0, 2.0, 2.1),
            "c": cell(3.0, 2.0, 3.0),
        },
    }
    (s,) = report.adaptive_summary(results)
    assert (s["cells"], s["close"], s["wins"]) == (3, 2, 1)
    assert s["misses"] == [("c", pytest.approx(1.5), "MC")]
    text = report.summary_markdown(results)
    assert "within 10% of the better of TD and MC in 2 of 3 cells" in text
    assert "`c`: 1.50 × MC" in text


def test_slug_makes_cell_ids_file_names():
    assert report.slug("wall chain[gamma=0.9,episodes=30]") == (
        "wall_chain_gamma-0.9_episodes-30"
    )
    assert report.slug("maze[observation=one_hot]") == "maze_observation-one_hot"


def test_old_results_with_tasks_still_read():
    old = {"config": {"seeds": 1}, "tasks": {"chain": {"methods": {}}}}
    assert report.cells_of(old)["chain"]["label"] == "chain"
    with pytest.raises(ValueError, match="neither 'cells' nor 'tasks'"):
        report.cells_of({"config": {}})


# -- running a suite for real -------------------------------------------------------

# Two chain cells that differ only in a reward (same episodes, same shapes), a
# third with another discount, and the two baselines.
_RUN_TASKS = [
    {"name": "chain", "episodes": 6, "grid": {"r_left": [2.0, 3.0]}},
    {"name": "chain", "label": "short", "episodes": 6, "gamma": 0.9},
]


@pytest.fixture(scope="module")
def run_suite():
    return suite_lib.parse("run", _suite(_RUN_TASKS))


@pytest.fixture(scope="module")
def full_run(run_suite, tmp_path_factory):
    out = tmp_path_factory.mktemp("full")
    with count_compiles() as compiled:
        seen = []
        results = runner.run(run_suite, out_dir=out, on_progress=seen.append)
    return out, results, seen, compiled


def test_run_writes_one_file_per_cell_and_reports_progress(full_run):
    out, results, seen, _ = full_run
    assert list(results["cells"]) == ["chain[r_left=2.0]", "chain[r_left=3.0]", "short"]
    assert sorted(os.listdir(out / "cells")) == ["0000.json", "0001.json", "0002.json"]
    # 3 cells x (data + 2 methods) steps, counted up to the total.
    assert [p.done for p in seen] == list(range(10))
    assert seen[-1].done == seen[-1].total == 9
    assert seen[1].cell == "chain[r_left=2.0]" and seen[1].method == "TD"
    assert [p.cells_done for p in seen] == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3]
    assert {p.cells_total for p in seen} == {3}


def test_cells_of_equal_shapes_share_compiled_programs(run_suite, full_run):
    # The first two cells hold data of the same shapes for the same discount:
    # refitting them compiles nothing new. The third (gamma 0.9) has its own
    # estimators.
    _, results, _, _ = full_run
    datasets = [
        [s["steps"] for s in results["cells"][c]["data"]]
        for c in ("chain[r_left=2.0]", "chain[r_left=3.0]")
    ]
    assert datasets[0] == datasets[1]
    estimators = {}
    fits = []
    for cell in run_suite.cells[:2]:
        _, evaluation, data, _ = runner._prepare(cell, 2)
        for method in run_suite.methods:
            key = (method.name, 0.98)
            estimators.setdefault(key, run_suite.estimator(method, 0.98))
            with count_compiles() as compiled:
                runner._fit_and_score(estimators[key], method, data, evaluation, 2)
            fits.append(len(compiled))
    assert fits[0] > 0 and fits[1] > 0
    assert fits[2:] == [0, 0], fits


def test_same_suite_same_numbers(run_suite, full_run, tmp_path):
    _, results, _, _ = full_run
    again = runner.run(run_suite, out_dir=tmp_path)
    for cell_id, entry in results["cells"].items():
        for name, method in entry["methods"].items():
            assert again["cells"][cell_id]["methods"][name]["nmse"] == method["nmse"]


def test_interrupted_run_resumes_from_finished_cells(run_suite, full_run, tmp_path):
    _, results, _, _ = full_run

    class Interrupt(Exception):
        pass

    def stop_at_third_cell(progress):
        if progress.cell == "short":
            raise Interrupt

    with pytest.raises(Interrupt):
        runner.run(run_suite, out_dir=tmp_path, on_progress=stop_at_third_cell)
    assert sorted(os.listdir(tmp_path / "cells")) == ["0000.json", "0001.json"]

    prepared = []
    original = runner._prepare

    def counting(cell, num_seeds):
        prepared.append(cell.id)
        return original(cell, num_seeds)

    runner._prepare = counting
    try:
        resumed = runner.run(run_suite, out_dir=tmp_path, resume=True)
    finally:
        runner._prepare = original
    assert prepared == ["short"]
    assert list(resumed["cells"]) == list(results["cells"])
    assert _same_numbers(resumed, results)
    # The reused cells are the interrupted run's, read back from disk.
    with open(tmp_path / "cells" / "0000.json") as f:
        assert json.load(f)["entry"] == resumed["cells"]["chain[r_left=2.0]"]


def _same_numbers(a, b):
    return all(
        a["cells"][c]["methods"][m]["nmse"] == b["cells"][c]["methods"][m]["nmse"]
        for c in b["cells"]
        for m in b["cells"][c]["methods"]
    )


def test_resume_refuses_cells_of_another_configuration(run_suite, full_run, tmp_path):
    out, _, _, _ = full_run
    with pytest.raises(ValueError, match="cells of another configuration"):
        runner.run(run_suite, seeds=3, out_dir=out, resume=True)
    broken = tmp_path / "cells"
    broken.mkdir()
    (broken / "0000.json").write_text('{"id": ')
    with pytest.raises(ValueError, match="cannot be read.*delete it"):
        runner.run(run_suite, out_dir=tmp_path, resume=True)


def test_report_command_re_renders_a_run_folder(full_run, tmp_path):
    _, results, _, _ = full_run
    folder = tmp_path / "run"
    report.write(results, folder)
    table = (folder / "table.md").read_text()
    os.remove(folder / "table.md")
    os.remove(folder / "figures" / "leakage_profile.png")
    done = CliRunner().invoke(cli.main, ["report", str(folder)])
    assert done.exit_code == 0, done.output
    assert (folder / "table.md").read_text() == table
    png = (folder / "figures" / "leakage_profile.png").read_bytes()
    assert png[:4] == b"\x89PNG"
    assert "re-rendered" in done.output and "short" in done.output


def test_report_command_without_results_is_one_line(tmp_path):
    done = CliRunner().invoke(cli.main, ["report", str(tmp_path)])
    assert done.exit_code != 0 and "Traceback" not in done.output
    assert "has no results.json" in done.output
    (tmp_path / "results.json").write_text("[1, 2")
    done = CliRunner().invoke(cli.main, ["report", str(tmp_path)])
    assert "cannot be read as JSON" in done.output


def test_estimator_cache_keeps_the_most_recently_used():
    built = []
    cache = runner._EstimatorCache(capacity=2)

    def build(name):
        return lambda: built.append(name) or name

    assert cache.get("a", build("a")) == "a"
    assert cache.get("b", build("b")) == "b"
    assert cache.get("a", build("a")) == "a"  # reused, now the most recent
    cache.get("c", build("c"))  # evicts b, the least recently used
    cache.get("a", build("a"))
    cache.get("b", build("b"))
    assert built == ["a", "b", "c", "b"]


def test_figure_file_names_are_distinct_and_short():
    ids = [
        "wall chain",
        "wall/chain",
        "   ",
        "!!!",
        "coverage",
        "x" * 300,
        "chain[gamma=0.9]",
        "chain_gamma-0.9",
    ]
    names = figures.file_names(ids)
    assert len(set(names.values())) == len(ids)
    assert names["wall chain"] == "wall_chain" and names["wall/chain"] == "wall_chain-1"
    assert names["   "] == "cell-2" and names["!!!"] == "cell-3"
    assert names["coverage"] == "coverage-4"  # the across-cell figure keeps its name
    assert len(names["x" * 300]) <= 100
    assert names["chain_gamma-0.9"] == "chain_gamma-0.9-7"


def test_a_nan_method_ranks_last_and_leaves_the_ratios_alone():
    cell = {
        "seconds": 1.0,
        "estimates": [[0.0]],
    }
    results = {
        "config": {"seeds": 2},
        "cells": {
            "toy": {
                "methods": {
                    "TD": {**cell, "kind": "td", "nmse": [float("nan"), 1.0]},
                    "MC": {**cell, "kind": "mc", "nmse": [0.2, 0.2]},
                    "ATD": {**cell, "kind": "adaptive_td", "nmse": [0.1, 0.1]},
                }
            }
        },
    }
    rows = {r["method"]: r for r in report.rows(results)}
    assert [rows[m]["rank"] for m in ("ATD", "MC", "TD")] == [1, 2, 3]
    assert rows["ATD"]["ratio_to_best"] == pytest.approx(0.5)


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda r: r["config"].pop("seeds"), "config.seeds is missing"),
        (lambda r: r.update(format=99), "format 99"),
        (lambda r: r.update(cells={}), "holds no cells"),
        (
            lambda r: next(iter(r["cells"].values()))["methods"]["TD"].pop("nmse"),
            "method 'TD' has no 'nmse'",
        ),
        (
            lambda r: next(iter(r["cells"].values())).pop("true_values"),
            "has no 'true_values'",
        ),
    ],
)
def test_report_names_what_a_hand_edited_results_file_lacks(
    full_run, tmp_path, edit, message
):
    _, results, _, _ = full_run
    broken = json.loads(json.dumps(results))
    edit(broken)
    (tmp_path / "results.json").write_text(json.dumps(broken))
    with pytest.raises(ValueError, match=message):
        report.load(tmp_path)
    done = CliRunner().invoke(cli.main, ["report", str(tmp_path)])
    assert done.exit_code != 0 and message.split("'")[0] in done.output
    assert "Traceback" not in done.output


def test_resume_rejects_a_cell_file_without_results(run_suite, full_run, tmp_path):
    out, _, _, _ = full_run
    record = json.loads((out / "cells" / "0000.json").read_text())
    record["entry"] = {"task": "chain"}
    (tmp_path / "cells").mkdir()
    (tmp_path / "cells" / "0000.json").write_text(json.dumps(record))
    with pytest.raises(ValueError, match="has no 'description'.*Delete it"):
        runner.run(run_suite, out_dir=tmp_path, resume=True)
