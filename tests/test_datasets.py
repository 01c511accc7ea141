"""Tests for adaptive_td.datasets: users' trajectory data to Trajectories.

Three hand-written episodes (below) are given in every format: flat
transitions, a DataFrame in both observation forms, Parquet and RLDS steps.
Each must give exactly the batch written out by hand, which is also
`Trajectories.from_episodes` of the episodes. A table of bad inputs pins the
message each must raise.
"""

import os
import tempfile

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adaptive_td.data import Trajectories
from adaptive_td.datasets import (
    from_dataframe,
    from_rlds_steps,
    from_transitions,
    read_parquet,
    to_dataframe,
    write_parquet,
)

F, T = False, True
NAN, INF = float("nan"), float("inf")

# -- the episodes ---------------------------------------------------------------
#
# Observations are float32 pairs (x, y); rewards float32; actions int64.
# Episode 0: (0,0) -1-> (1,0) -2-> (2,0), terminated; actions 0, 1.
# Episode 1: (10,0) -5-> (11,0), truncated; action 1.
# Episode 2: (20,1) -3-> (21,1) -4-> (22,1) -5-> (23,1), truncated; 0, 0, 1.
# As flat transitions (rows 0-1 episode 0, row 2 episode 1, rows 3-5 episode 2):
#   obs       (0,0) (1,0) (10,0) (20,1) (21,1) (22,1)
#   next obs  (1,0) (2,0) (11,0) (21,1) (22,1) (23,1)
# Padded to T = 3 with zeros and mask False, one episode per row.

OBS = [
    [[0, 0], [1, 0], [2, 0]],
    [[10, 0], [11, 0]],
    [[20, 1], [21, 1], [22, 1], [23, 1]],
]
REWARDS = [[1, 2], [5], [3, 4, 5]]
ACTIONS = [[0, 1], [1], [0, 0, 1]]
ENDS = [(T, F), (F, T), (F, T)]  # (terminated, truncated) of each episode

EXPECTED = dict(
    observations=np.array(
        [
            [[0, 0], [1, 0], [2, 0], [0, 0]],
            [[10, 0], [11, 0], [0, 0], [0, 0]],
            [[20, 1], [21, 1], [22, 1], [23, 1]],
        ],
        np.float32,
    ),
    rewards=np.array([[1, 2, 0], [5, 0, 0], [3, 4, 5]], np.float32),
    terminated=np.array([[F, T, F], [F, F, F], [F, F, F]]),
    truncated=np.array([[F, F, F], [T, F, F], [F, F, T]]),
    mask=np.array([[T, T, F], [T, F, F], [T, T, T]]),
    actions=np.array([[0, 1, 0], [1, 0, 0], [0, 0, 1]], np.int64),
)


def episodes():
    """The three episodes as `Trajectories.from_episodes` takes them."""
    return [
        dict(
            observations=np.array(o, np.float32),
            rewards=np.array(r, np.float32),
            actions=np.array(a, np.int64),
            terminated=term,
            truncated=trunc,
        )
        for o, r, a, (term, trunc) in zip(OBS, REWARDS, ACTIONS, ENDS)
    ]


def transitions():
    """The episodes as flat transitions, rows in time order."""
    obs, next_obs, rew, act, term, trunc = [], [], [], [], [], []
    for o, r, a, (te, tr) in zip(OBS, REWARDS, ACTIONS, ENDS):
        n = len(r)
        obs += o[:-1]
        next_obs += o[1:]
        rew += r
        act += a
        term += [F] * (n - 1) + [te]
        trunc += [F] * (n - 1) + [tr]
    return dict(
        observations=np.array(obs, np.float32),
        next_observations=np.array(next_obs, np.float32),
        rewards=np.array(rew, np.float32),
        terminated=np.array(term),
        truncated=np.array(trunc),
        actions=np.array(act, np.int64),
    )


IDS = np.array([0, 0, 1, 2, 2, 2])  # the episode of each transition row


