"""Metrics exactly as the paper's reference notebook computes them, and the batched evaluator.

Definitions (``Recall_at_k_batch`` and ``NDCG_binary_at_k_batch`` of the notebook):

- Recall@k = |top-k ∩ holdout_u| / min(k, |holdout_u|)  (the paper's normalised recall);
- NDCG@k  = DCG@k / IDCG@k with binary gains, DCG@k = sum_{r=1..k} hit_r / log2(r + 1),
  IDCG@k = sum_{r=1..min(k, |holdout_u|)} 1 / log2(r + 1).

Fold-in items are set to -inf before ranking (never 0). Users without held-out items are
excluded from the means and counted in ``n_excluded``. Ties are broken by the lower item
index, so rankings are deterministic.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from .beyond import PER_USER_BEYOND, ItemPopularity, check_popularity, exposure, gini_index
from .protocol import HeldOut

DEFAULT_METRICS = ("recall@20", "recall@50", "ndcg@100")
#: Every metric kind (``kind@K``); ``coverage`` and ``gini`` are one number for all users, the
#: others are per user; ``arp``, ``aplt``, ``novelty`` and ``gini`` need the training item
#: popularity (``benchmark.beyond``). Definitions in ``docs/metrics.md``.
METRIC_KINDS = ("recall", "ndcg", "precision", "map", "mrr", "hitrate", "coverage",
                "arp", "aplt", "gini", "novelty")
#: The kinds that are one number over all evaluated users' top k (``EvalResult.aggregate``).
AGGREGATE_KINDS = ("coverage", "gini")


def parse_metric(name: str) -> tuple[str, int]:
    kind, _, k = str(name).strip().lower().partition("@")
    if kind not in METRIC_KINDS or not k.isdigit() or int(k) < 1:
        raise ValueError(
            f"unknown metric {name!r}: use KIND@K with KIND one of {', '.join(METRIC_KINDS)} "
            f"and K >= 1, e.g. precision@10"
        )
    return kind, int(k)


def precision_at_k(topk: np.ndarray, holdout: sp.csr_matrix, k: int) -> np.ndarray:
    """Hits in the top k / k; NaN for rows with an empty holdout."""
    hits = _hits(topk[:, :k], holdout).sum(axis=1)
    n_true = np.diff(holdout.indptr)
    return np.where(n_true > 0, hits / k, np.nan)


def hitrate_at_k(topk: np.ndarray, holdout: sp.csr_matrix, k: int) -> np.ndarray:
    """1 when the top k holds at least one held-out item, else 0; NaN for empty holdouts."""
    hits = _hits(topk[:, :k], holdout).sum(axis=1)
    return np.where(np.diff(holdout.indptr) > 0, (hits > 0).astype(np.float64), np.nan)


def mrr_at_k(topk: np.ndarray, holdout: sp.csr_matrix, k: int) -> np.ndarray:
    """1 / rank of the first held-out item in the top k (0 when none); NaN for empty holdouts."""
    hits = _hits(topk[:, :k], holdout)
    first = np.argmax(hits > 0, axis=1)
    rr = np.where(hits.any(axis=1), 1.0 / (first + 1), 0.0)
    return np.where(np.diff(holdout.indptr) > 0, rr, np.nan)


def map_at_k(topk: np.ndarray, holdout: sp.csr_matrix, k: int) -> np.ndarray:
    """Average precision at k: sum_r P@r hit_r / min(k, |holdout|); NaN for empty holdouts."""
    hits = _hits(topk[:, :k], holdout)
    prec = np.cumsum(hits, axis=1) / np.arange(1, hits.shape[1] + 1)
    denom = np.minimum(k, np.diff(holdout.indptr)).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, (prec * hits).sum(axis=1) / denom, np.nan)


_PER_USER = {"recall": None, "ndcg": None, "precision": precision_at_k, "map": map_at_k,
             "mrr": mrr_at_k, "hitrate": hitrate_at_k}


def topk_indices(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k highest scores per row, best first; ties -> lower index first.

    ``torch.topk`` (multi-threaded) picks the candidates; rows where the tie at the k-th
    value continues past the cut (common with count scores such as popularity) are redone
    exactly, so the result never depends on the order torch returns equal values in.

    Args:
        scores: (n, n_items) float array (-inf for excluded items).
        k: how many; clipped to n_items.

    Returns:
        (n, min(k, n_items)) int64 array.
    """
    n, m = scores.shape
    k = min(k, m)
    if k == 0 or n == 0:
        return np.zeros((n, k), dtype=np.int64)
    if k == m:
        return _topk_exact(scores, k)
    import torch

    kk = k + 1  # one past the cut, to see whether a tie crosses it
    t = torch.from_numpy(np.ascontiguousarray(scores))
    vals_t, idx_t = torch.topk(t, kk, dim=1, largest=True, sorted=True)
    vals, idx = vals_t.numpy(), idx_t.numpy().astype(np.int64)
    crossing = vals[:, k] == vals[:, k - 1]
    top_v, top_i = vals[:, :k], idx[:, :k]
    order = np.lexsort((top_i, -top_v), axis=1)  # by value desc, then index asc
    out = np.take_along_axis(top_i, order, axis=1)
    if crossing.any():
        rows = np.flatnonzero(crossing)
        out[rows] = _select_with_ties(scores[rows], vals[rows, k - 1], k)
    return out


