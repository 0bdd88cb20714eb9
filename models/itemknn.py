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

    display_name = "Item kNN"  # how reports name it (default: the registry name)
    fit_uses_seed = False  # no randomness given the split: --seeds fits it once

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
    def estimate_cost(cls, shape, params, options):
        """The run plan's line: the fit timed on a sample of items of the training matrix
        (real when the data was read, else synthetic of its shape), scaled by the number of
        co-occurring pairs (the co-occurrence product's work); peak = those pairs as COO
        (4-byte value, two 4-byte indices) three times over, plus the kept weights."""
        from benchmark.cost import Estimate, timed

        x = shape.train_matrix()
        n = x.shape[1]
        m = min(n, 1000)
        cols = np.sort(np.random.default_rng(0).choice(n, size=m, replace=False))
        xs = sp.csr_matrix(x[:, cols])
        model = cls(**params)
        t = timed(lambda: model._fit(xs, None, options), repeats=1)
        pairs = float((np.diff(x.indptr).astype(np.float64) ** 2).sum())
        pairs_s = max(1.0, float((np.diff(xs.indptr).astype(np.float64) ** 2).sum()))
        nnz = min(pairs, float(n) * n)
        peak = int(nnz * 12 * 3 + n * min(params["k"], n) * 12)
        return Estimate(t * pairs / pairs_s, peak, f"fit timed on {m:,} items, x co-occurring pairs")

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
