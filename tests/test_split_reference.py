"""Our split equals the reference notebook's procedure, written out literally here.

The notebook (Liang et al. 2018) loops over ``data.groupby('userId')`` with the global
NumPy RNG re-seeded before each of the validation and test parts. This test spells that
procedure out with pandas, row by row, and checks that the vectorised implementation in
``benchmark.data.preprocess`` gives the very same matrices on real data (ml-100k).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from conftest import shared_dataset

from benchmark.data.preprocess import SplitConfig, make_split


def literal_reference_split(raw: pd.DataFrame, n_heldout: int, seed: int = 98765):
    raw = raw[raw["rating"] > 3.5]
    # filter_triplets(min_uc=5, min_sc=0)
    usercount = raw.groupby("user").size()
    raw = raw[raw["user"].isin(usercount.index[usercount >= 5])]
    user_activity = raw.groupby("user").size()
    unique_uid = user_activity.index
    np.random.seed(seed)
    idx_perm = np.random.permutation(unique_uid.size)
    unique_uid = unique_uid[idx_perm]
    n_users = unique_uid.size
    tr_users = unique_uid[: n_users - n_heldout * 2]
    vd_users = unique_uid[n_users - n_heldout * 2 : n_users - n_heldout]
    te_users = unique_uid[n_users - n_heldout :]
    train_plays = raw.loc[raw["user"].isin(tr_users)]
    unique_sid = pd.unique(train_plays["item"])

    def split_train_test_proportion(data, test_prop=0.2):
        tr_list, te_list = [], []
        np.random.seed(seed)
        for _, group in data.groupby("user"):
            n_items_u = len(group)
            if n_items_u >= 5:
                idx = np.zeros(n_items_u, dtype="bool")
                idx[np.random.choice(n_items_u, size=int(test_prop * n_items_u), replace=False).astype("int64")] = True
                tr_list.append(group[np.logical_not(idx)])
                te_list.append(group[idx])
            else:
                tr_list.append(group)
        return pd.concat(tr_list), pd.concat(te_list)

    parts = {}
    for name, users in (("valid", vd_users), ("test", te_users)):
        plays = raw.loc[raw["user"].isin(users)]
        plays = plays.loc[plays["item"].isin(unique_sid)]
        tr, te = split_train_test_proportion(plays)
        parts[name] = (tr, te)
    return tr_users, vd_users, te_users, unique_sid, train_plays, parts


def as_pairs(df):
    return set(zip(df["user"].tolist(), df["item"].tolist()))


def matrix_pairs(m, users, items):
    coo = m.tocoo()
    return set(zip(np.asarray(users)[coo.row].tolist(), np.asarray(items)[coo.col].tolist()))


def test_split_equals_literal_reference_procedure_on_ml100k():
    path = shared_dataset("ml-100k") / "u.data"
    raw = pd.read_csv(path, sep="\t", header=None, names=["user", "item", "rating", "ts"])
    tr_u, vd_u, te_u, sid, train_plays, parts = literal_reference_split(raw, n_heldout=100)
    split = make_split(raw, SplitConfig(min_rating=3.5, min_user_items=5, n_heldout=100), dataset="ml-100k")

    assert split.users["train"].tolist() == list(tr_u)
    assert split.users["valid"].tolist() == list(vd_u)
    assert split.users["test"].tolist() == list(te_u)
    assert split.items.tolist() == list(sid)  # same item order (pd.unique of train plays)
    assert matrix_pairs(split.train, tr_u, sid) == as_pairs(train_plays)
    for name, users in (("valid", vd_u), ("test", te_u)):
        tr, te = parts[name]
        ho = split.part(name)
        assert matrix_pairs(ho.fold_in, users, sid) == as_pairs(tr)
        assert matrix_pairs(ho.holdout, users, sid) == as_pairs(te)
