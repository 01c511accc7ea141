"""Fitting on data sets larger than memory, one chunk of episodes at a time.

    source = streaming.ParquetSource("logs.parquet", chunk_size=1_000_000)
    print(source.summary)                  # from a first, validating pass
    value_fn = streaming.fit(atd.TD(steps=100_000), source, key=0)
    for chunk, columns in streaming.evaluate(value_fn, source):
        ...                                # columns["value"] per input row

A *source* reads a data set as a sequence of chunks, each of whole episodes:
`ParquetSource` (one file, one row per transition in the schema of
`datasets.from_dataframe`, cut into chunks of about `chunk_size` rows),
`NpzShards` (`.npz` files written by `Trajectories.save`, one chunk each)
and `BatchSource` (a batch in memory, split by rows). On construction a
source reads everything once: it validates every chunk the way the
in-memory converters do (so bad input is reported, naming the episode, step
and row, before any training) and records what the fit needs to know in
advance: the transitions of each chunk, the shapes to pad to, and the
summary.

`fit` trains the runs of an estimator (`estimators.Run`: one for most, the
Monte Carlo ensemble and then the TD network for Adaptive TD) over the
chunks. Each run's `estimator.steps` updates are shared among the chunks of
`epochs` passes over the data, in proportion to their transitions
(`allocate`); a chunk's updates draw their minibatches uniformly from that
chunk on the device, and the parameters, optimiser state and target network
(a `training.TrainState`) carry over from one chunk to the next. The updates
run in compiled blocks of `block_steps` (the last block of a chunk masks
its surplus updates), and every chunk is padded to the source's largest, so
the whole fit compiles one program per run, whatever the number of chunks.
The update keys are those of the in-memory fit, so a source of one chunk
gives `estimator.fit(batch, key)` (to float rounding).

What differs from the in-memory fit, and why:
- Minibatches come from one chunk at a time, in the source's order, not
  from the whole data set; with several chunks the fit sees the data as a
  stream (later chunks weigh more at the end of each pass). More epochs, or
  smaller chunks in a shuffled file, bring it closer to uniform sampling.
- Adaptive TD's interval is that of the ensemble after its whole run (the
  same as in memory); its per-transition targets are recomputed on each
  chunk when the TD run reaches it. With `bootstrap=True` chunk c draws its
  episodes' Poisson weights from `fold_in(key, c)`, the same in every pass.
- TD(lambda) refreshes its targets on the chunk in hand, at the start of
  every chunk and every `refresh_period` updates within it.

Memory: the host holds one chunk (as read, converted, and prepared for the
device) and the device one prepared chunk; nothing grows with the number of
chunks but the per-update loss history (4 bytes an update). The README shows
measured peak memory and throughput on 10^7 transitions.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from adaptive_td import datasets, training
from adaptive_td.data import Trajectories
from adaptive_td.estimators import (
    ValueFunction,
    _as_keys,
    _check_positive_int,
    _Estimator,
    run_keys,
    run_steps,
    start_state,
)

#: Rows (transitions) per chunk of a Parquet file unless told otherwise:
#: 2^20, so that data sets of up to about a million transitions are fitted
#: whole, exactly as in memory (a streamed fit samples one chunk at a time,
#: see the module docstring), and larger ones in chunks of about 64 MiB of
#: CartPole transitions. Smaller chunks use less memory (benchmarks/memory.py:
#: 875 MiB peak for 10^7 transitions in chunks of 2^16, against 4932 MiB
#: whole).
DEFAULT_CHUNK_SIZE = 1 << 20

__all__ = [
    "BatchSource",
    "Chunk",
    "NpzShards",
    "ParquetSource",
    "Source",
    "allocate",
    "evaluate",
    "fit",
    "values",
]


@dataclasses.dataclass
class Chunk:
    """One chunk of a source: whole episodes.

    Attributes:
      trajectories: the chunk's episodes as a validated batch.
      table: the chunk's input rows as a `pyarrow.Table`, every column, in
        the source's row order (for a Parquet file, its rows as read).
      observations: s_t of each row of `table`, `[rows, *obs_shape]`.
      first_row: the row number of the table's first row in the whole source.
    """

    trajectories: Trajectories
    table: Any
    observations: np.ndarray
    first_row: int


class Source:
    """A data set read as a sequence of chunks of whole episodes.

    Attributes, set from the validating pass on construction:
      counts: the transitions of each chunk.
      capacity: the transitions every chunk is padded to on the device.
      layout: `(rows, steps)` every chunk's batch is padded to (the
        `[B, T]` layout TD(lambda) computes its targets on).
      summary: a dict: episodes, transitions, min_length, mean_length,
        max_length, terminated, truncated, cut (episodes ending with neither
        flag), obs_shape, obs_dtype, and for integer observations
        state_min, state_max (over every s_t and s_{t+1}).
    """

    counts: list[int]
    capacity: int
    layout: tuple[int, int]
    summary: dict[str, Any]

    @property
    def num_chunks(self) -> int:
        return len(self.counts)

    def chunks(self) -> Iterator[Chunk]:
        """The chunks, in order (a new pass over the data each call)."""
        raise NotImplementedError

    def _survey(self, chunks: Iterator[Chunk]) -> None:
        """Set the attributes from one pass over `chunks`."""
        survey = _Survey(self._name)
        rows = steps = 0
        for chunk in chunks:
            traj = chunk.trajectories
            summary = traj.summary()
            obs = np.asarray(traj.observations)
            mask = np.asarray(traj.mask)
            survey.add(
                self._where(chunk),
                _episode_lengths(traj),
                summary["terminated"],
                summary["truncated"],
                summary["cut_segments"],
                obs[_read(traj)],
                {
                    "rewards": np.asarray(traj.rewards)[mask],
                    "actions": None
                    if traj.actions is None
                    else np.asarray(traj.actions)[mask],
                },
            )
            rows, steps = max(rows, traj.batch_size), max(steps, traj.horizon)
        survey.finish(self, (rows, steps), self._capacity())

    _name = "source"

    def _capacity(self) -> int:
        return 0

    def _where(self, chunk: Chunk) -> str:
        """A chunk, in messages."""
        return f"the chunk starting at row {chunk.first_row}"


class _Survey:
    """What a pass over the chunks records: counts, lengths, ends, states."""

    def __init__(self, name):
        self.name = name
        self.counts, self.lengths = [], []
        self.terminated = self.truncated = self.cut = 0
        self.shape = self.dtype = self.low = self.high = None

    def add(self, where, lengths, terminated, truncated, cut, states, fields):
        """One chunk (`where` names it in messages): its episode lengths, how
        many episodes end terminated, truncated or with neither flag, the
        observations it reads, and its other fields `{name: array}` (reward,
        action), whose shapes per row and dtypes must match the first
        chunk's: a batch of several would convert them."""
        fields = {"observations": states, **fields}
        kinds = {
            name: (tuple(value.shape[1:]), value.dtype.name)
            for name, value in fields.items()
            if value is not None
        }
        if self.shape is None:
            self.shape, self.dtype = states.shape[1:], states.dtype
            self.kinds, self.first = kinds, where
        elif kinds != self.kinds:
            name = next(
                n
                for n in set(kinds) | set(self.kinds)
                if kinds.get(n) != self.kinds.get(n)
            )

            def show(kind):
                return (
                    "none" if kind is None else f"shape {kind[0]} and dtype {kind[1]}"
                )

            raise ValueError(
                f"{self.name}: {where} has {name} of {show(kinds.get(name))}; "
                f"{self.first} has {show(self.kinds.get(name))}. All chunks "
                "must match."
            )
        self.counts.append(int(np.sum(lengths)))
        self.lengths.append(np.asarray(lengths))
        self.terminated += int(terminated)
        self.truncated += int(truncated)
        self.cut += int(cut)
        if self.dtype.kind in "iub" and states.size:
            low, high = int(states.min()), int(states.max())
            self.low = low if self.low is None else min(self.low, low)
            self.high = high if self.high is None else max(self.high, high)

    def finish(self, source, layout, capacity):
        if not self.counts:
            raise ValueError(f"{self.name}: the data set holds no transition.")
        lengths = np.concatenate(self.lengths)
        source.counts = self.counts
        source.layout = tuple(layout)
        source.capacity = max(capacity, max(self.counts))
        source.summary = dict(
            episodes=len(lengths),
            transitions=int(sum(self.counts)),
            min_length=int(lengths.min()),
            mean_length=float(lengths.mean()),
            max_length=int(lengths.max()),
            terminated=self.terminated,
            truncated=self.truncated,
            cut=self.cut,
            chunks=len(self.counts),
            obs_shape=tuple(self.shape),
            obs_dtype=self.dtype,
        )
        if self.low is not None:
            source.summary.update(state_min=self.low, state_max=self.high)