def dataframe(form="list"):
    """The transitions as a table: one `observation` column or obs_0, obs_1."""
    tr = transitions()
    df = pd.DataFrame(
        dict(
            episode_id=IDS,
            step=np.array([0, 1, 0, 0, 1, 2]),
            reward=tr["rewards"],
            terminated=tr["terminated"],
            truncated=tr["truncated"],
            action=tr["actions"],
        )
    )
    if form == "list":
        df["observation"] = list(tr["observations"])
        df["next_observation"] = list(tr["next_observations"])
    else:
        for k in range(2):
            df[f"obs_{k}"] = tr["observations"][:, k]
            df[f"next_obs_{k}"] = tr["next_observations"][:, k]
    return df


def rlds(form="list"):
    """The episodes as RLDS: step i holds o_i, a_i, r_i; the last step o_T.

    The last step's reward, action and discount are junk (NaN, -1, NaN):
    RLDS says they are meaningless, and they must be ignored.
    """
    out = []
    for o, r, a, (te, _) in zip(OBS, REWARDS, ACTIONS, ENDS):
        n = len(o)
        steps = dict(
            observation=np.array(o, np.float32),
            action=np.array(a + [-1], np.int64),
            reward=np.array(r + [NAN], np.float32),
            discount=np.array([1.0] * (n - 2) + [0.0 if te else 1.0, NAN]),
            is_first=np.arange(n) == 0,
            is_last=np.arange(n) == n - 1,
            is_terminal=(np.arange(n) == n - 1) & te,
        )
        if form == "list":
            steps = [{k: v[i] for k, v in steps.items()} for i in range(n)]
        out.append({"steps": steps})
    return out


def assert_same(a: Trajectories, b: Trajectories):
    """Equal fields, shapes and dtypes (NaN equals NaN)."""
    for name in ("observations", "rewards", "terminated", "truncated", "mask"):
        x, y = np.asarray(getattr(a, name)), np.asarray(getattr(b, name))
        assert x.dtype == y.dtype, (name, x.dtype, y.dtype)
        np.testing.assert_array_equal(x, y, err_msg=name)
    assert (a.actions is None) == (b.actions is None)
    if a.actions is not None:
        assert np.asarray(a.actions).dtype == np.asarray(b.actions).dtype
        np.testing.assert_array_equal(a.actions, b.actions, err_msg="actions")


def assert_expected(traj: Trajectories, expected=EXPECTED):
    assert_same(traj, Trajectories(**expected))


def parquet_round_trip(traj, **kwargs):
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "data.parquet")
        write_parquet(traj, path)
        return read_parquet(path, **kwargs)


# -- each format gives the hand-written batch ----------------------------------


def test_from_episodes_is_the_hand_written_batch():
    assert_expected(Trajectories.from_episodes(episodes()))


def test_from_transitions_in_row_order():
    assert_expected(from_transitions(**transitions()))


def test_from_transitions_with_interleaved_episode_ids():
    # Rows of episodes 'a', 'b', 'c' interleaved; each episode in time order.
    tr = transitions()
    order = [0, 2, 3, 1, 4, 5]  # a0 b0 c0 a1 c1 c2
    ids = np.array(["a", "a", "b", "c", "c", "c"])[order]
    traj = from_transitions(**{k: v[order] for k, v in tr.items()}, episode_ids=ids)
    assert_expected(traj)


def test_from_transitions_orders_episodes_by_first_appearance():
    tr = transitions()
    order = [2, 0, 1, 3, 4, 5]  # episode 1 first
    traj = from_transitions(
        **{k: v[order] for k, v in tr.items()}, episode_ids=IDS[order]
    )
    eps = episodes()
    assert_same(traj, Trajectories.from_episodes([eps[1], eps[0], eps[2]]))


def test_from_transitions_unfinished_episode_needs_allow_unfinished():
    tr = transitions()
    tr["truncated"][5] = False  # the log was cut after row 5
    with pytest.raises(ValueError, match="episode 2 has no end"):
        from_transitions(**tr)
    traj = from_transitions(**tr, allow_unfinished=True)
    expected = dict(EXPECTED, truncated=EXPECTED["truncated"] & [T, T, F])
    assert_expected(traj, expected)
    assert traj.summary()["cut_segments"] == 1