def _topk_exact(scores: np.ndarray, k: int) -> np.ndarray:
    """Reference top-k in NumPy with exact tie-breaking by the lower index."""
    n, m = scores.shape
    if k >= m:
        cols = np.broadcast_to(np.arange(m), (n, m)).copy()
        order = np.argsort(-scores, axis=1, kind="stable")  # stable: ties keep ascending index
        return np.take_along_axis(cols, order, axis=1)
    kth = -np.partition(-scores, k - 1, axis=1)[:, k - 1]  # the k-th largest value per row
    return _select_with_ties(scores, kth, k)


def _select_with_ties(scores: np.ndarray, kth: np.ndarray, k: int) -> np.ndarray:
    """Top-k given each row's k-th largest value: all above it, then the lowest-index ties."""
    n = scores.shape[0]
    r_a, c_a = np.nonzero(scores > kth[:, None])
    need = k - np.bincount(r_a, minlength=n)  # ties to take at the threshold, per row
    r_e, c_e = np.nonzero(scores == kth[:, None])  # row-major: ascending index within a row
    rank = np.arange(len(r_e)) - np.searchsorted(r_e, np.arange(n))[r_e]
    keep = rank < need[r_e]
    r = np.concatenate([r_a, r_e[keep]])
    c = np.concatenate([c_a, c_e[keep]])
    cols = c[np.lexsort((c, r))].reshape(n, k)  # exactly k per row, ascending index
    vals = np.take_along_axis(scores, cols, axis=1)
    order = np.argsort(-vals, axis=1, kind="stable")  # stable: ties keep ascending index
    return np.take_along_axis(cols, order, axis=1)


def _discounts(k: int) -> np.ndarray:
    return 1.0 / np.log2(np.arange(2, k + 2, dtype=np.float64))


def recall_at_k(topk: np.ndarray, holdout: sp.csr_matrix, k: int) -> np.ndarray:
    """Per-row Recall@k from ranked indices (n, >=k) and the binary holdout rows (n, items).

    Rows with an empty holdout give NaN (0/0); the evaluator excludes them.
    """
    hits = _hits(topk[:, :k], holdout)
    n_true = np.diff(holdout.indptr).astype(np.float64)
    denom = np.minimum(k, n_true)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, hits.sum(axis=1) / denom, np.nan)


def ndcg_at_k(topk: np.ndarray, holdout: sp.csr_matrix, k: int) -> np.ndarray:
    """Per-row binary NDCG@k (truncated ideal DCG); NaN for rows with an empty holdout."""
    top = topk[:, :k]
    hits = _hits(top, holdout)
    disc = _discounts(k)
    dcg = (hits * disc[: top.shape[1]]).sum(axis=1)
    n_true = np.diff(holdout.indptr)
    cum = np.concatenate([[0.0], np.cumsum(disc)])
    idcg = cum[np.minimum(n_true, k)]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(idcg > 0, dcg / idcg, np.nan)


def _hits(top: np.ndarray, holdout: sp.csr_matrix) -> np.ndarray:
    """(n, k) 0/1 matrix: is the ranked item in the row's holdout?"""
    n = top.shape[0]
    if top.size == 0:
        return np.zeros(top.shape, dtype=np.float64)
    dense = np.zeros((n, holdout.shape[1]), dtype=bool)
    rows = np.repeat(np.arange(n), np.diff(holdout.indptr))
    dense[rows, holdout.indices] = True
    return np.take_along_axis(dense, top, axis=1).astype(np.float64)