def _read(traj: Trajectories) -> np.ndarray:
    """Where the steps of a batch read observations: s_t and s_{t+1} of
    every valid step (terminal ones included)."""
    mask = np.asarray(traj.mask)
    read = np.zeros(np.shape(traj.observations)[:2], bool)
    read[:, :-1] |= mask
    read[:, 1:] |= mask
    return read


def _episode_lengths(traj: Trajectories) -> np.ndarray:
    """The length of each episode (segment) of a batch, in row-major order."""
    ids = datasets.transition_columns(traj, observations=False)["episode_id"]
    return np.bincount(ids)


def _batch_chunk(traj: Trajectories, first_episode: int, first_row: int) -> Chunk:
    """A batch as a chunk: its table in the schema of `datasets.to_dataframe`,
    episodes numbered from `first_episode`."""
    columns = datasets.transition_columns(traj)
    columns["episode_id"] = columns["episode_id"] + first_episode
    return Chunk(traj, datasets.arrow_table(columns), columns["observation"], first_row)


class BatchSource(Source):
    """A batch in memory, in chunks of `rows_per_chunk` rows (all rows in one
    chunk by default); rows are whole episodes or streams of them, so a
    chunk is too. For tests and for chunked training of data that fits."""

    _name = "BatchSource"

    def __init__(self, trajectories: Trajectories, rows_per_chunk: int | None = None):
        if not isinstance(trajectories, Trajectories):
            raise ValueError(
                f"BatchSource: got a {type(trajectories).__name__}; expected "
                "adaptive_td.Trajectories."
            )
        self.trajectories = trajectories.validate()
        rows = trajectories.batch_size
        self.rows_per_chunk = (
            rows
            if rows_per_chunk is None
            else _check_positive_int("rows_per_chunk", rows_per_chunk)
        )
        self._survey(self.chunks())

    def _capacity(self):
        return self.rows_per_chunk * self.trajectories.horizon

    def chunks(self):
        traj, size = self.trajectories, self.rows_per_chunk
        episodes = rows = 0
        for start in range(0, traj.batch_size, size):
            part = jax.tree_util.tree_map(lambda x, at=start: x[at : at + size], traj)
            if not np.any(np.asarray(part.mask)):
                continue
            chunk = _batch_chunk(part, episodes, rows)
            ids = chunk.table.column("episode_id").to_numpy()
            episodes, rows = int(ids[-1]) + 1, rows + len(ids)
            yield chunk


