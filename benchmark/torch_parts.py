"""Reusable torch parts for models trained on sparse click matrices.

- :class:`DeviceCSR` / :class:`SparseBatch`: the training matrix kept as CSR on the device;
  a minibatch is a contiguous slice of a row-permuted copy (no per-user Python loop).
- :func:`log_likelihood`: the multinomial, Gaussian and logistic log-likelihoods of sparse
  binary targets from dense logits, fused (the targets are never densified).
- :func:`kl_divergence`: KL(q(z|x) || N(0, I)) per user; :func:`beta_schedule`: the KL
  weight annealed linearly per update up to a cap (Liang et al. 2018, section 2.2.2).
- :func:`adam`: torch's Adam, fused where the device allows.
- :func:`dense_on_device`: CSR rows to a dense tensor made on the device (only indices travel).
- :func:`score_in_batches`: inference over fold-in rows, a sparse batch at a time.
- :func:`timing_batches`: endless minibatches of a few training rows (the plan's timings).

Used by the autoencoders (``vae``), RecVAE and EASE's GPU path; a plugin may import them.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F

__all__ = ["DeviceCSR", "SparseBatch", "log_likelihood", "kl_divergence", "beta_schedule",
           "adam", "dense_on_device", "score_in_batches", "timing_batches", "LIKELIHOODS"]

LIKELIHOODS = ("multinomial", "gaussian", "logistic")


def beta_schedule(update: int, anneal_cap: float, total_anneal_steps: int) -> float:
    """KL weight used at minibatch ``update`` (0-based count of earlier updates).

    beta = min(anneal_cap, update / total_anneal_steps), as the reference notebook; with
    ``total_anneal_steps`` 0 beta is ``anneal_cap`` from the start.
    """
    if total_anneal_steps <= 0:
        return float(anneal_cap)
    return float(min(anneal_cap, update / total_anneal_steps))


# --- sparse minibatches ----------------------------------------------------------------------


class SparseBatch:
    """A minibatch of CSR rows as torch tensors on one device.

    Attributes:
        items: (nnz,) int64 column indices, row after row.
        values: (nnz,) float32 raw values x_ui (1 for a click).
        offsets: (b,) int64 start of each row in ``items`` (the embedding_bag offsets).
        rows: (nnz,) int64 row (0..b-1) of each non-zero.
        n_rows: b.
    """

    __slots__ = ("items", "values", "offsets", "rows", "n_rows")

    def __init__(self, items, values, offsets, rows, n_rows: int) -> None:
        self.items, self.values, self.offsets, self.rows, self.n_rows = (
            items, values, offsets, rows, n_rows,
        )

    def row_sum(self, v: torch.Tensor) -> torch.Tensor:
        """Sum of per-non-zero values ``v`` (nnz,) within each row -> (b,)."""
        return torch.zeros(self.n_rows, dtype=v.dtype, device=v.device).index_add_(0, self.rows, v)


class DeviceCSR:
    """A CSR matrix held as torch tensors on a device, sliced into :class:`SparseBatch`.

    Args:
        X: (n_rows, n_items) CSR.
        device: torch device.
    """

    def __init__(self, X: sp.csr_matrix, device: torch.device | str) -> None:
        X = sp.csr_matrix(X, dtype=np.float32)
        X.sort_indices()
        self.shape = X.shape
        self.device = torch.device(device)
        self.indptr_np = np.asarray(X.indptr, dtype=np.int64)
        self.indptr = torch.from_numpy(self.indptr_np).to(self.device)
        self.indices = torch.from_numpy(np.asarray(X.indices, dtype=np.int64)).to(self.device)
        self.data = torch.from_numpy(np.asarray(X.data, dtype=np.float32)).to(self.device)

    @property
    def n_rows(self) -> int:
        return self.shape[0]

    def permuted(self, perm: np.ndarray) -> DeviceCSR:
        """Rows reordered by ``perm`` (n_rows,), gathered on the device in one pass."""
        out = DeviceCSR.__new__(DeviceCSR)
        out.shape, out.device = self.shape, self.device
        lengths_np = np.diff(self.indptr_np)[perm]
        new_ptr = np.zeros(len(perm) + 1, dtype=np.int64)
        np.cumsum(lengths_np, out=new_ptr[1:])
        out.indptr_np = new_ptr
        out.indptr = torch.from_numpy(new_ptr).to(self.device)
        perm_t = torch.from_numpy(np.asarray(perm, dtype=np.int64)).to(self.device)
        lengths = torch.from_numpy(lengths_np).to(self.device)
        nnz = int(new_ptr[-1])
        shift = self.indptr[perm_t] - out.indptr[:-1]
        pos = torch.repeat_interleave(shift, lengths, output_size=nnz)
        pos += torch.arange(nnz, device=self.device)
        out.indices = self.indices[pos]
        out.data = self.data[pos]
        return out

    def batch(self, start: int, stop: int) -> SparseBatch:
        """Rows ``start:stop`` as a :class:`SparseBatch` (a view plus two small tensors)."""
        a, b = int(self.indptr_np[start]), int(self.indptr_np[stop])
        n = stop - start
        offsets = self.indptr[start:stop] - a
        lengths = self.indptr[start + 1 : stop + 1] - self.indptr[start:stop]
        rows = torch.repeat_interleave(
            torch.arange(n, device=self.device), lengths, output_size=b - a
        )
        return SparseBatch(self.indices[a:b], self.data[a:b], offsets, rows, n)


# --- likelihoods and KL ----------------------------------------------------------------------


class _SparseTargetLL(torch.autograd.Function):
    """Per-row log-likelihood of sparse targets x under dense logits f, fused.

    Forward computes, per row, a dense term over all items plus a sum over the non-zeros
    of x only; backward writes the gradient into one fresh (b, n_items) buffer.
    """

    @staticmethod
    def forward(ctx, logits, flat, rows, x, n_rows, kind, c0, c1):  # noqa: D401
        f_nz = logits.reshape(-1)[flat]

        def row_sum(v):
            return torch.zeros(n_rows, dtype=v.dtype, device=v.device).index_add_(0, rows, v)

        if kind == "multinomial":
            # log-sum-exp by hand, keeping exp(f - max) for the backward pass (saves two
            # passes over the (b, n_items) logits against logsumexp + recomputation)
            fmax = logits.detach().amax(dim=1, keepdim=True)
            e = torch.sub(logits.detach(), fmax).exp_()
            esum = e.sum(dim=1)
            lse = fmax.squeeze(1) + esum.log()
            xsum = row_sum(x)
            ll = row_sum(x * f_nz) - xsum * lse
            ctx.save_for_backward(e, flat, rows, x, esum, xsum)
        elif kind == "logistic":
            # x log s(f) + (1 - x) log(1 - s(f)) = x f - softplus(f)
            ll = row_sum(x * f_nz) - F.softplus(logits).sum(dim=1)
            ctx.save_for_backward(logits, flat, rows, x)
        elif kind == "gaussian":
            ll = -0.5 * c0 * logits.square().sum(dim=1) + row_sum(
                0.5 * c0 * f_nz.square() - 0.5 * c1 * (x - f_nz).square()
            )
            ctx.save_for_backward(logits, flat, rows, x, f_nz)
        else:  # pragma: no cover - checked by the model
            raise ValueError(kind)
        ctx.kind, ctx.c0, ctx.c1 = kind, c0, c1
        return ll

    @staticmethod
    def backward(ctx, grad):  # grad: (b,)
        kind = ctx.kind
        if kind == "multinomial":
            if getattr(ctx, "used", False):
                raise RuntimeError("the fused multinomial likelihood supports one backward pass")
            ctx.used = True
            e, flat, rows, x, esum, xsum = ctx.saved_tensors
            buf = e.mul_((-grad * xsum / esum)[:, None])  # -g * N_u * softmax, in place
            nz = grad[rows] * x
        elif kind == "logistic":
            logits, flat, rows, x = ctx.saved_tensors
            buf = torch.sigmoid(logits).mul_(-grad[:, None])
            nz = grad[rows] * x
        else:
            logits, flat, rows, x, f_nz = ctx.saved_tensors
            c0, c1 = ctx.c0, ctx.c1
            buf = logits * (-c0 * grad)[:, None]
            nz = grad[rows] * (c0 * f_nz + c1 * (x - f_nz))
        buf.view(-1).index_add_(0, flat, nz)
        return buf, None, None, None, None, None, None, None


def log_likelihood(
    logits: torch.Tensor,
    batch: SparseBatch,
    likelihood: str = "multinomial",
    c0: float = 0.1,
    c1: float = 1.0,
) -> torch.Tensor:
    """log p(x_u | z_u) per row for sparse targets.

    Args:
        logits: (b, n_items) decoder output f.
        batch: the targets x (raw values, e.g. binary clicks), b rows.
        likelihood: "multinomial", "gaussian" or "logistic".
        c0, c1: Gaussian confidence on non-clicks and clicks.

    Returns:
        (b,) log-likelihoods (differentiable w.r.t. ``logits``).
    """
    flat = batch.rows * logits.shape[1] + batch.items
    x = batch.values.to(logits.dtype)
    return _SparseTargetLL.apply(logits, flat, batch.rows, x, batch.n_rows, likelihood, c0, c1)


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, diag(exp(logvar))) || N(0, I)) per row: (b, d), (b, d) -> (b,)."""
    return 0.5 * (-logvar + logvar.exp() + mu.square() - 1.0).sum(dim=1)


