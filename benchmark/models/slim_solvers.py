"""SLIM's per-thread solvers: one non-negative elastic-net regression per item column, in
the two equivalent forms of :mod:`benchmark.models.slim`.

- :class:`_SparseSolver` (``solver="sparse"``): scikit-learn's ``ElasticNet`` on the sparse
  columns of X, over the candidates a safe screening rule leaves.
- :class:`_GramSolver` (``solver="gram"``): scikit-learn's Gram-matrix coordinate descent
  (:func:`_gram_cd`) on the dense co-occurrence matrix X^T X, over growing working sets.

Each ``solve(cols, topk)`` returns the kept weights of its columns as (rows, cols, values)
(:class:`_Columns`); the model assembles them into the sparse weight matrix.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.sparse as sp

__all__ = ["_Columns", "_GramSolver", "_SparseSolver", "_gram_bytes", "_gram_cd", "_keep"]


def _keep(idx: np.ndarray, coef: np.ndarray, topk: int | None) -> tuple[np.ndarray, np.ndarray]:
    """The positive weights of one column (their items and values), the ``topk`` largest."""
    nz = np.flatnonzero(coef > 0)
    vals = coef[nz]
    if topk is not None and len(nz) > topk:
        keep = np.argpartition(-vals, topk - 1)[:topk]
        nz, vals = nz[keep], vals[keep]
    return idx[nz], vals


class _Columns:
    """Collects (rows, cols, values) of the kept weights, column by column."""

    def __init__(self) -> None:
        self.r: list[np.ndarray] = []
        self.c: list[np.ndarray] = []
        self.v: list[np.ndarray] = []

    def add(self, j: int, rows: np.ndarray, vals: np.ndarray) -> None:
        self.r.append(rows)
        self.c.append(np.full(len(rows), j, dtype=np.int64))
        self.v.append(vals.astype(np.float32))

    def result(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if not self.r:
            return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32)
        return np.concatenate(self.r), np.concatenate(self.c), np.concatenate(self.v)


class _SparseSolver:
    """Per-thread state: one ``ElasticNet`` reused for every column the thread solves
    (``solver="sparse"``: coordinate descent over the sparse columns of X, the former default).

    Safe screening (exact for non-negative X and w): with r = x_j - X w,
    x_k^T r <= x_k^T x_j = C_kj (the co-occurrence count), so an item with C_kj <= l1 can
    never satisfy the optimality condition x_k^T r = l1 + l2 w_k > l1 of a positive weight.
    Each regression therefore runs on the columns with C_kj > l1 only (never j itself),
    which is the same optimum at a fraction of the cost on sparse data.
    """

    def __init__(
        self, xc: sp.csc_matrix, xr: sp.csr_matrix, l1: float, alpha: float, l1_ratio: float,
        max_iter: int, tol: float,
    ):
        from sklearn.linear_model import ElasticNet

        self.xc, self.xr, self.l1 = xc, xr, l1
        self.n_users = xc.shape[0]
        self.enet = ElasticNet(
            alpha=alpha,
            l1_ratio=l1_ratio,
            positive=True,
            fit_intercept=False,
            copy_X=False,
            precompute=False,
            selection="cyclic",
            max_iter=max_iter,
            tol=tol,
        )

    def solve(self, cols: np.ndarray, topk: int | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Regress each column in ``cols``; return (rows, cols, values) of the kept weights."""
        out = _Columns()
        xc = self.xc
        co = (xc[:, cols].T @ self.xr).tocsr()  # (len(cols), n_items) co-occurrence counts
        for i, j in enumerate(cols):
            row = slice(co.indptr[i], co.indptr[i + 1])
            cand = co.indices[row][co.data[row] > self.l1]
            cand = np.sort(cand[cand != j])
            if len(cand) == 0:
                continue
            y = np.zeros(self.n_users, dtype=xc.dtype)
            y[xc.indices[xc.indptr[j] : xc.indptr[j + 1]]] = 1.0
            xs = xc[:, cand]
            xs.sort_indices()
            self.enet.fit(xs, y, check_input=False)
            out.add(j, *_keep(cand, self.enet.coef_, topk))
        return out.result()


def _gram_cd() -> Callable[..., Any] | None:
    """scikit-learn's Gram-matrix coordinate descent (the very update and duality-gap rule
    ``ElasticNet`` runs on sparse columns, on a precomputed X^T X); None where this
    scikit-learn lacks it under its long-standing name."""
    try:
        from sklearn.linear_model._cd_fast import enet_coordinate_descent_gram
    except ImportError:  # pragma: no cover - a future scikit-learn
        return None
    return enet_coordinate_descent_gram