class NpzShards(Source):
    """`.npz` files written by `Trajectories.save`, one chunk each, in the
    order given. The output rows of a shard are its transitions in row-major
    order (the order of `datasets.to_dataframe`), episodes numbered on from
    the shards before."""

    _name = "NpzShards"

    def __init__(self, paths: Sequence[str | os.PathLike]):
        self.paths = [os.fspath(p) for p in paths]
        if not self.paths:
            raise ValueError("NpzShards: no .npz files given.")
        self._paths = {}
        self._survey(self.chunks())

    def _capacity(self):
        return 0

    def chunks(self):
        episodes = rows = 0
        for path in self.paths:
            traj = Trajectories.load(path)
            if traj.num_steps == 0:
                raise ValueError(
                    f"NpzShards: {path} holds no valid step (its mask is all "
                    "False); expected transitions."
                )
            chunk = _batch_chunk(traj, episodes, rows)
            self._paths[chunk.first_row] = path
            ids = chunk.table.column("episode_id").to_numpy()
            episodes, rows = int(ids[-1]) + 1, rows + len(ids)
            yield chunk

    def _where(self, chunk):
        return self._paths[chunk.first_row]


class ParquetSource(Source):
    """A Parquet file of transitions (the schema of `datasets.from_dataframe`),
    read in chunks of whole episodes.

    The file is read in order, in batches; a chunk ends at the last episode
    boundary within `chunk_size` rows (an episode longer than that makes a
    chunk of its own). A file of more rows than `chunk_size` needs each
    episode's rows to be together (in any order of steps); an episode whose
    rows are apart is an error naming it and its rows. A file of at most
    `chunk_size` rows is one chunk, in any row order. Each chunk is
    converted like `datasets.read_parquet` (the same checks and messages,
    row numbers of the whole file), with its episodes packed into rows of
    equal width (`datasets._pack`) rather than one padded row each.

    Args:
      path: the Parquet file.
      chunk_size: rows (transitions) per chunk, at most (but see above).
      observation_columns, next_observation_columns, extra_columns,
      allow_unfinished: as for `datasets.read_parquet`.
      progress: called as `progress(rows checked, rows in the file)` after
        each chunk of the checking pass.
    """

    _name = "read_parquet"

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        observation_columns=None,
        next_observation_columns=None,
        extra_columns: str = "raise",
        allow_unfinished: bool = False,
        progress: Callable[[int, int], None] | None = None,
    ):
        import pyarrow as pa
        import pyarrow.parquet as pq

        self.path = os.fspath(path)
        self.chunk_size = _check_positive_int("chunk_size", chunk_size)
        self._options = (observation_columns, next_observation_columns, extra_columns)
        self.allow_unfinished = allow_unfinished
        try:
            metadata = pq.ParquetFile(self.path).metadata
        except (pa.ArrowInvalid, OSError) as error:
            raise ValueError(
                f"read_parquet: {self.path} is not a Parquet file ({error})."
            ) from None
        if extra_columns not in ("raise", "ignore"):
            raise ValueError(
                f"read_parquet: extra_columns={extra_columns!r}; expected 'raise' "
                "or 'ignore'."
            )
        #: The file's column names.
        self.columns = metadata.schema.to_arrow_schema().names
        datasets._schema(self._name, self.columns, *self._options)
        total = metadata.num_rows
        if total == 0:
            raise ValueError(
                f"read_parquet: {self.path} has no rows; expected one per transition."
            )
        if total > self.chunk_size:
            self._check_together()
        # One pass: every chunk checked, and the episodes' lengths and ends
        # recorded to plan the packing.
        survey, plan = _Survey(self._name), []
        for first, table in self._tables():
            kw = self._transitions(first, table)
            datasets._assemble(**kw, allow_unfinished=allow_unfinished)
            lengths = _run_lengths(kw["ids"])
            ends = np.cumsum(lengths) - 1
            term, trunc = kw["term"][ends], kw["trunc"][ends]
            open_end = ~(term | trunc)
            plan.append(lengths)
            states = np.concatenate([kw["obs"], kw["next_obs"][ends]])
            survey.add(
                f"the chunk starting at row {first}",
                lengths,
                term.sum(),
                (trunc & ~term).sum(),
                open_end.sum(),
                states,
                {"rewards": kw["rew"], "actions": kw["act"]},
            )
            if progress is not None:
                progress(first + table.num_rows, total)
        longest = max(int(lengths.max()) for lengths in plan)
        widest = max(int(lengths.sum()) + len(lengths) for lengths in plan)
        # Rows of a few longest episodes, wide enough that packing wastes
        # little, but no wider than a chunk in one row.
        self.width = max(longest, min(max(1024, 4 * (longest + 1)), widest))
        rows = max(
            int(datasets._pack_rows(lengths, self.width)[0][-1]) + 1 for lengths in plan
        )
        survey.finish(self, (rows, self.width), 0)

    def _tables(self) -> Iterator[tuple[int, Any]]:
        """(first row, table) of each chunk's rows, in file order."""
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        # Without pre-buffering: with it, pyarrow keeps every column chunk it
        # has read, so memory grows with the file (measured: 330 MiB after
        # 10^7 rows).
        file = pq.ParquetFile(self.path, pre_buffer=False)
        pending, first = None, 0
        for batch in file.iter_batches(batch_size=1 << 16):
            table = pa.Table.from_batches([batch])
            pending = table if pending is None else pa.concat_tables([pending, table])
            if pending.num_rows <= self.chunk_size:
                continue
            # Where episodes start in the pending rows, found once per batch
            # read, then cut into as many chunks as they allow.
            ids = pending.column("episode_id")
            new = pc.fill_null(pc.not_equal(ids[1:], ids[:-1]), True)
            starts = np.flatnonzero(new.to_numpy(zero_copy_only=False)) + 1
            at = 0
            while pending.num_rows - at > self.chunk_size:
                later = starts[np.searchsorted(starts, at, side="right") :]
                if not later.size:
                    break  # one episode so far: read on
                fits = later[later <= at + self.chunk_size]
                cut = int(fits[-1] if fits.size else later[0])
                yield first + at, pending.slice(at, cut - at)
                at = cut
            first, pending = first + at, pending.slice(at)
        if pending is not None and pending.num_rows:
            yield first, pending

    def _check_together(self) -> None:
        """Raise unless the rows of each episode are together in the file
        (read from the episode_id column alone, before any chunk)."""
        import pyarrow.parquet as pq

        file = pq.ParquetFile(self.path, pre_buffer=False)
        starts, rows, previous, at = [], [], None, 0
        for batch in file.iter_batches(batch_size=1 << 16, columns=["episode_id"]):
            column = batch.column(0)
            ids = column.to_numpy(zero_copy_only=False)
            if (
                column.null_count
                or ids.dtype.kind not in "iuO"
                or (ids.dtype == object and not all(isinstance(v, str) for v in ids))
            ):
                # Missing ids, or ids of a wrong type: the checks of the
                # chunk that holds them name them.
                return
            new = _starts(ids)
            if previous is not None and ids.size and ids[0] == previous:
                new[0] = False
            starts.append(ids[new])
            rows.append(np.flatnonzero(new) + at)
            previous, at = (ids[-1] if ids.size else previous), at + len(ids)
        starts, rows = np.concatenate(starts), np.concatenate(rows)
        try:
            _, first, counts = np.unique(starts, return_index=True, return_counts=True)
        except TypeError:
            return
        if np.all(counts == 1):
            return
        # The episode whose rows break off earliest.
        again = np.flatnonzero(counts > 1)
        apart = [np.flatnonzero(starts == starts[first[i]])[1] for i in again]
        i = apart[int(np.argmin(apart))]
        episode = starts[i]
        earlier = rows[np.flatnonzero(starts == episode)[0]]
        raise ValueError(
            f"read_parquet: episode {datasets._show_id(episode)} has rows apart in "
            f"the file: it starts at row {earlier}, and row {rows[i]} is its again "
            f"after rows of other episodes. A file of more than chunk_size="
            f"{self.chunk_size} rows is read in chunks of whole episodes, so each "
            "episode's rows must be together (sort the file by episode_id), or "
            "fit with a larger chunk size to read it whole."
        )

    def _transitions(self, first, table):
        """The checked columns of a chunk's rows (`datasets._assemble`'s
        arguments), row numbers counted from `first`."""
        df, arrays = datasets._arrow_columns(table)
        return datasets._table_transitions(
            self._name, df, *self._options, arrays=arrays, first_row=first
        )

    def chunks(self):
        for first, table in self._tables():
            kw = self._transitions(first, table)
            traj = datasets._assemble(
                **kw,
                allow_unfinished=self.allow_unfinished,
                pack_width=self.width,
                pack_rows=self.layout[0],
            )
            observations = np.empty_like(kw["obs"])
            observations[kw["rows"] - first] = kw["obs"]
            yield Chunk(traj, table, observations, first)


