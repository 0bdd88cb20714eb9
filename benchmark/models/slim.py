"""SLIM (Ning and Karypis, "SLIM: Sparse Linear Methods for Top-N Recommender Systems", 2011).

One elastic-net regression per item column j, non-negative weights, zero diagonal::

    w_j = argmin_{w >= 0, w_j = 0}  1/2 ||x_j - X w||^2 + l2/2 ||w||^2 + l1 ||w||_1
    scores = fold_in @ W            W = [w_1 ... w_n]  (n_items, n_items), sparse

``l1`` and ``l2`` are SLIM's own (unnormalised) regularisers, the ones Liang et al. (2018)
searched over {0.1, 0.5, 1, 5}. Each regression is solved by scikit-learn's cyclic
coordinate descent with its duality-gap stopping rule, in one of two equivalent forms:

- ``solver="gram"`` (default where it fits): on the dense co-occurrence matrix X^T X
  (float32, n_items^2 x 4 bytes: 1.6 GB at ML-20M), over growing working sets
  (``_GramSolver`` in :mod:`benchmark.models.slim_solvers`). At ML-20M shape on 2 cores
  (``python benchmarks/baselines_speed.py --parts slim-scale``) its full fit took 958.8 s,
  against 3,655 s for the sparse form extrapolated from 64 columns (the gram solver takes
  0.262 of the sparse solver's time per column, about 3.8x less).
- ``solver="sparse"``: ``ElasticNet(positive=True)`` on the sparse columns of X, whose
  objective is divided by the number of training users n; the mapping is::

      alpha = (l1 + l2) / n,   l1_ratio = l1 / (l1 + l2)

Both minimise the same strictly convex objective to the same duality-gap tolerance
(``tests/test_slim_solvers.py``: per-column objectives within 1e-6 relative, the gram
solver never the higher; on ml-100k the same Recall@20/50 and NDCG@100 0.4515 against the
sparse solver's 0.4519 at tol 1e-4, both 0.4515 at tol 1e-6).

Column j never enters its own regression, and neither does any item that co-occurs with
j at most l1 times: with X, w >= 0 such an item's weight is provably 0 (a safe screening
rule, see ``_SparseSolver``), so dropping it changes nothing but the time. The regressions
run in a thread pool over the machine's cores (the coordinate descent releases the GIL),
each with one BLAS thread: BLAS threads inside every coordinate-descent step oversubscribe
the cores (the last recorded run, the sparse solver on the 20,000 x 5,000 set of
``python benchmarks/baselines_speed.py --parts slim-lightfm``: 2.4x slower with BLAS
threads unlimited than with one BLAS thread per regression, the same weights). Before a
large catalogue the model times a first batch of columns, prints the estimated total and
refuses (``SlimTimeBudgetError``) if that exceeds ``FitOptions.time_budget``.
"""

from __future__ import annotations

import sys
import threading
import time
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import scipy.sparse as sp

from ..cost import DataShape, Estimate
from ..model import FitOptions, ItemItemRecommender
from ..protocol import HeldOut
from ..registry import register
from ..resources import available_cpus, available_memory
from ..units import fmt_seconds
from .linalg import gram_dense
from .slim_solvers import _gram_bytes, _gram_cd, _GramSolver, _SparseSolver

__all__ = ["SLIM", "SlimTimeBudgetError"]

#: Catalogues above this size are skipped unless SLIM is asked for by name (MSD: 41,140).
MAX_ITEMS_UNASKED = 30_000
#: Catalogues at least this large get a printed time estimate before the full fit.
ESTIMATE_FROM_ITEMS = 5_000


class SlimTimeBudgetError(TimeoutError):
    """The estimated (or elapsed) SLIM fit time exceeds ``FitOptions.time_budget``."""


def _column_blocks(n: int, size: int) -> list[np.ndarray]:
    return [np.arange(s, min(n, s + size)) for s in range(0, n, size)]


