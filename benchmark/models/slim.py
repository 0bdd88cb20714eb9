"""SLIM (Ning and Karypis, "SLIM: Sparse Linear Methods for Top-N Recommender Systems", 2011).

One elastic-net regression per item column j, non-negative weights, zero diagonal::

    w_j = argmin_{w >= 0, w_j = 0}  1/2 ||x_j - X w||^2 + l2/2 ||w||^2 + l1 ||w||_1
    scores = fold_in @ W            W = [w_1 ... w_n]  (n_items, n_items), sparse

``l1`` and ``l2`` are SLIM's own (unnormalised) regularisers, the ones Liang et al. (2018)
searched over {0.1, 0.5, 1, 5}. Each regression is solved by scikit-learn's coordinate
descent (``ElasticNet(positive=True)``, already a dependency of LightFM), whose objective
is divided by the number of training users n; the mapping is::

    alpha = (l1 + l2) / n,   l1_ratio = l1 / (l1 + l2)

Column j never enters its own regression, and neither does any item that co-occurs with
j at most l1 times: with X, w >= 0 such an item's weight is provably 0 (a safe screening
rule, see ``_Solver``), so dropping it changes nothing but the time. The regressions run
in a thread pool over the machine's cores (the coordinate descent releases the GIL), each
with one BLAS thread: BLAS threads inside every coordinate-descent step would oversubscribe
the cores (5-9x slower on a 20,000 x 5,000 set, the same weights; ``benchmarks/
baselines_speed.py``). Before a large catalogue the model times a first batch of
columns, prints the estimated total and refuses (``SlimTimeBudgetError``) if that exceeds
``FitOptions.time_budget``.
"""

from __future__ import annotations

import sys
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import scipy.sparse as sp

from ..model import ItemItemRecommender
from ..protocol import FitOptions, HeldOut, available_cpus
from ..registry import register

__all__ = ["SLIM", "SlimTimeBudgetError"]

#: Catalogues above this size are skipped unless SLIM is asked for by name (MSD: 41,140).
MAX_ITEMS_UNASKED = 30_000
#: Catalogues at least this large get a printed time estimate before the full fit.
ESTIMATE_FROM_ITEMS = 5_000


class SlimTimeBudgetError(TimeoutError):
    """The estimated (or elapsed) SLIM fit time exceeds ``FitOptions.time_budget``."""


def _column_blocks(n: int, size: int) -> list[np.ndarray]:
    return [np.arange(s, min(n, s + size)) for s in range(0, n, size)]