def _starts(ids: np.ndarray) -> np.ndarray:
    """Where a run of equal ids starts (True at 0 and wherever the id changes)."""
    return np.concatenate([[True], ids[1:] != ids[:-1]])


def _run_lengths(ids: np.ndarray) -> np.ndarray:
    """Lengths of the runs of equal ids (episodes, sorted by id)."""
    return np.diff(np.append(np.flatnonzero(_starts(ids)), len(ids)))


# -- the fit ---------------------------------------------------------------------


def allocate(steps: int, counts: Sequence[int]) -> list[int]:
    """`steps` updates shared among chunks in proportion to their `counts`.

    Each chunk gets the floor of its share `steps * count / sum(counts)`,
    and the updates left over go one each to the chunks with the largest
    remainders (the earlier chunk first on ties), so the shares add up to
    `steps` exactly. E.g. `allocate(10, [1, 1, 1]) == [4, 3, 3]`.
    """
    total = sum(counts)
    if total <= 0 or any(c < 0 for c in counts):
        raise ValueError(f"allocate: counts={list(counts)}; expected a positive sum.")
    shares = [divmod(steps * c, total) for c in counts]
    out = [q for q, _ in shares]
    left = steps - sum(out)
    by_remainder = sorted(range(len(counts)), key=lambda i: (-shares[i][1], i))
    for i in by_remainder[:left]:
        out[i] += 1
    return out


