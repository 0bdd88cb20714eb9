"""Dense kernels shared by the closed-form item-item models (EASE, EDLAE, DLAE) and SLIM's
gram solver.

- :func:`gram_dense`: X^T X as a dense array, built in row blocks written in place.
- :func:`regularised_inverse_cpu` / :func:`regularised_inverse_torch`:
  P = (X^T X + Lambda)^-1 through the Cholesky factor, with
  ``Lambda = l2 I + diag_scale dMat(diag(X^T X))``.
- :func:`ease_weights_cpu` / :func:`ease_weights_torch`: B = -P / diag(P), diag(B) = 0.
- :func:`cholesky_inverse_inplace`: the CPU inverse alone (what a cost estimate times).

The Cholesky route takes about half the floating point work of a general ``inv`` (LU), and
on the CPU no second n x n matrix.

Which LAPACK on the CPU. SciPy's ``spotrf`` (its bundled OpenBLAS 0.3.30; numpy's ILP64
OpenBLAS 0.3.31 alike) segfaults with 2 threads on an identity matrix of 41,140 items,
MSD's catalogue (with 1 thread it completes, in 287 s for ``potrf`` alone); a report on
another machine saw it from 30,000 items (23,400 worked). torch's ``cholesky_ex`` +
``cholesky_inverse`` (its bundled LAPACK), in place on the matrix's column-major view,
complete there: 41,140 identity in 168 + 375 s on 2 cores, with no second n x n matrix.
So the CPU path is torch's, at every size (one path, the same numbers at every size).
Measured by ``python benchmarks/ease_lapack.py`` (times, peak memory, and the agreement of
the two paths where both work, at ML-20M's training shape).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ..torch_parts import dense_on_device

__all__ = [
    "L2_MAX",
    "gram_dense",
    "regularised_inverse_cpu",
    "regularised_inverse_torch",
    "ease_weights_cpu",
    "ease_weights_torch",
]


#: The largest L2 weight the closed forms take: above about 1e30, 1/lambda underflows
#: float32's normal range and the weights become 0/0 (NaN scores).
L2_MAX = 1e30


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
    info = cholesky_inverse_inplace(g, threads=threads)
    if info != 0:
        raise np.linalg.LinAlgError(
            f"{model}: Cholesky failed (info={info}); X^T X + {l2} I is not positive definite in "
            f"{dtype}; use a larger lambda or dtype='float64'"
        )
    return g, lam


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


def cholesky_inverse_inplace(g: np.ndarray, threads: int | None = None) -> int:
    """Overwrite the symmetric positive definite ``g`` with its inverse, in place.

    torch's ``cholesky_ex`` then ``cholesky_inverse``, both writing into the buffer of
    ``g`` through its column-major view (``g`` is symmetric, so the view is the same
    matrix): no second n x n array. Why torch's LAPACK and not SciPy's: the module
    docstring.

    Args:
        g: (n, n) float32 or float64, C-contiguous, symmetric positive definite.
        threads: torch's intra-op threads for the call (None: as set).

    Returns:
        0, or LAPACK's ``info`` (> 0: the leading minor of that order is not positive
        definite; ``g`` then holds a partial factor).
    """
    import torch

    if not g.flags.c_contiguous:
        raise ValueError("cholesky_inverse_inplace needs a C-contiguous array")
    a = torch.from_numpy(g).mT  # column-major view of the same memory
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(int(threads))
    try:
        info = torch.empty((), dtype=torch.int32)
        torch.linalg.cholesky_ex(a, upper=False, out=(a, info))
        if int(info) != 0:
            return int(info)
        torch.cholesky_inverse(a, upper=False, out=a)
    finally:
        torch.set_num_threads(before)
    return 0


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
