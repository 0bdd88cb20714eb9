"""Evaluation protocols beside the paper's strong generalisation (``--protocol``).

The binarising and the filters are the paper's for every protocol (:func:`make_split`);
only who is trained on what, and what is evaluated, differ:

- ``strong`` (the paper's, section 4.2): held-out users, 80% of each one's items folded in,
  20% evaluated; :func:`benchmark.data.preprocess.make_split` itself.
- ``weak`` (weak generalisation, as NGCF, LightGCN and most graph-based work): every user
  with at least ``min_items_for_holdout`` (5) interactions has a seeded split of their
  interactions into training / validation / test (10% each, at least one, rounded down,
  the rest training); users with fewer stay in training and are not evaluated. The model
  is trained on the training part of all users; an evaluated user is scored from their
  training row (the fold-in), whose items are excluded from the ranking. The user's
  validation items are not excluded from the test ranking (nor test items from the
  validation one): they are neither known nor the target.
- ``leave-last-out``: as ``weak``, with each user's last interaction the test item and
  the one before it the validation item (by timestamp; ties in the order of the file).
- ``temporal``: one global cutoff, the timestamp after which (at most) 20% of all
  interactions lie (ties at the cutoff count as before it), so nothing after the cutoff
  reaches training; users are chosen as in ``strong``; training users keep their
  interactions up to the cutoff; held-out users fold in those and are evaluated on the
  ones after it (a held-out user with nothing after the cutoff is counted and not
  evaluated).

``temporal`` and ``leave-last-out`` need timestamps (a ``timestamp`` column); the others
ignore them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..protocol import HeldOut, Split

__all__ = ["temporal_cutoff", "cutoff_heldout", "within_user_split", "require_timestamps"]


def require_timestamps(df: pd.DataFrame, protocol: str, dataset: str) -> None:
    """Refuse a timed protocol on data without timestamps (exit 2 before any fit)."""
    if "timestamp" not in df.columns:
        raise ValueError(f"{dataset}: --protocol {protocol} needs timestamps, and this data has "
                         "none; use --protocol strong or weak")


def temporal_cutoff(timestamps: Any, share: float = 0.2) -> Any:
    """The timestamp t with (at most) ``share`` of the interactions after it (ts > t)."""
    ts = np.sort(np.asarray(timestamps))
    after = int(share * len(ts))
    return ts[len(ts) - after - 1]


def cutoff_heldout(df: pd.DataFrame, users: np.ndarray, item_index: pd.Index, cutoff: Any) -> HeldOut:
    """Fold-in = interactions up to ``cutoff``, holdout = those after it (items of
    ``item_index`` only), rows in the order of ``users``."""
    df = df[df["item"].isin(item_index)]
    rows = pd.Index(users).get_indexer(df["user"].to_numpy())
    cols = item_index.get_indexer(df["item"].to_numpy())
    late = (df["timestamp"] > cutoff).to_numpy()
    shape = (len(users), len(item_index))

    def part(mask: np.ndarray) -> sp.csr_matrix:
        return sp.csr_matrix((np.ones(int(mask.sum()), dtype=np.float32), (rows[mask], cols[mask])),
                             shape=shape)

    return HeldOut(part(~late), part(late))


def within_user_split(df: pd.DataFrame, config: Any, *, seed: int, dataset: str,
                      extra_meta: dict[str, Any] | None, counts: dict[str, int]) -> Split:
    """``weak`` and ``leave-last-out``: each evaluated user's interactions split three ways;
    ``df`` is binarised, deduplicated and filtered (file order kept)."""
    last = config.protocol == "leave-last-out"
    if last:
        require_timestamps(df, config.protocol, dataset)
    df = df.reset_index(drop=True)
    user_ids = np.sort(df["user"].unique())
    ucodes = pd.Index(user_ids).get_indexer(df["user"].to_numpy())
    n = len(df)
    if last:  # by time within a user; equal times in the order of the file
        order = np.lexsort((np.arange(n), df["timestamp"].to_numpy(), ucodes))
    else:
        order = np.argsort(ucodes, kind="stable")
    bounds = np.searchsorted(ucodes[order], np.arange(len(user_ids) + 1))
    part = np.zeros(n, dtype=np.int8)  # 0 training, 1 validation, 2 test
    rng = np.random.RandomState(seed)
    evaluated = []
    for g in range(len(user_ids)):
        lo, hi = int(bounds[g]), int(bounds[g + 1])
        n_u = hi - lo
        if n_u < config.min_items_for_holdout:
            continue
        evaluated.append(g)
        if last:
            part[order[hi - 1]], part[order[hi - 2]] = 2, 1
        else:
            k = max(1, int(0.1 * n_u))
            perm = rng.permutation(n_u)
            part[order[lo + perm[:k]]] = 2
            part[order[lo + perm[k:2 * k]]] = 1
    if not evaluated:
        raise ValueError(f"{dataset}: no user has {config.min_items_for_holdout} or more "
                         "interactions, so nothing can be evaluated under --protocol "
                         f"{config.protocol}; relax the filters or use more data")
    items = df["item"].to_numpy()
    train_mask = part == 0
    item_index = pd.Index(pd.unique(items[train_mask]))
    cols = item_index.get_indexer(items)
    shape = (len(user_ids), len(item_index))

    def matrix(mask: np.ndarray, rows: np.ndarray, n_rows: int) -> sp.csr_matrix:
        mask = mask & (cols >= 0)  # an item no user trains on cannot be scored: dropped
        return sp.csr_matrix((np.ones(int(mask.sum()), dtype=np.float32), (rows[mask], cols[mask])),
                             shape=(n_rows, shape[1]))

    train = matrix(train_mask, ucodes, shape[0])
    ev = np.asarray(evaluated)
    ev_row = np.full(len(user_ids), -1)
    ev_row[ev] = np.arange(len(ev))
    fold = train[ev]
    rows = ev_row[ucodes]
    valid = HeldOut(fold, matrix((part == 1) & (rows >= 0), rows, len(ev)))
    test = HeldOut(fold.copy(), matrix((part == 2) & (rows >= 0), rows, len(ev)))
    meta: dict[str, Any] = {
        "dataset": dataset, "seed": int(seed), "protocol": config.as_dict(),
        "counts": {**counts, "interactions_after_filter": int(n), "users_after_filter": len(user_ids),
                   "items_after_filter": int(df["item"].nunique()), "items_in_split": len(item_index),
                   "train_users": len(user_ids), "valid_users": len(ev), "test_users": len(ev),
                   "train_interactions": int(train.nnz),
                   "valid_dropped_interactions": int((part == 1).sum() - valid.holdout.nnz),
                   "test_dropped_interactions": int((part == 2).sum() - test.holdout.nnz)},
    }
    meta.update(extra_meta or {})  # make_split's, with the preprocessing version
    return Split(train=train, valid=valid, test=test, items=np.asarray(item_index),
                 users={"train": user_ids, "valid": user_ids[ev], "test": user_ids[ev]}, meta=meta)
