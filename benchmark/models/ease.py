"""EASE^R (Steck, "Embarrassingly Shallow Autoencoders for Sparse Data", WWW 2019).

Closed form::

    G = X^T X + lambda I            (n_items, n_items)
    P = G^-1                        (Cholesky: G = U^T U, then P from U)
    B = -P / diag(P)  (column j divided by P_jj), diag(B) = 0
    scores = fold_in @ B

A held-out user is scored from their fold-in row alone; ``fit`` sees training users only.
The inverse is taken through the Cholesky factor (LAPACK ``potrf`` + ``potri`` in place on
the CPU, ``torch.linalg.cholesky`` + ``cholesky_inverse`` on CUDA): about half the floating
point work of a general ``inv`` (LU), and no second n x n matrix on the CPU.

Before allocating, :func:`check_memory` estimates ``items^2 x bytes x copies`` and raises
:class:`InsufficientMemoryError` (a ``MemoryError``) naming the estimate and the memory
available, instead of being killed by the operating system half-way.
"""

from __future__ import annotations

import os
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp
from scipy.linalg import lapack

from ..model import FitOptions, ItemItemRecommender, available_cpus
from ..protocol import HeldOut
from ..registry import register
from ..torch_parts import dense_on_device  # noqa: F401  (edlae imports it from here)

__all__ = ["EASE", "InsufficientMemoryError", "available_memory", "check_memory"]

#: Steck (2019) lambdas on the paper's data sets; other data sets get DEFAULT_LAMBDA.
PAPER_LAMBDA = {"ml-20m": 500.0, "netflix": 1000.0, "msd": 200.0}
#: Default for small data sets (ml-100k, lastfm, synthetic): the Gram matrix scales with the
#: number of users, so a small set wants a smaller lambda than ML-20M's 500 (section in
#: ``default_params``).
DEFAULT_LAMBDA = 100.0

#: n x n matrices alive at the peak: CPU builds G in place and inverts it in place (plus
#: block temporaries, counted as a quarter copy); CUDA holds G and its factor, then the
#: factor and the inverse (2), and the host keeps nothing of that size.
COPIES = {"cpu": 1.25, "cuda": 2.0}
MEMORY_ENV = "BENCHMARK_MEMORY_LIMIT"


class InsufficientMemoryError(MemoryError):
    """A model's estimated memory need exceeds what is available (raised before allocating)."""


def _parse_bytes(text: str) -> int:
    """'123', '512M', '2G', '1.5GB' -> bytes."""
    t = text.strip().upper().removesuffix("B")
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    if t and t[-1] in mult:
        return int(float(t[:-1]) * mult[t[-1]])
    return int(float(t))


def _fmt(n: float) -> str:
    for unit, size in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.2f} {unit}"
    return f"{int(n)} bytes"


def _host_available() -> int:
    """MemAvailable from /proc/meminfo, capped by a cgroup (v2 or v1) limit."""
    avail = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    avail = int(line.split()[1]) * 1024
                    break
    except OSError:  # pragma: no cover - not Linux
        pass
    if avail is None:  # pragma: no cover
        try:
            avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            avail = 1 << 62
    for limit_f, used_f in (
        ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
        ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes"),
    ):
        try:
            with open(limit_f) as f:
                raw = f.read().strip()
            if raw == "max":
                continue
            with open(used_f) as f:
                used = int(f.read().strip())
            avail = min(avail, max(0, int(raw) - used))
        except (OSError, ValueError):
            continue
    return int(avail)


def available_memory(device: str, limit: int | None = None) -> int:
    """Bytes available on ``device`` ("cpu" or "cuda"), capped by ``limit`` and by the
    environment variable ``BENCHMARK_MEMORY_LIMIT`` (e.g. ``8G``) when set."""
    if device == "cuda":
        import torch

        free, _total = torch.cuda.mem_get_info()
        avail = int(free + torch.cuda.memory_reserved() - torch.cuda.memory_allocated())
    else:
        avail = _host_available()
    env = os.environ.get(MEMORY_ENV)
    if env:
        avail = min(avail, _parse_bytes(env))
    if limit is not None:
        avail = min(avail, int(limit))
    return avail


