"""Evaluation protocols beside the paper's (issue: conclusions that survive the protocol):
each split on a hand-made 6-user table, who is where, what is scored and what is excluded."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from benchmark.data.preprocess import SplitConfig, make_split
from benchmark.data.protocols import temporal_cutoff

# users 1-4: 10 interactions each, user 5: 3, user 6: 5; items 0..11; timestamps rise with
# the line, except user 1's last two lines, which share a timestamp (a tie)
ROWS = [(u, (u * 3 + j) % 12, 100 * u + j) for u in (1, 2, 3, 4) for j in range(10)]
ROWS += [(5, j, 500 + j) for j in range(3)] + [(6, j + 4, 600 + j) for j in range(5)]
ROWS[9] = (1, ROWS[9][1], ROWS[8][2])  # user 1: lines 8 and 9 at the same time


def table() -> pd.DataFrame:
    return pd.DataFrame(ROWS, columns=["user", "item", "timestamp"])


def cfg(protocol: str) -> SplitConfig:
    return SplitConfig(min_rating=None, min_user_items=0, n_heldout=1, protocol=protocol)


def items_of(m, row: int) -> set[int]:
    return set(m.indices[m.indptr[row]:m.indptr[row + 1]].tolist())


def ids(split, cols: set[int]) -> set[int]:
    return {int(split.items[c]) for c in cols}


def test_strong_is_the_default_and_leaves_the_hash_alone():
    assert "protocol" not in SplitConfig().as_dict()  # so neither the cache key nor the meta change
    a = make_split(table(), cfg("strong"), seed=1)
    b = make_split(table(), SplitConfig(min_rating=None, min_user_items=0, n_heldout=1), seed=1)
    assert a.split_hash == b.split_hash and a.meta["protocol"] == b.meta["protocol"]
    assert "protocol" in make_split(table(), cfg("weak"), seed=1).meta["protocol"]


@pytest.mark.parametrize("protocol", ["weak", "leave-last-out"])
def test_within_user_protocols_train_on_everyone_and_score_from_the_training_row(protocol):
    df = table()
    split = make_split(df, cfg(protocol), seed=3)
    users = list(split.users["train"])
    assert users == [1, 2, 3, 4, 5, 6]  # every user trains
    assert list(split.users["test"]) == [1, 2, 3, 4, 6]  # user 5 (3 interactions): not evaluated
    for part in (split.valid, split.test):
        assert (part.fold_in != split.train[[0, 1, 2, 3, 5]]).nnz == 0  # fold-in = training row
    for r, u in enumerate(split.users["test"]):
        mine = set(df.item[df.user == u])
        train = ids(split, items_of(split.train, users.index(u)))
        valid = ids(split, items_of(split.valid.holdout, r))
        test = ids(split, items_of(split.test.holdout, r))
        assert len(valid) == len(test) == 1  # 10% of 10 or of 5, at least one
        assert not (train & valid or train & test or valid & test) and train | valid | test == mine
        if protocol == "leave-last-out":
            rows = df[df.user == u].reset_index(drop=True)
            last = rows.sort_values("timestamp", kind="stable")  # ties: the later line is last
            assert test == {int(last.item.iloc[-1])} and valid == {int(last.item.iloc[-2])}
    assert ids(split, items_of(split.train, users.index(5))) == {0, 1, 2}
    stats = split.stats()
    assert stats["users"] == 6 and stats["interactions_in_split"] == len(df)


def test_leave_last_out_breaks_a_tie_by_the_file_order():
    split = make_split(table(), cfg("leave-last-out"), seed=3)
    # user 1: lines 8 and 9 share the last timestamp; line 9 (item (3 + 9) % 12 = 0) is last
    assert ids(split, items_of(split.test.holdout, 0)) == {0}
    assert ids(split, items_of(split.valid.holdout, 0)) == {(3 + 8) % 12}


def test_temporal_cuts_all_users_at_one_time():
    df = table()
    cutoff = temporal_cutoff(df.timestamp)
    assert (df.timestamp > cutoff).sum() == int(0.2 * len(df))  # 9 of 48 interactions after it
    split = make_split(df, cfg("temporal"), seed=5)
    assert split.meta["temporal_cutoff"] == cutoff
    train_users = list(split.users["train"])
    for r, u in enumerate(train_users):  # training users: nothing after the cutoff
        seen = ids(split, items_of(split.train, r))
        assert seen == set(df.item[(df.user == u) & (df.timestamp <= cutoff)]) & set(split.items)
    for part, name in ((split.valid, "valid"), (split.test, "test")):
        (u,) = split.users[name]
        late = set(df.item[(df.user == u) & (df.timestamp > cutoff)]) & set(split.items)
        early = set(df.item[(df.user == u) & (df.timestamp <= cutoff)]) & set(split.items)
        assert ids(split, items_of(part.holdout, 0)) == late and ids(split, items_of(part.fold_in, 0)) == early


def test_timed_protocols_need_timestamps():
    with pytest.raises(ValueError, match="needs timestamps"):
        make_split(table().drop(columns="timestamp"), cfg("temporal"))
    with pytest.raises(ValueError, match="needs timestamps"):
        make_split(table().drop(columns="timestamp"), cfg("leave-last-out"))
    make_split(table().drop(columns="timestamp"), cfg("weak"))  # weak needs none
    with pytest.raises(ValueError, match="protocol="):
        SplitConfig(protocol="sideways")


def test_temporal_on_data_without_timestamps_is_exit_2_before_any_fit(tmp_path):
    from test_cli import cli

    p = cli("run", "--models", "popularity", "--dataset", "msd", "--protocol", "temporal",
            "--data-dir", str(tmp_path / "d"), "--results-dir", str(tmp_path / "r"), cwd=tmp_path,
            check=False)
    assert p.returncode == 2 and "--protocol temporal needs timestamps" in p.stderr, p.stderr
    assert not (tmp_path / "r").exists() and not (tmp_path / "d").exists()


def test_a_weak_run_records_its_protocol_and_strong_rows_do_not(tmp_path):
    from benchmark.runner import RunConfig, run_all

    out = run_all(RunConfig(models="popularity", datasets=["synthetic"], protocols=[None, "weak"],
                            data_dir=str(tmp_path / "d"), results_dir=str(tmp_path / "r"),
                            progress=False, report=False))
    assert set(out.rows) == {"synthetic", "synthetic (weak)"}
    assert all("protocol" not in r for r in out.rows["synthetic"])
    weak = out.rows["synthetic (weak)"]
    assert weak and all(r["protocol"] == "weak" for r in weak)
    assert {r["split_hash"] for r in weak}.isdisjoint({r["split_hash"] for r in out.rows["synthetic"]})
    assert np.isfinite(weak[0]["metrics"]["ndcg@100"])
