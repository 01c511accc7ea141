"""Fitting in chunks (`adaptive_td.streaming`) and the training state it
carries (`training.train_steps`).

What is checked: a run split into calls that carry a `TrainState` (with a
masked tail) equals one long run; a streamed fit of one chunk equals the
in-memory fit, for every estimator and option that changes the training
loop; chunked sources deliver every transition exactly once, in the right
episode, with the whole file validated before training; several chunks
converge to the exact values of a chain about as well as memory does; and
the command line streams Parquet files, `.npz` shards and `.npy` arrays.
"""

import json

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

import adaptive_td as atd
from adaptive_td import checkpoint, cli, datasets, rollouts, streaming, training
from adaptive_td.envs import make

# -- allocate -----------------------------------------------------------------


@pytest.mark.parametrize(
    "steps, counts, expected",
    [
        (10, [1, 1, 1], [4, 3, 3]),  # one left over: the first chunk on a tie
        (7, [2, 0, 5], [2, 0, 5]),
        (5, [10, 30], [1, 4]),  # shares 1.25 and 3.75: the larger remainder
        (3, [1, 1, 1, 1, 1], [1, 1, 1, 0, 0]),
        (100, [7], [100]),
    ],
)
def test_allocate_by_hand(steps, counts, expected):
    assert streaming.allocate(steps, counts) == expected


def test_allocate_rejects_empty_counts():
    with pytest.raises(ValueError, match="expected a positive sum"):
        streaming.allocate(5, [0, 0])


# -- train_steps: the carried state ---------------------------------------------


def _regression():
    """A linear regression on 40 points, with a target network and a
    refreshed per-point offset, so that every part of the state matters."""
    x = jnp.linspace(-1.0, 1.0, 40)
    data = {"x": x, "y": 3.0 * x + 1.0}

    def loss(params, batch, target):
        (batch, offset) = batch
        pred = params["w"] * batch["x"] + params["b"]
        goal = batch["y"] + 0.1 * (target["w"] - params["w"]) + offset
        return jnp.mean((pred - goal) ** 2), {"pred": pred.mean()}

    def refresh(params):
        return 0.01 * params["b"] * jnp.ones_like(x)

    params = {"w": jnp.float32(0.0), "b": jnp.float32(0.0)}
    options = dict(
        batch_size=8, target_update_period=3, refresh=refresh, refresh_period=5
    )
    return loss, params, data, options


def test_train_steps_carried_across_calls_equals_one_run():
    loss, params, data, options = _regression()
    optimizer = optax.adam(0.05)
    key = jax.random.key(4)
    whole, whole_history = training.train(
        loss, optimizer, params, data, key, steps=60, **options
    )

    # The same 60 updates in calls of 15, 25 (of a 30-step program with the
    # last 5 masked) and 20, each starting at a refresh-period boundary.
    keys = jax.random.split(key, 60)
    state = training.init_state(optimizer, params, target=True)
    losses = []
    for begin, size, active in ((0, 15, None), (15, 30, 25), (40, 20, None)):
        chunk_keys = keys[np.arange(begin, begin + size) % 60]
        state, history = training.train_steps(
            loss, optimizer, state, data, chunk_keys, active=active, **options
        )
        losses.append(np.asarray(history["loss"])[: active or size])
    assert int(state.step) == 60
    for name in params:
        np.testing.assert_allclose(state.params[name], whole[name], rtol=1e-6)
    np.testing.assert_allclose(np.concatenate(losses), whole_history["loss"], rtol=1e-5)


def test_masked_updates_change_nothing():
    loss, params, data, options = _regression()
    optimizer = optax.sgd(0.1)
    state = training.init_state(optimizer, params, target=True)
    keys = jax.random.split(jax.random.key(0), 10)
    after, _ = training.train_steps(
        loss, optimizer, state, data, keys, active=0, **options
    )
    assert int(after.step) == 0
    for name in params:
        assert float(after.params[name]) == float(params[name])
        assert float(after.target[name]) == float(params[name])


