"""Invariants of the strong-generalisation split (DESIGN.md section 3), on real ml-100k data.

(The literal transcription of the reference notebook is in test_split_reference.py; here
every property is checked directly against the raw ratings.)
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import place_raw, shared_dataset

from benchmark.data import load_split
from benchmark.data.preprocess import SplitConfig, filter_triplets, make_split


@pytest.fixture(scope="module")
def raw100k() -> pd.DataFrame:
    path = shared_dataset("ml-100k") / "u.data"
    return pd.read_csv(path, sep="\t", header=None, names=["user", "item", "rating", "ts"])


@pytest.fixture(scope="module")
def positives(raw100k) -> pd.DataFrame:
    """ratings > 3.5 of users with >= 5 of them (the ml-100k protocol)."""
    pos = raw100k[raw100k["rating"] > 3.5]
    n = pos.groupby("user").size()
    return pos[pos["user"].isin(n.index[n >= 5])]


def pairs(m, users, items) -> set[tuple[int, int]]:
    coo = m.tocoo()
    return set(zip(np.asarray(users)[coo.row].tolist(), np.asarray(items)[coo.col].tolist(), strict=False))


def test_users_disjoint_and_complete(ml100k_split, positives):
    u = ml100k_split.users
    tr, vd, te = set(u["train"].tolist()), set(u["valid"].tolist()), set(u["test"].tolist())
    assert not (tr & vd) and not (tr & te) and not (vd & te)
    assert tr | vd | te == set(positives["user"].unique())  # every filtered user, once
    assert len(vd) == len(te) == 100
    assert ml100k_split.train.shape[0] == len(tr)
    assert ml100k_split.valid.n_users == len(vd) and ml100k_split.test.n_users == len(te)


def test_items_are_those_of_training_users(ml100k_split, positives):
    train_items = set(positives.loc[positives["user"].isin(ml100k_split.users["train"]), "item"])
    assert set(ml100k_split.items.tolist()) == train_items
    assert pairs(ml100k_split.train, ml100k_split.users["train"], ml100k_split.items) == set(
        zip(*[positives.loc[positives["user"].isin(ml100k_split.users["train"]), c].tolist() for c in ("user", "item")], strict=False)
    )


@pytest.mark.parametrize("part", ["valid", "test"])
def test_fold_in_and_holdout_partition_the_restricted_rows(ml100k_split, positives, part):
    split = ml100k_split
    ho = split.part(part)
    users, items = split.users[part], split.items
    fold, hold = pairs(ho.fold_in, users, items), pairs(ho.holdout, users, items)
    assert not (fold & hold)
    assert ho.fold_in.multiply(ho.holdout).nnz == 0
    rows = positives[positives["user"].isin(users) & positives["item"].isin(items)]
    assert fold | hold == set(zip(rows["user"].tolist(), rows["item"].tolist(), strict=False))
    # floor(20%) of each user's restricted row is held out; fewer than 5 items: none.
    n_u = np.diff(ho.fold_in.indptr) + np.diff(ho.holdout.indptr)
    n_hold = np.diff(ho.holdout.indptr)
    expected = np.where(n_u >= 5, np.floor(0.2 * n_u).astype(int), 0)
    np.testing.assert_array_equal(n_hold, expected)


def test_short_rows_keep_everything_in_fold_in():
    # 12 users. Users 0-9 (clicks on items 0-9) make the training set likely; users 10 and 11
    # have 6 items each, 3 of them (100-102) never clicked by anyone else: once restricted to
    # training items a held-out user among them keeps 3 items (< 5), so no holdout at all.
    rows = [(u, i) for u in range(10) for i in range(10)]
    rows += [(u, i) for u in (10, 11) for i in (0, 1, 2, 100 + u, 200 + u, 300 + u)]
    df = pd.DataFrame(rows, columns=["user", "item"])
    short = 0
    for seed in range(20):
        split = make_split(df, SplitConfig(min_rating=None, min_user_items=5, n_heldout=1), seed=seed)
        for part in ("valid", "test"):
            ho = split.part(part)
            (user,) = split.users[part].tolist()
            n_u = ho.fold_in.nnz + ho.holdout.nnz
            if user >= 10:
                assert n_u == 3 and ho.holdout.nnz == 0
                short += 1
            else:
                assert ho.holdout.nnz == int(0.2 * n_u)
    assert short > 0  # the case did occur


def test_filters_items_first_then_users_once():
    # Hand-made: min_sc=2 (items), then min_uc=2 (users), each applied once, in that order.
    #   user a: x, y      user b: x, z      user c: y, w      user d: z
    # item counts: x 2, y 2, z 2, w 1  -> drop w
    # user counts after that: a 2, b 2, c 1 (y only), d 1  -> drop c and d
    # (y is now clicked by a only, z by b only, but items are not filtered again.)
    df = pd.DataFrame(
        [("a", "x"), ("a", "y"), ("b", "x"), ("b", "z"), ("c", "y"), ("c", "w"), ("d", "z")],
        columns=["user", "item"],
    )
    out = filter_triplets(df, min_uc=2, min_sc=2)
    assert sorted(map(tuple, out.to_numpy().tolist())) == [("a", "x"), ("a", "y"), ("b", "x"), ("b", "z")]
    # The other order (users first) would keep c and w: the order matters and is the paper's.
    users_first = df[df["user"].isin(["a", "b", "c"])]
    assert ("c", "y") in set(map(tuple, users_first.to_numpy().tolist()))


def test_binarise_keeps_ratings_above_threshold(raw100k):
    split = make_split(raw100k, SplitConfig(min_rating=3.5, min_user_items=5, n_heldout=100))
    c = split.meta["counts"]
    assert c["raw_rows"] == 100_000
    assert c["positives"] == int((raw100k["rating"] > 3.5).sum())  # 4s and 5s: 55,375
    assert c["positives"] == 55_375


def test_same_seed_byte_identical_files_other_seed_differs(tmp_path):
    dirs = []
    for name in ("a", "b"):
        d = tmp_path / name
        place_raw(d, "ml-100k", "ml-100k")
        dirs.append(d)
    s1 = load_split("ml-100k", data_dir=dirs[0])
    s2 = load_split("ml-100k", data_dir=dirs[1])
    (e1,) = (dirs[0] / "ml-100k" / "processed").iterdir()
    (e2,) = (dirs[1] / "ml-100k" / "processed").iterdir()
    assert e1.name == e2.name
    for f in ("split.npz", "meta.json"):
        assert (e1 / f).read_bytes() == (e2 / f).read_bytes()
    assert s1.split_hash == s2.split_hash

    s3 = load_split("ml-100k", data_dir=dirs[0], seed=1)
    assert len(list((dirs[0] / "ml-100k" / "processed").iterdir())) == 2
    assert s3.split_hash != s1.split_hash
    assert set(s3.users["test"].tolist()) != set(s1.users["test"].tolist())
    # the same users in all (the filters do not depend on the seed)
    all1 = np.concatenate([s1.users[p] for p in ("train", "valid", "test")])
    all3 = np.concatenate([s3.users[p] for p in ("train", "valid", "test")])
    assert sorted(all1.tolist()) == sorted(all3.tolist())


def test_saved_split_loads_back_equal(ml100k_split, tmp_path):
    from benchmark.protocol import Split

    ml100k_split.save(tmp_path / "s")
    back = Split.load(tmp_path / "s")
    assert back.split_hash == back.compute_hash() == ml100k_split.split_hash
    for part in ("train", "valid", "test"):
        np.testing.assert_array_equal(back.users[part], ml100k_split.users[part])
    np.testing.assert_array_equal(back.items, ml100k_split.items)