# --- the network -----------------------------------------------------------------------------


def _adam(params, lr: float) -> torch.optim.Optimizer:
    """Adam (the fused kernel where this torch has one: same update, one pass)."""
    try:
        return torch.optim.Adam(params, lr=lr, fused=True)
    except (RuntimeError, TypeError, ValueError):  # pragma: no cover - old torch
        return torch.optim.Adam(params, lr=lr)


# --- the model -------------------------------------------------------------------------------


def dense_on_device(x: sp.csr_matrix, dtype: Any, device: str):
    """(rows, n_items) CSR -> dense torch tensor made on ``device`` (only indices travel)."""
    import torch

    x = sp.csr_matrix(x)
    rows = np.repeat(np.arange(x.shape[0], dtype=np.int64), np.diff(x.indptr))
    out = torch.zeros(x.shape, dtype=dtype, device=device)
    values = torch.from_numpy(np.asarray(x.data)).to(device=device, dtype=dtype)
    out[torch.from_numpy(rows).to(device), torch.from_numpy(x.indices.astype(np.int64)).to(device)] = values
    return out


adam = _adam


def score_in_batches(fold_in: sp.csr_matrix, net: torch.nn.Module, forward: Any,
                     batch_size: int) -> np.ndarray:
    """(n_rows, n_items) float32 scores: ``forward(SparseBatch) -> logits`` over batches of
    fold-in rows sent to the network's device, in eval and inference mode (the network's
    training flag is restored afterwards)."""
    device = next(net.parameters()).device
    out = np.empty(fold_in.shape, dtype=np.float32)
    was_training = net.training
    net.eval()
    try:
        with torch.inference_mode():
            for start in range(0, fold_in.shape[0], batch_size):
                stop = min(start + batch_size, fold_in.shape[0])
                rows = DeviceCSR(fold_in[start:stop], device)
                out[start:stop] = forward(rows.batch(0, stop - start)).float().cpu().numpy()
    finally:
        net.train(was_training)
    return out


def timing_batches(x: sp.csr_matrix, batch_size: int, device: Any) -> Iterator[SparseBatch]:
    """Minibatches of the first (at most) four batches' rows of ``x`` on ``device``, cycled
    forever: what a model's ``estimate_cost`` times its updates on."""
    data = DeviceCSR(x[: min(x.shape[0], 4 * batch_size)], device)
    return itertools.cycle([data.batch(s, min(s + batch_size, data.n_rows))
                            for s in range(0, data.n_rows, batch_size)])