def compute_metrics(
    scores: np.ndarray,
    fold_in: sp.csr_matrix,
    holdout: sp.csr_matrix,
    metrics: Sequence[str] = DEFAULT_METRICS,
    popularity: ItemPopularity | None = None,
) -> dict[str, np.ndarray]:
    """Per-row metrics for one batch of scores; fold-in items are masked to -inf first.

    ``coverage`` and ``gini`` give the batch's top k (``evaluate`` aggregates them);
    ``arp``, ``aplt``, ``novelty`` and ``gini`` need ``popularity`` (else ValueError).
    """
    scores = np.array(scores, dtype=np.float32, copy=True)
    scores[np.isnan(scores)] = -np.inf
    if scores.shape != fold_in.shape:
        raise ValueError(f"scores have shape {scores.shape}, expected {fold_in.shape}")
    rows = np.repeat(np.arange(fold_in.shape[0]), np.diff(fold_in.indptr))
    scores[rows, fold_in.indices] = -np.inf
    # a K past the catalogue is the catalogue (no allocation grows with the requested K)
    parsed = [(kind, min(k, scores.shape[1])) for kind, k in map(parse_metric, metrics)]
    check_popularity([kind for kind, _ in parsed], popularity, scores.shape[1])
    kmax = max(k for _, k in parsed)
    top = topk_indices(scores, kmax)
    out = {}
    for name, (kind, k) in zip(metrics, parsed):
        if kind in AGGREGATE_KINDS:  # the items in this batch's top k (aggregated by evaluate)
            out[name] = top[:, :k]
        elif kind in PER_USER_BEYOND:
            out[name] = PER_USER_BEYOND[kind](top, holdout, k, popularity)
        elif kind == "recall":
            out[name] = recall_at_k(top, holdout, k)
        elif kind == "ndcg":
            out[name] = ndcg_at_k(top, holdout, k)
        else:
            out[name] = _PER_USER[kind](top, holdout, k)
    return out


@dataclass
class EvalResult:
    """Per-user metrics over the users that have held-out items.

    Attributes:
        per_user: metric -> (n_users,) float64 array over evaluated users.
        users: (n_users,) row indices (into the HeldOut) of the evaluated users.
        fold_in_size: (n_users,) fold-in items per evaluated user (for activity quintiles).
        n_excluded: users without held-out items (not in the means).
        seconds: wall time of scoring plus metrics.
    """

    per_user: dict[str, np.ndarray]
    users: np.ndarray
    fold_in_size: np.ndarray
    n_excluded: int
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)
    aggregate: dict[str, float] = field(default_factory=dict)  # coverage@k, gini@k

    @property
    def n_users(self) -> int:
        return int(len(self.users))

    def mean(self) -> dict[str, float]:
        out = {m: float(v.mean()) if len(v) else float("nan") for m, v in self.per_user.items()}
        out.update(self.aggregate)
        return out

    def sem(self) -> dict[str, float]:
        """Standard error as the notebook prints it: std / sqrt(n) (population std)."""
        return {
            m: float(v.std() / np.sqrt(len(v))) if len(v) else float("nan")
            for m, v in self.per_user.items()
        }

    def arrays(self) -> dict[str, np.ndarray]:
        d = {m: v for m, v in self.per_user.items()}
        d["users"] = self.users
        d["fold_in_size"] = self.fold_in_size
        return d


class InvalidScoresError(ValueError):
    """A model returned scores no ranking can be read from (NaN, +inf, wrong shape)."""