# -- one chunk is the in-memory fit ---------------------------------------------


def _estimators():
    net = atd.networks.mlp((16,))
    small = dict(steps=150, batch_size=32, gamma=0.95)
    return {
        "td": atd.TD(net, **small),
        "td-target": atd.TD(net, target_update_period=7, **small),
        "mc": atd.MonteCarlo(net, **small),
        "n-step": atd.NStepTD(net, n=3, **small),
        "td-lambda": atd.TDLambda(net, lambda_=0.7, refresh_period=10, **small),
        "adaptive-td": atd.AdaptiveTD(net, ensemble_size=3, **small),
        "adaptive-td-bootstrap": atd.AdaptiveTD(
            net, ensemble_size=3, bootstrap=True, **small
        ),
        "adaptive-td-concurrent": atd.AdaptiveTD(
            net, ensemble_size=3, schedule="concurrent", **small
        ),
    }


@pytest.fixture(scope="module")
def chain():
    task = make("chain")
    return task, task.collect(40, seed=1)


@pytest.mark.parametrize("name", list(_estimators()))
def test_one_chunk_equals_the_in_memory_fit(chain, name):
    _, traj = chain
    estimator = _estimators()[name]
    memory = estimator.fit(traj, key=3)
    # Blocks of 64 updates (rounded up to TD(lambda)'s refresh period of 10
    # there): three blocks, the last one masked after 22 or 30 updates.
    streamed = streaming.fit(
        estimator, streaming.BatchSource(traj), key=3, block_steps=64
    )
    obs = np.asarray(traj.observations)[:, 0]
    np.testing.assert_allclose(streamed(obs), memory(obs), atol=1e-5)
    np.testing.assert_allclose(
        streamed.history["loss"], memory.history["loss"], rtol=1e-4, atol=1e-6
    )
    if "ensemble_loss" in memory.history:
        assert streamed.history["ensemble_loss"].shape == (3, 150)
        lo, hi = streamed.interval(obs)
        lo_m, hi_m = memory.interval(obs)
        np.testing.assert_allclose(lo, lo_m, atol=1e-5)
        np.testing.assert_allclose(hi, hi_m, atol=1e-5)