def check_memory(
    n_items: int, dtype: str, device: str, *, limit: int | None = None, model: str = "EASE"
) -> int:
    """Estimate the peak of an n_items x n_items closed form; raise if it cannot fit.

    Returns:
        The estimate in bytes.

    Raises:
        InsufficientMemoryError: estimate > available memory on ``device``.
    """
    itemsize = np.dtype(dtype).itemsize
    copies = COPIES["cuda" if device == "cuda" else "cpu"]
    need = int(n_items * n_items * itemsize * copies)
    avail = available_memory(device, limit)
    if need > avail:
        where = "GPU" if device == "cuda" else "host"
        hint = (
            "use dtype='float32'" if itemsize == 8 else "use a machine (or GPU) with more memory"
        )
        raise InsufficientMemoryError(
            f"{model} needs about {_fmt(need)} ({n_items:,} items^2 x {itemsize} bytes x "
            f"{copies:g} copies) but only {_fmt(avail)} of {where} memory is available on "
            f"{device}; {hint}, try --device {'cpu' if device == 'cuda' else 'cuda'}, or skip "
            f"{model} on this data set (limit from {MEMORY_ENV} or {model}.memory_limit when set)"
        )
    return need


def gram_dense(
    x: sp.csr_matrix, dtype: str, block: int | None = None, threads: int = 1
) -> np.ndarray:
    """X^T X as a dense (n_items, n_items) array, built in row blocks written in place.

    Row blocks are independent sparse products (scipy releases the GIL in them), run on
    ``threads`` threads. Each block's sparse product has at most (block, n_items) non-zeros
    (12 bytes each); the default block, n_items / (16 threads), keeps all of them together
    under a fifth of the float32 result.
    """
    from concurrent.futures import ThreadPoolExecutor

    x = sp.csr_matrix(x, dtype=dtype)
    n = x.shape[1]
    threads = max(1, int(threads))
    block = block or max(64, -(-n // (16 * threads)))
    xt = x.T.tocsr()
    g = np.empty((n, n), dtype=dtype)

    def rows(start: int) -> None:
        stop = min(n, start + block)
        (xt[start:stop] @ x).toarray(out=g[start:stop])

    starts = range(0, n, block)
    if threads == 1:
        for start in starts:
            rows(start)
    else:
        with ThreadPoolExecutor(max_workers=threads) as pool:
            list(pool.map(rows, starts))
    return g


def _symmetrise_upper(p: np.ndarray, block: int = 1024) -> None:
    """Copy the upper triangle of a C-ordered array into its lower triangle, in place.

    ``potri`` on the Fortran view writes one triangle only; this fills the other with
    (block x n) temporaries instead of a second n x n array.
    """
    n = p.shape[0]
    for r0 in range(0, n, block):
        r1 = min(n, r0 + block)
        if r0:
            p[r0:r1, :r0] = p[:r0, r0:r1].T
        d = p[r0:r1, r0:r1]
        iu = np.triu_indices(r1 - r0, 1)
        d[(iu[1], iu[0])] = d[iu]


def regularised_inverse_cpu(
    x: sp.csr_matrix,
    l2: float,
    dtype: str = "float32",
    threads: int = 1,
    *,
    diag_scale: float = 0.0,
    model: str = "EASE",
) -> tuple[np.ndarray, np.ndarray]:
    """P = (X^T X + Lambda)^-1 on the CPU with one n x n array (in place, symmetric).

    ``Lambda = l2 I + diag_scale dMat(diag(X^T X))``: EASE uses ``diag_scale = 0``; the
    denoising linear autoencoders of Steck (2020) use ``p / (1 - p)`` (dropout ``p``).

    Returns:
        (P, lam): P (n_items, n_items) and lam (n_items,), the diagonal of Lambda.
    """
    g = gram_dense(x, dtype, threads=threads)
    if diag_scale:
        lam = (l2 + np.diag(g) * diag_scale).astype(g.dtype)
    else:
        lam = np.full(g.shape[0], l2, dtype=g.dtype)
    g[np.diag_indices_from(g)] += lam
    # g is symmetric: its Fortran view g.T is the same matrix, so LAPACK works in place.
    potrf, potri = (lapack.spotrf, lapack.spotri) if g.dtype == np.float32 else (lapack.dpotrf, lapack.dpotri)
    gf = g.T
    c, info = potrf(gf, lower=0, clean=0, overwrite_a=1)
    if info != 0:
        raise np.linalg.LinAlgError(
            f"{model}: Cholesky failed (info={info}); X^T X + {l2} I is not positive definite in "
            f"{dtype}; use a larger lambda or dtype='float64'"
        )
    p, info = potri(c, lower=0, overwrite_c=1)
    if info != 0:  # pragma: no cover - potrf succeeded, so potri cannot fail
        raise np.linalg.LinAlgError(f"{model}: inverse from the Cholesky factor failed (info={info})")
    p = p.T  # back to the C-ordered view of the same buffer; its lower triangle holds P
    # The Fortran upper triangle is the C lower triangle: copy it up.
    _symmetrise_upper(p.T)
    return p, lam


def ease_weights_cpu(
    x: sp.csr_matrix,
    l2: float,
    dtype: str = "float32",
    threads: int = 1,
    *,
    diag_scale: float = 0.0,
    model: str = "EASE",
) -> np.ndarray:
    """EASE weights B (n_items, n_items) on the CPU with one n x n array (in place).

    ``diag_scale`` > 0 gives the full-rank EDLAE of Steck (2020) (see
    :func:`regularised_inverse_cpu`); the zero-diagonal step is the same.
    """
    p, _ = regularised_inverse_cpu(x, l2, dtype, threads, diag_scale=diag_scale, model=model)
    diag = np.diag(p).copy()
    p /= -diag[None, :]
    p[np.diag_indices_from(p)] = 0.0
    return p


def _cholesky_inverse(g: np.ndarray) -> None:
    """potrf + potri in place (the kernel of :func:`ease_weights_cpu`, for timing)."""
    potrf, potri = (lapack.spotrf, lapack.spotri) if g.dtype == np.float32 else (lapack.dpotrf, lapack.dpotri)
    c, _ = potrf(g.T, lower=0, clean=0, overwrite_a=1)
    potri(c, lower=0, overwrite_c=1)


def regularised_inverse_torch(
    x: sp.csr_matrix,
    l2: float,
    dtype: str,
    device: str,
    chunk: int = 8192,
    *,
    diag_scale: float = 0.0,
    model: str = "EASE",
):
    """P = (X^T X + Lambda)^-1 on a torch device (CUDA): G from dense user chunks, Cholesky
    inverse; ``Lambda`` as in :func:`regularised_inverse_cpu`.

    Returns:
        (P, lam): (n_items, n_items) and (n_items,) torch tensors on ``device``.
    """
    import torch

    tdtype = torch.float32 if dtype == "float32" else torch.float64
    n = x.shape[1]
    g = torch.zeros((n, n), dtype=tdtype, device=device)
    x = sp.csr_matrix(x, dtype=np.float32)
    for start in range(0, x.shape[0], chunk):
        sub = x[start : start + chunk]  # densified on the device, not on the host
        xc = dense_on_device(sub, tdtype, device)
        g.addmm_(xc.T, xc)  # 0/1 inputs: exact sums
        del xc
    if diag_scale:
        lam = l2 + g.diagonal() * diag_scale
    else:
        lam = torch.full((n,), l2, dtype=tdtype, device=device)
    g.diagonal().add_(lam)
    factor, info = torch.linalg.cholesky_ex(g)
    del g
    if int(info) != 0:
        raise np.linalg.LinAlgError(
            f"{model}: Cholesky failed (info={int(info)}); X^T X + {l2} I is not positive "
            f"definite in {dtype}; use a larger lambda or dtype='float64'"
        )
    p = torch.cholesky_inverse(factor)
    del factor
    return p, lam


def ease_weights_torch(
    x: sp.csr_matrix,
    l2: float,
    dtype: str,
    device: str,
    chunk: int = 8192,
    *,
    diag_scale: float = 0.0,
    model: str = "EASE",
):
    """EASE weights on a torch device (CUDA): G from dense user chunks, Cholesky inverse.

    Returns:
        (n_items, n_items) torch tensor on ``device``.
    """
    p, _ = regularised_inverse_torch(x, l2, dtype, device, chunk, diag_scale=diag_scale, model=model)
    diag = p.diagonal().clone()
    p.div_(-diag[None, :])
    p.fill_diagonal_(0.0)
    return p


def dense_weights_skip_reason(stats: dict[str, Any], limit: Any, model: str) -> str | None:
    """Why a model with dense (n_items, n_items) float32 weights cannot run on a dataset of
    ``stats``: neither host memory nor a CUDA device would hold them (None: one would)."""
    n = int(stats.get("items", 0))
    devices = ["cpu"]
    try:
        import torch

        if torch.cuda.is_available():
            devices.append("cuda")
    except ImportError:  # pragma: no cover
        pass
    errors = []
    for device in devices:
        try:
            check_memory(n, "float32", device, limit=limit, model=model)
            return None
        except InsufficientMemoryError as exc:
            errors.append(str(exc))
    return " / ".join(errors)


@register("ease")
class EASE(ItemItemRecommender):
    """EASE^R (Steck 2019): closed-form item-item model with a zero diagonal."""

    #: Cap on the memory EASE may plan to use, in bytes (None: what the device has free).
    #: A class attribute, not a hyperparameter; ``BENCHMARK_MEMORY_LIMIT`` also caps it.
    memory_limit: ClassVar[int | None] = None

    def __init__(self, l2: float = 500.0, dtype: str = "float32") -> None:
        """
        Args:
            l2: lambda, the L2 penalty on B (Steck: 500 ML-20M, 1000 Netflix, 200 MSD).
            dtype: "float32" (default) or "float64" for the Gram matrix and its inverse.
        """
        self.l2 = l2
        self.dtype = dtype

    @classmethod
    def default_params(cls, dataset: str | None = None) -> dict[str, Any]:
        """Steck's lambda for ML-20M / Netflix / MSD; ``DEFAULT_LAMBDA`` (100) elsewhere.

        The diagonal of X^T X grows with the number of users, so the right lambda does too:
        500 suits ML-20M's 117k training users; on the small sets validation NDCG@100 over
        lambda in {10, 50, 100, 200, 500} peaks at 100 (lastfm, 1.5k training users:
        0.366 / 0.399 / 0.402 / 0.397 / 0.378) or 200 (ml-100k, 738 users: 0.445 / 0.512 /
        0.534 / 0.539 / 0.536), so 100 is the default off the paper's data sets.
        """
        params = super().default_params(dataset)
        params["l2"] = PAPER_LAMBDA.get((dataset or "").lower(), DEFAULT_LAMBDA)
        return params

    @classmethod
    def search_space(cls, trial: Any) -> dict[str, Any]:
        return {"l2": trial.suggest_float("l2", 10.0, 1e4, log=True)}

    @classmethod
    def skip_reason(cls, stats: dict[str, Any], *, explicit: bool) -> str | None:
        """Skip (even when asked for by name) when float32 EASE fits neither in host memory
        nor on a CUDA device; ``fit`` checks the device it actually runs on again."""
        return dense_weights_skip_reason(stats, cls.memory_limit, "EASE")

    @classmethod
    def estimate_cost(cls, split: Any, params: dict[str, Any], options: FitOptions):
        """Fit time = Gram + Cholesky inverse, calibrated on random items of these data.

        The Gram time scales with sum_u |u|^2 + n^2 (its sparse products and the dense
        fill), timed at m items. The inverse (potrf + potri) is timed at m/2 and m items and
        fitted as a m^3 + b m^2 (the m^3 flops at the machine's large-matrix rate plus a
        per-panel overhead that small matrices are dominated by), then evaluated at n.
        Peak = n^2 x bytes x copies.
        """
        from ..plan import Estimate, timed

        x = sp.csr_matrix(split.train, dtype=np.float32)
        n = x.shape[1]
        dtype = str(params.get("dtype", "float32"))
        device = options.resolve_device()
        itemsize = np.dtype(dtype).itemsize
        peak = int(n * n * itemsize * COPIES["cuda" if device == "cuda" else "cpu"]) + x.data.nbytes * 3
        m = min(n, 2048)
        cols = np.sort(np.random.default_rng(0).choice(n, size=m, replace=False))
        xs = sp.csr_matrix(x[:, cols])
        l2 = float(params.get("l2", 1.0))
        if device == "cuda":
            t = timed(lambda: ease_weights_torch(xs, l2, dtype, device), repeats=2)
            return Estimate(t * (n / m) ** 3, peak, f"CUDA closed form timed at {m:,} items, x (n/{m})^3")
        threads = options.threads or available_cpus()
        lens, lens_s = np.diff(x.indptr).astype(np.float64), np.diff(xs.indptr).astype(np.float64)
        t_gram = timed(lambda: gram_dense(xs, dtype, threads=threads), repeats=2)
        gram = t_gram * ((lens**2).sum() + n * n) / ((lens_s**2).sum() + m * m)
        g = gram_dense(xs, dtype, threads=threads)
        g[np.diag_indices_from(g)] += l2

        def inverse_at(k: int) -> float:
            return timed(lambda: _cholesky_inverse(g[:k, :k].copy()), repeats=2)

        if m >= 256:
            t1, t2 = inverse_at(m // 2), inverse_at(m)
            a = max((t2 - 4 * t1) / (4 * (m // 2) ** 3), t2 / m**3 / 8)  # a m^3 + b m^2 through both
            b = max(0.0, (t2 - a * m**3) / m**2)
            inverse = a * n**3 + b * n**2
        else:
            inverse = inverse_at(m) * (n / m) ** 3
        return Estimate(gram + inverse, peak,
                        f"Gram timed at {m:,} items; Cholesky inverse fitted at {m // 2:,} and {m:,}")

    def param_problems(self) -> list[str]:
        problems = []
        if self.dtype not in ("float32", "float64"):
            problems.append(f"dtype={self.dtype!r} (use 'float32' or 'float64')")
        if not (isinstance(self.l2, (int, float)) and 0 < self.l2 < float("inf")):
            problems.append(f"l2={self.l2!r} (lambda: a finite number > 0)")
        return problems

    def _fit(self, train: sp.csr_matrix, valid: HeldOut | None, options: FitOptions) -> None:
        """Closed-form fit on the training users.

        Args:
            train: (n_train_users, n_items) binary CSR.
            valid: unused (EASE has no epochs).
            options: ``device`` picks CPU (LAPACK) or CUDA (torch); seed is irrelevant.

        Raises:
            InsufficientMemoryError: the n_items^2 matrices would not fit (before allocating).
        """
        device = options.resolve_device()
        n = train.shape[1]
        self.memory_estimate_ = check_memory(n, self.dtype, device, limit=self.memory_limit)
        self.device_ = device
        if device == "cuda":
            self.weights_ = ease_weights_torch(train, float(self.l2), self.dtype, device)
        else:
            threads = options.threads or available_cpus()
            self.weights_ = ease_weights_cpu(train, float(self.l2), self.dtype, threads=threads)

    def results_extra(self) -> dict[str, Any]:
        extra = super().results_extra()
        if hasattr(self, "memory_estimate_"):
            extra["memory_estimate_bytes"] = int(self.memory_estimate_)
        return extra