def test_from_transitions_terminal_observation_may_be_nan():
    tr = transitions()
    tr["next_observations"][1] = NAN  # after the terminated row 1: never read
    traj = from_transitions(**tr)
    expected = EXPECTED["observations"].copy()
    expected[0, 2] = NAN
    assert_expected(traj, dict(EXPECTED, observations=expected))


def test_from_transitions_without_actions_and_scalar_observations():
    traj = from_transitions(
        observations=np.array([0, 1, 5]),
        next_observations=np.array([1, 2, 6]),
        rewards=np.array([1.0, 1.0, 3.0]),
        terminated=np.array([F, T, F]),
        truncated=np.array([F, F, T]),
    )
    assert traj.actions is None
    assert traj.observations.tolist() == [[0, 1, 2], [5, 6, 0]]
    assert traj.observations.dtype == np.int64
    assert traj.mask.tolist() == [[T, T], [T, F]]
    assert traj.terminated.tolist() == [[F, T], [F, F]]
    assert traj.truncated.tolist() == [[F, F], [T, F]]


@pytest.mark.parametrize("form", ["list", "columns"])
def test_from_dataframe(form):
    assert_expected(from_dataframe(dataframe(form)))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_from_dataframe_row_order_does_not_matter(seed):
    df = dataframe().sample(frac=1.0, random_state=seed)
    assert_expected(from_dataframe(df))


def test_from_dataframe_string_ids_sorted_and_named_columns():
    df = dataframe("columns").rename(
        columns={
            "obs_0": "x",
            "obs_1": "y",
            "next_obs_0": "next_x",
            "next_obs_1": "next_y",
        }
    )
    # Ids sort as 'p' < 'q' < 'r', the episode order of the hand-written batch.
    df["episode_id"] = np.array(["p", "q", "r"])[IDS]
    assert_expected(from_dataframe(df, observation_columns=["x", "y"]))


def test_from_dataframe_extra_columns_ignore():
    df = dataframe().assign(note="from the lab")
    with pytest.raises(ValueError, match=r"unknown columns \['note'\]"):
        from_dataframe(df)
    assert_expected(from_dataframe(df, extra_columns="ignore"))


def test_parquet_round_trip_of_the_hand_written_batch(tmp_path):
    traj = Trajectories(**EXPECTED)
    path = tmp_path / "episodes.parquet"
    write_parquet(traj, path)
    back = read_parquet(path)
    assert_expected(back)
    assert back.observations.dtype == np.float32
    assert back.terminated.dtype == np.bool_ and back.truncated.dtype == np.bool_


def test_parquet_file_schema(tmp_path):
    import pyarrow.parquet as pq

    path = tmp_path / "episodes.parquet"
    write_parquet(Trajectories(**EXPECTED), path)
    schema = pq.read_schema(path)
    assert schema.names == [
        "episode_id",
        "step",
        "observation",
        "next_observation",
        "reward",
        "terminated",
        "truncated",
        "action",
    ]
    assert str(schema.field("observation").type) == (
        "fixed_size_list<element: float>[2]"
    )
    assert str(schema.field("terminated").type) == "bool"
    assert str(schema.field("reward").type) == "float"
    table = pq.read_table(path).to_pandas()
    assert table["episode_id"].tolist() == IDS.tolist()
    assert table["step"].tolist() == [0, 1, 0, 0, 1, 2]


def test_parquet_shuffled_rows_give_the_same_batch(tmp_path):
    path = tmp_path / "shuffled.parquet"
    to_dataframe(Trajectories(**EXPECTED)).sample(frac=1.0, random_state=3).to_parquet(
        path
    )
    assert_expected(read_parquet(path))