class _GramSolver:
    """Per-thread state for ``solver="gram"``: the same regressions solved on the dense
    co-occurrence matrix C = X^T X (float32, exact for counts below 2^24), over working sets.

    Column j's problem in Gram form is 1/2 w^T C w - C_j^T w + l1 sum(w) + l2/2 ||w||^2
    (+ |x_j|/2), over the screened candidates (C_kj > l1, k != j, as ``_SparseSolver``).
    It is solved on a working set A of candidates with scikit-learn's Gram coordinate
    descent on the gathered block C[A, A] (float64), started from the candidates nearest
    their constraint at w = 0 (largest (C_kj - l1) / sqrt(C_kk + l2)), then checked against
    every candidate outside A: x_k^T r = C_kj - (C w)_k <= l1 is their optimality
    condition (w_k = 0). Violators (with a float32 rounding margin) join A, at most
    ``GROW`` x |support| of them, the most violating first, and A is solved again from the
    current weights; with none left, the duality gap of the restricted problem is the gap
    of the whole problem (outside coordinates cannot raise its dual norm), so the stopping
    rule is ``ElasticNet``'s: gap <= tol * |x_j|. Measured at ML-20M shape (136,677 x
    20,108, 2 cores): 65 ms a column against 249 ms for the sparse solver, the full fit
    958.8 s (``python benchmarks/baselines_speed.py --parts slim-scale``).
    """

    #: First working set: this fraction of the candidates, plus ``ADD_MIN``.
    FIRST = 0.02
    ADD_MIN = 64
    #: Violators added per round: at most GROW x the current support (and ADD_MIN).
    GROW = 3.0

    def __init__(
        self, gram: np.ndarray, order: np.ndarray, l1: float, l2: float, max_iter: int, tol: float
    ):
        self.order = order  # gram's rows and columns are the items in this order
        self.pos = np.empty_like(order)
        self.pos[order] = np.arange(len(order))
        self.g, self.flat = gram, gram.reshape(-1)
        self.n = gram.shape[0]
        self.diag = np.diagonal(gram).astype(np.float64)
        self.l1, self.l2, self.max_iter, self.tol = l1, l2, max_iter, tol
        self.cd = _gram_cd()
        self.rng = np.random.RandomState(0)  # the solver draws a seed it never uses (cyclic)

    def _block(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        return self.flat.take(rows[:, None] * self.n + cols).astype(np.float64)

    def solve_column(self, j: int) -> tuple[np.ndarray, np.ndarray]:
        """Column j's non-negative weights over its candidates: (items, weights)."""
        l1, l2 = self.l1, self.l2
        gj = self.g[j]
        cand = np.flatnonzero(gj > l1)
        cand = cand[cand != j]
        if len(cand) == 0:
            return cand, np.zeros(0)
        q = gj[cand].astype(np.float64)
        y = np.ones(int(round(float(gj[j]))))  # |x_j| ones: the solver reads only y^T y
        near = (l1 - q) / np.sqrt(self.diag[cand] + l2)
        p = min(len(cand), int(self.FIRST * len(cand)) + self.ADD_MIN)
        ws = np.sort(np.argpartition(near, p - 1)[:p]) if p < len(cand) else np.arange(len(cand))
        items = cand[ws]
        block = self._block(items, items)
        w = np.zeros(len(ws))
        while True:
            w = self.cd(  # returns (w, gap, tol, n_iter) in every version read; w is what we use
                w, l1, l2, block, np.ascontiguousarray(q[ws]), y, self.max_iter, self.tol, self.rng, 0, 1
            )[0]
            if len(ws) == len(cand):
                break
            support = np.flatnonzero(w)
            outside = np.ones(len(cand), dtype=bool)
            outside[ws] = False
            out = np.flatnonzero(outside)
            wk = sp.csr_matrix(
                (w[support].astype(self.g.dtype), items[support], [0, len(support)]), shape=(1, self.n)
            )
            cw = np.asarray(wk @ self.g).ravel()[cand[out]]  # (C w)_k outside the working set
            violation = q[out] - cw - l1 + 1e-4 * cw + 1e-6  # > 0: violates, or may (rounding)
            viol = np.flatnonzero(violation > 0)
            if len(viol) == 0:
                break  # converged (gap <= tol) or the restricted problem reached max_iter
            k = max(self.ADD_MIN, int(self.GROW * len(support)))
            if len(viol) > k:
                viol = viol[np.argpartition(-violation[viol], k - 1)[:k]]
            new = out[viol]
            both = np.concatenate([items, cand[new]])
            grown = np.empty((len(both), len(both)))
            grown[: len(ws), : len(ws)] = block
            rows = self._block(cand[new], both)
            grown[len(ws) :] = rows
            grown[: len(ws), len(ws) :] = rows[:, : len(ws)].T
            block, ws, items = grown, np.concatenate([ws, new]), both
            w = np.concatenate([w, np.zeros(len(new))])
        return items, w

    def solve(self, cols: np.ndarray, topk: int | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Regress each column in ``cols``; return (rows, cols, values) of the kept weights."""
        out = _Columns()
        for j in cols:
            items, w = self.solve_column(int(self.pos[j]))
            if len(items):
                out.add(int(j), *_keep(self.order[items], w, topk))
        return out.result()


def _gram_bytes(n_items: int) -> int:
    """Peak of the gram solver: the float32 co-occurrence matrix and its build's blocks."""
    return int(n_items * n_items * 4 * 1.25)
