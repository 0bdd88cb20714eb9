"""Beyond-accuracy metrics: popularity bias, long-tail share, exposure inequality, novelty.

All four read the training popularity of the recommended items (``ItemPopularity``: how
many training users clicked each item, the column sums of ``Split.train``). Definitions and
sources in ``docs/metrics.md``:

- ``arp@k``: average recommendation popularity, mean over the top k of pop_i
  (Abdollahpouri, Burke, Mobasher, FLAIRS 2019);
- ``aplt@k``: share of the top k in the long tail (same paper); the tail is
  ``long_tail(counts)``;
- ``novelty@k``: mean self-information -log2(max(pop_i, 1) / n_train_users) over the top k
  (Zhou et al., PNAS 2010; Vargas & Castells, RecSys 2011);
- ``gini@k``: Gini index of the exposure counts of every catalogue item over all evaluated
  users' top k (one number, like ``coverage@k``).

The first three are per user (means over users like the accuracy metrics); ``gini`` is an
aggregate that ``evaluate`` accumulates across batches (``exposure``) and computes once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

#: The metric kinds that need the training popularity; ``gini`` is an aggregate.
POPULARITY_KINDS = ("arp", "aplt", "novelty", "gini")
#: Share of the training clicks that the long tail makes up (at most).
TAIL_SHARE = 0.2


def long_tail(counts: np.ndarray, share: float = TAIL_SHARE) -> np.ndarray:
    """Boolean mask of the long-tail items.

    Items are sorted by training clicks ascending, ties by the lower item index (a stable
    sort); the tail is the longest prefix of that order whose cumulative clicks are at most
    ``share`` of all training clicks. Items nobody clicked are always in it; when the least
    clicked item alone exceeds the share, the tail is empty.
    """
    counts = np.asarray(counts, dtype=np.float64)
    order = np.argsort(counts, kind="stable")
    cum = np.cumsum(counts[order])
    total = cum[-1] if len(cum) else 0.0
    # cum / total is correctly rounded, so an exact share (2 of 10 clicks) compares equal
    inside = cum / total <= share if total > 0 else np.ones(len(cum), dtype=bool)
    n_tail = int(np.argmin(inside)) if not inside.all() else len(inside)  # cum is monotone
    mask = np.zeros(len(counts), dtype=bool)
    mask[order[:n_tail]] = True
    return mask


def gini_index(exposure: np.ndarray) -> float:
    """Gini index of exposure counts over all n items (never-recommended items count as 0).

    G = sum_{i=1..n} (2i - n - 1) c_(i) / (n sum_i c_i), with c_(1) <= ... <= c_(n): 0 when
    every item is shown equally often, (n - 1) / n when one item takes all the exposure;
    NaN when nothing was recommended.
    """
    c = np.sort(np.asarray(exposure, dtype=np.float64))
    n, total = len(c), float(c.sum())
    if n == 0 or total <= 0:
        return float("nan")
    i = np.arange(1, n + 1, dtype=np.float64)
    return float(((2 * i - n - 1) * c).sum() / (n * total))


@dataclass(frozen=True, eq=False)  # arrays: compare by identity
class ItemPopularity:
    """Training popularity of each item: what the beyond-accuracy metrics rank against.

    Attributes:
        counts: (n_items,) number of training users who clicked each item.
        n_users: number of training users (novelty's denominator).
    """

    counts: np.ndarray
    n_users: int
    tail: np.ndarray = field(init=False, repr=False)
    self_information: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        counts = np.asarray(self.counts, dtype=np.float64)
        if counts.ndim != 1 or (counts < 0).any() or not np.isfinite(counts).all():
            raise ValueError("item popularity must be a 1-d array of counts >= 0")
        if int(self.n_users) < 1 or (len(counts) and counts.max() > int(self.n_users)):
            raise ValueError(f"item popularity needs n_users >= 1 and >= every count, "
                             f"got n_users={self.n_users}")
        object.__setattr__(self, "counts", counts)
        object.__setattr__(self, "n_users", int(self.n_users))
        object.__setattr__(self, "tail", long_tail(counts))
        # an item no training user clicked counts as clicked once (finite, the rarest seen)
        info = -np.log2(np.maximum(counts, 1.0) / self.n_users)
        object.__setattr__(self, "self_information", info + 0.0)  # -0.0 -> 0.0

    @classmethod
    def of(cls, train: sp.spmatrix) -> ItemPopularity:
        """From the (binary) training matrix: column sums and its number of rows."""
        train = sp.csr_matrix(train)
        counts = np.asarray((train != 0).sum(axis=0)).ravel()
        return cls(counts=counts, n_users=train.shape[0])

    @property
    def n_items(self) -> int:
        return len(self.counts)


def _per_user(values: np.ndarray, top: np.ndarray, holdout: sp.csr_matrix) -> np.ndarray:
    """Mean of ``values`` over each row's top k; NaN for rows with an empty holdout."""
    if top.shape[1] == 0:
        out = np.full(top.shape[0], np.nan)
    else:
        out = values[top].mean(axis=1)
    return np.where(np.diff(holdout.indptr) > 0, out, np.nan)


def arp_at_k(top: np.ndarray, holdout: sp.csr_matrix, k: int, pop: ItemPopularity) -> np.ndarray:
    """Mean training popularity (training users) of the top k items, per row."""
    return _per_user(pop.counts, top[:, :k], holdout)


def aplt_at_k(top: np.ndarray, holdout: sp.csr_matrix, k: int, pop: ItemPopularity) -> np.ndarray:
    """Share of the top k items that are in the long tail, per row."""
    return _per_user(pop.tail.astype(np.float64), top[:, :k], holdout)


def novelty_at_k(top: np.ndarray, holdout: sp.csr_matrix, k: int,
                 pop: ItemPopularity) -> np.ndarray:
    """Mean self-information -log2(max(pop_i, 1) / n_users) of the top k items, per row."""
    return _per_user(pop.self_information, top[:, :k], holdout)


PER_USER_BEYOND = {"arp": arp_at_k, "aplt": aplt_at_k, "novelty": novelty_at_k}


def exposure(top: np.ndarray, n_items: int) -> np.ndarray:
    """(n_items,) how often each item appears in the given top-k rows (add across batches)."""
    return np.bincount(np.asarray(top).ravel(), minlength=n_items).astype(np.int64)


def check_popularity(kinds: list[str], pop: ItemPopularity | None, n_items: int) -> None:
    """Refuse a popularity metric without the training popularity, or one of another size."""
    wanted = sorted({k for k in kinds if k in POPULARITY_KINDS})
    if not wanted:
        return
    if pop is None:
        raise ValueError(
            f"{', '.join(k + '@K' for k in wanted)} need the training item popularity: pass "
            f"popularity=ItemPopularity.of(split.train) to evaluate()/compute_metrics()"
        )
    if pop.n_items != n_items:
        raise ValueError(f"item popularity has {pop.n_items} items, the scores {n_items}")