def test_parquet_round_trip_image_observations_and_unfinished():
    rng = np.random.default_rng(0)
    eps = [
        dict(
            observations=rng.integers(0, 255, (n + 1, 3, 2)).astype(np.uint8),
            rewards=rng.normal(size=n),
            actions=rng.normal(size=(n, 2)).astype(np.float32),
            terminated=term,
            truncated=F,
        )
        for n, term in ((3, T), (1, F), (2, T))
    ]
    traj = Trajectories.from_episodes(eps)
    with pytest.raises(ValueError, match="episode 1 has no end"):
        parquet_round_trip(traj)
    assert_same(parquet_round_trip(traj, allow_unfinished=True), traj)


def test_to_dataframe_splits_a_stream_row_into_episodes():
    # One vector-env row: 0 -1-> 1 -2-> NaN terminated, a masked reset row,
    # then 5 -3-> 6 -4-> 7 truncated.
    stream = Trajectories(
        observations=np.array([[0.0, 1.0, NAN, 5.0, 6.0, 7.0]]),
        rewards=np.array([[1.0, 2.0, 0.0, 3.0, 4.0]]),
        terminated=np.array([[F, T, F, F, F]]),
        truncated=np.array([[F, F, F, F, T]]),
        mask=np.array([[T, T, F, T, T]]),
    )
    df = to_dataframe(stream)
    assert df["episode_id"].tolist() == [0, 0, 1, 1]
    assert df["step"].tolist() == [0, 1, 0, 1]
    expected = Trajectories.from_episodes(
        [
            dict(
                observations=np.array([0.0, 1.0, NAN]),
                rewards=np.array([1.0, 2.0]),
                terminated=T,
            ),
            dict(
                observations=np.array([5.0, 6.0, 7.0]),
                rewards=np.array([3.0, 4.0]),
                truncated=T,
            ),
        ]
    )
    assert_same(from_dataframe(df), expected)
    assert_same(parquet_round_trip(stream), expected)


@pytest.mark.parametrize("form", ["list", "arrays"])
def test_from_rlds_steps(form):
    assert_expected(from_rlds_steps(rlds(form)))


def test_from_rlds_steps_terminal_observation_may_be_nan():
    data = rlds("arrays")
    data[0]["steps"]["observation"][2] = NAN  # o_T of a terminated episode
    traj = from_rlds_steps(data)
    assert np.isnan(traj.observations[0, 2]).all()


# -- the same episodes in every format ----------------------------------------


def test_the_formats_agree(tmp_path):
    expected = Trajectories.from_episodes(episodes())
    path = tmp_path / "by_pandas.parquet"
    dataframe("columns").to_parquet(path)  # a file written by pandas, not by us
    for traj in (
        from_transitions(**transitions()),
        from_transitions(**transitions(), episode_ids=IDS),
        from_dataframe(dataframe("list")),
        from_dataframe(dataframe("columns")),
        read_parquet(path),
        from_rlds_steps(rlds("list")),
        from_rlds_steps(rlds("arrays")),
    ):
        assert_same(traj, expected)


@st.composite
def episode_lists(draw):
    """1-4 episodes of 1-4 steps, each terminated, truncated or cut."""
    dim = draw(st.integers(1, 2))
    out = []
    for _ in range(draw(st.integers(1, 4))):
        n = draw(st.integers(1, 4))
        values = st.integers(-3, 3).map(float)
        obs = draw(
            st.lists(
                st.lists(values, min_size=dim, max_size=dim),
                min_size=n + 1,
                max_size=n + 1,
            )
        )
        end = draw(st.sampled_from(["terminated", "truncated", "cut"]))
        out.append(
            dict(
                observations=np.array(obs, np.float32),
                rewards=np.array(draw(st.lists(values, min_size=n, max_size=n))),
                actions=np.array(
                    draw(st.lists(st.integers(0, 2), min_size=n, max_size=n))
                ),
                terminated=end == "terminated",
                truncated=end == "truncated",
            )
        )
    return out


