"""From users' trajectory data (transitions, tables, Parquet, RLDS) to `Trajectories`.

Each converter returns a validated `Trajectories` built by
`Trajectories.from_episodes`: one padded row per episode, in the order stated
by the converter. Nothing is dropped or changed on the way: every step given
becomes a valid step of the batch, and any input that cannot be represented
exactly (observations that do not chain, flags in the middle of an episode,
NaN or inf, wrong dtypes, missing or repeated steps, unknown columns or keys)
raises `ValueError` naming the episode (its id), the step, what was given and
what is expected.

Episode ends follow the library's convention (Gymnasium's): a `terminated`
step leads to a terminal state (value 0, its observation is never read and may
hold NaN or inf); a `truncated` step was cut by a time limit or the end of the
log and bootstraps from its next observation. An episode whose last step has
neither flag is a segment cut mid-episode; the converters accept it only when
asked to (`allow_unfinished=True`), since a missing flag is more often a bug.

- `from_transitions`: flat arrays of transitions `(s_t, s_{t+1}, r_t, flags)`.
- `from_dataframe`, `read_parquet`: one table row per transition, in the
  column schema documented at `from_dataframe`; `to_dataframe` and
  `write_parquet` write a batch in that schema, and reading it back gives the
  same batch.
- `from_rlds_steps`: RLDS episodes of step dicts, as NumPy (no TensorFlow).
- `from_minari`: a Minari dataset, read through Minari's own API (minari is
  an optional dependency, imported only there).

pandas and pyarrow (dependencies of the package) are imported only by the
table and Parquet functions, so that importing this module stays fast.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from adaptive_td.data import Trajectories, segment_cuts

if TYPE_CHECKING:
    import minari

__all__ = [
    "arrow_table",
    "from_dataframe",
    "from_minari",
    "from_rlds_steps",
    "from_transitions",
    "read_parquet",
    "to_dataframe",
    "transition_columns",
    "write_parquet",
]

_RLDS_KEYS = (
    "observation",
    "action",
    "reward",
    "discount",
    "is_first",
    "is_last",
    "is_terminal",
)


# -- flat transitions -----------------------------------------------------------


def from_transitions(
    observations,
    next_observations,
    rewards,
    terminated,
    truncated,
    *,
    episode_ids=None,
    actions=None,
    allow_unfinished: bool = False,
) -> Trajectories:
    """Group flat transitions into episodes, one padded row per episode.

    Row i of the inputs is one transition s -> s' with reward r. Within an
    episode the rows must chain: `next_observations` of a step must equal
    (exactly, element by element) `observations` of the episode's next step;
    where they differ the observations are misaligned and the conversion
    fails, naming the episode and step.

    Without `episode_ids`, rows are in time order and an episode ends at a
    row with `terminated` or `truncated` set; the next row starts the next
    episode. Episodes are numbered 0, 1, ... in row order, and errors name
    them by that number.

    With `episode_ids`, the rows of each episode are those with its id, in
    time order; the rows of different episodes may be interleaved (as in a
    log of several concurrent environments). Episodes are ordered by the first
    appearance of their id. Only the last row of an episode may carry a flag:
    a flag on an earlier row means the id holds steps after the end of an
    episode, which is an error (give each episode its own id).

    An episode whose last row has neither flag was cut mid-episode (the end of
    a log): it is accepted only with `allow_unfinished=True`, and then
    bootstraps from the next observation of its last row.

    Args:
      observations: `[N, *obs_shape]`, s_t of each transition; bool, integer
        or floating, all finite.
      next_observations: `[N, *obs_shape]`, s_{t+1}, same dtype; finite except
        on terminated rows (a terminal observation is never read).
      rewards: `[N]`, r_t; bool, integer or floating, all finite.
      terminated: `[N]` bool, s_{t+1} is terminal.
      truncated: `[N]` bool, the episode was cut after this transition. Flags
        must have dtype bool; for 0/1 integers pass `terminated != 0`.
      episode_ids: `[N]` integers or strings, or None (see above).
      actions: `[N, ...]` or None.
      allow_unfinished: accept episodes whose last row has neither flag.

    Returns:
      A validated `Trajectories` `[E, T_max + 1, *obs_shape]`, row e holding
      episode e: observations s_0 ... s_T (the observations of its rows, then
      the next observation of its last row), its rewards and actions, and the
      flags of its last row on its last step.

    Raises:
      ValueError: naming the input, what was given and what is expected, or
        the episode, step and row for misaligned observations, NaN or inf,
        flags before the last step of an episode and episodes with no end.

    Example:
      >>> import numpy as np
      >>> from adaptive_td.datasets import from_transitions
      >>> traj = from_transitions(
      ...     observations=np.array([0.0, 1.0, 5.0]),
      ...     next_observations=np.array([1.0, 2.0, 6.0]),
      ...     rewards=np.array([1.0, 1.0, 3.0]),
      ...     terminated=np.array([False, True, False]),
      ...     truncated=np.array([False, False, True]))
      >>> traj.observations.tolist()
      [[0.0, 1.0, 2.0], [5.0, 6.0, 0.0]]
    """
    fn = "from_transitions"
    # Every input has one row per transition: name the ones whose number of
    # rows differs from that of most inputs (arrays of no axes are left to the
    # checks of each input below).
    given = dict(
        observations=observations,
        next_observations=next_observations,
        rewards=rewards,
        terminated=terminated,
        truncated=truncated,
        episode_ids=episode_ids,
        actions=actions,
    )
    lengths = {}
    for name, value in given.items():
        if value is not None and np.ndim(value) > 0:
            lengths[name] = np.shape(value)[0]
    sizes = list(lengths.values())
    if len(set(sizes)) > 1:
        most = max(map(sizes.count, sizes))
        common = {v for v in sizes if sizes.count(v) == most}
        odd = [k for k, v in lengths.items() if v not in common]
        lead = "the inputs have different numbers of rows"
        if len(common) == 1:
            names = ", ".join(odd[:-1]) + " and " * (len(odd) > 1) + odd[-1]
            lead = f"{names} differ from the other inputs in rows"
        listing = ", ".join(f"{k} {v}" for k, v in lengths.items())
        raise ValueError(
            f"{fn}: {lead} ({listing}); every input needs one row per transition."
        )
    rew = np.asarray(rewards)
    if rew.ndim != 1 or rew.shape[0] == 0:
        raise ValueError(
            f"{fn}: rewards has shape {rew.shape}; expected [N] with N >= 1 "
            "transitions, one reward per row."
        )
    n = rew.shape[0]
    _check_real(fn, "rewards", rew)
    obs = np.asarray(observations)
    next_obs = np.asarray(next_observations)
    for name, value in (("observations", obs), ("next_observations", next_obs)):
        if value.ndim == 0 or value.shape[0] != n:
            raise ValueError(
                f"{fn}: {name} has shape {value.shape}; expected [N, *obs_shape] "
                f"with N = {n} rows like rewards."
            )
        _check_real(fn, name, value)
    term = _check_flags(fn, "terminated", terminated, n)
    trunc = _check_flags(fn, "truncated", truncated, n)
    act = None
    if actions is not None:
        act = np.asarray(actions)
        if act.ndim == 0 or act.shape[0] != n:
            raise ValueError(
                f"{fn}: actions has shape {act.shape}; expected [N, ...] with "
                f"N = {n} rows like rewards."
            )
    if episode_ids is None:
        # An episode ends at a flagged row; the next row starts a new one.
        ids = np.concatenate([[0], np.cumsum(term | trunc)[:-1]])
    else:
        ids = np.asarray(episode_ids)
        if ids.shape != (n,):
            raise ValueError(
                f"{fn}: episode_ids has shape {ids.shape}; expected ({n},), one "
                "id per row."
            )
        _check_ids(fn, "episode_ids", ids)

    return _assemble(
        fn,
        ids,
        obs,
        next_obs,
        rew,
        term,
        trunc,
        act,
        rows=np.arange(n),
        names=("observations", "next_observations", "rewards"),
        allow_unfinished=allow_unfinished,
    )


def _assemble(
    fn,
    ids,
    obs,
    next_obs,
    rew,
    term,
    trunc,
    act,
    *,
    rows,
    names,
    allow_unfinished,
    pack_width=None,
    pack_rows=0,
) -> Trajectories:
    """Check transitions grouped by `ids` and build one row per episode.

    Episodes are ordered by the first appearance of their id; the rows of an
    episode keep their order. `rows[i]` is the row number of input i, used in
    messages; `names` are the names of the observations, next observations
    and rewards in messages. With `pack_width`, the episodes are packed into
    rows of that many steps instead (see `_pack`), at least `pack_rows` of
    them.
    """
    obs_name, next_name, rew_name = names
    if next_obs.shape != obs.shape or next_obs.dtype != obs.dtype:
        raise ValueError(
            f"{fn}: {next_name} has shape {next_obs.shape} and dtype "
            f"{next_obs.dtype}; expected {obs.shape} and {obs.dtype} like {obs_name}."
        )
    n = len(rew)

    # Sort rows by episode (first appearance), stably, and index the steps.
    _, first, inverse = np.unique(ids, return_index=True, return_inverse=True)
    rank = np.empty(len(first), np.intp)
    rank[np.argsort(first)] = np.arange(len(first))
    episode = rank[inverse.reshape(-1)]
    order = np.argsort(episode, kind="stable")
    counts = np.bincount(episode)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    episode = episode[order]
    step = np.arange(n) - starts[episode]
    last = step == counts[episode] - 1

    def where(i):
        """`episode <id> step <t> (row <r>)` of sorted position i."""
        return (
            f"episode {_show_id(ids[order[i]])} step {step[i]} (row {rows[order[i]]})"
        )

    flagged = (term | trunc)[order]
    bad = np.flatnonzero(flagged & ~last)
    if bad.size:
        i = bad[0]
        kind = "terminated" if term[order[i]] else "truncated"
        raise ValueError(
            f"{fn}: episode {_show_id(ids[order[i]])} has steps after the end: "
            f"step {step[i]} (row {rows[order[i]]}) is {kind}, but row "
            f"{rows[order[i + 1]]} with the same episode id follows it as step "
            f"{step[i] + 1}. Give each episode its own id."
        )
    if np.issubdtype(rew.dtype, np.floating):
        bad = np.flatnonzero(~np.isfinite(rew[order]))
        if bad.size:
            i = bad[0]
            raise ValueError(
                f"{fn}: {where(i)}: {rew_name} is {rew[order[i]]}; rewards must be "
                "finite (NaN and inf are not allowed)."
            )
    if np.issubdtype(obs.dtype, np.floating):
        finite = _per_row(np.isfinite(obs))[order]
        bad = np.flatnonzero(~finite)
        if bad.size:
            i = bad[0]
            raise ValueError(
                f"{fn}: {where(i)}: {obs_name} is {_show(obs[order[i]])}; "
                "observations must be finite (NaN and inf are not allowed)."
            )
        finite = _per_row(np.isfinite(next_obs))[order]
        bad = np.flatnonzero(~finite & ~term[order])
        if bad.size:
            i = bad[0]
            raise ValueError(
                f"{fn}: {where(i)}: {next_name} is {_show(next_obs[order[i]])} and "
                "the step is not terminated; next observations must be finite "
                "(NaN and inf are allowed only after a terminated step, whose "
                "terminal observation is never read)."
            )
    same = _per_row(next_obs[order[:-1]] == obs[order[1:]])
    bad = np.flatnonzero(~last[:-1] & ~same)
    if bad.size:
        i = bad[0]
        raise ValueError(
            f"{fn}: misaligned observations in {where(i)}: {next_name} is "
            f"{_show(next_obs[order[i]])}, but the episode's step {step[i] + 1} "
            f"(row {rows[order[i + 1]]}) starts from {obs_name} "
            f"{_show(obs[order[i + 1]])}; within an episode the next observation "
            "of a step must equal the observation of the step after it exactly. "
            "Is a step missing or out of order, or an episode end not flagged?"
        )
    if not allow_unfinished:
        bad = np.flatnonzero(last & ~flagged)
        if bad.size:
            i = bad[0]
            raise ValueError(
                f"{fn}: episode {_show_id(ids[order[i]])} has no end (its last "
                f"step {step[i]} is neither terminated nor truncated); pass "
                "allow_unfinished=True if the log was cut there, and the episode "
                f"will bootstrap from the next observation of row {rows[order[i]]}."
            )

    if pack_width is not None:
        return _pack(
            obs[order],
            next_obs[order],
            rew[order],
            term[order],
            trunc[order],
            None if act is None else act[order],
            counts,
            pack_width,
            pack_rows,
        )
    episodes = []
    for start, count in zip(starts, counts):
        idx = order[start : start + count]
        ep = dict(
            observations=np.concatenate([obs[idx], next_obs[idx[-1:]]]),
            rewards=rew[idx],
            terminated=np.bool_(term[idx[-1]]),
            truncated=np.bool_(trunc[idx[-1]]),
        )
        if act is not None:
            ep["actions"] = act[idx]
        episodes.append(ep)
    return Trajectories.from_episodes(episodes)


def _pack(obs, next_obs, rew, term, trunc, act, counts, width, rows=0) -> Trajectories:
    """Episodes back to back in rows of `width` steps, as a vector
    environment's rollout buffer holds them.

    The inputs are the transitions sorted by episode, `counts` the episode
    lengths (each at most `width`). An episode of length L starting at step
    c of a row fills steps c ... c + L - 1 and observations c ... c + L (its
    last next observation at c + L); the next episode of the row starts at c
    + L + 1, after one masked step (final observation -> first observation
    of the next episode, like Gymnasium's reset step). The rest of a row is
    padding (zeros, masked), and so are the rows added to make `rows` (a
    fixed shape, so that chunks of a data set compile their programs once).
    Every transition keeps its observations, reward, flags and action, in
    order, so `training.transitions` of the packed batch equals that of one
    padded row per episode: packing only saves the padding to the longest
    episode, which for uneven lengths is most of the memory. One flag
    differs: an episode cut mid-way (neither flag on its last step) is
    marked truncated in the packed batch, since only a flagged step may
    precede a masked one inside a row; the estimators treat the two alike
    (both bootstrap from the next observation), and the batch is for
    training only.
    """
    num = len(counts)
    ends = np.cumsum(counts) - 1
    trunc = trunc.copy()
    trunc[ends] |= ~term[ends]
    row, col = _pack_rows(counts, width)
    episode = np.repeat(np.arange(num), counts)
    step = np.arange(len(episode)) - np.repeat(ends - counts + 1, counts)
    b, t = row[episode], col[episode] + step
    shape = (max(int(row[-1]) + 1, rows), width)

    def place(values, at_b, at_t, size):
        out = np.zeros(size + values.shape[1:], values.dtype)
        out[at_b, at_t] = values
        return out

    observations = place(obs, b, t, (shape[0], width + 1))
    observations[row, col + counts] = next_obs[ends]
    return Trajectories(
        observations=observations,
        rewards=place(rew, b, t, shape),
        terminated=place(term, b, t, shape),
        truncated=place(trunc, b, t, shape),
        mask=place(np.ones(len(b), bool), b, t, shape),
        actions=None if act is None else place(act, b, t, shape),
    ).validate()


def _pack_rows(counts, width) -> tuple[np.ndarray, np.ndarray]:
    """The row and first step of each episode packed by `_pack`: episodes in
    order, the next one in the same row while it fits."""
    row = np.empty(len(counts), np.int64)
    col = np.empty(len(counts), np.int64)
    r = c = 0
    for e, length in enumerate(np.asarray(counts).tolist()):
        if length > width:
            raise ValueError(f"_pack: an episode of {length} steps; width {width}.")
        if c and c + length > width:
            r, c = r + 1, 0
        row[e], col[e] = r, c
        c += length + 1
    return row, col


# -- tables and Parquet ---------------------------------------------------------


def from_dataframe(
    df,
    *,
    observation_columns: str | list[str] | None = None,
    next_observation_columns: str | list[str] | None = None,
    extra_columns: str = "raise",
    allow_unfinished: bool = False,
) -> Trajectories:
    """Convert a table with one row per transition, one padded row per episode.

    The schema (the one `to_dataframe` and `write_parquet` write):

        episode_id        integer or string   the episode the row belongs to
        step              integer             t, 0 ... T_i - 1, each exactly once
                                              per episode
        observation       s_t                 see below
        next_observation  s_{t+1}             same form, shape and dtype
        reward            bool/int/float      r_t, finite
        terminated        bool                s_{t+1} is terminal
        truncated         bool                the episode was cut after step t
        action            optional            scalars, or arrays of one shape

    Observations come in one of two forms:
      - one column, `observation` (or the name given as a string in
        `observation_columns`), holding a number per row (scalar
        observations) or an array (or list, nested for several axes) of one
        fixed shape and dtype per row;
      - several scalar columns `obs_0, obs_1, ...` (numbered from 0 without
        gaps), or the names given as a list in `observation_columns`, which
        make the observation vector in that order.
    Next observations take the same forms: `next_observation` or
    `next_obs_0, next_obs_1, ...` by default; with `observation_columns`
    given, the same names prefixed with `next_`, unless
    `next_observation_columns` names them.

    Row order does not matter: rows are sorted by `episode_id`, then `step`,
    and the batch holds the episodes in increasing order of their ids. Within
    an episode the next observation of step t must equal the observation of
    step t + 1 exactly; only the last step may carry a flag, and it must
    carry one unless `allow_unfinished=True` (a log cut mid-episode, which
    bootstraps from its last next observation). Row numbers in messages are
    positions in `df` (0 for its first row), not its index labels.

    Args:
      df: a `pandas.DataFrame` in the schema above.
      observation_columns: a column name (one column of observations) or a
        list of names (scalar columns); None picks `observation` or
        `obs_0, obs_1, ...`.
      next_observation_columns: the same for next observations; None derives
        them as described above.
      extra_columns: "raise" (default) rejects columns outside the schema;
        "ignore" leaves them out of the batch.
      allow_unfinished: accept episodes whose last step has neither flag.

    Returns:
      A validated `Trajectories` `[E, T_max + 1, *obs_shape]`, one row per
      episode in increasing id order (see `from_transitions`).

    Raises:
      ValueError: for missing or unknown columns (listing the allowed ones),
        wrong dtypes (naming the column and its dtype), missing or repeated
        steps (naming the episode), and the problems `from_transitions`
        rejects (naming the episode, step and row).

    Example:
      >>> import pandas as pd
      >>> from adaptive_td.datasets import from_dataframe
      >>> df = pd.DataFrame(dict(
      ...     episode_id=[7, 7], step=[1, 0], observation=[1.0, 0.0],
      ...     next_observation=[2.0, 1.0], reward=[0.0, 1.0],
      ...     terminated=[True, False], truncated=[False, False]))
      >>> from_dataframe(df).rewards.tolist()
      [[1.0, 0.0]]
    """
    return _from_table(
        "from_dataframe",
        df,
        observation_columns,
        next_observation_columns,
        extra_columns,
        allow_unfinished,
    )


def read_parquet(
    path: str | os.PathLike,
    *,
    observation_columns: str | list[str] | None = None,
    next_observation_columns: str | list[str] | None = None,
    extra_columns: str = "raise",
    allow_unfinished: bool = False,
) -> Trajectories:
    """Read a Parquet file in the schema of `from_dataframe`.

    The file is read with pyarrow into a DataFrame and converted by
    `from_dataframe` with the same arguments; row numbers in messages are row
    positions in the file. Files written by `write_parquet` read back to the
    batch that was written (see there).

    Raises:
      ValueError: when the file is not Parquet, and as `from_dataframe`.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except pa.ArrowInvalid as error:
        raise ValueError(
            f"read_parquet: {os.fspath(path)} is not a Parquet file ({error})."
        ) from None
    df, arrays = _arrow_columns(table)
    return _from_table(
        "read_parquet",
        df,
        observation_columns,
        next_observation_columns,
        extra_columns,
        allow_unfinished,
        arrays=arrays,
    )


def _arrow_columns(table):
    """A `pyarrow.Table` as a DataFrame of its other columns and NumPy arrays
    `[N, *shape]` of its fixed-size-list columns of numbers without nulls
    (the form `write_parquet` stores observations in). Those are decoded in
    one go: through pandas each cell would become a Python object."""
    import pyarrow as pa

    arrays, rest = {}, []
    for name in table.column_names:
        column, shape = table.column(name), []
        kind = column.type
        while pa.types.is_fixed_size_list(kind):
            shape.append(kind.list_size)
            kind = kind.value_type
        numeric = (
            pa.types.is_integer(kind)
            or pa.types.is_floating(kind)
            or pa.types.is_boolean(kind)
        )
        if shape and numeric:
            flat = column.combine_chunks()
            for _ in shape:
                if flat.null_count:
                    break
                flat = flat.flatten()
            else:
                if not flat.null_count:
                    values = flat.to_numpy(zero_copy_only=False)
                    arrays[name] = values.reshape(len(column), *shape)
                    continue
        rest.append(name)
    return table.select(rest).to_pandas(), arrays


def to_dataframe(traj: Trajectories):
    """Write a batch as a table in the schema of `from_dataframe`.

    Each episode segment of the batch becomes one episode: its valid steps
    up to a flag, a masked gap or the end of the row (so a row holding a
    stream of episodes gives several). Episodes get ids 0, 1, ... in row-major
    order; padding and masked reset steps are not transitions and are not
    written. Observations and actions that are not scalars are stored as one
    NumPy array per cell.

    `from_dataframe(to_dataframe(traj))` equals `traj` for a batch in the
    layout of `Trajectories.from_episodes` (one episode per row, padded with
    zeros), dtypes included; any other batch comes back in that layout. Pass
    `allow_unfinished=True` to read back a batch with segments cut
    mid-episode (neither flag on their last step).

    Returns:
      A `pandas.DataFrame` with columns episode_id, step, observation,
      next_observation, reward, terminated, truncated and, when the batch has
      actions, action.
    """
    import pandas as pd

    columns = transition_columns(traj)
    return pd.DataFrame(
        {
            name: list(value) if value.ndim > 1 else value
            for name, value in columns.items()
        }
    )


def write_parquet(traj: Trajectories, path: str | os.PathLike) -> None:
    """Write a batch to a Parquet file in the schema of `from_dataframe`.

    The episodes and columns are those of `to_dataframe`. Arrays are stored
    with their dtype, observations and actions with more than one number as
    fixed-size lists (nested for several axes), so that `read_parquet(path)`
    gives back `traj` for a batch in the layout of `Trajectories.from_episodes`
    (pass `allow_unfinished=True` if it has segments cut mid-episode). The
    file is written to a temporary name and then moved into place.
    """
    import pyarrow.parquet as pq

    table = arrow_table(transition_columns(traj))
    path = os.fspath(path)
    tmp = path + ".tmp"
    pq.write_table(table, tmp)
    os.replace(tmp, path)


def transition_columns(
    traj: Trajectories, *, observations: bool = True
) -> dict[str, np.ndarray]:
    """The columns of `to_dataframe`, as NumPy arrays `[N, ...]` (one entry
    per transition: episode_id, step, observation, next_observation, reward,
    terminated, truncated and, with actions, action); without the
    observations and actions when `observations=False`."""
    traj.validate()
    mask = np.asarray(traj.mask)
    cuts = segment_cuts(traj)
    # A segment starts at a valid step at the start of a row or after a cut.
    start = mask.copy()
    start[:, 1:] &= cuts[:, :-1]
    b, t = np.nonzero(mask)
    episode = np.cumsum(start[b, t]) - 1
    first = np.flatnonzero(start[b, t])
    step = np.arange(len(b)) - first[episode]
    columns = dict(episode_id=episode.astype(np.int64), step=step.astype(np.int64))
    if observations:
        obs = np.asarray(traj.observations)
        columns.update(observation=obs[b, t], next_observation=obs[b, t + 1])
    columns.update(
        reward=np.asarray(traj.rewards)[b, t],
        terminated=np.asarray(traj.terminated)[b, t],
        truncated=np.asarray(traj.truncated)[b, t],
    )
    if observations and traj.actions is not None:
        columns["action"] = np.asarray(traj.actions)[b, t]
    return columns


def arrow_table(columns: Mapping[str, np.ndarray]):
    """Columns `[N, ...]` as a `pyarrow.Table`, the layout `write_parquet`
    writes: each dtype kept, an array per row stored as (nested) fixed-size
    lists."""
    import pyarrow as pa

    return pa.table({name: _arrow(value) for name, value in columns.items()})


def _arrow(value: np.ndarray):
    """`[N, *shape]` as a pyarrow array, nested fixed-size lists for `shape`."""
    import pyarrow as pa

    array = pa.array(value.reshape(-1))
    for size in reversed(value.shape[1:]):
        array = pa.FixedSizeListArray.from_arrays(array, size)
    return array


def _from_table(
    fn, df, observation_columns, next_observation_columns, extra, unfinished, **kw
):
    """`from_dataframe`, naming `fn` in messages (keywords: those of
    `_table_transitions`)."""
    return _assemble(
        **_table_transitions(
            fn, df, observation_columns, next_observation_columns, extra, **kw
        ),
        allow_unfinished=unfinished,
    )


def _table_transitions(
    fn,
    df,
    observation_columns,
    next_observation_columns,
    extra,
    *,
    arrays: Mapping[str, np.ndarray] | None = None,
    first_row: int = 0,
) -> dict[str, Any]:
    """The checked columns of a table, sorted by episode and step: the
    arguments of `_assemble` but `allow_unfinished`.

    `arrays` holds columns already decoded to NumPy `[N, *shape]` (Arrow's
    fixed-size lists, see `_arrow_columns`), next to the columns of `df`;
    `first_row` is the row number of the table's first row in messages (a
    chunk of a larger file).
    """
    import pandas as pd

    arrays = {} if arrays is None else dict(arrays)

    if not isinstance(df, pd.DataFrame):
        raise ValueError(
            f"{fn}: got a {type(df).__name__}; expected a pandas.DataFrame."
        )
    if extra not in ("raise", "ignore"):
        raise ValueError(
            f"{fn}: extra_columns={extra!r}; expected 'raise' or 'ignore'."
        )
    num_rows = next(iter(arrays.values())).shape[0] if arrays else len(df)
    if num_rows == 0:
        raise ValueError(f"{fn}: the table has no rows; expected one per transition.")
    present = [str(c) for c in df.columns] + list(arrays)
    obs_cols, next_cols = _schema(
        fn, present, observation_columns, next_observation_columns, extra
    )
    required = _REQUIRED

    scalar = [c for c in required if c in arrays]
    if scalar:
        raise ValueError(
            f"{fn}: column '{scalar[0]}' holds arrays of shape "
            f"{arrays[scalar[0]].shape[1:]}; expected one value per row."
        )

    # Order rows by episode id, then step, and check the steps.
    column = dict(
        zip(df.columns.astype(str), (df.iloc[:, i] for i in range(df.shape[1])))
    )
    column.update(arrays)
    ids = _id_column(fn, column["episode_id"])
    steps = _numpy(column["step"])
    if steps.dtype.kind not in "iu":
        raise ValueError(
            f"{fn}: column 'step' has dtype {_dtype(column['step'])}; expected "
            "integers (0, 1, ... within each episode)."
        )
    _, codes = np.unique(ids, return_inverse=True)
    codes = codes.reshape(-1)
    order = np.lexsort((steps, codes))
    row = order + first_row  # row numbers in messages
    ids, codes, steps = ids[order], codes[order], steps[order]
    new = np.concatenate([[True], codes[1:] != codes[:-1]])
    bad = np.flatnonzero(~new & (steps == np.roll(steps, 1)))
    if bad.size:
        i = bad[0]
        raise ValueError(
            f"{fn}: episode {_show_id(ids[i])} has step {steps[i]} twice (rows "
            f"{row[i - 1]} and {row[i]}); each step must appear once."
        )
    bad = np.flatnonzero(new & (steps != 0))
    if bad.size:
        i = bad[0]
        raise ValueError(
            f"{fn}: episode {_show_id(ids[i])} is missing step 0: its first step "
            f"is {steps[i]} (row {row[i]}); steps must run 0, 1, ..., T - 1."
        )
    bad = np.flatnonzero(~new & (steps != np.roll(steps, 1) + 1))
    if bad.size:
        i = bad[0]
        raise ValueError(
            f"{fn}: episode {_show_id(ids[i])} is missing step {steps[i - 1] + 1}: "
            f"it jumps from step {steps[i - 1]} (row {row[i - 1]}) to step "
            f"{steps[i]} (row {row[i]}); steps must run 0, 1, ..., T - 1."
        )

    def where(i):
        return f"episode {_show_id(ids[i])} step {steps[i]} (row {row[i]})"

    obs = _observation_array(fn, column, obs_cols, order, where)
    next_obs = _observation_array(fn, column, next_cols, order, where)
    rew = _numpy(column["reward"])
    _check_real(fn, "column 'reward'", rew, _dtype(column["reward"]))
    term = _flag_column(fn, column["terminated"], first_row)
    trunc = _flag_column(fn, column["truncated"], first_row)
    act = None
    if "action" in present:
        act = _observation_array(fn, column, ["action"], order, where)

    return dict(
        fn=fn,
        ids=ids,
        obs=obs,
        next_obs=next_obs,
        rew=rew[order],
        term=term[order],
        trunc=trunc[order],
        act=act,
        rows=row,
        names=(_label(obs_cols), _label(next_cols), "reward"),
    )


_REQUIRED = ["episode_id", "step", "reward", "terminated", "truncated"]


def _schema(fn, present, observation_columns, next_observation_columns, extra):
    """The observation and next observation columns among the column names
    `present`; raises for repeated, missing or (with extra="raise") unknown
    columns."""
    if len(set(present)) != len(present):
        repeated = sorted({c for c in present if present.count(c) > 1})
        raise ValueError(f"{fn}: columns {repeated} appear more than once.")

    # Which columns hold what.
    obs_cols = _observation_columns(
        fn, present, observation_columns, "observation", "obs"
    )
    if next_observation_columns is None and observation_columns is not None:
        if isinstance(observation_columns, str):
            next_observation_columns = "next_" + observation_columns
        else:
            next_observation_columns = ["next_" + c for c in observation_columns]
    next_cols = _observation_columns(
        fn, present, next_observation_columns, "next_observation", "next_obs"
    )
    required = _REQUIRED
    allowed = required + obs_cols + next_cols + ["action"]
    missing = [c for c in required if c not in present]
    if missing:
        raise ValueError(
            f"{fn}: the table has no column {missing}; required: {required}, the "
            "observation and next observation columns, and optionally action."
        )
    unknown = [c for c in present if c not in allowed]
    if unknown and extra == "raise":
        raise ValueError(
            f"{fn}: unknown columns {unknown}; allowed: {allowed}. Pass "
            "extra_columns='ignore' to leave them out of the batch."
        )
    return obs_cols, next_cols


def _observation_columns(fn, present, given, single, prefix) -> list[str]:
    """The observation columns: `[single]`, `[prefix_0, ...]`, or `given`."""
    if isinstance(given, str):
        given = [given]
    if given is not None:
        given = list(given)
        missing = [c for c in given if c not in present]
        if not given or missing:
            raise ValueError(
                f"{fn}: observation columns {given} are not all in the table "
                f"(missing: {missing}); columns present: {present}."
            )
        return given
    numbered = {}
    for c in present:
        head, _, tail = c.rpartition("_")
        if head == prefix and tail.isdigit() and str(int(tail)) == tail:
            numbered[int(tail)] = c
    if single in present and numbered:
        raise ValueError(
            f"{fn}: the table has both '{single}' and {sorted(numbered.values())}; "
            "expected one form of observations. Name the columns to use with "
            "observation_columns / next_observation_columns."
        )
    if single in present:
        return [single]
    if not numbered:
        raise ValueError(
            f"{fn}: the table has no '{single}' column and no {prefix}_0, "
            f"{prefix}_1, ... columns; columns present: {present}. Name the "
            "columns with observation_columns / next_observation_columns."
        )
    gaps = sorted(set(range(max(numbered) + 1)) - set(numbered))
    if gaps:
        raise ValueError(
            f"{fn}: the table has columns {[numbered[k] for k in sorted(numbered)]} "
            f"but no {[f'{prefix}_{k}' for k in gaps]}; numbered observation "
            "columns must run from 0 without gaps."
        )
    return [numbered[k] for k in sorted(numbered)]


def _observation_array(fn, column, names, order, where) -> np.ndarray:
    """The observations of `names`, `[N, *obs_shape]`, in `order`.

    One name: a numeric column (scalars) or cells of one shape and dtype.
    Several: numeric columns of one dtype, stacked on a last axis.
    """
    if len(names) > 1:
        arrays = []
        for name in names:
            if isinstance(column[name], np.ndarray):
                raise ValueError(
                    f"{fn}: column '{name}' holds arrays of shape "
                    f"{column[name].shape[1:]}; numbered observation columns "
                    "hold one number per row."
                )
            value = _numpy(column[name])
            _check_real(fn, f"column '{name}'", value, _dtype(column[name]))
            if arrays and value.dtype != arrays[0].dtype:
                raise ValueError(
                    f"{fn}: column '{name}' has dtype {value.dtype} but column "
                    f"'{names[0]}' has {arrays[0].dtype}; observation columns "
                    "must share one dtype."
                )
            arrays.append(value)
        return np.stack(arrays, axis=1)[order]
    name = names[0]
    if isinstance(column[name], np.ndarray):  # decoded from Arrow, no nulls
        _check_real(fn, f"column '{name}'", column[name])
        return column[name][order]
    values = _numpy(column[name])
    if values.dtype != object:
        _check_real(fn, f"column '{name}'", values, _dtype(column[name]))
        return values[order]
    import pandas as pd

    # A missing cell: None or pandas' NA, or NaN in a column of arrays (the
    # placeholder pandas puts in a missing list cell); in a column of numbers
    # NaN is a number, rejected later as not finite.
    arrays = any(
        isinstance(v, (list, tuple)) or (isinstance(v, np.ndarray) and v.ndim)
        for v in values
    )
    what = (
        "an action"
        if name == "action"
        else "a next observation"
        if name.startswith("next_")
        else "an observation"
    )
    cells = []
    for i, row in enumerate(order):
        value = values[row]
        nan = isinstance(value, (float, np.floating)) and np.isnan(value)
        if value is None or value is pd.NA or value is pd.NaT or (arrays and nan):
            shown = "None" if value is None else "NaN" if nan else str(value)
            raise ValueError(
                f"{fn}: {where(i)}: column '{name}' is missing ({shown}); every row "
                f"needs {what}."
            )
        try:
            cell = _cell(values[row])
        except ValueError as error:
            raise ValueError(
                f"{fn}: {where(i)}: column '{name}' holds a ragged array ({error}); "
                "expected an array of one fixed shape per row."
            ) from None
        if cells and (cell.shape != cells[0].shape or cell.dtype != cells[0].dtype):
            raise ValueError(
                f"{fn}: {where(i)}: column '{name}' holds shape {cell.shape} and "
                f"dtype {cell.dtype}, but {where(0)} holds shape "
                f"{cells[0].shape} and dtype {cells[0].dtype}; every row must "
                "hold one shape and dtype."
            )
        if not cells:
            kind = cell.dtype.kind
            if kind not in "biuf" or cell.size == 0:
                raise ValueError(
                    f"{fn}: {where(i)}: column '{name}' holds {values[row]!r} "
                    f"(dtype {cell.dtype}, shape {cell.shape}); expected a number "
                    "or a non-empty array of numbers (bool, integer or floating)."
                )
        cells.append(cell)
    return np.stack(cells)


def _cell(value) -> np.ndarray:
    """One table cell as an array; nested object arrays (pyarrow lists) stacked."""
    array = np.asarray(value)
    if array.dtype == object and array.ndim == 1 and array.size:
        array = np.stack([_cell(v) for v in array])
    return array


def _id_column(fn, series) -> np.ndarray:
    import pandas as pd

    if pd.api.types.is_string_dtype(series.dtype):
        ids = series.to_numpy(dtype=object)
        if all(isinstance(v, str) for v in ids):
            return ids
    else:
        ids = _numpy(series)
        if ids.dtype.kind in "iu":
            return ids
    raise ValueError(
        f"{fn}: column 'episode_id' has dtype {_dtype(series)}; expected integers "
        "or strings, with no missing values."
    )


def _flag_column(fn, series, first_row=0) -> np.ndarray:
    flags = _numpy(series)
    if flags.dtype != np.bool_:
        missing = np.flatnonzero(np.asarray(series.isna()))
        kind = _dtype(series)
        if missing.size:
            row = first_row + int(missing[0])
            kind = f"{series.dtype} with a missing value at row {row}"
        raise ValueError(
            f"{fn}: column '{series.name}' has dtype {kind}; "
            f"expected bool. Convert it with df['{series.name}'] == 1 if 1 marks "
            "a flagged step (and check for missing values first)."
        )
    return flags


def _numpy(series) -> np.ndarray:
    """A column as NumPy; pandas' nullable numbers and bools without missing
    values become their NumPy dtype (a lossless conversion)."""
    dtype = getattr(series.dtype, "numpy_dtype", None)
    if dtype is not None and not series.isna().any():
        return series.to_numpy(dtype=dtype)
    return series.to_numpy()


def _dtype(series) -> str:
    """A column's dtype for messages, noting missing values."""
    if series.isna().any():
        return f"{series.dtype} (with missing values)"
    return str(series.dtype)


def _label(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{names[0]}..{names[-1]}"


# -- RLDS ---------------------------------------------------------------------


def from_rlds_steps(
    episodes: Iterable[Mapping[str, Any]], *, extra_keys: str = "raise"
) -> Trajectories:
    """Convert RLDS episodes, given as NumPy, one padded row per episode.

    The RLDS step layout (the "Dataset Format" section of the README of
    google-research/rlds, and Ramos et al. 2021, "RLDS: an Ecosystem to
    Generate, Share and Use Datasets in Reinforcement Learning"): step i holds
    the observation o_i, the action a_i taken in it and the reward r_i
    received after a_i. The last step of an episode (`is_last`) holds the
    final observation o_T; its action, reward and discount are not part of
    any transition and are ignored (they may be anything, NaN or None
    included). `is_terminal` on the last step means o_T is terminal (the
    episode terminated); a last step without it means the episode was
    truncated. So an episode of n steps gives T = n - 1 transitions
    o_t -> o_{t+1} with reward r_t, terminated or truncated on its last one.

    Each episode is a mapping with key "steps": a list (any iterable) of step
    mappings, or one mapping of arrays `[n, ...]` (as a batched RLDS episode
    converted with `tfds.as_numpy`). Step keys: `observation` (an array of
    numbers), `reward`, `is_first`, `is_last`, `is_terminal` (bool), and
    optionally `action` and `discount`. `is_first` must be True exactly on
    step 0, `is_last` exactly on the last step, and `is_terminal` only where
    `is_last` is.

    `Trajectories` has no per-step discount (γ is given to the estimator), so
    a `discount` is accepted only where it says nothing more than the flags:
    1 on every transition, except 0 allowed on the last transition of a
    terminated episode (the dm_env convention, by which RLDS logs are
    written); any other value raises.

    Args:
      episodes: an iterable of episode mappings, as above. Episodes are named
        by their position (0, 1, ...) in messages.
      extra_keys: "raise" (default) rejects keys outside the ones above, in
        episodes (other than "steps") and in steps; "ignore" leaves them out.

    Returns:
      A validated `Trajectories` `[E, T_max + 1, *obs_shape]`, one row per
      episode in the order given.

    Raises:
      ValueError: naming the episode, the step, the key, what was given and
        what is expected.

    Example:
      >>> import numpy as np
      >>> from adaptive_td.datasets import from_rlds_steps
      >>> steps = [
      ...     dict(observation=np.array([0.0]), reward=1.0, is_first=True,
      ...          is_last=False, is_terminal=False),
      ...     dict(observation=np.array([1.0]), reward=0.0, is_first=False,
      ...          is_last=True, is_terminal=True)]
      >>> traj = from_rlds_steps([{"steps": steps}])
      >>> traj.rewards.tolist(), traj.terminated.tolist()
      ([[1.0]], [[True]])
    """
    fn = "from_rlds_steps"
    if extra_keys not in ("raise", "ignore"):
        raise ValueError(
            f"{fn}: extra_keys={extra_keys!r}; expected 'raise' or 'ignore'."
        )
    if isinstance(episodes, Mapping):
        raise ValueError(
            f"{fn}: got a single mapping; expected an iterable of episodes, each "
            "a mapping with 'steps', e.g. from_rlds_steps([episode])."
        )
    converted = []
    for e, episode in enumerate(episodes):
        if not isinstance(episode, Mapping) or "steps" not in episode:
            raise ValueError(
                f"{fn}: episode {e} is a {type(episode).__name__}"
                f"{' without a steps key' if isinstance(episode, Mapping) else ''}; "
                "expected a mapping with key 'steps'."
            )
        unknown = sorted(str(k) for k in episode if k != "steps")
        if unknown and extra_keys == "raise":
            raise ValueError(
                f"{fn}: episode {e} has keys {unknown} besides 'steps'; pass "
                "extra_keys='ignore' to leave episode metadata out of the batch."
            )
        converted.append(_rlds_episode(fn, e, episode["steps"], extra_keys))
        _check_same_dtypes(fn, e, converted[0], converted[-1])
    if not converted:
        raise ValueError(f"{fn}: got no episodes; expected at least one.")
    return Trajectories.from_episodes(converted)


def _check_same_dtypes(fn, e, first, episode) -> None:
    """Episode e must hold its fields in the dtypes of episode 0: batching
    episodes of different dtypes would promote (and so change) values."""
    step_key = {"observations": "observation", "rewards": "reward"}
    for key, value in episode.items():
        if isinstance(value, np.ndarray) and key in first:
            if value.dtype != np.asarray(first[key]).dtype:
                name = step_key.get(key, key.removesuffix("s"))
                raise ValueError(
                    f"{fn}: episode {e}: {name} has dtype {value.dtype}, episode 0 "
                    f"has {np.asarray(first[key]).dtype}; every episode must use "
                    "one dtype per field (a batch of both would convert values)."
                )


def _rlds_episode(fn, e, steps, extra_keys) -> dict[str, Any]:
    """One RLDS episode as a `from_episodes` episode, checked."""
    if isinstance(steps, Mapping):
        keys = list(steps)
        fields = dict(steps)
        lengths = {k: np.shape(v)[0] if np.ndim(v) else None for k, v in fields.items()}
        n = lengths.get("is_last")
        bad = [k for k, length in lengths.items() if length != n]
        if n is None or bad:
            raise ValueError(
                f"{fn}: episode {e} steps is a mapping of arrays of lengths "
                f"{lengths}; expected arrays [n, ...] of one length n, with "
                "'is_last' among them."
            )
    else:
        steps = list(steps)
        n = len(steps)
        keys = list(steps[0]) if n and isinstance(steps[0], Mapping) else []
        for t, step in enumerate(steps):
            if not isinstance(step, Mapping):
                raise ValueError(
                    f"{fn}: episode {e} step {t} is a {type(step).__name__}; "
                    "expected a mapping (a step dict)."
                )
            if set(step) != set(keys):
                raise ValueError(
                    f"{fn}: episode {e} step {t} has keys {sorted(map(str, step))} "
                    f"but step 0 has {sorted(keys)}; all steps need the same keys."
                )
        fields = {k: [step[k] for step in steps] for k in keys}
    if n < 2:
        raise ValueError(
            f"{fn}: episode {e} has {n} step(s); expected at least 2, the first "
            "observation and the final one (is_last)."
        )
    missing = [
        k
        for k in ("observation", "reward", "is_first", "is_last", "is_terminal")
        if k not in keys
    ]
    if missing:
        raise ValueError(
            f"{fn}: episode {e} steps have no {missing}; expected keys observation, "
            "reward, is_first, is_last, is_terminal, and optionally action and "
            "discount."
        )
    unknown = sorted(str(k) for k in keys if k not in _RLDS_KEYS)
    if unknown and extra_keys == "raise":
        raise ValueError(
            f"{fn}: episode {e} steps have unknown keys {unknown}; allowed: "
            f"{list(_RLDS_KEYS)}. Pass extra_keys='ignore' to leave them out."
        )
    T = n - 1

    # The flags, one bool per step, where RLDS allows them.
    flags = {}
    for key in ("is_first", "is_last", "is_terminal"):
        flags[key] = _rlds_field(fn, e, key, fields[key], n)
        if flags[key].shape != (n,) or flags[key].dtype != np.bool_:
            raise ValueError(
                f"{fn}: episode {e} {key} has dtype {flags[key].dtype} and shape "
                f"{flags[key].shape}; expected one bool per step, ({n},)."
            )
    if not flags["is_first"][0]:
        raise ValueError(
            f"{fn}: episode {e} step 0 has is_first=False; the first step of an "
            "episode must have is_first=True."
        )
    if flags["is_first"][1:].any():
        t = 1 + int(np.argmax(flags["is_first"][1:]))
        raise ValueError(
            f"{fn}: episode {e} step {t} has is_first=True, but only step 0 may; "
            "are two episodes joined into one?"
        )
    if flags["is_last"][:-1].any():
        t = int(np.argmax(flags["is_last"][:-1]))
        raise ValueError(
            f"{fn}: episode {e} step {t} has is_last=True, but the episode has "
            f"{n} steps and only its last step ({T}) may; are two episodes "
            "joined into one?"
        )
    if not flags["is_last"][-1]:
        raise ValueError(
            f"{fn}: episode {e} step {T}, its last step, has is_last=False; RLDS "
            "episodes end with an is_last step holding the final observation. "
            "Was the episode cut while it was being written?"
        )
    if flags["is_terminal"][:-1].any():
        t = int(np.argmax(flags["is_terminal"][:-1]))
        raise ValueError(
            f"{fn}: episode {e} step {t} has is_terminal=True but is_last=False; "
            "is_terminal may only be set on the last step."
        )
    terminal = bool(flags["is_terminal"][-1])

    # The transitions: o_0 ... o_T, and r_t, a_t of steps 0 ... T-1.
    obs = _rlds_field(fn, e, "observation", fields["observation"], n)
    _check_real(fn, f"episode {e} observation", obs)
    reward = _rlds_field(fn, e, "reward", fields["reward"], T)
    if reward.shape != (T,):
        raise ValueError(
            f"{fn}: episode {e} reward has shape {reward.shape[1:]} per step; "
            "expected one number per step."
        )
    _check_real(fn, f"episode {e} reward", reward)
    if np.issubdtype(reward.dtype, np.floating) and not np.isfinite(reward).all():
        t = int(np.argmax(~np.isfinite(reward)))
        raise ValueError(
            f"{fn}: episode {e} step {t}: reward is {reward[t]}; rewards must be "
            "finite (NaN and inf are not allowed; only the last step's reward is "
            "ignored)."
        )
    if np.issubdtype(obs.dtype, np.floating):
        finite = _per_row(np.isfinite(obs))
        finite[T] |= terminal
        if not finite.all():
            t = int(np.argmax(~finite))
            raise ValueError(
                f"{fn}: episode {e} step {t}: observation is {_show(obs[t])}; "
                "observations must be finite (NaN and inf are allowed only in "
                "the final observation of a terminated episode)."
            )
    if "discount" in keys:
        discount = _rlds_field(fn, e, "discount", fields["discount"], T)
        _check_real(fn, f"episode {e} discount", discount)
        allowed = _per_row(discount == 1)
        if terminal:
            allowed[T - 1] |= bool(np.all(discount[T - 1] == 0))
        if not allowed.all():
            t = int(np.argmax(~allowed))
            raise ValueError(
                f"{fn}: episode {e} step {t}: discount is {_show(discount[t])}; "
                "Trajectories has no per-step discount (give gamma to the "
                "estimator), so expected 1, or 0 on the last transition of a "
                "terminated episode (is_terminal on the last step)."
            )
    episode = dict(
        observations=obs,
        rewards=reward,
        terminated=np.bool_(terminal),
        truncated=np.bool_(not terminal),
    )
    if "action" in keys:
        episode["actions"] = _rlds_field(fn, e, "action", fields["action"], T)
    return episode


def _rlds_field(fn, e, key, values, count) -> np.ndarray:
    """The first `count` values of a step field, stacked `[count, ...]`."""
    values = values[:count]
    if isinstance(values, np.ndarray):
        return values
    arrays = [np.asarray(v) for v in values]
    for t, array in enumerate(arrays):
        if (
            array.shape != arrays[0].shape
            or array.dtype != arrays[0].dtype
            or array.dtype == object
        ):
            raise ValueError(
                f"{fn}: episode {e} step {t}: {key} has shape {array.shape} and "
                f"dtype {array.dtype}, step 0 has shape {arrays[0].shape} and "
                f"dtype {arrays[0].dtype}; expected arrays of numbers of one "
                "shape and dtype (stacking them would convert the values)."
            )
    return np.stack(arrays)


# -- Minari -------------------------------------------------------------------


def from_minari(
    dataset: minari.MinariDataset | str,
    *,
    episode_indices: Iterable[int] | None = None,
    allow_unfinished: bool = False,
) -> Trajectories:
    """Convert a Minari dataset, one padded row per episode.

    The episodes are read with Minari's own API,
    `dataset.iterate_episodes(episode_indices)`, which yields one
    `minari.EpisodeData` per episode. Minari's layout (the `EpisodeData`
    reference, minari.farama.org/api/minari_dataset/episode_data, and
    `minari.DataCollector`, checked against minari 0.5.4): an episode of T
    steps holds
      - `observations` `[T + 1, *obs_shape]`: the initial and the final
        observations included, so s_0 ... s_T;
      - `actions` `[T, ...]`, a_t taken in s_t;
      - `rewards` `[T]`, r_t received after a_t;
      - `terminations` `[T]`, `truncations` `[T]` (bool): the `terminated`
        and `truncated` values Gymnasium's `step` returned after each step.
    This is the library's layout already: step t is s_t -> s_{t+1} with r_t,
    and the flags of the last step say how the episode ended (both set:
    termination wins). Only the last step may carry a flag; a flag on an
    earlier step means two episodes were joined, and raises. An episode with
    neither flag on its last step was cut mid-episode: `DataCollector` marks
    an episode left unfinished at `reset` or `create_dataset` as truncated,
    but Minari stores whatever episode buffers it is given
    (`create_dataset_from_buffers`, `update_dataset_from_buffer`); such an
    episode is accepted only with `allow_unfinished=True`, and then
    bootstraps from its final observation. The final observation of a
    terminated episode is never read and may hold NaN or inf; every other
    observation and every reward must be finite.

    Only array spaces are supported: observations and actions from Box,
    Discrete, MultiDiscrete or MultiBinary spaces (Minari returns each as
    one array per episode, in the space's dtype). Dict and Tuple spaces raise;
    flatten them when recording (e.g. wrap the environment in
    `gymnasium.wrappers.FlattenObservation` before `DataCollector`). Values
    are taken as Minari returns them: image observations stored with Minari's
    (lossy) JPEG encoding come back decoded, not as they were recorded.
    Episode `infos`, seeds and metadata have no place in `Trajectories` and
    are not converted.

    Args:
      dataset: a `minari.MinariDataset`, or the id of a local dataset, loaded
        with `minari.load_dataset(dataset)` (nothing is downloaded).
      episode_indices: the ids of the episodes to convert (`EpisodeData.id`,
        as `iterate_episodes` takes them), each once, all among
        `dataset.episode_indices`; the batch holds them in the order given.
        None (default): all episodes of the dataset, in the order of
        `dataset.episode_indices` (which follows `filter_episodes` and
        `split_dataset`).
      allow_unfinished: accept episodes whose last step has neither flag.

    Returns:
      A validated `Trajectories` `[E, T_max + 1, *obs_shape]`, row e holding
      the e-th episode, with its actions.

    Raises:
      ImportError: when minari is not installed.
      FileNotFoundError: from `minari.load_dataset`, when no local dataset has
        the id given.
      ValueError: for an unsupported space (naming it), bad `episode_indices`,
        and for an episode whose fields have the wrong lengths or dtypes,
        that has a flag before its last step, no end flag, or NaN or inf,
        naming the episode (its id) and the step.

    Example (it writes a dataset under MINARI_DATASETS_PATH):

        import gymnasium as gym
        import minari

        env = minari.DataCollector(gym.make("CartPole-v1"), data_format="arrow")
        env.action_space.seed(0)
        for seed in range(3):
            env.reset(seed=seed)
            done = False
            while not done:
                _, _, terminated, truncated, _ = env.step(env.action_space.sample())
                done = terminated or truncated
        env.create_dataset("me/cartpole-random-v0")
        traj = from_minari("me/cartpole-random-v0")  # 3 rows, actions kept
    """
    fn = "from_minari"
    try:
        import minari
    except ImportError as error:
        raise ImportError("from_minari needs minari: pip install minari") from error
    from gymnasium import spaces

    # Spaces whose values Minari returns as one NumPy array per episode.
    array_spaces = (
        spaces.Box,
        spaces.Discrete,
        spaces.MultiDiscrete,
        spaces.MultiBinary,
    )

    if isinstance(dataset, str):
        dataset = minari.load_dataset(dataset)
    elif not isinstance(dataset, minari.MinariDataset):
        raise ValueError(
            f"{fn}: got a {type(dataset).__name__}; expected a minari.MinariDataset "
            "or the id of a local Minari dataset (a string)."
        )
    name = f"dataset {dataset.id!r}"
    for kind, space in (
        ("observation", dataset.observation_space),
        ("action", dataset.action_space),
    ):
        if not isinstance(space, array_spaces):
            how = (
                "wrap the environment in gymnasium.wrappers.FlattenObservation "
                "before minari.DataCollector"
                if kind == "observation"
                else "record flat actions, e.g. with an action wrapper using "
                "gymnasium.spaces.flatten_space and gymnasium.spaces.unflatten"
            )
            raise ValueError(
                f"{fn}: {name} has {kind} space {space}; only array spaces "
                "(Box, Discrete, MultiDiscrete, MultiBinary) are supported. "
                f"Flatten the {kind}s to one array when recording the dataset: "
                f"{how}."
            )

    available = np.asarray(dataset.episode_indices).reshape(-1)
    if episode_indices is None:
        indices = [int(i) for i in available]
        if not indices:
            raise ValueError(f"{fn}: {name} has no episodes; expected at least one.")
    else:
        indices = _minari_indices(fn, name, episode_indices, available)

    converted = [
        _minari_episode(fn, episode, allow_unfinished)
        for episode in dataset.iterate_episodes(indices)
    ]
    if len(converted) != len(indices):
        raise ValueError(
            f"{fn}: {name} gave {len(converted)} episodes for the "
            f"{len(indices)} episode indices asked for."
        )
    return Trajectories.from_episodes(converted)


def _minari_indices(fn, name, episode_indices, available) -> list[int]:
    """`episode_indices` as a list of ints, each once and in `available`."""
    given = None
    if not isinstance(episode_indices, (str, bytes, Mapping)):
        try:
            given = np.asarray(
                episode_indices
                if isinstance(episode_indices, np.ndarray)
                else list(episode_indices)
            )
        except (TypeError, ValueError):
            given = None
    if given is not None and given.shape == (0,):
        raise ValueError(
            f"{fn}: episode_indices is empty; expected at least one episode id "
            "(or None for all episodes)."
        )
    if given is None or given.ndim != 1 or given.dtype.kind not in "iu":
        raise ValueError(
            f"{fn}: episode_indices={episode_indices!r}; expected a sequence of "
            "integer episode ids (EpisodeData.id), e.g. [0, 3, 4]."
        )
    values, counts = np.unique(given, return_counts=True)
    if (counts > 1).any():
        raise ValueError(
            f"{fn}: episode_indices repeats episode ids "
            f"{[int(v) for v in values[counts > 1]]}; give each episode once."
        )
    known = set(available.tolist())
    missing = [int(i) for i in given if int(i) not in known]
    if missing:
        raise ValueError(
            f"{fn}: {name} has no episodes with ids {missing}; its episode ids "
            f"(dataset.episode_indices) are {_show(available)}."
        )
    return [int(i) for i in given]


def _minari_episode(fn, episode, allow_unfinished) -> dict[str, Any]:
    """One `minari.EpisodeData` as a `from_episodes` episode, checked."""
    e = f"episode {_show_id(episode.id)}"
    rew = np.asarray(episode.rewards)
    if rew.ndim != 1 or rew.shape[0] == 0:
        raise ValueError(
            f"{fn}: {e} rewards has shape {rew.shape}; expected [T] with T >= 1 "
            "steps, one reward per step."
        )
    T = rew.shape[0]
    _check_real(fn, f"{e} rewards", rew)
    fields = {}
    for key, count in (("observations", T + 1), ("actions", T)):
        value = getattr(episode, key)
        if not isinstance(value, np.ndarray):
            raise ValueError(
                f"{fn}: {e} {key} is a {type(value).__name__}; expected one "
                "array (a Box, Discrete, MultiDiscrete or MultiBinary space). "
                f"Flatten the {key} when recording the dataset."
            )
        if value.ndim == 0 or value.shape[0] != count:
            raise ValueError(
                f"{fn}: {e} has {value.shape[0] if value.ndim else 0} {key} and "
                f"{T} rewards; expected {count} {key} ("
                + (
                    "s_0 ... s_T: Minari episodes include the initial and the "
                    "final observation, one more than rewards)."
                    if key == "observations"
                    else "one per step)."
                )
            )
        fields[key] = value
    obs = fields["observations"]
    _check_real(fn, f"{e} observations", obs)
    flags = {}
    for key in ("terminations", "truncations"):
        value = np.asarray(getattr(episode, key))
        if value.shape != (T,) or value.dtype != np.bool_:
            raise ValueError(
                f"{fn}: {e} {key} has shape {value.shape} and dtype {value.dtype}; "
                f"expected ({T},) bool, one flag per step like rewards."
            )
        flags[key] = value
    term, trunc = flags["terminations"], flags["truncations"]
    early = (term | trunc)[:-1]
    if early.any():
        t = int(np.argmax(early))
        kind = "terminated" if term[t] else "truncated"
        raise ValueError(
            f"{fn}: {e} step {t} is {kind}, but the episode has {T} steps and "
            f"only its last step ({T - 1}) may end it; are two episodes joined "
            "into one?"
        )
    if not (term[-1] or trunc[-1]) and not allow_unfinished:
        raise ValueError(
            f"{fn}: {e} has no end: its last step {T - 1} is neither terminated "
            "nor truncated (an episode cut mid-episode); pass "
            "allow_unfinished=True to accept it, and it will bootstrap from its "
            "final observation."
        )
    if np.issubdtype(rew.dtype, np.floating) and not np.isfinite(rew).all():
        t = int(np.argmax(~np.isfinite(rew)))
        raise ValueError(
            f"{fn}: {e} step {t}: reward is {rew[t]}; rewards must be finite "
            "(NaN and inf are not allowed)."
        )
    if np.issubdtype(obs.dtype, np.floating):
        finite = _per_row(np.isfinite(obs))
        finite[T] |= bool(term[-1])
        if not finite.all():
            t = int(np.argmax(~finite))
            what = (
                f"step {t}: observation"
                if t < T
                else f"step {T - 1} (the last): its next observation"
            )
            raise ValueError(
                f"{fn}: {e} {what} (observations[{t}]) is {_show(obs[t])}; "
                "observations must be finite (NaN and inf are allowed only in "
                "the final observation of a terminated episode)."
            )
    return dict(
        observations=obs,
        rewards=rew,
        terminated=np.bool_(term[-1]),
        truncated=np.bool_(trunc[-1]),
        actions=fields["actions"],
    )


# -- shared checks ------------------------------------------------------------


def _check_real(fn, name, value: np.ndarray, dtype=None) -> None:
    """Raise unless `value` holds bool, integer or floating numbers."""
    if value.dtype.kind not in "biuf":
        raise ValueError(
            f"{fn}: {name} has dtype {dtype if dtype is not None else value.dtype}; "
            "expected numbers (bool, integer or floating)."
        )


def _check_flags(fn, name, value, n) -> np.ndarray:
    flags = np.asarray(value)
    if flags.shape != (n,):
        raise ValueError(
            f"{fn}: {name} has shape {flags.shape}; expected ({n},) like rewards."
        )
    if flags.dtype != np.bool_:
        raise ValueError(
            f"{fn}: {name} has dtype {flags.dtype}; expected bool. Pass e.g. "
            f"{name} != 0 if 1 marks a flagged step."
        )
    return flags


def _check_ids(fn, name, ids: np.ndarray) -> None:
    ok = ids.dtype.kind in "iuUS" or (
        ids.dtype == object and all(isinstance(v, str) for v in ids)
    )
    if not ok:
        raise ValueError(
            f"{fn}: {name} has dtype {ids.dtype}; expected integers or strings."
        )


def _per_row(condition: np.ndarray) -> np.ndarray:
    """`[N]`: `condition` `[N, ...]` holds everywhere in row i."""
    return condition.all(axis=tuple(range(1, condition.ndim)))


def _show_id(value) -> str:
    """An episode id as it reads in code: 3, 'a'."""
    if isinstance(value, np.generic):
        value = value.item()
    return repr(value)


def _show(value) -> str:
    """A short printout of an observation or other value."""
    array = np.asarray(value)
    if array.ndim == 0:
        return str(array.item())
    return np.array2string(array, threshold=8, edgeitems=3)
