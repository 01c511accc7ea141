"""`adaptive-td fit` and `adaptive-td predict` on logged CartPole data, and
`adaptive_td.checkpoint`.

The data are episodes of Gymnasium's CartPole-v1 under a random policy,
collected with a vector environment; the Parquet file holds its rows
shuffled, so that keeping the file's row order is tested. Fits are tiny
(tens of steps, networks of 8 units): these tests check the plumbing, not
the estimates.
"""

import dataclasses
import json
import os
import shutil
import subprocess
import sys

import gymnasium as gym
import jax
import numpy as np
import optax
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

import adaptive_td as atd
from adaptive_td import checkpoint, cli, datasets, rollouts, streaming

TINY = ["--steps", "30", "--batch-size", "32"]


def _run(*args):
    result = CliRunner().invoke(cli.main, [str(a) for a in args])
    # A usage error or a ClickException exits; anything else is a crash.
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        result.output
    )
    return result


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """CartPole transitions as shuffled Parquet (with an extra column), as
    .npz, and the Trajectories batch."""
    folder = tmp_path_factory.mktemp("data")
    env = gym.make_vec(
        "CartPole-v1",
        num_envs=4,
        vectorization_mode="vector_entry_point",
        max_episode_steps=30,
    )
    traj = rollouts.collect(
        env, lambda obs, rng: rng.integers(0, 2, len(obs)), 60, seed=0
    )
    env.close()

    datasets.write_parquet(traj, folder / "ordered.parquet")
    table = pq.read_table(folder / "ordered.parquet")
    table = table.take(np.random.default_rng(0).permutation(table.num_rows))
    table = table.append_column("note", pa.array(np.arange(table.num_rows)))
    pq.write_table(table, folder / "cartpole.parquet")
    traj.save(folder / "cartpole.npz")
    return {
        "parquet": folder / "cartpole.parquet",
        "npz": folder / "cartpole.npz",
        "table": table,
        "traj": traj,
    }


@pytest.fixture(scope="module")
def fitted(data, tmp_path_factory):
    """`adaptive-td fit` of Adaptive TD on the Parquet file."""
    out = tmp_path_factory.mktemp("fit")
    result = _run(
        "fit",
        "--data",
        data["parquet"],
        "--method",
        "adaptive-td",
        "--hidden",
        "8",
        "--ensemble-size",
        "2",
        "--extra-columns",
        "ignore",
        "--allow-unfinished",
        *TINY,
        "--out",
        out,
    )
    assert result.exit_code == 0, result.output
    return out, result.output


def _observations(table) -> np.ndarray:
    return np.stack(table.column("observation").to_numpy(zero_copy_only=False))