def check_scores(scores: np.ndarray, shape: tuple[int, int]) -> None:
    """Refuse scores of the wrong shape or with NaN or +inf (-inf is allowed: "never").

    A NaN would silently sort somewhere and be recorded as a normal metric; the check is
    one ``max`` over the batch (NaN propagates through it), and a count only when it fails.

    Raises:
        InvalidScoresError: naming how many users and items are affected.
    """
    if scores.shape != tuple(shape):
        raise InvalidScoresError(
            f"score() returned shape {scores.shape} for {shape[0]} fold-in rows of "
            f"{shape[1]} items; it must return (n_rows, n_items)"
        )
    if scores.size == 0:
        return
    top = scores.max()  # NaN propagates through max: one pass finds NaN and +inf
    if not (np.isnan(top) or np.isposinf(top)):
        return
    bad = np.isnan(scores) | np.isposinf(scores)
    users, items = np.nonzero(bad)
    raise InvalidScoresError(
        f"score() returned NaN or +inf for {len(np.unique(users)):,} of {shape[0]:,} users and "
        f"{len(np.unique(items)):,} of {shape[1]:,} items ({int(bad.sum()):,} scores; first at "
        f"row {users[0]}, item {items[0]}): no ranking can be read from them; check the "
        f"model's parameters (e.g. a negative or NaN shrink or penalty) or its training"
    )


def evaluate(
    score_fn: Callable[[sp.csr_matrix], np.ndarray],
    heldout: HeldOut,
    *,
    metrics: Sequence[str] = DEFAULT_METRICS,
    batch_size: int = 1000,
    progress: bool = False,
    desc: str = "evaluate",
    popularity: ItemPopularity | None = None,
) -> EvalResult:
    """Score held-out users in batches and compute per-user metrics.

    Args:
        score_fn: fold-in rows (b, n_items) CSR -> scores (b, n_items); usually
            ``model.score``.
        heldout: the users to evaluate.
        metrics: names such as ``recall@20`` or ``ndcg@100``.
        batch_size: users per scoring call.
        popularity: the training item popularity (``ItemPopularity.of(split.train)``);
            needed by ``arp``, ``aplt``, ``novelty`` and ``gini`` (else ValueError).
    """
    t0 = time.perf_counter()
    n_true = np.diff(heldout.holdout.indptr)
    users = np.flatnonzero(n_true > 0)
    n_excluded = int(heldout.n_users - len(users))
    kinds = {m: parse_metric(m) for m in metrics}
    n_items = heldout.fold_in.shape[1]
    check_popularity([kind for kind, _ in kinds.values()], popularity, n_items)
    # coverage: which items were in any top k; gini: how often each was
    shown = {m: np.zeros(n_items, dtype=np.int64) for m, (kind, _) in kinds.items()
             if kind in AGGREGATE_KINDS}
    per_user = {m: np.empty(len(users), dtype=np.float64) for m in metrics if m not in shown}
    iterator = range(0, len(users), batch_size)
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(iterator, desc=desc, unit="batch", leave=False)
    for start in iterator:
        rows = users[start : start + batch_size]
        fold = heldout.fold_in[rows]
        scores = np.asarray(score_fn(fold))
        check_scores(scores, fold.shape)
        batch = compute_metrics(scores, fold, heldout.holdout[rows], metrics, popularity)
        for m in metrics:
            if m in shown:
                shown[m] += exposure(batch[m], n_items)
            else:
                per_user[m][start : start + len(rows)] = batch[m]
    fold_sizes = np.diff(heldout.fold_in.indptr)[users]
    return EvalResult(
        per_user=per_user,
        users=users,
        fold_in_size=fold_sizes,
        n_excluded=n_excluded,
        seconds=time.perf_counter() - t0,
        aggregate={m: _aggregate(kinds[m][0], c, len(users)) for m, c in shown.items()},
        extra={"k_clipped": clipped} if (clipped := clipped_ks(metrics, heldout.fold_in.shape[1])) else {},
    )


def _aggregate(kind: str, shown: np.ndarray, n_users: int) -> float:
    """coverage: share of items in any top k; gini: Gini index of the exposure counts."""
    if not n_users:
        return float("nan")
    return float((shown > 0).mean()) if kind == "coverage" else gini_index(shown)


def clipped_ks(metrics: Sequence[str], n_items: int) -> dict[str, int]:
    """The metrics whose K exceeds the catalogue: each is evaluated at K = ``n_items``."""
    return {m: n_items for m in metrics if parse_metric(m)[1] > n_items}


def validation_ndcg(
    score_fn: Callable[[sp.csr_matrix], np.ndarray], valid: HeldOut, batch_size: int = 1000
) -> float:
    """Mean validation NDCG@100 (what every model is selected and tuned on)."""
    return evaluate(score_fn, valid, metrics=("ndcg@100",), batch_size=batch_size).mean()["ndcg@100"]