@settings(max_examples=30, deadline=None)
@given(episode_lists(), st.randoms(use_true_random=False))
def test_every_format_gives_from_episodes(eps, rng):
    expected = Trajectories.from_episodes(eps)

    # Flat transitions, episodes interleaved at random (each in time order).
    rows = [(e, t) for e, ep in enumerate(eps) for t in range(len(ep["rewards"]))]
    queues = [[r for r in rows if r[0] == e] for e in range(len(eps))]
    order = []
    while any(queues):
        order.append(rng.choice([q for q in queues if q]).pop(0))
    first = {}
    for e, _ in order:
        first.setdefault(e, len(first))
    eps_in_order = sorted(range(len(eps)), key=first.get)

    def column(get):
        return np.array([get(eps[e], t) for e, t in order])

    flat = dict(
        observations=column(lambda ep, t: ep["observations"][t]),
        next_observations=column(lambda ep, t: ep["observations"][t + 1]),
        rewards=column(lambda ep, t: ep["rewards"][t]),
        terminated=column(
            lambda ep, t: ep["terminated"] and t == len(ep["rewards"]) - 1
        ),
        truncated=column(lambda ep, t: ep["truncated"] and t == len(ep["rewards"]) - 1),
        actions=column(lambda ep, t: ep["actions"][t]),
    )
    ids = np.array([e for e, _ in order])
    traj = from_transitions(**flat, episode_ids=ids, allow_unfinished=True)
    assert_same(traj, Trajectories.from_episodes([eps[e] for e in eps_in_order]))

    # The same rows as a table: episodes come out sorted by id, as given.
    df = pd.DataFrame(
        dict(
            episode_id=ids,
            step=np.array([t for _, t in order]),
            observation=list(flat["observations"]),
            next_observation=list(flat["next_observations"]),
            reward=flat["rewards"],
            terminated=flat["terminated"],
            truncated=flat["truncated"],
            action=flat["actions"],
        )
    )
    assert_same(from_dataframe(df, allow_unfinished=True), expected)
    assert_same(parquet_round_trip(expected, allow_unfinished=True), expected)

    # RLDS cannot express a cut episode (is_last holds the final observation).
    if all(ep["terminated"] or ep["truncated"] for ep in eps):
        data = []
        for ep in eps:
            n = len(ep["rewards"]) + 1
            data.append(
                {
                    "steps": dict(
                        observation=ep["observations"],
                        reward=np.append(ep["rewards"], 0.0),
                        action=np.append(ep["actions"], 0),
                        is_first=np.arange(n) == 0,
                        is_last=np.arange(n) == n - 1,
                        is_terminal=(np.arange(n) == n - 1) & ep["terminated"],
                    )
                }
            )
        assert_same(from_rlds_steps(data), expected)


# -- bad inputs -----------------------------------------------------------------


def _transitions(**changes):
    """`from_transitions` of the episodes, with entries changed first."""
    tr = transitions()
    ids = changes.pop("episode_ids", None)
    for key, (index, value) in changes.items():
        tr[key] = tr[key].copy()
        if index is None:
            tr[key] = value
        else:
            tr[key][index] = value
    return lambda: from_transitions(**tr, episode_ids=ids)


def _frame(edit, **kwargs):
    """`from_dataframe` of the list-form table after `edit(df)` returns it."""
    return lambda: from_dataframe(edit(dataframe()), **kwargs)


def _set(column, row, value):
    def edit(df):
        df.loc[row, column] = value
        return df

    return edit


def _rlds(edit):
    """`from_rlds_steps` of the list-form episodes after `edit(data)`."""

    def call():
        data = rlds("list")
        edit(data)
        return from_rlds_steps(data)

    return call


def _step(e, t, **values):
    def edit(data):
        data[e]["steps"][t].update(values)

    return edit


def _not_parquet():
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "x.parquet")
        with open(path, "w") as f:
            f.write("episode_id,step\n")
        return read_parquet(path)