def test_several_chunks_train_every_chunk(chain):
    _, traj = chain
    estimator = atd.TD(atd.networks.mlp((8,)), steps=101, batch_size=16)
    source = streaming.BatchSource(traj, rows_per_chunk=15)
    assert source.num_chunks == 3
    calls = []
    value_fn = streaming.fit(
        estimator,
        source,
        key=0,
        epochs=2,
        block_steps=10,
        progress=lambda done, total: calls.append((done, total)),
    )
    assert value_fn.history["loss"].shape == (101,)
    assert calls[-1] == (101, 101)
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)
    shares = streaming.allocate(101, source.counts * 2)
    # One progress call per block of at most 10 updates of every chunk.
    assert len(calls) == sum(-(-s // 10) for s in shares)


@pytest.mark.parametrize("kind", ["td", "mc"])
def test_streamed_fit_converges_like_the_in_memory_fit(kind):
    """8 chunks of the wall chain, one pass: the streamed estimate is about as
    close to the exact V as the in-memory one (measured here, nMSE: TD 0.284
    streamed against 0.302 in memory, MC 0.048 against 0.066; 1.0 is the
    error of predicting the mean)."""
    task = make("chain")
    traj = task.collect(200, seed=0)
    truth = task.evaluation_set()
    cls = atd.TD if kind == "td" else atd.MonteCarlo
    estimator = cls(
        atd.networks.mlp((32, 32)),
        optax.adam(3e-3),
        gamma=task.gamma,
        steps=3000,
        batch_size=128,
    )

    def nmse(value_fn):
        error = np.asarray(value_fn(truth.observations)) - truth.values
        return float(np.mean(error**2) / np.var(truth.values))

    source = streaming.BatchSource(traj, rows_per_chunk=25)
    assert source.num_chunks == 8
    memory = nmse(estimator.fit(traj, key=0))
    streamed = nmse(streaming.fit(estimator, source, key=0))
    assert memory < 0.4
    assert streamed < 0.4
    assert streamed < 2.5 * memory


# -- sources ------------------------------------------------------------------


@pytest.fixture(scope="module")
def cartpole(tmp_path_factory):
    """CartPole-v1 under a random policy, as Parquet (episodes in order) and
    the batch; each vector row ends with an episode cut mid-way."""
    folder = tmp_path_factory.mktemp("stream")
    env = gym.make_vec(
        "CartPole-v1",
        num_envs=4,
        vectorization_mode="vector_entry_point",
        max_episode_steps=40,
    )
    traj = rollouts.collect(
        env, lambda obs, rng: rng.integers(0, 2, len(obs)), 400, seed=2
    )
    env.close()
    path = folder / "cartpole.parquet"
    datasets.write_parquet(traj, path)
    return {"folder": folder, "parquet": path, "traj": traj}


def _concatenated(source, gamma=0.9):
    """The transitions of every chunk, one after the other."""
    parts = [training.transitions(c.trajectories, gamma) for c in source.chunks()]
    return {
        name: np.concatenate([np.asarray(getattr(p, name)) for p in parts])
        for name in training.Transitions._fields
        if name != "segment"
    }


def test_parquet_chunks_hold_every_transition_once(cartpole):
    whole = datasets.read_parquet(cartpole["parquet"], allow_unfinished=True)
    expected = training.transitions(whole, 0.9)
    source = streaming.ParquetSource(
        cartpole["parquet"], chunk_size=200, allow_unfinished=True
    )
    assert source.num_chunks > 3
    assert sum(source.counts) == whole.num_steps
    assert all(count <= 200 for count in source.counts)
    got = _concatenated(source)
    for name, value in got.items():
        np.testing.assert_array_equal(value, np.asarray(getattr(expected, name)))
    # The chunk tables are the file's rows, in order.
    table = pq.read_table(cartpole["parquet"])
    rows = pa.concat_tables([c.table for c in source.chunks()])
    assert rows.equals(table)
    first = [c.first_row for c in source.chunks()]
    assert first == list(np.cumsum([0, *source.counts[:-1]]))


def test_parquet_summary_matches_the_batch(cartpole):
    whole = datasets.read_parquet(cartpole["parquet"], allow_unfinished=True)
    source = streaming.ParquetSource(
        cartpole["parquet"], chunk_size=150, allow_unfinished=True
    )
    summary, expected = source.summary, whole.summary()
    lengths = np.asarray(whole.mask).sum(1)
    assert summary["episodes"] == whole.batch_size
    assert summary["transitions"] == expected["steps"]
    assert summary["terminated"] == expected["terminated"]
    assert summary["truncated"] == expected["truncated"]
    assert summary["cut"] == expected["cut_segments"] > 0
    assert (summary["min_length"], summary["max_length"]) == (
        lengths.min(),
        lengths.max(),
    )
    assert summary["obs_shape"] == (4,)


def test_packed_chunks_equal_one_row_per_episode():
    """Packing episodes into rows changes no transition, also with terminal
    NaN observations and episodes cut mid-way (which end their row)."""
    rng = np.random.default_rng(1)
    episodes = []
    for _ in range(30):
        length = int(rng.integers(1, 12))
        obs = rng.normal(size=(length + 1, 3)).astype(np.float32)
        kind = int(rng.integers(3))
        if kind == 0:
            obs[-1] = np.nan
        episodes.append(
            dict(
                observations=obs,
                rewards=rng.normal(size=length),
                terminated=kind == 0,
                truncated=kind == 1,
            )
        )
    traj = atd.Trajectories.from_episodes(episodes)
    table = datasets.to_dataframe(traj)
    kw = datasets._table_transitions("test", table, None, None, "raise")
    padded = datasets._assemble(**kw, allow_unfinished=True)
    packed = datasets._assemble(**kw, allow_unfinished=True, pack_width=16)
    assert packed.horizon == 16 and packed.batch_size < padded.batch_size
    for a, b in (
        (training.transitions(padded, 0.9), training.transitions(packed, 0.9)),
        (training.n_step(padded, 0.9, 3), training.n_step(packed, 0.9, 3)),
    ):
        for name in a._fields:
            np.testing.assert_array_equal(
                np.asarray(getattr(a, name)), np.asarray(getattr(b, name))
            )


def test_episode_split_across_chunks_is_named(cartpole, tmp_path):
    table = pq.read_table(cartpole["parquet"])
    # Move the first row of episode 0 to the end of the file.
    order = np.r_[1 : table.num_rows, 0]
    path = tmp_path / "split.parquet"
    pq.write_table(table.take(order), path)
    with pytest.raises(ValueError, match="episode 0 has rows apart") as e:
        streaming.ParquetSource(path, chunk_size=100, allow_unfinished=True)
    assert f"row {table.num_rows - 1}" in str(e.value)
    # In one chunk the same file is fine.
    assert streaming.ParquetSource(path, allow_unfinished=True).num_chunks == 1


def test_bad_row_in_a_later_chunk_is_found_before_training(cartpole, tmp_path):
    table = pq.read_table(cartpole["parquet"])
    rewards = table.column("reward").to_numpy().copy()
    bad = table.num_rows - 3
    rewards[bad] = np.nan
    table = table.set_column(
        table.column_names.index("reward"), "reward", pa.array(rewards)
    )
    path = tmp_path / "nan.parquet"
    pq.write_table(table, path)
    with pytest.raises(ValueError, match=rf"\(row {bad}\): reward is nan"):
        streaming.ParquetSource(path, chunk_size=100, allow_unfinished=True)


def test_npz_shards(cartpole, tmp_path):
    traj = cartpole["traj"]
    halves = [
        jax.tree_util.tree_map(lambda x, s=s: x[s], traj)
        for s in (slice(0, 2), slice(2, None))
    ]
    paths = []
    for i, half in enumerate(halves):
        paths.append(tmp_path / f"shard{i}.npz")
        half.save(paths[-1])
    source = streaming.NpzShards(paths)
    assert source.counts == [h.num_steps for h in halves]
    chunks = list(source.chunks())
    ids = np.concatenate([c.table.column("episode_id").to_numpy() for c in chunks])
    whole = datasets.transition_columns(traj)
    # Episodes numbered on across shards, as in the whole batch.
    np.testing.assert_array_equal(ids, whole["episode_id"])
    np.testing.assert_array_equal(
        np.concatenate([c.observations for c in chunks]), whole["observation"]
    )


def test_npz_shards_of_other_dtypes_are_rejected(cartpole, tmp_path):
    traj = cartpole["traj"]
    traj.save(tmp_path / "a.npz")
    other = traj.__class__(
        **{
            **{f: getattr(traj, f) for f in ("observations", "terminated")},
            "rewards": np.asarray(traj.rewards, np.float64),
            "truncated": traj.truncated,
            "mask": traj.mask,
            "actions": traj.actions,
        }
    )
    other.save(tmp_path / "b.npz")
    with pytest.raises(ValueError, match="b.npz has rewards of shape"):
        streaming.NpzShards([tmp_path / "a.npz", tmp_path / "b.npz"])


@pytest.mark.parametrize(
    "call, message",
    [
        (
            lambda e, s: streaming.fit(
                e, s, key=jax.random.split(jax.random.key(0), 2)
            ),
            "takes one",
        ),
        (lambda e, s: streaming.fit(e, s, epochs=0), "epochs=0"),
        (lambda e, s: streaming.fit(e, "data.parquet"), "expected a streaming source"),
        (lambda e, s: streaming.fit("td", s), "expected an adaptive_td estimator"),
        (
            lambda e, s: streaming.ParquetSource("x.parquet", chunk_size=0),
            "chunk_size=0",
        ),
    ],
)
def test_bad_arguments(chain, call, message):
    _, traj = chain
    estimator = atd.TD(steps=5)
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        call(estimator, streaming.BatchSource(traj))


# -- the command line -------------------------------------------------------------


def _run(*args):
    result = CliRunner().invoke(cli.main, [str(a) for a in args])
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        result.output
    )
    return result


def test_fit_streams_a_parquet_file(cartpole, tmp_path):
    out = tmp_path / "out"
    result = _run(
        "fit", "--data", cartpole["parquet"], "--method", "td", "--steps", "120",
        "--batch-size", "16", "--hidden", "8", "--chunk-size", "150",
        "--epochs", "2", "--allow-unfinished", "--out", out,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    source = streaming.ParquetSource(
        cartpole["parquet"], chunk_size=150, allow_unfinished=True
    )
    values = pq.read_table(out / "values.parquet")
    table = pq.read_table(cartpole["parquet"])
    # Every input row, in order, every column, plus the values.
    assert values.select(table.column_names).equals(table)
    # The same fit through the library.
    estimator = atd.TD(
        checkpoint.network({"kind": "mlp", "hidden_sizes": [8]}),
        optax.adam(1e-3),
        steps=120,
        batch_size=16,
    )
    value_fn = streaming.fit(estimator, source, key=0, epochs=2)
    obs = np.stack(table.column("observation").to_numpy(zero_copy_only=False))
    np.testing.assert_allclose(
        values.column("value").to_numpy(), np.asarray(value_fn(obs)), atol=1e-6
    )
    config = json.loads((out / "checkpoint" / "config.json").read_text())
    assert config["options"]["chunk_size"] == 150
    assert config["options"]["epochs"] == 2


def test_fit_names_an_episode_split_across_chunks(cartpole, tmp_path):
    table = pq.read_table(cartpole["parquet"])
    path = tmp_path / "shuffled.parquet"
    pq.write_table(
        table.take(np.random.default_rng(0).permutation(table.num_rows)), path
    )
    result = _run(
        "fit", "--data", path, "--method", "mc", "--chunk-size", "100",
        "--allow-unfinished", "--out", tmp_path / "out",
    )  # fmt: skip
    assert result.exit_code == 1
    assert "has rows apart" in result.output
    assert "--chunk-size" in result.output
    assert "Traceback" not in result.output


def test_fit_and_predict_on_a_folder_of_shards(cartpole, tmp_path):
    traj = cartpole["traj"]
    shards = tmp_path / "shards"
    shards.mkdir()
    for i, rows in enumerate((slice(0, 1), slice(1, 3), slice(3, None))):
        jax.tree_util.tree_map(lambda x, r=rows: x[r], traj).save(
            shards / f"part-{i}.npz"
        )
    out = tmp_path / "out"
    result = _run(
        "fit", "--data", shards, "--method", "adaptive-td", "--steps", "40",
        "--batch-size", "16", "--hidden", "8", "--ensemble-size", "2",
        "--allow-unfinished", "--out", out,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    values = pq.read_table(out / "values.parquet")
    assert values.num_rows == traj.num_steps
    assert {"value", "interval_low", "interval_high"} <= set(values.column_names)
    np.testing.assert_array_equal(
        values.column("episode_id").to_numpy(),
        datasets.transition_columns(traj)["episode_id"],
    )
    predicted = tmp_path / "predicted.parquet"
    result = _run(
        "predict", "--checkpoint", out / "checkpoint", "--data", shards,
        "--out", predicted,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    np.testing.assert_array_equal(
        pq.read_table(predicted).column("value").to_numpy(),
        values.column("value").to_numpy(),
    )


def test_fit_on_an_empty_folder(tmp_path):
    result = _run(
        "fit", "--data", tmp_path, "--method", "td", "--out", tmp_path / "out"
    )
    assert result.exit_code == 1
    assert "holds no .npz file" in result.output


def test_predict_streams_an_npy_array(cartpole, tmp_path):
    out = tmp_path / "out"
    result = _run(
        "fit", "--data", cartpole["parquet"], "--method", "mc", "--steps", "20",
        "--batch-size", "16", "--hidden", "8", "--allow-unfinished", "--out", out,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    obs = np.random.default_rng(0).normal(size=(1000, 4)).astype(np.float32)
    np.save(tmp_path / "obs.npy", obs)
    result = _run(
        "predict", "--checkpoint", out / "checkpoint", "--data",
        tmp_path / "obs.npy", "--chunk-size", "300", "--out", tmp_path / "p.parquet",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    table = pq.read_table(tmp_path / "p.parquet")
    value_fn = checkpoint.load(out / "checkpoint")
    np.testing.assert_allclose(
        table.column("value").to_numpy(), np.asarray(value_fn(obs)), atol=1e-6
    )
    assert table.num_rows == 1000


# -- every chunk is trained on, and none is read whole ---------------------------


def _two_groups(tmp_path):
    """Episodes 0 -> 1 -> end paying 1, then episodes 2 -> 3 -> end paying 5,
    as a batch and as a Parquet file whose first 20 rows are the first group."""
    episodes = []
    for states, reward in (([0, 1], 1.0), ([2, 3], 5.0)):
        for _ in range(10):
            episodes.append(
                dict(
                    observations=np.array([*states, 0]),
                    rewards=np.array([0.0, reward], np.float32),
                    terminated=True,
                    truncated=False,
                )
            )
    traj = atd.Trajectories.from_episodes(episodes)
    path = tmp_path / "groups.parquet"
    datasets.write_parquet(traj, path)
    return traj, path


@pytest.mark.parametrize("kind", ["batch", "parquet"])
def test_every_chunk_is_trained_on(tmp_path, kind):
    """Each group only in its own chunk: a fit that skipped a chunk (or read
    one chunk twice) would leave its states at the table's initial 0."""
    traj, path = _two_groups(tmp_path)
    if kind == "batch":
        source = streaming.BatchSource(traj, rows_per_chunk=10)
    else:
        source = streaming.ParquetSource(path, chunk_size=20)
    assert source.counts == [20, 20]
    estimator = atd.MonteCarlo(
        atd.networks.tabular(4), optax.adam(0.1), gamma=1.0, steps=600, batch_size=16
    )
    value_fn = streaming.fit(estimator, source, key=0)
    np.testing.assert_allclose(value_fn(np.arange(4)), [1, 1, 5, 5], atol=0.05)


def test_parquet_is_never_read_whole(cartpole, monkeypatch):
    """Every table the source converts holds at most a chunk of rows (here
    every episode is shorter than a chunk), and no whole-file reader runs."""
    chunk_size = 100

    def refuse(*args, **kwargs):
        raise AssertionError("the whole file was read")

    monkeypatch.setattr(pq, "read_table", refuse)
    monkeypatch.setattr(pq.ParquetFile, "read", refuse)
    monkeypatch.setattr(datasets, "read_parquet", refuse)
    sizes = []
    convert = streaming.ParquetSource._transitions

    def spy(self, first, table):
        sizes.append(table.num_rows)
        return convert(self, first, table)

    monkeypatch.setattr(streaming.ParquetSource, "_transitions", spy)
    source = streaming.ParquetSource(
        cartpole["parquet"], chunk_size=chunk_size, allow_unfinished=True
    )
    estimator = atd.TD(atd.networks.mlp((8,)), steps=40, batch_size=16)
    value_fn = streaming.fit(estimator, source, key=0)
    rows = sum(len(c["value"]) for _, c in streaming.evaluate(value_fn, source))
    assert rows == source.summary["transitions"]
    assert len(sizes) == 3 * source.num_chunks  # checking, fitting, evaluating
    assert max(sizes) <= chunk_size


# -- dtypes ------------------------------------------------------------------------


def test_float64_observations_fit_and_predict_alike(cartpole, tmp_path):
    """fit gives float64 observations to the network as float32 and says so;
    predict takes the same file for that checkpoint, with the same values."""
    table = pq.read_table(cartpole["parquet"])
    wide = pa.list_(pa.float64(), 4)
    for name in ("observation", "next_observation"):
        index = table.column_names.index(name)
        table = table.set_column(index, name, table.column(name).cast(wide))
    path = tmp_path / "f64.parquet"
    pq.write_table(table, path)
    out = tmp_path / "out"
    result = _run(
        "fit", "--data", path, "--method", "td", "--steps", "20", "--hidden", "8",
        "--allow-unfinished", "--out", out,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "reach the network as float32" in " ".join(result.output.split())
    config = json.loads((out / "checkpoint" / "config.json").read_text())
    assert config["options"]["data_obs_dtype"] == "float64"
    result = _run(
        "predict", "--checkpoint", out / "checkpoint", "--data", path,
        "--out", tmp_path / "p.parquet",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert (
        pq.read_table(tmp_path / "p.parquet")
        .column("value")
        .equals(pq.read_table(out / "values.parquet").column("value"))
    )


def test_integer_observations_beyond_int32_are_refused():
    episodes = [
        dict(
            observations=np.array([0, 2**31], np.int64),
            rewards=np.array([1.0]),
            terminated=True,
            truncated=False,
        )
    ]
    traj = atd.Trajectories.from_episodes(episodes)
    with pytest.raises(ValueError, match="from 0 to 2147483648; the networks take"):
        atd.TD(atd.networks.tabular(4), steps=5).fit(traj)


def test_rlds_steps_of_other_dtypes_are_refused():
    steps = [
        dict(observation=np.int64(2**53 + 1), reward=0.0, is_first=True,
             is_last=False, is_terminal=False),
        dict(observation=1.5, reward=0.0, is_first=False, is_last=True,
             is_terminal=True),
    ]  # fmt: skip
    with pytest.raises(ValueError, match="episode 0 step 1: observation has shape"):
        datasets.from_rlds_steps([dict(steps=steps)])
    one = [
        dict(steps=[{**s, "observation": np.float32(s["observation"])} for s in steps])
    ]
    other = [
        dict(steps=[{**s, "observation": np.float64(s["observation"])} for s in steps])
    ]
    with pytest.raises(ValueError, match="episode 1: observation has dtype float64"):
        datasets.from_rlds_steps(one + other)


# -- found by review ---------------------------------------------------------------


def test_missing_episode_id_in_a_chunked_file_is_named(cartpole, tmp_path):
    table = pq.read_table(cartpole["parquet"])
    ids = table.column("episode_id").to_pylist()
    ids[400] = None
    table = table.set_column(0, "episode_id", pa.array(ids, pa.int64()))
    path = tmp_path / "missing.parquet"
    pq.write_table(table, path)
    with pytest.raises(ValueError, match="'episode_id' has dtype .*missing values"):
        streaming.ParquetSource(path, chunk_size=100, allow_unfinished=True)


def test_actions_of_another_shape_in_a_later_chunk(tmp_path):
    def episode(action_size):
        return dict(
            observations=np.zeros((3, 1), np.float32),
            rewards=np.zeros(2, np.float32),
            terminated=True,
            truncated=False,
            actions=np.zeros((2, action_size), np.float32),
        )

    first = atd.Trajectories.from_episodes([episode(2)] * 5)
    second = atd.Trajectories.from_episodes([episode(3)] * 5)
    tables = []
    for i, traj in enumerate((first, second)):
        datasets.write_parquet(traj, tmp_path / f"{i}.parquet")
        table = pq.read_table(tmp_path / f"{i}.parquet")
        ids = table.column("episode_id").to_numpy() + 5 * i
        tables.append(table.set_column(0, "episode_id", pa.array(ids)))
    path = tmp_path / "ragged.parquet"
    pq.write_table(pa.concat_tables(tables, promote_options="permissive"), path)
    with pytest.raises(ValueError, match=r"row 10 has actions of shape \(3,\)"):
        streaming.ParquetSource(path, chunk_size=10)


def test_a_long_episode_with_a_tiny_chunk_size(tmp_path):
    steps = 3000
    obs = np.arange(steps + 1, dtype=np.float32)[:, None]
    traj = atd.Trajectories.from_episodes(
        [dict(observations=obs, rewards=np.ones(steps), terminated=True,
              truncated=False)]
    )  # fmt: skip
    datasets.write_parquet(traj, tmp_path / "long.parquet")
    source = streaming.ParquetSource(tmp_path / "long.parquet", chunk_size=1)
    assert source.counts == [steps]


def test_fit_refuses_input_columns_it_would_replace(cartpole, tmp_path):
    table = pq.read_table(cartpole["parquet"])
    table = table.append_column("value", pa.array(np.arange(table.num_rows)))
    path = tmp_path / "with-value.parquet"
    pq.write_table(table, path)
    result = _run(
        "fit", "--data", path, "--method", "td", "--extra-columns", "ignore",
        "--allow-unfinished", "--out", tmp_path / "out",
    )  # fmt: skip
    assert result.exit_code == 1
    assert "has columns ['value']" in result.output
    assert "Rename or drop them" in result.output


@pytest.mark.parametrize(
    "array, message",
    [
        (np.zeros((0, 4), np.float32), "holds no observations"),
        (np.array([[0, 0, 0, 0], [0, np.nan, 0, 0]], np.float32),
         "observation 1 is"),
    ],
)  # fmt: skip
def test_predict_refuses_bad_npy_arrays(cartpole, tmp_path, array, message):
    out = tmp_path / "out"
    result = _run(
        "fit", "--data", cartpole["parquet"], "--method", "td", "--steps", "5",
        "--hidden", "4", "--allow-unfinished", "--out", out,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    np.save(tmp_path / "bad.npy", array)
    result = _run(
        "predict", "--checkpoint", out / "checkpoint", "--data",
        tmp_path / "bad.npy", "--out", tmp_path / "p.parquet",
    )  # fmt: skip
    assert result.exit_code == 1
    assert message in result.output


def test_predict_refuses_states_outside_a_tabular_checkpoint(tmp_path):
    traj, path = _two_groups(tmp_path)
    out = tmp_path / "out"
    result = _run(
        "fit", "--data", path, "--method", "mc", "--network", "tabular",
        "--steps", "5", "--out", out,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    np.save(tmp_path / "states.npy", np.array([1, 3, 7], np.int32))
    result = _run(
        "predict", "--checkpoint", out / "checkpoint", "--data",
        tmp_path / "states.npy", "--out", tmp_path / "p.parquet",
    )  # fmt: skip
    assert result.exit_code == 1
    assert "row 2 has state 7" in result.output
    assert "states 0 to 3" in result.output


def test_missing_flag_in_a_later_chunk_names_its_row(cartpole, tmp_path):
    table = pq.read_table(cartpole["parquet"])
    flags = table.column("terminated").to_pylist()
    bad = table.num_rows - 5
    flags[bad] = None
    index = table.column_names.index("terminated")
    table = table.set_column(index, "terminated", pa.array(flags, pa.bool_()))
    path = tmp_path / "missing-flag.parquet"
    pq.write_table(table, path)
    with pytest.raises(
        ValueError, match=rf"'terminated' has dtype .* missing value at row {bad};"
    ):
        streaming.ParquetSource(path, chunk_size=100, allow_unfinished=True)