class _Solver:
    """Per-thread state: one ``ElasticNet`` reused for every column the thread solves.

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
        out_r, out_c, out_v = [], [], []
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
            coef = self.enet.coef_
            nz = np.flatnonzero(coef > 0)
            vals = coef[nz]
            if topk is not None and len(nz) > topk:
                keep = np.argpartition(-vals, topk - 1)[:topk]
                nz, vals = nz[keep], vals[keep]
            out_r.append(cand[nz])
            out_c.append(np.full(len(nz), j, dtype=np.int64))
            out_v.append(vals.astype(np.float32))
        if not out_r:
            return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32)
        return np.concatenate(out_r), np.concatenate(out_c), np.concatenate(out_v)


@register("slim")
class SLIM(ItemItemRecommender):
    """SLIM (Ning and Karypis 2011): non-negative elastic-net item-item regressions."""

    def __init__(
        self,
        l1: float = 1.0,
        l2: float = 5.0,
        topk: int | None = None,
        max_iter: int = 100,
        tol: float = 1e-4,
    ) -> None:
        """
        Args:
            l1: lambda, the L1 penalty (SLIM's unnormalised scale; paper grid 0.1..5).
            l2: beta, the L2 penalty (same scale and grid).
            topk: keep only the k largest weights of each column (None: keep all).
            max_iter: coordinate-descent sweeps per column at most.
            tol: coordinate-descent tolerance (scikit-learn's duality-gap rule).
        """
        self.l1 = l1
        self.l2 = l2
        self.topk = topk
        self.max_iter = max_iter
        self.tol = tol

    @classmethod
    def search_space(cls, trial: Any) -> dict[str, Any]:
        grid = [0.1, 0.5, 1.0, 5.0]
        return {
            "l1": trial.suggest_categorical("l1", grid),
            "l2": trial.suggest_categorical("l2", grid),
        }

    @classmethod
    def skip_reason(cls, stats: dict[str, Any], *, explicit: bool) -> str | None:
        if explicit:
            return None
        n = int(stats.get("items", 0))
        if (stats.get("dataset") or "").lower() == "msd" or n > MAX_ITEMS_UNASKED:
            return (
                f"SLIM skipped: {n:,} item regressions over "
                f"{int(stats.get('train_interactions', 0)):,} interactions would take days "
                f"(Liang et al. 2018 could not finish SLIM on MSD); ask for it by name "
                f"(--models slim) to run it anyway"
            )
        return None

    @classmethod
    def estimate_cost(cls, split: Any, params: dict[str, Any], options: FitOptions):
        """All columns x the time of 64 random columns' regressions (on these data, with
        these penalties), over the threads."""
        from ..plan import Estimate

        model = cls(**params)
        x = split.train
        n_users, n_items = x.shape
        xc = sp.csc_matrix(x, dtype=np.float64)
        xc.sort_indices()
        l1, l2 = float(model.l1), float(model.l2)
        solver = _Solver(xc, xc.tocsr(), l1, (l1 + l2) / n_users, l1 / (l1 + l2), model.max_iter, model.tol)
        cols = np.sort(np.random.default_rng(0).choice(n_items, size=min(64, n_items), replace=False))
        from sklearn.exceptions import ConvergenceWarning
        from threadpoolctl import threadpool_limits

        with warnings.catch_warnings(), threadpool_limits(1, "blas"):  # as in fit
            warnings.simplefilter("ignore", ConvergenceWarning)
            t = time.perf_counter()
            solver.solve(cols, model.topk)
            per_col = (time.perf_counter() - t) / len(cols)
        threads = max(1, min(options.threads or available_cpus(), n_items))
        peak = x.nnz * 12 * 4 + n_items * 200 * 12
        return Estimate(per_col * n_items / threads, int(peak),
                        f"{n_items:,} columns x {per_col * 1000:.1f} ms / {threads} threads")

    def param_problems(self) -> list[str]:
        problems = []
        num = all(isinstance(v, (int, float)) and 0 <= v < float("inf") for v in (self.l1, self.l2))
        if not num or self.l1 + self.l2 <= 0:
            problems.append(f"l1={self.l1!r}, l2={self.l2!r} (finite, >= 0, l1 + l2 > 0)")
        if self.topk is not None and not (isinstance(self.topk, int) and self.topk >= 1):
            problems.append(f"topk={self.topk!r} (an integer >= 1, or None)")
        if not (isinstance(self.max_iter, int) and self.max_iter >= 1):
            problems.append(f"max_iter={self.max_iter!r} (an integer >= 1)")
        if not (isinstance(self.tol, (int, float)) and 0 < self.tol < float("inf")):
            problems.append(f"tol={self.tol!r} (a finite number > 0)")
        return problems

    def _fit(self, train: sp.csr_matrix, valid: HeldOut | None, options: FitOptions) -> None:
        """Solve one non-negative elastic net per item column, in parallel.

        Args:
            train: (n_train_users, n_items) binary CSR.
            valid: unused.
            options: ``threads`` (default: all cores), ``time_budget`` (seconds),
                ``progress``. The seed is irrelevant (cyclic coordinate descent).

        Raises:
            SlimTimeBudgetError: the estimated or elapsed time exceeds the time budget.
        """
        from sklearn.exceptions import ConvergenceWarning

        t0 = time.perf_counter()
        xc = sp.csc_matrix(train, dtype=np.float64)
        xc.sort_indices()
        n_users, n_items = xc.shape
        alpha = (self.l1 + self.l2) / n_users
        l1_ratio = self.l1 / (self.l1 + self.l2)
        threads = max(1, min(options.threads or available_cpus(), n_items))
        topk = None if self.topk is None else int(self.topk)

        xr = xc.tocsr()
        local = threading.local()

        def work(cols: np.ndarray):
            solver = getattr(local, "solver", None)
            if solver is None:
                solver = local.solver = _Solver(
                    xc, xr, float(self.l1), alpha, l1_ratio, self.max_iter, self.tol
                )
            return solver.solve(cols, topk)

        blocks = _column_blocks(n_items, 32)
        parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        budget = options.time_budget
        import sklearn.linear_model  # noqa: F401  (loads the BLAS its coordinate descent calls)
        from threadpoolctl import threadpool_limits

        # warnings.catch_warnings is not thread-safe: one filter for the whole pool. One BLAS
        # thread per regression: the pool is the parallelism, and BLAS threads inside the
        # coordinate descent's vector operations oversubscribe the cores (6-9x slower).
        with warnings.catch_warnings(), threadpool_limits(1, "blas"), \
                ThreadPoolExecutor(max_workers=threads) as pool:
            warnings.simplefilter("ignore", ConvergenceWarning)  # a column stopped at max_iter
            # A first batch of columns times the rest (and is kept).
            first = min(len(blocks), max(threads, (len(blocks) + 99) // 100))
            parts += list(pool.map(work, blocks[:first]))
            done = sum(len(b) for b in blocks[:first])
            elapsed = time.perf_counter() - t0
            estimate = elapsed / done * n_items
            self.estimated_seconds_ = float(estimate)
            if n_items >= ESTIMATE_FROM_ITEMS or (budget is not None and estimate > budget):
                print(
                    f"SLIM: {n_items:,} item regressions on {threads} threads, estimated "
                    f"{_fmt_time(estimate)} (from the first {done:,} columns)",
                    file=sys.stderr,
                    flush=True,
                )
            if budget is not None and estimate > budget:
                raise SlimTimeBudgetError(
                    f"SLIM would take about {_fmt_time(estimate)} for {n_items:,} items, over the "
                    f"time budget of {_fmt_time(budget)}; raise --time-budget, set topk or "
                    f"larger l1 (sparser, faster columns), or skip SLIM on this data set"
                )
            rest = blocks[first:]
            pbar = None
            if options.progress and n_items >= ESTIMATE_FROM_ITEMS:
                from tqdm.auto import tqdm

                pbar = tqdm(total=n_items, initial=done, desc="SLIM columns", unit="col", leave=False)
            try:
                for part, cols in zip(pool.map(work, rest), rest):
                    parts.append(part)
                    if pbar is not None:
                        pbar.update(len(cols))
                    if budget is not None and time.perf_counter() - t0 > budget:
                        pool.shutdown(wait=True, cancel_futures=True)  # only running blocks finish
                        raise SlimTimeBudgetError(
                            f"SLIM exceeded the time budget of {_fmt_time(budget)} after "
                            f"{len(parts)} of {len(blocks)} column blocks; raise "
                            f"--time-budget, set topk or larger l1, or skip SLIM here"
                        )
            finally:
                if pbar is not None:
                    pbar.close()
        rows = np.concatenate([p[0] for p in parts])
        cols = np.concatenate([p[1] for p in parts])
        vals = np.concatenate([p[2] for p in parts])
        self.weights_ = sp.csr_matrix((vals, (rows, cols)), shape=(n_items, n_items), dtype=np.float32)
        self.fit_seconds_ = time.perf_counter() - t0

    def results_extra(self) -> dict[str, Any]:
        extra = super().results_extra()
        if hasattr(self, "weights_"):
            extra["nnz_weights"] = int(self.weights_.nnz)
            extra["estimated_seconds"] = round(self.estimated_seconds_, 3)
        return extra


def _fmt_time(s: float) -> str:
    if s < 120:
        return f"{s:.0f} s"
    if s < 7200:
        return f"{s / 60:.0f} min"
    return f"{s / 3600:.1f} h"