BAD = {
    # flat transitions
    "misaligned observations": (
        _transitions(next_observations=(0, [1, 5])),
        "misaligned observations in episode 0 step 0 (row 0): next_observations is "
        "[1. 5.], but the episode's step 1 (row 1) starts from observations [1. 0.]",
    ),
    "misaligned, missing flag": (
        _transitions(truncated=(2, F)),
        "misaligned observations in episode 1 step 0 (row 2)",
    ),
    "NaN reward": (
        _transitions(rewards=(1, NAN)),
        "episode 0 step 1 (row 1): rewards is nan; rewards must be finite",
    ),
    "inf observation": (
        _transitions(observations=(3, [INF, 1])),
        "episode 2 step 0 (row 3): observations is [inf  1.]; observations must be "
        "finite",
    ),
    "NaN next observation not terminated": (
        _transitions(next_observations=(5, [NAN, 1])),
        "episode 2 step 2 (row 5): next_observations is [nan  1.] and the step is "
        "not terminated",
    ),
    "no end": (
        _transitions(truncated=(5, F)),
        "episode 2 has no end (its last step 2 is neither terminated nor "
        "truncated); pass allow_unfinished=True if the log was cut there",
    ),
    "flags after the end": (
        _transitions(episode_ids=np.array([0, 0, 1, 1, 2, 2])),
        "episode 1 has steps after the end: step 0 (row 2) is truncated, but row 3 "
        "with the same episode id follows it as step 1",
    ),
    "integer flags": (
        _transitions(terminated=(None, transitions()["terminated"].astype(int))),
        "terminated has dtype int64; expected bool. Pass e.g. terminated != 0",
    ),
    "float episode ids": (
        _transitions(episode_ids=IDS.astype(float)),
        "episode_ids has dtype float64; expected integers or strings",
    ),
    "string rewards": (
        _transitions(rewards=(None, np.array(list("123456")))),
        "rewards has dtype <U1; expected numbers",
    ),
    "next observation dtype": (
        _transitions(
            next_observations=(None, transitions()["next_observations"].astype(float))
        ),
        "next_observations has shape (6, 2) and dtype float64; expected (6, 2) and "
        "float32 like observations",
    ),
    "rewards shape": (
        _transitions(rewards=(None, np.zeros((6, 1)))),
        "rewards has shape (6, 1); expected [N]",
    ),
    # tables
    "unknown columns": (
        _frame(lambda df: df.assign(info=0, seed=1)),
        "unknown columns ['info', 'seed']; allowed: ['episode_id', 'step', 'reward', "
        "'terminated', 'truncated', 'observation', 'next_observation', 'action']",
    ),
    "missing column": (
        _frame(lambda df: df.drop(columns="truncated")),
        "the table has no column ['truncated']",
    ),
    "no observation column": (
        _frame(lambda df: df.drop(columns="observation")),
        "the table has no 'observation' column and no obs_0, obs_1, ... columns",
    ),
    "string reward column": (
        _frame(lambda df: df.assign(reward=df["reward"].astype(str))),
        "column 'reward' has dtype",
    ),
    "float flag column": (
        _frame(lambda df: df.assign(terminated=df["terminated"].astype(float))),
        "column 'terminated' has dtype float64; expected bool",
    ),
    "float step column": (
        _frame(lambda df: df.assign(step=df["step"].astype(float))),
        "column 'step' has dtype float64; expected integers",
    ),
    "float episode_id column": (
        _frame(lambda df: df.assign(episode_id=df["episode_id"].astype(float))),
        "column 'episode_id' has dtype float64; expected integers or strings",
    ),
    "duplicate step": (
        _frame(lambda df: pd.concat([df, df.iloc[[4]]], ignore_index=True)),
        "episode 2 has step 1 twice (rows 4 and 6)",
    ),
    "missing step": (
        _frame(lambda df: df.drop(index=4).reset_index(drop=True)),
        "episode 2 is missing step 1: it jumps from step 0 (row 3) to step 2 (row 4)",
    ),
    "missing step 0": (
        _frame(lambda df: df.drop(index=3).reset_index(drop=True)),
        "episode 2 is missing step 0: its first step is 1 (row 3)",
    ),
    "misaligned table": (
        _frame(_set("next_observation", 3, np.array([7, 7], np.float32))),
        "misaligned observations in episode 2 step 0 (row 3): next_observation is "
        "[7. 7.]",
    ),
    "NaN reward in table": (
        _frame(_set("reward", 4, NAN)),
        "episode 2 step 1 (row 4): reward is nan",
    ),
    "no end in table": (
        _frame(_set("truncated", 2, F)),
        "episode 1 has no end (its last step 0 is neither terminated nor truncated)",
    ),
    "flags after the end in table": (
        _frame(_set("terminated", 3, T)),
        "episode 2 has steps after the end: step 0 (row 3) is terminated",
    ),
    "ragged observation cells": (
        _frame(_set("observation", 1, np.array([1, 0, 0], np.float32))),
        "episode 0 step 1 (row 1): column 'observation' holds shape (3,) and dtype "
        "float32, but episode 0 step 0 (row 0) holds shape (2,)",
    ),
    "numbered columns with a gap": (
        lambda: from_dataframe(dataframe("columns").rename(columns={"obs_1": "obs_2"})),
        "the table has columns ['obs_0', 'obs_2'] but no ['obs_1']",
    ),
    "both observation forms": (
        _frame(lambda df: df.assign(obs_0=1.0)),
        "the table has both 'observation' and ['obs_0']",
    ),
    "not parquet": (_not_parquet, "is not a Parquet file"),
    # RLDS steps
    "is_first missing": (
        _rlds(_step(0, 0, is_first=F)),
        "episode 0 step 0 has is_first=False",
    ),
    "is_first twice": (
        _rlds(_step(2, 2, is_first=T)),
        "episode 2 step 2 has is_first=True, but only step 0 may",
    ),
    "is_last early": (
        _rlds(_step(0, 1, is_last=T)),
        "episode 0 step 1 has is_last=True, but the episode has 3 steps and only "
        "its last step (2) may",
    ),
    "is_last missing": (
        _rlds(_step(1, 1, is_last=F)),
        "episode 1 step 1, its last step, has is_last=False",
    ),
    "is_terminal not last": (
        _rlds(_step(2, 1, is_terminal=T)),
        "episode 2 step 1 has is_terminal=True but is_last=False",
    ),
    "integer is_first": (
        _rlds(
            lambda data: [
                s.update(is_first=int(s["is_first"])) for s in data[0]["steps"]
            ]
        ),
        "episode 0 is_first has dtype int64",
    ),
    "NaN reward in steps": (
        _rlds(_step(2, 1, reward=np.float32(NAN))),
        "episode 2 step 1: reward is nan; rewards must be finite",
    ),
    "inf observation in steps": (
        _rlds(_step(1, 1, observation=np.array([INF, 0], np.float32))),
        "episode 1 step 1: observation is [inf  0.]",
    ),
    "per-step discount": (
        _rlds(_step(2, 0, discount=0.99)),
        "episode 2 step 0: discount is 0.99; Trajectories has no per-step discount",
    ),
    "discount 0 when truncated": (
        _rlds(_step(1, 0, discount=0.0)),
        "episode 1 step 0: discount is 0.0",
    ),
    "unknown step key": (
        _rlds(lambda data: [s.update(info=0) for s in data[1]["steps"]]),
        "episode 1 steps have unknown keys ['info']",
    ),
    "episode metadata": (
        _rlds(lambda data: data[0].update(episode_id=7)),
        "episode 0 has keys ['episode_id'] besides 'steps'",
    ),
    "one-step episode": (
        _rlds(lambda data: data[1].update(steps=data[1]["steps"][-1:])),
        "episode 1 has 1 step(s); expected at least 2",
    ),
    "steps with different keys": (
        _rlds(lambda data: data[2]["steps"][1].pop("action")),
        "episode 2 step 1 has keys",
    ),
    "ragged observations in steps": (
        _rlds(_step(0, 1, observation=np.zeros(3, np.float32))),
        "episode 0 step 1: observation has shape (3,)",
    ),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input(case):
    call, fragment = BAD[case]
    with pytest.raises(ValueError) as info:
        call()
    assert fragment in str(info.value)


def test_extra_keys_ignore_in_rlds():
    data = rlds("list")
    data[0]["episode_id"] = 7
    for step in data[1]["steps"]:
        step["info"] = {"note": "x"}
    assert_expected(from_rlds_steps(data, extra_keys="ignore"))


# -- messages that name the input at fault ----------------------------------------


@pytest.mark.parametrize(
    "name", ["observations", "next_observations", "rewards", "terminated", "actions"]
)
def test_from_transitions_names_the_input_of_another_length(name):
    tr = transitions()
    tr[name] = tr[name][:5]
    with pytest.raises(ValueError) as info:
        from_transitions(**tr)
    listing = ", ".join(f"{k} {5 if k == name else 6}" for k in tr)
    assert str(info.value) == (
        f"from_transitions: {name} differ from the other inputs in rows "
        f"({listing}); every input needs one row per transition."
    )


def test_from_transitions_names_every_input_of_another_length():
    tr = transitions()
    tr["rewards"] = tr["rewards"][:5]
    tr["truncated"] = tr["truncated"][:4]
    with pytest.raises(ValueError) as info:
        from_transitions(**tr, episode_ids=IDS[:5])
    assert str(info.value) == (
        "from_transitions: rewards, truncated and episode_ids differ from the "
        "other inputs in rows (observations 6, next_observations 6, rewards 5, "
        "terminated 6, truncated 4, episode_ids 5, actions 6); every input needs "
        "one row per transition."
    )


def test_from_transitions_lengths_without_a_majority():
    tr = transitions()
    for name in ("observations", "next_observations"):
        tr[name] = tr[name][:5]
    tr["rewards"] = tr["rewards"][:4]
    tr["terminated"] = tr["terminated"][:4]
    with pytest.raises(ValueError) as info:
        from_transitions(**tr)
    assert str(info.value) == (
        "from_transitions: the inputs have different numbers of rows "
        "(observations 5, next_observations 5, rewards 4, terminated 4, "
        "truncated 6, actions 6); every input needs one row per transition."
    )


@pytest.mark.parametrize(
    "column, placeholder, shown, what",
    [
        ("observation", None, "None", "an observation"),
        ("observation", np.nan, "NaN", "an observation"),
        ("next_observation", None, "None", "a next observation"),
    ],
)
def test_missing_observation_cell_is_named(column, placeholder, shown, what):
    df = dataframe()
    df[column] = df[column].astype(object)
    df.at[4, column] = placeholder
    with pytest.raises(ValueError) as info:
        from_dataframe(df)
    assert str(info.value) == (
        f"from_dataframe: episode 2 step 1 (row 4): column '{column}' is missing "
        f"({shown}); every row needs {what}."
    )


def test_missing_first_observation_cell_is_named():
    df = dataframe().iloc[::-1].reset_index(drop=True)  # row 5 is episode 0 step 0
    df.at[5, "observation"] = None
    with pytest.raises(ValueError) as info:
        from_dataframe(df)
    assert str(info.value) == (
        "from_dataframe: episode 0 step 0 (row 5): column 'observation' is missing "
        "(None); every row needs an observation."
    )


def test_missing_list_cell_in_parquet_is_named(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    write_parquet(Trajectories.from_episodes(episodes()), tmp_path / "x.parquet")
    table = pq.read_table(tmp_path / "x.parquet")
    i = table.column_names.index("observation")
    cells = table.column(i).to_pylist()
    cells[1] = None
    column = pa.array(cells, type=table.schema.field(i).type)
    pq.write_table(table.set_column(i, "observation", column), tmp_path / "y.parquet")
    with pytest.raises(ValueError) as info:
        read_parquet(tmp_path / "y.parquet")
    assert str(info.value) == (
        "read_parquet: episode 0 step 1 (row 1): column 'observation' is missing "
        "(None); every row needs an observation."
    )