def test_fit_writes_the_input_rows_with_values(data, fitted):
    out, output = fitted
    assert "episodes" in output and "truncated" in output and "terminated" in output
    assert str(out / "values.parquet") in output

    values = pq.read_table(out / "values.parquet")
    table = data["table"]
    assert values.column_names == [
        *table.column_names,
        "value",
        "interval_low",
        "interval_high",
    ]
    assert values.select(table.column_names).equals(table)
    v = values.column("value").to_numpy()
    low = values.column("interval_low").to_numpy()
    high = values.column("interval_high").to_numpy()
    assert np.isfinite(v).all() and (low <= high).all()

    with open(out / "loss.png", "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert os.path.getsize(out / "loss.png") > 5000


def test_checkpoint_gives_exactly_the_written_values(data, fitted):
    out, _ = fitted
    value_fn = checkpoint.load(out / "checkpoint")
    assert isinstance(value_fn, atd.AdaptiveValueFunction)
    values = pq.read_table(out / "values.parquet")
    obs = _observations(values)
    # Evaluated as fit evaluates (batches of one shape: a batch of another
    # shape may round the last float32 bit differently), the loaded
    # parameters give the written values exactly.
    columns = streaming.values(value_fn, obs)
    for name in ("value", "interval_low", "interval_high"):
        np.testing.assert_array_equal(columns[name], values.column(name).to_numpy())
    np.testing.assert_allclose(
        np.asarray(value_fn(obs)), values.column("value").to_numpy(), atol=1e-6
    )

    config = json.loads((out / "checkpoint" / "config.json").read_text())
    assert config["method"] == "adaptive-td"
    assert config["network"] == {"kind": "mlp", "hidden_sizes": [8]}
    assert config["options"]["ensemble_size"] == 2
    assert config["obs_shape"] == [4] and config["obs_dtype"] == "float32"
    assert config["library_version"] == atd.__version__


def test_predict_gives_the_same_values(data, fitted, tmp_path):
    out, _ = fitted
    fit_values = pq.read_table(out / "values.parquet")
    result = _run(
        "predict",
        "--checkpoint",
        out / "checkpoint",
        "--data",
        out / "values.parquet",
        "--out",
        tmp_path / "p.parquet",
    )
    assert result.exit_code == 0, result.output
    assert pq.read_table(tmp_path / "p.parquet").equals(fit_values)

    # Bare observations: one row each, same values.
    np.save(tmp_path / "obs.npy", _observations(fit_values))
    result = _run(
        "predict",
        "--checkpoint",
        out / "checkpoint",
        "--data",
        tmp_path / "obs.npy",
        "--out",
        tmp_path,
    )
    assert result.exit_code == 0, result.output
    predicted = pq.read_table(tmp_path / "predictions.parquet")
    assert predicted.column_names[0] == "observation"
    for name in ("value", "interval_low", "interval_high"):
        assert predicted.column(name).equals(fit_values.column(name))


def test_console_script_fits_npz(data, tmp_path):
    script = shutil.which("adaptive-td", path=os.path.dirname(sys.executable))
    script = script or shutil.which("adaptive-td")
    done = subprocess.run(
        [script, "fit", "--data", data["npz"], "--method", "td", "--network"]
        + ["linear", *TINY, "--out", tmp_path / "out"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr + done.stdout

    values = pq.read_table(tmp_path / "out" / "values.parquet")
    rows = datasets.to_dataframe(data["traj"])
    assert values.column_names == [*rows.columns, "value"]
    obs = _observations(values)
    np.testing.assert_array_equal(obs, np.stack(rows["observation"]))
    value_fn = checkpoint.load(tmp_path / "out" / "checkpoint")
    assert type(value_fn) is atd.ValueFunction
    np.testing.assert_array_equal(np.asarray(value_fn(obs)), values.column("value"))


def _int_chain():
    """Random walks on states 0..5 as integer observations."""
    rng = np.random.default_rng(1)
    episodes = []
    for _ in range(20):
        s = [int(rng.integers(1, 5))]
        while 0 < s[-1] < 5:
            s.append(s[-1] + int(rng.choice([-1, 1])))
        s = np.array(s, np.int32)
        rewards = (s[1:] == 5).astype(np.float32)
        episodes.append(dict(observations=s, rewards=rewards, terminated=True))
    return atd.Trajectories.from_episodes(episodes)


@pytest.mark.parametrize(
    "method, spec, estimator",
    [
        ("mc", {"kind": "linear"}, atd.MonteCarlo),
        ("n-step", {"kind": "tabular", "num_states": 6}, atd.NStepTD),
        ("td-lambda", {"kind": "mlp", "hidden_sizes": [4, 3]}, atd.TDLambda),
    ],
)
def test_checkpoint_round_trip(data, tmp_path, method, spec, estimator):
    traj = _int_chain() if spec["kind"] == "tabular" else data["traj"]
    est = estimator(
        checkpoint.network(spec), optax.adam(1e-2), gamma=0.9, steps=10, batch_size=8
    )
    value_fn = est.fit(traj, key=jax.random.key(3))
    config = {"method": method, "network": spec, "gamma": 0.9, "options": {}}
    checkpoint.save(tmp_path / "ckpt", config, value_fn)
    loaded = checkpoint.load(tmp_path / "ckpt")
    obs = np.asarray(traj.observations)
    np.testing.assert_array_equal(np.asarray(loaded(obs)), np.asarray(value_fn(obs)))
    assert loaded.obs_shape == value_fn.obs_shape
    assert np.dtype(loaded.obs_dtype) == np.dtype(value_fn.obs_dtype)


def test_save_refuses_what_it_cannot_describe(fitted, tmp_path):
    out, _ = fitted
    value_fn = checkpoint.load(out / "checkpoint")
    config = {"method": "td", "network": {"kind": "mlp", "hidden_sizes": [8]}}
    config |= {"gamma": 0.99, "options": {}}
    with pytest.raises(ValueError, match="goes with 'adaptive-td'"):
        checkpoint.save(tmp_path / "c", config, value_fn)
    with pytest.raises(ValueError, match="holds 2 seeds"):
        checkpoint.save(
            tmp_path / "c",
            config | {"method": "adaptive-td"},
            dataclasses.replace(value_fn, num_seeds=2),
        )
    config |= {"method": "adaptive-td"}
    wider = config | {"network": {"kind": "mlp", "hidden_sizes": [9]}}
    with pytest.raises(ValueError, match=r"has shape \(2, 8\).*expects \(2, 9\)"):
        checkpoint.save(tmp_path / "c", wider, value_fn)
    with pytest.raises(ValueError, match="expected exactly"):
        checkpoint.save(tmp_path / "c", {"method": "td"}, value_fn)


def test_fit_tabular_sizes_the_table_from_the_data(tmp_path):
    _int_chain().save(tmp_path / "chain.npz")
    args = ["--data", tmp_path / "chain.npz", "--method", "mc", "--network"]
    result = _run("fit", *args, "tabular", *TINY, "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    config = json.loads((tmp_path / "out" / "checkpoint" / "config.json").read_text())
    assert config["network"] == {"kind": "tabular", "num_states": 6}
    assert config["obs_shape"] == [] and config["obs_dtype"] == "int32"
    values = pq.read_table(tmp_path / "out" / "values.parquet")
    obs = values.column("observation").to_numpy()
    value_fn = checkpoint.load(tmp_path / "out" / "checkpoint")
    np.testing.assert_array_equal(np.asarray(value_fn(obs)), values.column("value"))


def _edit_config(folder, **changes):
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps(config | changes))


@pytest.mark.parametrize(
    "spoil, message",
    [
        (lambda c: shutil.rmtree(c), "does not exist"),
        (lambda c: (c / "config.json").unlink(), "is not a checkpoint: it has no"),
        (lambda c: (c / "config.json").write_text("{"), "cannot read .* as JSON"),
        (lambda c: (c / "params.npz").unlink(), "params.npz is missing"),
        (
            lambda c: (c / "params.npz").write_text("x"),
            "cannot read .*params.npz .not an .npz archive.; the file is damaged",
        ),
        (lambda c: _edit_config(c, format="x"), "not an adaptive_td checkpoint"),
        (lambda c: _edit_config(c, format_version=2), "format_version 2; this"),
        (lambda c: _edit_config(c, library_version="9.0.0"), "adaptive_td 9.0.0"),
        (
            lambda c: _edit_config(c, network={"kind": "mlp", "hidden_sizes": [9]}),
            r"linear_0'\]\['b'\] has shape \(2, 8\).*expects \(2, 9\)",
        ),
        (
            lambda c: _edit_config(c, network={"kind": "linear"}),
            "does not match the linear network",
        ),
        (lambda c: _edit_config(c, network={"kind": "cnn"}), "expected a dict"),
    ],
    ids=[
        "no folder",
        "no config",
        "bad json",
        "no params",
        "bad params",
        "other format",
        "format version",
        "library version",
        "other shapes",
        "other network",
        "unknown network",
    ],
)
def test_load_refuses_what_is_not_a_checkpoint(fitted, tmp_path, spoil, message):
    out, _ = fitted
    folder = tmp_path / "ckpt"
    shutil.copytree(out / "checkpoint", folder)
    spoil(folder)
    with pytest.raises(ValueError, match=f"checkpoint.load: .*{message}"):
        checkpoint.load(folder)


def test_load_points_to_the_checkpoint_inside_a_fit_folder(fitted):
    out, _ = fitted
    with pytest.raises(ValueError, match="It holds the checkpoint folder"):
        checkpoint.load(out)


BAD_FIT = [
    (["--data", "{missing}"], "does not exist"),
    (["--data", "{garbage}"], "is not a Parquet file"),
    (["--data", "{csv}"], "unknown file type '.csv'"),
    (["--data", "{parquet}"], "unknown columns ['note']"),
    (["--data", "{parquet}", "--extra-columns", "ignore"], "--allow-unfinished"),
    (["--data", "{no_reward}"], "the table has no column ['reward']"),
    (["--data", "{npz}", "--method", "sarsa"], "'sarsa' is not one of"),
    (["--data", "{npz}", "--gamma", "1.5"], "1.5 is not in the range"),
    (["--data", "{npz}", "--hidden", "64,x"], "expected layer sizes >= 1"),
    (["--data", "{npz}", "--hidden", "0"], "expected layer sizes >= 1"),
    (["--data", "{npz}", "--lambda", "0.5"], "--lambda applies to --method td-lambda"),
    (["--data", "{npz}", "--network", "tabular"], "needs one integer state index"),
    (["--data", "{npz}", "--out", "{file}/sub"], "cannot write results to --out"),
    (
        ["--data", "{chain}", "--network", "tabular", "--num-states", "3"],
        "state indices from 0 to 5; expected 0 to --num-states - 1 = 2",
    ),
]


@pytest.fixture
def bad_files(data, tmp_path):
    (tmp_path / "garbage.parquet").write_text("not parquet")
    (tmp_path / "x.csv").write_text("a,b\n")
    (tmp_path / "file").write_text("")
    pq.write_table(data["table"].drop_columns(["reward"]), tmp_path / "nr.parquet")
    np.save(tmp_path / "wrong.npy", np.zeros((5, 3), np.float32))
    _int_chain().save(tmp_path / "chain.npz")
    return {
        "missing": tmp_path / "missing.parquet",
        "garbage": tmp_path / "garbage.parquet",
        "csv": tmp_path / "x.csv",
        "file": tmp_path / "file",
        "no_reward": tmp_path / "nr.parquet",
        "wrong_shape": tmp_path / "wrong.npy",
        "chain": tmp_path / "chain.npz",
        "parquet": data["parquet"],
        "npz": data["npz"],
        "out": tmp_path / "out",
    }


@pytest.mark.parametrize("args, message", BAD_FIT)
def test_fit_bad_input_is_one_clear_message(bad_files, args, message):
    args = [a.format(**bad_files) for a in args]
    if "--method" not in args:
        args += ["--method", "td"]
    if "--out" not in args:
        args += ["--out", str(bad_files["out"])]
    result = _run("fit", *args)
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if "Error" in line]
    assert len(errors) == 1 and message in errors[0], result.output


BAD_PREDICT = [
    (["--checkpoint", "{out}", "--data", "{npz}"], "does not exist"),
    (["--checkpoint", "{fit}", "--data", "{npz}"], "It holds the checkpoint folder"),
    (["--checkpoint", "{ckpt}", "--data", "{csv}"], "unknown file type '.csv'"),
    (["--checkpoint", "{ckpt}", "--data", "{wrong_shape}"], "shape (3,); the"),
    (["--checkpoint", "{ckpt}", "--data", "{wrong_shape}"], "shape (4,)."),
    (
        ["--checkpoint", "{ckpt}", "--data", "{npz}", "--out", "{file}/p.parquet"],
        "is not a folder",
    ),
]


@pytest.mark.parametrize("args, message", BAD_PREDICT)
def test_predict_bad_input_is_one_clear_message(bad_files, fitted, args, message):
    names = bad_files | {"fit": fitted[0], "ckpt": fitted[0] / "checkpoint"}
    result = _run("predict", *(a.format(**names) for a in args))
    assert result.exit_code != 0
    assert message in result.output
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output


# -- predict: observations of another dtype than the checkpoint's ---------------


@pytest.fixture(scope="module")
def tabular(tmp_path_factory):
    """An `adaptive-td fit` of a tabular network: an int32 checkpoint."""
    folder = tmp_path_factory.mktemp("tabular")
    _int_chain().save(folder / "chain.npz")
    args = ["--data", folder / "chain.npz", "--method", "mc", "--network", "tabular"]
    result = _run("fit", *args, *TINY, "--out", folder / "out")
    assert result.exit_code == 0, result.output
    return folder / "out" / "checkpoint"


def _predict_npy(checkpoint_dir, observations, folder, name):
    np.save(folder / f"{name}.npy", observations)
    out = folder / f"{name}.parquet"
    result = _run(
        "predict",
        "--checkpoint",
        checkpoint_dir,
        "--data",
        folder / f"{name}.npy",
        "--out",
        out,
    )
    return result, out


def _one_error(result) -> str:
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    return lines[0]


def test_predict_accepts_observations_that_convert_exactly(data, fitted, tmp_path):
    """float64 values that float32 holds exactly give the float32 values."""
    ckpt = fitted[0] / "checkpoint"
    obs = _observations(data["table"])
    assert obs.dtype == np.float32
    result, same = _predict_npy(ckpt, obs, tmp_path, "float32")
    assert result.exit_code == 0, result.output
    result, wide = _predict_npy(ckpt, obs.astype(np.float64), tmp_path, "float64")
    assert result.exit_code == 0, result.output
    for name in ("value", "interval_low", "interval_high"):
        column = pq.read_table(wide).column(name)
        assert column.equals(pq.read_table(same).column(name))


def test_predict_rejects_observations_the_conversion_would_change(
    data, fitted, tmp_path
):
    ckpt = fitted[0] / "checkpoint"
    obs = _observations(data["table"]).astype(np.float64)
    obs[2, 1] = 0.1  # not a float32
    result, out = _predict_npy(ckpt, obs, tmp_path, "float64")
    error = _one_error(result)
    assert (
        f"float64.npy has observations of dtype float64; the checkpoint {ckpt} "
        "was fitted on float32 observations, and converting to float32 would "
        "change their values (row 2: observation[1] 0.1 would become "
        "0.10000000149011612). Convert the data to float32 first if that is "
        "intended."
    ) in error
    assert not out.exists()


def test_predict_accepts_narrow_state_indices(tabular, tmp_path):
    """int8 (or bool) state indices are exactly the int32 ones."""
    states = np.arange(6, dtype=np.int32)
    result, same = _predict_npy(tabular, states, tmp_path, "int32")
    assert result.exit_code == 0, result.output
    result, narrow = _predict_npy(tabular, states.astype(np.int8), tmp_path, "int8")
    assert result.exit_code == 0, result.output
    column = pq.read_table(narrow).column("value")
    assert column.equals(pq.read_table(same).column("value"))


def test_predict_rejects_state_indices_out_of_range(tabular, tmp_path):
    states = np.array([0, 1, 2**32 + 3], np.int64)  # int32 would wrap to 3
    result, _ = _predict_npy(tabular, states, tmp_path, "int64")
    error = _one_error(result)
    assert (
        "has observations of dtype int64; the checkpoint "
        f"{tabular} was fitted on int32 observations, and converting to int32 "
        "would change their values (row 2: observation 4294967299 would become "
        "3)."
    ) in error


def test_predict_rejects_floats_for_a_tabular_checkpoint(tabular, tmp_path):
    result, _ = _predict_npy(tabular, np.array([0.0, 1.0, 2.0]), tmp_path, "floats")
    error = _one_error(result)
    assert "observations have dtype float" in error
    assert "it was trained on integer observations (state indices)" in error
