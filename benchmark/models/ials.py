"""iALS with frequency-scaled regularisation (Rendle, Krichene, Zhang, Koren, "Revisiting the
Performance of iALS on Item Recommendation Benchmarks", RecSys 2022, arXiv 2110.14037).

Loss, as the reference code computes it (google-research ``ials/vae_benchmarks/
ials_main.cc``: ``ComputeLosses``, ``RegularizationValue``, ``Project``), with user
factors W (n_users, d), item factors H (n_items, d) and the binary training matrix X::

    L(W, H) = sum_{(u,i): x_ui = 1} (1 - <w_u, h_i>)^2              observed
            + alpha0 * sum_{u, i} <w_u, h_i>^2                          all pairs
            + lambda * sum_u (|I_u| + alpha0 |I|)^nu ||w_u||^2           frequency-scaled
            + lambda * sum_i (|U_i| + alpha0 |U|)^nu ||h_i||^2           L2

(an observed pair weighs 1 + alpha0 in all). Each half-epoch solves every user (then item) exactly::

    A_u = alpha0 H^T H + r_u I + sum_{i in I_u} h_i h_i^T      (d, d)
    b_u = sum_{i in I_u} h_i                                     (d,)
    w_u = A_u^{-1} b_u,   r_u = lambda (|I_u| + alpha0 |I|)^nu

``H^T H`` once per half-epoch; users sorted by history length, solved in padded groups (one
batched ``bmm`` builds their A_u, one batched Cholesky solves them; no Python call per user). A user with L = |I_u| < d items is solved in
the L-dimensional dual instead (Woodbury; the same solution, exactly): with
``H^T H = Q diag(e) Q^T`` (one ``eigh`` per half-epoch), ``D_u = diag(alpha0 e + r_u)``
and ``O_u = H_u Q`` (the rotated factors of u's items)::

    w_u = Q D_u^-1 O_u^T (I_L + O_u D_u^-1 O_u^T)^-1 1_L

at L^2 d + L^3 / 3 flops instead of L d^2 + d^3 / 3 (on ML-20M with d = 2048 most users have
L << d). CPU and CUDA (torch). An epoch: the user step, then the item step (``Train``).

Fold-in as the reference's ``EvaluateDataset``: the user step on the fold-in rows against the
fixed item factors, r_u from |I_u| and |I|; a user with no fold-in items gets w_u = 0.

Initialisation: every entry of W and H normal(0, stddev / sqrt(d)), stddev 0.1 (the
reference code's ``adjusted_stdev``; ``--stddev 0.1`` in its README). Departures from the
reference code: items without training users are solved too (their exact solution,
h_i = 0; the reference leaves them at their random start); the epochs are run by
:func:`benchmark.training.run_epochs` with validation NDCG@100 each epoch and the best
epoch restored (the paper reports the 16th epoch; with validation this is a model choice
on validation users, never on test users).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import scipy.sparse as sp

from ..cost import DataShape, Estimate, timed, user_sample
from ..model import EpochReport, FitOptions, IterativeRecommender, available_cpus, seed_streams
from ..protocol import HeldOut
from ..registry import register
from ..resources import available_memory
from ..units import fmt_bytes

__all__ = ["IALS", "PAPER", "SMALL_DEFAULTS", "OTHER_DEFAULTS", "solve_rows", "regularisation", "ials_loss"]

#: The paper's tuned settings (the reference code's README, "Reproducing results" for
#: Table 3 (ML-20M) and Table 4 (MSD): ``--embedding_dim 2048`` resp. ``8192``,
#: ``--regularization 0.003`` resp. ``0.002``, ``--regularization_exp 1.0``,
#: ``--unobserved_weight 0.1`` resp. ``0.02``, ``--epochs 16``, ``--stddev 0.1``).
#: The paper has no Netflix experiment: Netflix gets the ML-20M setting.
PAPER = {
    "ml-20m": {"factors": 2048, "regularization": 0.003, "unobserved_weight": 0.1},
    "msd": {"factors": 8192, "regularization": 0.002, "unobserved_weight": 0.02},
    "netflix": {"factors": 2048, "regularization": 0.003, "unobserved_weight": 0.1},
}
#: The small shipped data sets: a dimension that suits a few thousand users and items, with
#: lambda and alpha0 chosen on validation NDCG@100 (see ``IALS.default_params``).
SMALL_DEFAULTS = {
    "ml-100k": {"factors": 128, "regularization": 0.01, "unobserved_weight": 0.3},
    "lastfm": {"factors": 128, "regularization": 0.003, "unobserved_weight": 0.1},
}
#: Any other data set (synthetic, files): d 128 with the ML-20M lambda and alpha0.
OTHER_DEFAULTS = {"factors": 128, "regularization": 0.003, "unobserved_weight": 0.1}

#: Elements of one group's padded gather (batch x L_max x d) plus its systems (batch x d^2).
_GROUP_BUDGET = {"cpu": 1 << 23, "cuda": 1 << 28}


def regularisation(counts: np.ndarray, n_other: int, lam: float, alpha0: float, nu: float) -> np.ndarray:
    """r = lambda (count + alpha0 n_other)^nu per row (the reference's ``RegularizationValue``)."""
    return lam * np.power(np.asarray(counts, dtype=np.float64) + alpha0 * n_other, nu)


def _groups(lengths_sorted: np.ndarray, d: int, budget: int) -> list[tuple[int, int]]:
    """[start, stop) groups of rows sorted by length whose padded work fits ``budget``.

    A group never mixes rows with fewer than d observations (solved in the dual) and the
    others (primal), and its longest row is at most 1.25 times (+ 8) its shortest.
    """
    out, start, n = [], 0, len(lengths_sorted)
    boundary = int(np.searchsorted(lengths_sorted, d, side="left"))  # first row with L >= d
    while start < n:
        cap = boundary if start < boundary else n
        cap = min(cap, int(np.searchsorted(lengths_sorted, int(lengths_sorted[start] * 1.25) + 8, side="right")))
        width = int(lengths_sorted[max(start, cap - 1)])
        size = max(1, budget // max(1, width * d + min(width, d) ** 2))
        out.append((start, max(start + 1, min(cap, start + size))))
        start = out[-1][1]
    return out


def solve_rows(x: sp.csr_matrix, other, gram, reg: np.ndarray, alpha0: float, *, budget: int | None = None):
    """Exact least-squares factors of the rows of ``x`` with the other side fixed (batched).

    Args:
        x: (n_rows, n_other) binary CSR: row r's observed columns.
        other: (n_other, d) torch tensor, the fixed factors (items for a user step).
        gram: (d, d) ``other^T other`` (same device and dtype).
        reg: (n_rows,) r per row.
        alpha0: the weight of every (row, column) pair.
        budget: elements per padded group (default by device).

    Returns:
        (n_rows, d) torch tensor: w_r = (alpha0 G + r I + O_r^T O_r)^{-1} O_r^T 1, zero for
        a row without observations.
    """
    import torch

    x = sp.csr_matrix(x)
    n_rows, n_other = x.shape
    d = other.shape[1]
    device, dtype = other.device, other.dtype
    budget = budget or _GROUP_BUDGET["cuda" if device.type == "cuda" else "cpu"]
    out = torch.zeros((n_rows, d), dtype=dtype, device=device)
    lengths = np.diff(x.indptr)
    order = np.argsort(lengths, kind="stable")
    ls = lengths[order]
    first = int(np.searchsorted(ls, 1))  # rows without observations stay 0
    if first == n_rows:
        return out
    base = alpha0 * gram
    zero = torch.zeros((1, d), dtype=dtype, device=device)
    pad = torch.cat([other, zero])  # row n_other = 0: padding adds nothing
    reg_t = torch.as_tensor(np.asarray(reg, dtype=np.float64), device=device).to(dtype)
    if ls[first] < d:  # some rows go to the dual: rotate into the eigenbasis of G once
        evals, q = torch.linalg.eigh(gram)
        spectrum = alpha0 * evals.clamp_min(0.0)  # D_r = diag(alpha0 e + r_r) in that basis
        pad_rot = torch.cat([other @ q, zero])
    for start, stop in _groups(ls[first:], d, budget):
        rows = order[first + start : first + stop]
        sub = x[rows]
        n_b = len(rows)
        width = int(ls[first + stop - 1])
        idx = np.full((n_b, width), n_other, dtype=np.int64)
        counts = np.diff(sub.indptr)
        pos = np.arange(sub.nnz) - np.repeat(sub.indptr[:-1], counts)
        idx[np.repeat(np.arange(n_b), counts), pos] = sub.indices
        rows_t = torch.from_numpy(rows).to(device)
        idx_t = torch.from_numpy(idx).to(device)
        reg_b = reg_t[rows_t].view(n_b, 1)
        if width < d:
            # dual (Woodbury), exact: with O~ = O Q and D = diag(alpha0 e + r),
            # w = Q D^-1 O~^T (I_L + O~ D^-1 O~^T)^-1 1: L x L systems instead of d x d
            o = pad_rot[idx_t]  # (n_b, L, d)
            dinv = 1.0 / (spectrum.view(1, d) + reg_b)  # (n_b, d)
            s_mat = torch.bmm(o * dinv.unsqueeze(1), o.transpose(1, 2))
            s_mat.diagonal(dim1=1, dim2=2).add_(1.0)
            ones = torch.ones((n_b, width, 1), dtype=dtype, device=device)
            sol = torch.cholesky_solve(ones, _cholesky(s_mat))
            out[rows_t] = (dinv * (o.transpose(1, 2) @ sol).squeeze(-1)) @ q.T
        else:
            # primal: (alpha0 G + r I + O^T O) w = O^T 1
            o = pad[idx_t]  # (n_b, L, d)
            a = torch.baddbmm(base.expand(n_b, d, d), o.transpose(1, 2), o)
            a.diagonal(dim1=1, dim2=2).add_(reg_b)
            b = o.sum(dim=1).unsqueeze(-1)
            out[rows_t] = torch.cholesky_solve(b, _cholesky(a)).squeeze(-1)
    return out


def _cholesky(a):
    import torch

    factor, info = torch.linalg.cholesky_ex(a)
    if int(info.max()) != 0:  # pragma: no cover - r > 0 keeps every system definite
        raise np.linalg.LinAlgError("iALS: a normal-equation matrix is not positive definite; "
                                    "raise regularization (lambda) or use dtype='float64'")
    return factor


def ials_loss(x: sp.csr_matrix, w, h, reg_users: np.ndarray, reg_items: np.ndarray, alpha0: float) -> float:
    """The training loss above (float64 sums), for one binary matrix ``x`` (users x items)."""
    import torch

    x = sp.coo_matrix(x)
    dev = w.device
    observed = 0.0
    step = max(1, (1 << 24) // w.shape[1])  # (step, d) gathers at a time
    for start in range(0, x.nnz, step):
        u = torch.from_numpy(x.row[start : start + step].astype(np.int64)).to(dev)
        i = torch.from_numpy(x.col[start : start + step].astype(np.int64)).to(dev)
        pred = (w[u] * h[i]).sum(dim=1).double()
        observed += float(((1.0 - pred) ** 2).sum())
    unobserved = alpha0 * float(((w.T @ w).double() * (h.T @ h).double()).sum())
    ru = torch.as_tensor(reg_users, dtype=torch.float64, device=dev)
    ri = torch.as_tensor(reg_items, dtype=torch.float64, device=dev)
    penalty = float((ru * (w.double() ** 2).sum(1)).sum() + (ri * (h.double() ** 2).sum(1)).sum())
    return observed + unobserved + penalty


_TIMING_MAX_D = 512  #: the largest d a plan times a step at (its flop rate is used above)

@register("ials", display_name="iALS")
class IALS(IterativeRecommender):
    """iALS (Rendle et al. 2022): ALS on all pairs with frequency-scaled L2, exact fold-in."""

    def __init__(
        self,
        factors: int = 2048,
        regularization: float = 0.003,
        unobserved_weight: float = 0.1,
        regularization_exp: float = 1.0,
        stddev: float = 0.1,
        epochs: int = 16,
        dtype: str = "float32",
    ) -> None:
        """
        Args:
            factors: d, the embedding dimension (2048 for ML-20M, the paper's Table 3;
                8192 for MSD, Table 4; ``default_params`` gives 128 off the paper's sets).
            regularization: lambda (0.003 ML-20M, 0.002 MSD: the reference README).
            unobserved_weight: alpha0, the weight of every (user, item) pair (0.1 ML-20M,
                0.02 MSD: the reference README).
            regularization_exp: nu, the frequency scaling exponent (1.0 in both README
                commands; 0 gives plain L2 with r = lambda).
            stddev: initial factors ~ normal(0, stddev / sqrt(d)) (README ``--stddev 0.1``;
                ``adjusted_stdev`` in ``ials_main.cc``).
            epochs: user step + item step, this many times (README ``--epochs 16``; capped
                by ``FitOptions.epochs``); the best epoch on validation NDCG@100 is kept.
            dtype: "float32" (the reference code's) or "float64".
        """
        self.factors = factors
        self.regularization = regularization
        self.unobserved_weight = unobserved_weight
        self.regularization_exp = regularization_exp
        self.stddev = stddev
        self.epochs = epochs
        self.dtype = dtype

    @classmethod
    def default_params(cls, dataset: str | None = None) -> dict[str, Any]:
        """The paper's tuned setting on ML-20M / MSD (``PAPER``); ``SMALL_DEFAULTS`` on
        ml-100k and lastfm; ``OTHER_DEFAULTS`` elsewhere.

        The dimension must follow the data's size: 2048 factors on ml-100k (1.4k items,
        738 training users) only cost time; validation NDCG@100 there is flat in d (64 /
        128 / 256: 0.537 / 0.536 / 0.539 at lambda 0.01, alpha0 0.3), so 128. Over lambda in
        {0.003, 0.01, 0.03} x alpha0 in {0.03, 0.1, 0.3} (d 128, 16 epochs, best epoch),
        ml-100k peaks at (0.01, 0.3): 0.536, its ML-20M setting (0.003, 0.1) giving 0.443;
        lastfm (lambda in {0.001, 0.003, 0.01}) peaks at the ML-20M setting: 0.414 (and
        (0.01, 0.3) gives 0.313). With 100 / 200 validation users, differences below about
        0.01 are noise.
        """
        params = super().default_params(dataset)
        key = (dataset or "").lower()
        params.update(PAPER.get(key) or SMALL_DEFAULTS.get(key) or OTHER_DEFAULTS)
        return params

    @classmethod
    def search_space(cls, trial: Any) -> dict[str, Any]:
        """The paper's protocol (section 3): nu in {0, 1}; lambda and alpha0 on log scales;
        the dimension from 64 up to the 2048 of its ML-20M table (doubling steps).

        lambda's good region moves with nu by about the factor (|I_u| + alpha0 |I|) (the
        paper's Figure 1), so each nu has its own lambda range (separate Optuna names).
        """
        nu = trial.suggest_categorical("regularization_exp", [0.0, 1.0])
        if nu == 1.0:
            lam = trial.suggest_float("regularization_nu1", 1e-5, 1e-1, log=True)
        else:
            lam = trial.suggest_float("regularization_nu0", 1e-2, 1e3, log=True)
        return {
            "factors": trial.suggest_categorical("factors", [64, 128, 256, 512, 1024, 2048]),
            "regularization": lam,
            "regularization_exp": nu,
            "unobserved_weight": trial.suggest_float("unobserved_weight", 1e-3, 1.0, log=True),
        }

    @classmethod
    def trial_params(cls, params: dict[str, Any]) -> dict[str, Any]:
        """``regularization`` goes by the name of its nu's range (``search_space``)."""
        nu = int(float(params.get("regularization_exp", 1.0)))
        return {(f"regularization_nu{nu}" if k == "regularization" else k): v for k, v in params.items()}

    @classmethod
    def estimate_cost(cls, shape: DataShape, params: dict[str, Any], options: FitOptions) -> Estimate:
        """epochs x (user step + item step + validation fold-in), each step = the solves of
        its rows: sum_r (L_r d^2 + d^3 / 3) flops for a row with L_r >= d observations (Gram
        build and Cholesky), L_r^2 d + L_r^3 / 3 below (dual), plus the eigendecomposition,
        at the rate one timed step reaches on a sample of users here (the full item
        catalogue; d as asked up to :data:`_TIMING_MAX_D`, above it the step is timed at that
        d and its flop rate ASSUMED to hold at the larger d: BLAS-3 rates level off with size,
        and timing d = 8,192 itself took minutes).
        Peak = the factors, their copies at the best epoch, and one padded group.
        """
        import torch

        x = sp.csr_matrix(shape.train_matrix())
        d = int(params.get("factors", 128))
        dtype = torch.float32 if params.get("dtype", "float32") == "float32" else torch.float64
        device = options.resolve_device()
        epochs = int(params.get("epochs", 16))
        if options.epochs is not None:
            epochs = min(epochs, int(options.epochs))

        def row_flops(m: sp.csr_matrix, d: int = d) -> np.ndarray:  # dual below d, else primal
            lens = np.diff(sp.csr_matrix(m).indptr).astype(np.float64)
            lens = lens[lens > 0]
            return np.where(lens < d, lens**2 * d + lens**3 / 3.0, lens * d * d + d**3 / 3.0)

        def flops(m: sp.csr_matrix, d: int = d) -> float:  # + eigh, rotation
            return float(row_flops(m, d).sum() + 5.0 * d**3 + m.shape[1] * d * d)

        dt = min(d, _TIMING_MAX_D)
        per_user = float(row_flops(x, dt).mean()) if x.nnz else 1.0
        sample = user_sample(x, 0.0, int(np.clip(2e9 / per_user, 16, 2000)))
        h = torch.randn(x.shape[1], dt, dtype=dtype, device=device) * 0.01
        g = h.T @ h
        reg = np.ones(sample.shape[0])

        def step() -> None:
            solve_rows(sample, h, g, reg, 0.1)
            if device == "cuda":
                torch.cuda.synchronize()

        rate = flops(sample, dt) / max(timed(step, repeats=2), 1e-6)
        xt = x.T.tocsr()
        per_epoch = flops(x) + flops(xt) + flops(shape.valid_part().fold_in)
        itemsize = 4 if dtype == torch.float32 else 8
        n = x.shape[0] + x.shape[1]
        peak = n * d * itemsize * 3 + _GROUP_BUDGET["cuda" if device == "cuda" else "cpu"] * itemsize * 2 \
            + x.nnz * 12 * 2
        fixed, avail = peak - n * d * itemsize * 3, available_memory(device)
        most = int((avail - fixed) // (n * itemsize * 3)) if avail > fixed else 0
        return Estimate(epochs * per_epoch / rate, int(peak),
                        f"{epochs} epochs x the solves' flops at the rate of a step timed on "
                        f"{sample.shape[0]} users, d={dt}",
                        fits=(f"factors <= {most:,} fits ({fmt_bytes(avail)} available; factors={d:,} "
                              f"needs {fmt_bytes(peak)})" if most >= 1 else "no factor count fits"))

    def param_problems(self) -> list[str]:
        problems = []
        for k in ("factors", "epochs"):
            v = getattr(self, k)
            if not (isinstance(v, int) and not isinstance(v, bool) and v >= 1):
                problems.append(f"{k}={v!r} (an integer >= 1)")
        for k in ("regularization", "stddev"):
            v = getattr(self, k)
            if not (isinstance(v, (int, float)) and 0 < v < float("inf")):
                problems.append(f"{k}={v!r} (a finite number > 0)")
        for k in ("unobserved_weight", "regularization_exp"):
            v = getattr(self, k)
            if not (isinstance(v, (int, float)) and 0 <= v < float("inf")):
                problems.append(f"{k}={v!r} (a finite number >= 0)")
        if self.dtype not in ("float32", "float64"):
            problems.append(f"dtype={self.dtype!r} (use 'float32' or 'float64')")
        return problems

    # --- training (the epoch loop is IterativeRecommender's) --------------------------------
    def _fit(self, train: sp.csr_matrix, valid: HeldOut | None, options: FitOptions) -> None:
        """Alternating exact solves on the training users, validation NDCG@100 each epoch.

        Args:
            train: (n_train_users, n_items) binary float32 CSR.
            valid: validation users (best epoch by NDCG@100; None keeps the last epoch).
            options: seed (initial factors, drawn on the CPU so every device starts alike),
                device, threads (torch's, for this fit only), epochs (cap), time_budget,
                on_epoch, progress.
        """
        import torch

        previous = torch.get_num_threads()
        torch.set_num_threads(int(options.threads or available_cpus()))
        try:
            with torch.no_grad():
                super()._fit(train, valid, options)
        finally:
            torch.set_num_threads(previous)
            self._x = self._xt = None  # the training matrix is not part of the model

    def _start(self, train: sp.csr_matrix, options: FitOptions) -> None:
        import torch

        x = sp.csr_matrix(train, dtype=np.float32, copy=True)
        x.data[:] = 1.0  # every listed pair is an observation with target 1
        self._x, self._xt = x, x.T.tocsr()
        n_users, n_items = x.shape
        d = int(self.factors)
        device = options.resolve_device()
        dtype = torch.float32 if self.dtype == "float32" else torch.float64
        gen = torch.Generator().manual_seed(seed_streams(options.seed, "init")["init"])
        std = float(self.stddev) / np.sqrt(d)
        w = torch.randn(n_users, d, generator=gen, dtype=torch.float64) * std
        h = torch.randn(n_items, d, generator=gen, dtype=torch.float64) * std
        self._reg_users = self._regs(np.diff(x.indptr), n_items)
        self._reg_items = self._regs(np.diff(self._xt.indptr), n_users)
        self.device_ = device
        # The training users' factors are needed while training only (held-out users are
        # folded in), so they stay out of the fitted state that ``save`` writes.
        self._train_user_factors = w.to(device=device, dtype=dtype)
        self.item_factors_ = h.to(device=device, dtype=dtype)

    def _train_epoch(self, epoch: int) -> EpochReport:
        """The user step, then the item step (``IALSRecommender::Train``); returns the loss."""
        alpha0 = float(self.unobserved_weight)
        t = time.perf_counter()
        h = self.item_factors_
        w = self._train_user_factors = solve_rows(self._x, h, h.T @ h, self._reg_users, alpha0)
        h = self.item_factors_ = solve_rows(self._xt, w, w.T @ w, self._reg_items, alpha0)
        loss = ials_loss(self._x, w, h, self._reg_users, self._reg_items, alpha0)
        return EpochReport(loss=loss, extra={"solve_seconds": time.perf_counter() - t})

    def _get_state(self) -> tuple[Any, Any]:
        return self._train_user_factors.clone(), self.item_factors_.clone()

    def _set_state(self, state: tuple[Any, Any]) -> None:
        self._train_user_factors, self.item_factors_ = state

    def _regs(self, counts: np.ndarray, n_other: int) -> np.ndarray:
        return regularisation(counts, n_other, float(self.regularization), float(self.unobserved_weight),
                              float(self.regularization_exp))

    # --- inference ----------------------------------------------------------------------
    def user_factors(self, fold_in: sp.csr_matrix):
        """(n_rows, d) torch factors of fold-in rows: the exact user step against the fixed
        item factors, r_u = lambda (|fold-in| + alpha0 |I|)^nu."""
        import torch

        fold_in = sp.csr_matrix(fold_in, dtype=np.float32, copy=True)
        fold_in.data[:] = 1.0
        h = self.item_factors_
        reg = self._regs(np.diff(fold_in.indptr), h.shape[0])
        with torch.no_grad():
            return solve_rows(fold_in, h, h.T @ h, reg, float(self.unobserved_weight))

    def _score(self, fold_in: sp.csr_matrix) -> np.ndarray:
        """Scores <w_u, h_i> for fold-in rows: (n_rows, n_items) float32."""
        import torch

        with torch.no_grad():
            return (self.user_factors(fold_in) @ self.item_factors_.T).float().cpu().numpy()

    def results_extra(self) -> dict[str, Any]:
        extra = super().results_extra()
        if hasattr(self, "training_"):
            extra["training"] = self.training_
        return extra
