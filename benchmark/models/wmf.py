"""WMF: weighted matrix factorisation (Hu, Koren and Volinsky 2008) by ALS, via ``implicit``.

Training (training users only) is ``implicit``'s CPU ALS on the confidence matrix
``C = 1 + alpha * X`` (clicked: 1 + alpha; not clicked: 1), preferences ``P = X``::

    min_{U, V}  sum_{u,i} c_ui (p_ui - u_u^T v_i)^2 + reg (||U||^2 + ||V||^2)

A held-out user u is folded in by the exact least-squares user update with the item
factors V (n_items, k) fixed::

    A_u = V^T C_u V + reg I = V^T V + reg I + alpha * V_u^T V_u      (k, k)
    b_u = V^T C_u p_u      = (1 + alpha) * sum_{i in fold_in(u)} v_i (k,)
    u_u = A_u^{-1} b_u

where V_u holds the rows of V for u's fold-in items (the "Gram trick": only the fold-in
items differ from the shared V^T V). A user with L = |fold_in(u)| < k items is solved in
the L-dimensional dual instead (Woodbury; same solution, exact)::

    W = V (V^T V + reg I)^{-1/2}                  (n_items, k), once per model
    u_u = (1 + alpha) (V^T V + reg I)^{-1/2} W_u^T (I_L + alpha W_u W_u^T)^{-1} 1_L

which costs L^2 k + L^3 / 3 instead of L k^2 + k^3 / 3. Users are batched: sorted by
fold-in size, padded into (batch, L_max, k) tensors (padding rows are zero and change
nothing), one batched matmul and one batched Cholesky per group; never one Python call per
user. The item factors are never written.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import scipy.sparse as sp

from ..cost import DataShape, Estimate, user_sample, validation_seconds
from ..model import FitOptions, IterativeRecommender, available_cpus
from ..registry import register

__all__ = ["WMF", "FoldInCache", "fold_in_factors"]

#: Elements of one group's padded gather (batch x L_max x k) plus its stack of systems
#: (batch x min(L_max, k)^2): 2^21 float64 elements = 16 MiB (cache-friendly, and fastest
#: of 2^20, 2^22, 2^24 in a test).
_GROUP_BUDGET = 1 << 21
#: Longest over shortest fold-in in one padded group (geometric length buckets).
_SPREAD = 1.1


def _batches(lengths_sorted: np.ndarray, k: int) -> list[tuple[int, int]]:
    """Split users sorted by fold-in length into [start, stop) groups within the budget.

    A group never mixes users with fewer than k items (dual) and the others (primal), and
    its longest fold-in is at most ``_SPREAD`` times (+ 8) its shortest, so padding wastes
    little.
    """
    n = len(lengths_sorted)
    boundary = int(np.searchsorted(lengths_sorted, k, side="left"))  # first user with L >= k
    out = []
    start = 0
    while start < n:
        cap = boundary if start < boundary else n
        # padding waste: lengths within a group differ by at most a factor _SPREAD (+ 8)
        longest = int(lengths_sorted[start] * _SPREAD) + 8
        cap = min(cap, max(start + 1, int(np.searchsorted(lengths_sorted, longest, side="right"))))
        ls = np.maximum(1, lengths_sorted[start:cap]).astype(np.int64)
        # padded cost of [start, stop) grows with stop: size x (L_max k + min(L_max, k)^2)
        cost = np.arange(1, cap - start + 1) * (ls * k + np.minimum(ls, k) ** 2)
        stop = start + max(1, int(np.searchsorted(cost, _GROUP_BUDGET, side="right")))
        out.append((start, stop))
        start = stop
    return out


class FoldInCache:
    """What the fold-in needs from the item factors V (n_items, k), computed once (float64).

    Attributes:
        v_pad: (n_items + 1, k) V with a zero padding row at index n_items.
        w_pad: (n_items + 1, k) W = V A0^{-1/2}, zero padding row.
        a0: (k, k) V^T V + reg I.
        a0_isqrt: (k, k) A0^{-1/2} (symmetric).
    """

    def __init__(self, item_factors: np.ndarray, regularization: float, yty: np.ndarray | None = None):
        import torch

        v = torch.from_numpy(np.asarray(item_factors, dtype=np.float64))
        n_items, k = v.shape
        yty_t = v.T @ v if yty is None else torch.from_numpy(np.asarray(yty, dtype=np.float64))
        self.a0 = yty_t + regularization * torch.eye(k, dtype=torch.float64)
        evals, evecs = torch.linalg.eigh(self.a0)
        self.a0_isqrt = (evecs * evals.rsqrt()) @ evecs.T
        zero = torch.zeros(1, k, dtype=torch.float64)
        self.v_pad = torch.cat([v, zero])
        self.w_pad = torch.cat([v @ self.a0_isqrt, zero])
        self.n_items, self.k = n_items, k


def fold_in_factors(
    fold_in: sp.csr_matrix,
    item_factors: np.ndarray,
    regularization: float,
    alpha: float,
    *,
    cache: FoldInCache | None = None,
) -> np.ndarray:
    """Exact least-squares user factors for fold-in rows, item factors fixed (batched).

    Args:
        fold_in: (n_users, n_items) CSR; non-zeros are the users' clicks (binary).
        item_factors: (n_items, k) item factors V (read only).
        regularization: reg, the L2 penalty on the user factors.
        alpha: confidence weight: c_ui = 1 + alpha on clicked items, 1 elsewhere.
        cache: precomputed :class:`FoldInCache` of the same V and reg.

    Returns:
        (n_users, k) float64 user factors.
    """
    import torch

    fold_in = sp.csr_matrix(fold_in)
    fold_in.sort_indices()
    c = cache if cache is not None else FoldInCache(item_factors, regularization)
    n_users = fold_in.shape[0]
    k = c.k
    out = torch.zeros((n_users, k), dtype=torch.float64)
    lengths = np.diff(fold_in.indptr)
    order = np.argsort(lengths, kind="stable")
    ls = lengths[order]
    dual_rows: list[torch.Tensor] = []
    dual_users: list[np.ndarray] = []
    for start, stop in _batches(ls, k):
        users = order[start:stop]
        width = int(ls[stop - 1])
        if width == 0:
            continue  # no clicks: b_u = 0, so u_u = 0
        sub = fold_in[users]
        n_b = len(users)
        idx = np.full((n_b, width), c.n_items, dtype=np.int64)  # padding -> the zero row
        counts = np.diff(sub.indptr)
        pos = np.arange(sub.nnz) - np.repeat(sub.indptr[:-1], counts)
        idx[np.repeat(np.arange(n_b), counts), pos] = sub.indices
        idx_t = torch.from_numpy(idx)
        if width < k:  # dual: (I + alpha W_u W_u^T) s = 1, u = (1 + alpha) A0^{-1/2} W_u^T s
            wu = c.w_pad[idx_t]  # (n_b, L, k)
            eye = torch.eye(width, dtype=torch.float64).expand(n_b, width, width)
            s_mat = torch.baddbmm(eye, wu, wu.transpose(1, 2), alpha=alpha)
            ones = torch.ones(n_b, width, 1, dtype=torch.float64)
            sol = torch.cholesky_solve(ones, torch.linalg.cholesky(s_mat))
            dual_rows.append((1.0 + alpha) * (wu.transpose(1, 2) @ sol).squeeze(-1))
            dual_users.append(users)
        else:  # primal: (A0 + alpha V_u^T V_u) u = (1 + alpha) V_u^T 1
            vu = c.v_pad[idx_t]  # (n_b, L, k)
            a = torch.baddbmm(c.a0.expand(n_b, k, k), vu.transpose(1, 2), vu, alpha=alpha)
            b = (1.0 + alpha) * vu.sum(dim=1).unsqueeze(-1)
            out[torch.from_numpy(users)] = torch.cholesky_solve(b, torch.linalg.cholesky(a)).squeeze(-1)
    if dual_rows:  # back from the whitened space: one (n, k) x (k, k) product
        users = torch.from_numpy(np.concatenate(dual_users))
        out[users] = torch.cat(dual_rows) @ c.a0_isqrt
    return out.numpy()


@register("wmf", display_name="WMF")
class WMF(IterativeRecommender):
    """WMF (Hu et al. 2008) by implicit's ALS; held-out users by an exact least-squares fold-in."""

    epochs_param = "iterations"  # --epochs caps the ALS sweeps

    def __init__(
        self,
        factors: int = 100,
        regularization: float = 10.0,
        alpha: float = 10.0,
        iterations: int = 15,
        use_cg: bool = True,
    ) -> None:
        """
        Args:
            factors: k, the latent dimension (paper grid {100, 200}).
            regularization: L2 penalty on user and item factors (implicit's, unscaled).
                The paper does not print its choice; 10 (with alpha 10, k 100) was best on
                ml-100k and lastfm validation over {0.1, 1, 10, 100} x alpha {2, 10, 50}.
            alpha: confidence weight on clicks, c = 1 + alpha (paper grid
                {2, 5, 10, 30, 50, 100}).
            iterations: ALS sweeps (capped by ``FitOptions.epochs``).
            use_cg: implicit's conjugate-gradient solver during training (its default;
                False: exact Cholesky steps). The fold-in is always exact.
        """
        self.factors = factors
        self.regularization = regularization
        self.alpha = alpha
        self.iterations = iterations
        self.use_cg = use_cg

    @classmethod
    def search_space(cls, trial: Any) -> dict[str, Any]:
        return {
            "factors": trial.suggest_categorical("factors", [100, 200]),
            "alpha": trial.suggest_categorical("alpha", [2.0, 5.0, 10.0, 30.0, 50.0, 100.0]),
            "regularization": trial.suggest_float("regularization", 1e-2, 1e3, log=True),
        }

    @classmethod
    def estimate_cost(cls, shape: DataShape, params: dict[str, Any], options: FitOptions) -> Estimate:
        """(ALS sweeps x (one sweep + one validation pass) + the set-up), the sweep timed on a
        25% user sample and scaled by the interactions: one sweep is the difference of a
        3-sweep and a 1-sweep fit (after a small warm-up fit that starts the thread pools)."""
        x = shape.train_matrix()
        k = int(params.get("factors", 100))
        sweeps = int(params.get("iterations", 15))
        if options.epochs is not None:
            sweeps = min(sweeps, int(options.epochs))

        def fit_seconds(m: sp.csr_matrix, iterations: int) -> float:
            probe = cls(**{**params, "iterations": iterations})
            t = time.perf_counter()
            probe.fit(m, options=FitOptions(seed=0, progress=False, threads=options.threads,
                                            epochs=iterations))
            return time.perf_counter() - t

        fit_seconds(user_sample(x, 0.0, 500), 1)  # warm-up
        sample = user_sample(x, 0.25, 2000)
        t1, t3 = fit_seconds(sample, 1), fit_seconds(sample, 3)
        probe = cls(**{**params, "iterations": 1}).fit(
            user_sample(x, 0.0, 500), options=FitOptions(seed=0, progress=False, threads=options.threads))
        validate = validation_seconds(probe, shape) if shape.valid_users else 0.0
        per_sweep = max((t3 - t1) / 2, t3 / 3 / 2)
        setup = max(0.0, t1 - per_sweep)
        scale = x.nnz / max(1, sample.nnz)
        peak = (x.shape[0] + x.shape[1]) * k * 4 * 3 + x.nnz * 12 * 3
        return Estimate((sweeps * per_sweep + setup) * scale + sweeps * validate, int(peak),
                        f"{sweeps} sweeps x (one sweep timed on {sample.shape[0]:,} users, x "
                        f"interactions, + one validation pass)")

    def param_problems(self) -> list[str]:
        problems = []
        for k in ("factors", "iterations"):
            v = getattr(self, k)
            if not (isinstance(v, int) and not isinstance(v, bool) and v >= 1):
                problems.append(f"{k}={v!r} (an integer >= 1)")
        for k in ("regularization", "alpha"):
            v = getattr(self, k)
            if not (isinstance(v, (int, float)) and 0 <= v < float("inf")):
                problems.append(f"{k}={v!r} (a finite number >= 0)")
        return problems

    def _start(self, train: sp.csr_matrix, options: FitOptions) -> None:
        """implicit's ALS, one sweep per epoch, its factors kept between sweeps.

        ``train`` is users x items (implicit's ``user_items`` orientation); the confidences
        1 + alpha go in once. The seed initialises the factors (implicit draws them on the
        first sweep exactly as one multi-sweep call would); BLAS runs on one thread during
        the sweeps, implicit's advice. The epoch loop (validation NDCG@100 after every
        sweep, the best sweep's factors kept, the cap, the time budget) is the base's.
        """
        from threadpoolctl import threadpool_limits

        cui = sp.csr_matrix(train, dtype=np.float32, copy=True)
        cui.data = 1.0 + self.alpha * cui.data  # confidence of a click, 1 + alpha
        self._cui = cui
        with threadpool_limits(1, "blas"):  # implicit checks the BLAS threads on creation
            self._als = self._new_als(options)

    def _new_als(self, options: FitOptions) -> Any:
        from implicit.cpu.als import AlternatingLeastSquares

        return AlternatingLeastSquares(
            factors=int(self.factors),
            regularization=float(self.regularization),
            alpha=1.0,  # the confidences 1 + alpha are already in cui
            iterations=1,
            use_cg=bool(self.use_cg),
            num_threads=int(options.threads or available_cpus()),
            random_state=int(options.seed),
        )

    def _train_epoch(self, epoch: int) -> None:
        from threadpoolctl import threadpool_limits

        with threadpool_limits(1, "blas"):
            self._als.fit(self._cui, show_progress=False)
        self._set_factors(self._als)
        return None  # implicit computes no training loss unless asked (extra time): none recorded

    def _get_state(self) -> tuple[np.ndarray, np.ndarray]:
        return self._als.user_factors.copy(), self._als.item_factors.copy()

    def _set_state(self, state: tuple[np.ndarray, np.ndarray]) -> None:
        self._als.user_factors, self._als.item_factors = state[0].copy(), state[1].copy()
        self._set_factors(self._als)

    def _end(self, options: FitOptions) -> None:
        self.iterations_ = len(self.history_)
        del self._als, self._cui

    def _set_factors(self, als: Any) -> None:
        items = np.array(als.item_factors, dtype=np.float32, copy=True)
        items.setflags(write=False)  # the fold-in never writes the item factors
        self.item_factors_ = items
        self.fold_in_cache_ = FoldInCache(items, float(self.regularization))

    def _after_load(self) -> None:
        self.item_factors_.setflags(write=False)
        self.fold_in_cache_ = FoldInCache(self.item_factors_, float(self.regularization))

    def user_factors(self, fold_in: sp.csr_matrix) -> np.ndarray:
        """(n_users, k) float64 user factors folded in from ``fold_in`` (exact update)."""
        return fold_in_factors(
            fold_in, self.item_factors_, float(self.regularization), float(self.alpha),
            cache=self.fold_in_cache_,
        )

    def _score(self, fold_in: sp.csr_matrix) -> np.ndarray:
        """Scores u_u^T v_i for fold-in rows: (n_users, n_items) float32."""
        u = self.user_factors(fold_in).astype(np.float32)
        return u @ self.item_factors_.T

    def results_extra(self) -> dict[str, Any]:
        extra = super().results_extra()
        if hasattr(self, "iterations_"):
            extra["iterations"] = int(self.iterations_)
        return extra

