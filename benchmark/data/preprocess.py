"""Binarise, filter and split, in the order and with the RNG calls of the reference code.

The reference notebook (Liang et al. 2018, ``VAE_ML20M_WWW2018.ipynb``) does:

1. keep ratings > 3.5 (ML-20M, Netflix) or every triplet (MSD);
2. ``filter_triplets``: drop items with fewer than ``min_sc`` users, THEN users with fewer
   than ``min_uc`` items (counts taken after the item filter);
3. sort the user ids (``groupby().size().index``), ``np.random.seed(98765)``, permute them;
   the last 2n are validation then test users, the rest train;
4. the item set is ``pd.unique`` of the training users' items, in order of appearance;
5. for validation and test separately: ``np.random.seed(98765)``, then for each user in
   sorted order with >= 5 items, ``np.random.choice(n_u, int(0.2 n_u), replace=False)``
   gives the held-out positions; users with fewer items keep everything in fold-in.

We follow this exactly (legacy ``RandomState`` with the same call sequence) so the default
seed reproduces the paper's split.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..protocol import HeldOut, Split

REFERENCE_SEED = 98765
#: The evaluation protocols (``--protocol``); "temporal" and "leave-last-out" need timestamps.
PROTOCOLS = ("strong", "weak", "temporal", "leave-last-out")
TIMED_PROTOCOLS = ("temporal", "leave-last-out")
PREPROCESS_VERSION = 1  # bump when the procedure changes: invalidates cached splits


@dataclass(frozen=True)
class SplitConfig:
    """Preprocessing parameters of one dataset (recorded in the split's meta)."""

    min_rating: float | None = 3.5  # keep rating > min_rating; None keeps every row
    min_item_users: int = 0  # items with fewer users are dropped first
    min_user_items: int = 5  # then users with fewer items
    n_heldout: int | None = 10_000  # validation users = test users = n_heldout (None: 10% each)
    test_prop: float = 0.2
    min_items_for_holdout: int = 5
    #: "strong" (the paper's), "weak", "temporal" or "leave-last-out" (see
    #: :mod:`benchmark.data.protocols`); the default is left out of ``as_dict`` (so of the
    #: cache key and the meta), keeping every strong split as it was.
    protocol: str = "strong"

    def __post_init__(self) -> None:
        problems = []
        if self.protocol not in PROTOCOLS:
            problems.append(f"protocol={self.protocol!r} (one of {', '.join(PROTOCOLS)})")
        if self.min_rating is not None and not (
            isinstance(self.min_rating, (int, float)) and np.isfinite(self.min_rating)
        ):
            problems.append(f"min_rating={self.min_rating!r} (a finite number, or None)")
        for k in ("min_item_users", "min_user_items"):
            v = getattr(self, k)
            if not (isinstance(v, (int, np.integer)) and v >= 0):
                problems.append(f"{k}={v!r} (an integer >= 0)")
        if self.n_heldout is not None and not (isinstance(self.n_heldout, (int, np.integer)) and self.n_heldout >= 1):
            problems.append(f"n_heldout={self.n_heldout!r} (held-out users: an integer >= 1, or None)")
        if not 0 < self.test_prop < 1:
            problems.append(f"test_prop={self.test_prop!r} (in (0, 1))")
        if problems:
            raise ValueError("invalid preprocessing: " + "; ".join(problems))

    def as_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        if d["protocol"] == "strong":
            del d["protocol"]
        return d



#: The former name (before 0.2; it clashed with ``typing.Protocol``).
Protocol = SplitConfig

def binarise(df: pd.DataFrame, min_rating: float | None) -> pd.DataFrame:
    """Keep rows with rating > min_rating (all rows when None).

    Raises:
        ValueError: a threshold was given for data that has no rating column.
    """
    if min_rating is None:
        return df
    if "rating" not in df.columns:
        raise ValueError(
            f"a rating threshold (--min-rating {min_rating}) was given, but the data has no "
            f"rating column; drop --min-rating, or name the column with --rating-col"
        )
    return df[df["rating"] > min_rating]


#: Texts that spell a missing value: never an id ("NaN" read as a string is not a user).
_NA_TEXT = {"nan", "na", "n/a", "<na>", "null", "none"}


def _check_ids(df: pd.DataFrame) -> None:
    """Every row has a user and an item id (a missing or NaN id is never a user)."""
    for name in ("user", "item"):
        col = df[name]
        missing = col.isna().to_numpy()
        if not pd.api.types.is_numeric_dtype(col):
            values = col.cat.categories if isinstance(col.dtype, pd.CategoricalDtype) else col.unique()
            literal = [v for v in values if isinstance(v, str) and v.strip().lower() in _NA_TEXT]
            if literal:
                missing = missing | col.isin(literal).to_numpy()
        if missing.any():
            row = int(np.flatnonzero(missing)[0])
            raise ValueError(
                f"{int(missing.sum()):,} rows have no {name} id (empty, NaN or NA), the first "
                f"at data row {row + 1}; fix or drop those rows"
            )


def filter_triplets(df: pd.DataFrame, min_uc: int, min_sc: int) -> pd.DataFrame:
    """Items with >= min_sc users, then users with >= min_uc items (reference order)."""
    if min_sc > 0:
        counts = df.groupby("item").size()
        df = df[df["item"].isin(counts.index[counts >= min_sc])]
    if min_uc > 0:
        counts = df.groupby("user").size()
        df = df[df["user"].isin(counts.index[counts >= min_uc])]
    return df


def _heldout_split(
    df: pd.DataFrame, users: np.ndarray, item_index: pd.Index, p: SplitConfig, seed: int
) -> tuple[HeldOut, int]:
    """Fold-in / holdout rows for ``users`` (in this order), reference RNG sequence."""
    df = df[df["item"].isin(item_index)]
    dropped = 0
    rng = np.random.RandomState(seed)
    # groupby sorts the user ids, as the notebook's data.groupby('userId') does.
    codes_item = item_index.get_indexer(df["item"].to_numpy())
    ucodes, uniq = pd.factorize(df["user"], sort=True)
    order = np.argsort(ucodes, kind="stable")
    ucodes_sorted = ucodes[order]
    items_sorted = codes_item[order]
    bounds = np.searchsorted(ucodes_sorted, np.arange(len(uniq) + 1))
    is_hold = np.zeros(len(order), dtype=bool)
    for g in range(len(uniq)):
        lo, hi = bounds[g], bounds[g + 1]
        n_u = hi - lo
        if n_u >= p.min_items_for_holdout:
            pick = rng.choice(n_u, size=int(p.test_prop * n_u), replace=False).astype(np.int64)
            is_hold[lo + pick] = True
    row_of_user = pd.Index(users).get_indexer(np.asarray(uniq))
    rows = row_of_user[ucodes_sorted]
    shape = (len(users), len(item_index))
    ones = np.ones(int((~is_hold).sum()), dtype=np.float32)
    fold = sp.csr_matrix((ones, (rows[~is_hold], items_sorted[~is_hold])), shape=shape)
    hold = sp.csr_matrix(
        (np.ones(int(is_hold.sum()), dtype=np.float32), (rows[is_hold], items_sorted[is_hold])),
        shape=shape,
    )
    return HeldOut(fold, hold), dropped


def make_split(
    df: pd.DataFrame,
    protocol: SplitConfig,
    *,
    seed: int = REFERENCE_SEED,
    dataset: str = "custom",
    extra_meta: dict[str, Any] | None = None,
) -> Split:
    """Binarise, filter and split an interaction table into a :class:`Split`.

    Args:
        df: columns ``user``, ``item`` and optionally ``rating`` (raw order preserved).
        protocol: the dataset's preprocessing parameters.
        seed: the split seed (the reference code's 98765 by default).
        dataset: name recorded in ``meta``.

    Raises:
        ValueError: when too few users remain for the requested held-out users.
    """
    raw_rows = len(df)
    if raw_rows == 0:
        raise ValueError(f"{dataset}: no interactions were read (a header only, or an empty file)")
    _check_ids(df)
    steps = [("read", raw_rows, None, None)]
    df = binarise(df, protocol.min_rating)
    if protocol.min_rating is not None:
        steps.append((f"rating > {protocol.min_rating:g}", len(df), None, None))
    df = df.drop_duplicates(subset=["user", "item"], keep="first")
    n_pos = len(df)
    steps.append(("duplicates dropped", n_pos, None, None))
    if protocol.min_item_users > 0:
        df = filter_triplets(df, 0, protocol.min_item_users)
        steps.append((f"items with >= {protocol.min_item_users} users", len(df),
                      df["user"].nunique(), df["item"].nunique()))
    df = filter_triplets(df, protocol.min_user_items, 0)
    steps.append((f"users with >= {protocol.min_user_items} items", len(df),
                  df["user"].nunique(), df["item"].nunique()))
    if protocol.protocol in ("weak", "leave-last-out"):
        from .protocols import within_user_split

        extra = {"preprocess_version": PREPROCESS_VERSION, **(extra_meta or {})}
        return within_user_split(df, protocol, seed=seed, dataset=dataset, extra_meta=extra,
                                 counts={"raw_rows": int(raw_rows), "positives": int(n_pos)})
    user_ids = np.sort(df["user"].unique())  # groupby(...).size().index is sorted
    n_users = len(user_ids)
    n_items_filtered = int(df["item"].nunique())
    n_h = protocol.n_heldout if protocol.n_heldout is not None else max(1, n_users // 10)
    if n_users < 2 * n_h + 1:
        trail = " -> ".join(
            f"{what}: {rows:,} rows" + (f" ({u:,} users, {i:,} items)" if u is not None else "")
            for what, rows, u, i in steps
        )
        emptied = next((what for what, rows, _, _ in steps if rows == 0), None)
        fits = (n_users - 1) // 2
        if fits >= 1:
            advice = (f"lower the held-out users to at most {fits:,} (--heldout-users {fits}), "
                      f"or relax the filters")
        elif emptied:
            advice = f"the step '{emptied}' removed every row: relax it (--min-rating, --min-user-items, --min-item-users)"
        else:
            advice = "relax the filters (--min-user-items, --min-item-users, --min-rating) or use more data"
        raise ValueError(
            f"{dataset}: {n_users:,} users remain after the filters, too few for {n_h:,} "
            f"validation + {n_h:,} test users and at least one training user. Rows after each "
            f"step: {trail}. {advice}"
        )
    # The notebook seeds the global RNG (np.random.seed) and permutes; a RandomState of the
    # same seed is that very stream (the legacy Mersenne Twister) without touching the global.
    perm = np.random.RandomState(seed).permutation(n_users)
    shuffled = user_ids[perm]
    tr_users = shuffled[: n_users - 2 * n_h]
    vd_users = shuffled[n_users - 2 * n_h : n_users - n_h]
    te_users = shuffled[n_users - n_h :]

    cutoff = None
    if protocol.protocol == "temporal":  # training sees nothing after the global cutoff
        from .protocols import cutoff_heldout, require_timestamps, temporal_cutoff

        require_timestamps(df, protocol.protocol, dataset)
        cutoff = temporal_cutoff(df["timestamp"])
    train_df = df[df["user"].isin(tr_users)]
    if cutoff is not None:
        train_df = train_df[train_df["timestamp"] <= cutoff]
    item_index = pd.Index(pd.unique(train_df["item"]))
    rows = pd.Index(tr_users).get_indexer(train_df["user"].to_numpy())
    cols = item_index.get_indexer(train_df["item"].to_numpy())
    train = sp.csr_matrix(
        (np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(len(tr_users), len(item_index))
    )
    if cutoff is not None:
        valid = cutoff_heldout(df[df["user"].isin(vd_users)], vd_users, item_index, cutoff)
        test = cutoff_heldout(df[df["user"].isin(te_users)], te_users, item_index, cutoff)
    else:
        valid, _ = _heldout_split(df[df["user"].isin(vd_users)], vd_users, item_index, protocol, seed)
        test, _ = _heldout_split(df[df["user"].isin(te_users)], te_users, item_index, protocol, seed)

    meta: dict[str, Any] = {
        "dataset": dataset,
        "seed": int(seed),
        "protocol": protocol.as_dict(),
        "preprocess_version": PREPROCESS_VERSION,
        "counts": {
            "raw_rows": int(raw_rows),
            "positives": int(n_pos),
            "interactions_after_filter": int(len(df)),
            "users_after_filter": int(n_users),
            "items_after_filter": n_items_filtered,
            "items_in_split": int(len(item_index)),
            "train_users": int(len(tr_users)),
            "valid_users": int(len(vd_users)),
            "test_users": int(len(te_users)),
            "train_interactions": int(train.nnz),
            "valid_dropped_interactions": int(
                (df["user"].isin(vd_users)).sum() - valid.fold_in.nnz - valid.holdout.nnz
            ),
            "test_dropped_interactions": int(
                (df["user"].isin(te_users)).sum() - test.fold_in.nnz - test.holdout.nnz
            ),
        },
    }
    if cutoff is not None:
        meta["temporal_cutoff"] = cutoff.item() if hasattr(cutoff, "item") else cutoff
    if extra_meta:
        meta.update(extra_meta)
    return Split(
        train=train,
        valid=valid,
        test=test,
        items=np.asarray(item_index),
        users={"train": np.asarray(tr_users), "valid": np.asarray(vd_users), "test": np.asarray(te_users)},
        meta=meta,
    )