@register("slim", display_name="SLIM", fit_uses_seed=False)
class SLIM(ItemItemRecommender):
    """SLIM (Ning and Karypis 2011): non-negative elastic-net item-item regressions."""

    def __init__(
        self,
        l1: float = 1.0,
        l2: float = 5.0,
        topk: int | None = None,
        max_iter: int = 100,
        tol: float = 1e-4,
        solver: str = "auto",
    ) -> None:
        """
        Args:
            l1: lambda, the L1 penalty (SLIM's unnormalised scale; paper grid 0.1..5).
            l2: beta, the L2 penalty (same scale and grid).
            topk: keep only the k largest weights of each column (None: keep all).
            max_iter: coordinate-descent sweeps per column at most (the gram solver: per
                working-set round).
            tol: coordinate-descent tolerance (scikit-learn's duality-gap rule).
            solver: "gram" (the dense co-occurrence matrix, n_items^2 float32, and working
                sets: about 3.8x less time per column at ML-20M shape, see the module
                docstring), "sparse" (coordinate descent over the sparse columns, the former
                default; same optimum) or "auto" (gram when
                l1 > 0 and the matrix fits in half the available memory, else sparse).
        """
        self.l1 = l1
        self.l2 = l2
        self.topk = topk
        self.max_iter = max_iter
        self.tol = tol
        self.solver = solver

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
    def estimate_cost(cls, shape: DataShape, params: dict[str, Any], options: FitOptions) -> Estimate:
        """The solver's set-up (timed) + all columns x the wall time per column of 64 random
        columns' regressions (on these data, with these penalties, on the fit's threads)."""
        model = cls(**params)
        x = shape.train_matrix()
        n_items = x.shape[1]
        threads = max(1, min(options.threads or available_cpus(), n_items))
        t = time.perf_counter()
        kind, make, peak = model._solvers(x, threads)
        setup = time.perf_counter() - t
        per_col = model.seconds_per_column(make, n_items, threads, columns=64, seed=0)
        return Estimate(setup + per_col * n_items, int(peak),
                        f"{kind} solver: {setup:.1f} s set-up + {n_items:,} columns x "
                        f"{per_col * 1000:.1f} ms ({threads} threads)")

    def seconds_per_column(self, make: Callable[[], Any], n_items: int, threads: int, *,
                           columns: int, seed: int) -> float:
        """Wall seconds per column of ``columns`` random columns' regressions (``seed``),
        solved on ``threads`` threads at once by the solvers ``make`` builds.

        Timed on the fit's threads at once, not as one thread's time divided by the threads:
        the threads share the memory bandwidth, so we assume they do not scale linearly (an
        assumption: no run comparing 1 and 2 threads is recorded; how close the whole estimate
        comes is what ``benchmarks/plan_accuracy.py`` and ``benchmarks/slim_plan.py`` measure).
        """
        from sklearn.exceptions import ConvergenceWarning
        from threadpoolctl import threadpool_limits

        cols = np.sort(np.random.default_rng(seed).choice(n_items, size=min(columns, n_items), replace=False))
        chunks = [c for c in np.array_split(cols, threads) if len(c)]
        with warnings.catch_warnings(), threadpool_limits(1, "blas"), \
                ThreadPoolExecutor(max_workers=len(chunks)) as pool:
            warnings.simplefilter("ignore", ConvergenceWarning)
            t = time.perf_counter()
            list(pool.map(lambda c: make().solve(c, self.topk), chunks))
            return (time.perf_counter() - t) / len(cols)

    def _solver_kind(self, n_items: int) -> str:
        if self.solver != "auto":
            return self.solver
        if self.l1 <= 0 or _gram_cd() is None:
            return "sparse"
        return "gram" if _gram_bytes(n_items) <= available_memory("cpu") / 2 else "sparse"

    def _solvers(self, train: sp.spmatrix, threads: int) -> tuple[str, Callable[[], Any], int]:
        """(solver kind, a factory of per-thread solvers, peak bytes): the set-up (the
        co-occurrence matrix, or the CSC/CSR copies) happens here, once."""
        n_users, n_items = train.shape
        l1, l2 = float(self.l1), float(self.l2)
        kind = self._solver_kind(n_items)
        if kind == "gram":
            # Items by falling popularity: working sets (mostly popular items) then gather
            # from the matrix's top-left corner, which stays in cache. Counts are exact in
            # float32 below 2^24 users.
            train = sp.csr_matrix(train)
            order = np.argsort(-np.bincount(train.indices, minlength=n_items), kind="stable")
            gram = gram_dense(train[:, order], "float32" if n_users < 2**24 else "float64", threads=threads)
            return kind, lambda: _GramSolver(gram, order, l1, l2, self.max_iter, self.tol), _gram_bytes(n_items)
        xc = sp.csc_matrix(train, dtype=np.float64)
        xc.sort_indices()
        xr = xc.tocsr()
        alpha, l1_ratio = (l1 + l2) / n_users, l1 / (l1 + l2)
        peak = train.nnz * 12 * 4 + n_items * 200 * 12
        return kind, lambda: _SparseSolver(xc, xr, l1, alpha, l1_ratio, self.max_iter, self.tol), peak

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
        if self.solver not in ("auto", "gram", "sparse"):
            problems.append(f"solver={self.solver!r} (one of 'auto', 'gram', 'sparse')")
        elif self.solver == "gram" and isinstance(self.l1, (int, float)) and self.l1 <= 0:
            problems.append("solver='gram' with l1=0 (the working sets need l1 > 0; use 'sparse')")
        elif self.solver == "gram" and _gram_cd() is None:  # pragma: no cover
            problems.append("solver='gram': this scikit-learn lacks its Gram coordinate descent; "
                            "use solver='sparse' or scikit-learn 1.3-1.9")
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
        n_users, n_items = train.shape
        threads = max(1, min(options.threads or available_cpus(), n_items))
        topk = None if self.topk is None else int(self.topk)
        self.solver_, make, _ = self._solvers(train, threads)
        setup = time.perf_counter() - t0
        local = threading.local()

        def work(cols: np.ndarray):
            solver = getattr(local, "solver", None)
            if solver is None:
                solver = local.solver = make()
            return solver.solve(cols, topk)

        blocks = _column_blocks(n_items, 32)
        parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        budget = options.time_budget
        import sklearn.linear_model  # noqa: F401  (loads the BLAS its coordinate descent calls)
        from threadpoolctl import threadpool_limits

        # warnings.catch_warnings is not thread-safe: one filter for the whole pool. One BLAS
        # thread per regression: the pool is the parallelism, and BLAS threads inside the
        # coordinate descent's vector operations oversubscribe the cores (2.4x slower in the
        # last recorded run, see the module docstring).
        with warnings.catch_warnings(), threadpool_limits(1, "blas"), \
                ThreadPoolExecutor(max_workers=threads) as pool:
            warnings.simplefilter("ignore", ConvergenceWarning)  # a column stopped at max_iter
            # A first batch of columns times the rest (and is kept).
            # A whole number of blocks per thread (an idle thread would inflate the estimate).
            first = min(len(blocks), threads * -(-((len(blocks) + 99) // 100) // threads))
            parts += list(pool.map(work, blocks[:first]))
            done = sum(len(b) for b in blocks[:first])
            elapsed = time.perf_counter() - t0
            estimate = setup + (elapsed - setup) / done * n_items
            self.estimated_seconds_ = float(estimate)
            if n_items >= ESTIMATE_FROM_ITEMS or (budget is not None and estimate > budget):
                print(
                    f"SLIM ({self.solver_} solver): {n_items:,} item regressions on {threads} "
                    f"threads, estimated "
                    f"{fmt_seconds(estimate)} (from the first {done:,} columns)",
                    file=sys.stderr,
                    flush=True,
                )
            if budget is not None and estimate > budget:
                raise SlimTimeBudgetError(
                    f"SLIM would take about {fmt_seconds(estimate)} for {n_items:,} items, over the "
                    f"time budget of {fmt_seconds(budget)}; raise --time-budget, set topk or "
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
                            f"SLIM exceeded the time budget of {fmt_seconds(budget)} after "
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
            extra["solver"] = self.solver_
        return extra
