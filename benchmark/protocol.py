"""The data contract: the strong-generalisation split every loader emits and every model reads.

(The model contract, ``Recommender`` and ``FitOptions``, is :mod:`benchmark.model`; its names
are importable from here too.)

Strong generalisation (Liang et al. 2018, section 4.2; the reference notebook's split)::

                    items (only those seen by training users)
                 +-------------------------------------------+
    train users  |  train: every interaction, used by fit()  |
                 +-------------------------------------------+
    valid users  |  valid.fold_in (80%)  | valid.holdout 20% |   never seen by fit() as users;
                 +-------------------------------------------+   fold_in -> score(),
    test users   |  test.fold_in  (80%)  | test.holdout  20% |   holdout -> metrics
                 +-------------------------------------------+

A held-out user is represented by a model from their fold-in row alone; the model never
trains on held-out users. Per user the fold-in / holdout split is by item, at random,
floor(20%) of the items to the holdout for users with at least 5 items.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from .fsutil import follow_umask, is_split_dir

__all__ = ["HeldOut", "Split", "csr_hash"]


def _as_csr(m: sp.spmatrix) -> sp.csr_matrix:
    m = sp.csr_matrix(m, dtype=np.float32)
    m.sum_duplicates()
    m.sort_indices()
    return m


def csr_hash(*mats: sp.csr_matrix, extra: bytes = b"") -> str:
    """Content hash (sha256 hex) of CSR matrices: shape, indptr, indices and data."""
    h = hashlib.sha256()
    for m in mats:
        h.update(np.asarray(m.shape, dtype=np.int64).tobytes())
        h.update(np.ascontiguousarray(m.indptr, dtype=np.int64).tobytes())
        h.update(np.ascontiguousarray(m.indices, dtype=np.int64).tobytes())
        h.update(np.ascontiguousarray(m.data, dtype=np.float32).tobytes())
    h.update(extra)
    return h.hexdigest()


def _savez_deterministic(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """``np.savez`` with a fixed member timestamp, so equal splits give byte-identical files."""
    import zipfile

    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        for key, value in arrays.items():
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            with zf.open(info, "w", force_zip64=True) as f:
                np.lib.format.write_array(f, np.asanyarray(value), allow_pickle=False)


@dataclass(frozen=True)
class HeldOut:
    """Held-out users: fold-in items (model input) and held-out items (evaluated).

    Attributes:
        fold_in: (n_users, n_items) binary float32 CSR, what the model sees.
        holdout: (n_users, n_items) binary float32 CSR, what is evaluated; disjoint from
            ``fold_in``. Rows with no held-out items are excluded from the metric means.
    """

    fold_in: sp.csr_matrix
    holdout: sp.csr_matrix

    def __post_init__(self) -> None:
        object.__setattr__(self, "fold_in", _as_csr(self.fold_in))
        object.__setattr__(self, "holdout", _as_csr(self.holdout))
        if self.fold_in.shape != self.holdout.shape:
            raise ValueError(
                f"fold_in {self.fold_in.shape} and holdout {self.holdout.shape} differ in shape"
            )

    @property
    def n_users(self) -> int:
        return self.fold_in.shape[0]

    def subset(self, rows: np.ndarray) -> HeldOut:
        return HeldOut(self.fold_in[rows], self.holdout[rows])


@dataclass(frozen=True)
class Split:
    """A strong-generalisation split of one dataset (the cache format every loader emits).

    Attributes:
        train: (n_train_users, n_items) binary float32 CSR.
        valid: held-out validation users.
        test: held-out test users.
        items: (n_items,) original item ids of the columns.
        users: dict part -> original user ids of the rows ("train", "valid", "test").
        meta: dataset, filters, seed, counts and ``split_hash``.
    """

    train: sp.csr_matrix
    valid: HeldOut
    test: HeldOut
    items: np.ndarray
    users: dict[str, np.ndarray] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "train", _as_csr(self.train))
        n = self.train.shape[1]
        for part in (self.valid, self.test):
            if part.fold_in.shape[1] != n:
                raise ValueError("train, valid and test must share the item dimension")
        if "split_hash" not in self.meta:
            meta = dict(self.meta)
            meta["split_hash"] = self.compute_hash()
            object.__setattr__(self, "meta", meta)

    @property
    def n_items(self) -> int:
        return self.train.shape[1]

    @property
    def split_hash(self) -> str:
        return self.meta["split_hash"]

    def part(self, name: str) -> HeldOut:
        if name not in ("valid", "test"):
            raise ValueError(f"part must be 'valid' or 'test', not {name!r}")
        return self.valid if name == "valid" else self.test

    def compute_hash(self) -> str:
        return csr_hash(
            self.train,
            self.valid.fold_in,
            self.valid.holdout,
            self.test.fold_in,
            self.test.holdout,
        )[:16]

    def stats(self) -> dict[str, Any]:
        """Counts a user wants to see: users, items, interactions, density, held-out sizes."""
        n_split = int(
            self.train.nnz
            + self.valid.fold_in.nnz
            + self.valid.holdout.nnz
            + self.test.fold_in.nnz
            + self.test.holdout.nnz
        )
        n_users = self.train.shape[0] + self.valid.n_users + self.test.n_users
        counts = self.meta.get("counts", {})
        if self.meta.get("protocol", {}).get("protocol") in ("weak", "leave-last-out"):
            # evaluated users are training users too; their fold-in is their training row
            n_users = int(self.train.shape[0])
            n_split = int(self.train.nnz + self.valid.holdout.nnz + self.test.holdout.nnz)
        # Interactions after the filters (the paper's Table 1); the split keeps slightly
        # fewer: held-out users' interactions on items no training user has are dropped.
        n_inter = int(counts.get("interactions_after_filter", n_split))
        return {
            "dataset": self.meta.get("dataset"),
            "users": int(n_users),
            "items": int(self.n_items),
            "interactions": n_inter,
            "interactions_in_split": n_split,
            "items_after_filter": int(counts.get("items_after_filter", self.n_items)),
            "density": n_inter / max(1, n_users * int(counts.get("items_after_filter", self.n_items))),
            "train_users": int(self.train.shape[0]),
            "valid_users": int(self.valid.n_users),
            "test_users": int(self.test.n_users),
            "train_interactions": int(self.train.nnz),
            "valid_heldout_interactions": int(self.valid.holdout.nnz),
            "test_heldout_interactions": int(self.test.holdout.nnz),
            "split_hash": self.split_hash,
        }

    # --- cache format -------------------------------------------------------------------
    def save(self, directory: str | os.PathLike, *, overwrite: bool = False) -> Path:
        """Write ``split.npz`` + ``meta.json`` atomically (temporary folder, then rename).

        An existing entry is kept (another process saved the same split first) unless
        ``overwrite`` (a damaged entry being rebuilt).
        """
        directory = Path(directory)
        directory.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
        try:
            arrays: dict[str, np.ndarray] = {"items": np.asarray(self.items)}
            for name, m in (
                ("train", self.train),
                ("valid_fold_in", self.valid.fold_in),
                ("valid_holdout", self.valid.holdout),
                ("test_fold_in", self.test.fold_in),
                ("test_holdout", self.test.holdout),
            ):
                arrays[f"{name}_indptr"] = m.indptr
                arrays[f"{name}_indices"] = m.indices
                arrays[f"{name}_shape"] = np.asarray(m.shape)
            for part, ids in self.users.items():
                arrays[f"users_{part}"] = np.asarray(ids)
            if arrays["items"].dtype == object:
                arrays["items"] = arrays["items"].astype(str)
            for k in list(arrays):
                if arrays[k].dtype == object:
                    arrays[k] = arrays[k].astype(str)
            _savez_deterministic(tmp / "split.npz", arrays)
            (tmp / "meta.json").write_text(json.dumps(self.meta, indent=2, sort_keys=True, default=str))
            for f in tmp.iterdir():
                follow_umask(f)
            follow_umask(tmp, directory=True)
            for _ in range(3):
                if directory.exists() and (overwrite or not is_split_dir(directory)):
                    aside = Path(tempfile.mkdtemp(prefix=f".{directory.name}.old.", dir=directory.parent))
                    try:
                        os.replace(directory, aside / "x")
                    except OSError:
                        pass
                    shutil.rmtree(aside, ignore_errors=True)
                    overwrite = False
                try:
                    os.replace(tmp, directory)
                    break
                except OSError:
                    if is_split_dir(directory):  # another process saved it first: keep theirs
                        break
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return directory

    @classmethod
    def load(cls, directory: str | os.PathLike) -> Split:
        directory = Path(directory)
        meta = json.loads((directory / "meta.json").read_text())
        with np.load(directory / "split.npz", allow_pickle=False) as z:

            def mat(name: str) -> sp.csr_matrix:
                indices = z[f"{name}_indices"]
                shape = tuple(int(s) for s in z[f"{name}_shape"])
                data = np.ones(len(indices), dtype=np.float32)
                return sp.csr_matrix((data, indices, z[f"{name}_indptr"]), shape=shape)

            users = {p: z[f"users_{p}"] for p in ("train", "valid", "test") if f"users_{p}" in z}
            return cls(
                train=mat("train"),
                valid=HeldOut(mat("valid_fold_in"), mat("valid_holdout")),
                test=HeldOut(mat("test_fold_in"), mat("test_holdout")),
                items=z["items"],
                users=users,
                meta=meta,
            )