class _Prepared:
    """A source's chunks as the device arrays of one estimator, read in
    order and kept while the same chunk is asked for again."""

    def __init__(self, estimator, source: Source):
        self.estimator, self.source = estimator, source
        self.index, self.chunks = None, None
        self.data = self.count = None

    def get(self, index: int):
        if index != self.index:
            if self.chunks is None or self.index is None or index < self.index:
                self.chunks, self.index = iter(self.source.chunks()), -1
            while self.index < index:
                chunk = next(self.chunks)
                self.index += 1
            data = self.estimator._transitions(chunk.trajectories)
            padded, counts = training.stack(
                [data], self.source.capacity, self.source.layout
            )
            self.data = jax.tree_util.tree_map(lambda x: jnp.asarray(x[0]), padded)
            self.count = jnp.asarray(counts[0])
        return self.data, self.count


def fit(
    estimator: _Estimator,
    source: Source,
    key=0,
    *,
    epochs: int = 1,
    block_steps: int = 1000,
    progress: Callable[[int, int], None] | None = None,
) -> ValueFunction:
    """Fit `estimator` to the chunks of `source` (see the module docstring).

    Args:
      estimator: any estimator of `adaptive_td` (its `steps` are the updates
        of each run over the whole fit, as in memory).
      source: a `Source`.
      key: one PRNG key or int seed (one fit; several seeds are separate
        calls).
      epochs: passes over the source; the updates are shared among all of
        them.
      block_steps: updates per compiled block (rounded up to a multiple of
        TD(lambda)'s `refresh_period`); progress is reported after each.
      progress: called as `progress(done, total)` in updates, all runs
        counted.

    Returns:
      The estimator's value function, as `estimator.fit` returns it.
    """
    if not isinstance(estimator, _Estimator):
        raise ValueError(
            f"streaming.fit: estimator is a {type(estimator).__name__}; expected "
            "an adaptive_td estimator (atd.TD, atd.MonteCarlo, ...)."
        )
    if not isinstance(source, Source):
        raise ValueError(
            f"streaming.fit: source is a {type(source).__name__}; expected a "
            "streaming source (ParquetSource, NpzShards or BatchSource)."
        )
    epochs = _check_positive_int("epochs", epochs)
    block_steps = _check_positive_int("block_steps", block_steps)
    keys, batched = _as_keys(key)
    if batched:
        raise ValueError(
            f"streaming.fit: key holds {len(keys)} keys; a streamed fit takes one "
            "(fit several seeds one after the other)."
        )
    steps = estimator.steps
    schedule = [c for _ in range(epochs) for c in range(source.num_chunks)]
    shares = allocate(steps, [source.counts[c] for c in schedule])
    period = getattr(estimator, "refresh_period", 1)
    block = -(-min(block_steps, steps) // period) * period

    prepared = _Prepared(estimator, source)
    first, _ = prepared.get(0)
    runs = estimator._runs(keys[0], first)
    total, done = steps * len(runs), 0
    earlier, histories = [], []
    for run in runs:
        state = start_state(run, estimator.optimizer)
        # The in-memory fit's keys, plus a block's worth for the masked tail.
        run_key = run_keys(run, steps)
        run_key = run_key[..., np.arange(steps + block) % steps]
        make_data = jax.jit(run.data)
        train = jax.jit(
            partial(
                run_steps, run, estimator.optimizer, batch_size=estimator.batch_size
            )
        )
        axis = 1 if run.members else 0
        parts, at = [], 0
        for c, share in zip(schedule, shares):
            if share == 0:
                continue
            data, count = prepared.get(c)
            index = None if source.num_chunks == 1 else jnp.int32(c)
            train_data = make_data(data, earlier, index)
            for offset in range(0, share, block):
                active = min(block, share - offset)
                begin = at + offset
                state, history = train(
                    state,
                    data,
                    train_data,
                    run_key[..., begin : begin + block],
                    count=count,
                    active=jnp.int32(active),
                )
                parts.append(_first(history, active, axis))
                done += active
                if progress is not None:
                    progress(done, total)
            at += share
        earlier.append(state.params)
        histories.append(_concatenate(parts, axis))
    out = estimator._finish(earlier, histories)
    return estimator._value_function(out, first, num_seeds=None)


def _first(history, n, axis):
    """The first n steps of a block's history (steps on `axis`)."""
    return jax.tree_util.tree_map(
        lambda h: np.asarray(h).take(np.arange(n), axis), history
    )


def _concatenate(parts, axis):
    return jax.tree_util.tree_map(lambda *h: np.concatenate(h, axis), *parts)


def evaluate(
    value_fn: ValueFunction, source: Source, *, batch_rows: int = 1 << 16
) -> Iterator[tuple[Chunk, dict[str, np.ndarray]]]:
    """Each chunk of `source` with the value function on its rows:
    `{"value": ...}`, plus `interval_low` and `interval_high` for an Adaptive
    TD fit, one entry per row of `chunk.table`; evaluated `batch_rows` rows
    at a time to bound the device memory."""
    for chunk in source.chunks():
        yield chunk, values(value_fn, chunk.observations, batch_rows=batch_rows)


def values(
    value_fn: ValueFunction, observations: np.ndarray, *, batch_rows: int = 1 << 16
) -> dict[str, np.ndarray]:
    """`value` (and the interval of an Adaptive TD fit) of each observation,
    `batch_rows` at a time."""
    parts = []
    for start in range(0, len(observations), batch_rows):
        obs = observations[start : start + batch_rows]
        n = len(obs)
        # Batches of a power-of-two size up to batch_rows, filled up with
        # repeats: each new shape compiles the network again, and compiled
        # programs hold memory (measured: 13 MiB a shape), so chunks of
        # varying length must not bring new shapes.
        size = min(batch_rows, 1 << max(n - 1, 0).bit_length())
        obs = obs[np.arange(size) % n]
        columns = {"value": np.asarray(value_fn(obs))[:n]}
        if hasattr(value_fn, "interval"):
            low, high = value_fn.interval(obs)
            columns["interval_low"] = np.asarray(low)[:n]
            columns["interval_high"] = np.asarray(high)[:n]
        parts.append(columns)
    if not parts:
        return {"value": np.zeros(0, np.float32)}
    return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}
