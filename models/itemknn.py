"""Example plugin: item-based k-nearest neighbours (cosine similarity).

Copy this file to models/<yourmodel>.py, rename the class and the registered name, and
`python -m benchmark models` lists it; `python -m benchmark run --models <name> ...` runs it
under the same protocol, evaluation and reports as the built-ins.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from benchmark.model import ItemItemRecommender
from benchmark.registry import register


@register("itemknn")
class ItemKNN(ItemItemRecommender):
    """Item kNN: cosine item-item similarity, k neighbours per item (example plugin)."""

    def __init__(self, k: int = 100, shrink: float = 10.0) -> None:
        self.k = k
        self.shrink = shrink

    def param_problems(self) -> list[str]:
        """Ranges of the parameters (checked before any fit, and by ``fit``)."""
        problems = []
        if not (isinstance(self.k, int) and self.k >= 1):
            problems.append(f"k={self.k!r} (an integer >= 1)")
        if not (isinstance(self.shrink, (int, float)) and 0 <= self.shrink < float("inf")):
            problems.append(f"shrink={self.shrink!r} (a finite number >= 0)")
        return problems

    def _fit(self, train: sp.csr_matrix, valid, options) -> None:
        """train: (users, items) float32 CSR; scores are fold_in @ weights_ (the base's)."""
        x = train
        norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=0)).ravel())
        co = (x.T @ x).tocsr().astype(np.float32)  # item x item co-occurrence (sparse)
        co.setdiag(0)
        co.eliminate_zeros()
        # cosine with shrinkage: co_ij / (|i| |j| + shrink)
        co = co.tocoo()
        sim = co.data / (norms[co.row] * norms[co.col] + self.shrink)
        sim = sp.csr_matrix((sim, (co.row, co.col)), shape=co.shape)
        self.weights_ = _keep_top_k_per_column(sim, self.k)

    @classmethod
    def search_space(cls, trial) -> dict:
        return {
            "k": trial.suggest_int("k", 10, 1000, log=True),
            "shrink": trial.suggest_float("shrink", 0.0, 100.0),
        }


def _keep_top_k_per_column(sim: sp.csr_matrix, k: int) -> sp.csr_matrix:
    """Keep the k largest entries of each column (the neighbours of each target item)."""
    csc = sim.tocsc()
    counts = np.diff(csc.indptr)
    if counts.max(initial=0) <= k:
        return csc.tocsr()
    keep = np.zeros(len(csc.data), dtype=bool)
    # rank within column: sort by (column, -value), then keep the first k of each column
    col = np.repeat(np.arange(csc.shape[1]), counts)
    order = np.lexsort((-csc.data, col))
    rank = np.arange(len(order)) - np.repeat(csc.indptr[:-1], counts)
    keep[order[rank < k]] = True
    out = sp.csc_matrix((csc.data * keep, csc.indices, csc.indptr), shape=csc.shape)
    out.eliminate_zeros()
    return out.tocsr()
