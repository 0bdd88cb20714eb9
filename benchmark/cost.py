"""What a model's cost estimate needs: the data's shape, the estimate, and timing helpers.

A model's ``estimate_cost(shape, params, options) -> Estimate | None`` (a classmethod, see
:meth:`benchmark.model.Recommender.estimate_cost`) reads a :class:`DataShape`: the counts
of a data set (training users, items, clicks, held-out users, how active users are) and,
once the data have been read, the matrices themselves. ``shape.train_matrix()`` and
``shape.valid_part()`` give the real matrices when present and otherwise synthetic ones of
that shape, so a plan can be made from a published shape before anything is downloaded.

The synthetic matrices rest on two stated assumptions (neither is fitted to a data set):

- users' click counts are lognormal, with the mean the counts imply and a dispersion
  fitted to the activity quantiles when they are given (least squares of the log
  quantiles on the normal quantiles), else :data:`DEFAULT_ACTIVITY_SIGMA`; clipped to
  ``[min_activity, min(items, max_activity)]`` and shifted so the clicks add up;
- item popularity is Zipf-like: item of popularity rank r is drawn with probability
  proportional to (r + 1) ^ -:data:`ZIPF_EXPONENT` (ranks shuffled over the columns).

A user's items are drawn with replacement and the repeats drawn again (rounds of
:data:`_ROUNDS`; after :data:`_ZIPF_ROUNDS` of them uniformly, so that a user with nearly
every item still gets them), so a very active user may end a few items short.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from .evaluate import validation_ndcg
from .protocol import HeldOut, Split

__all__ = [
    "DEFAULT_ACTIVITY_SIGMA",
    "QUANTILES",
    "ZIPF_EXPONENT",
    "DataShape",
    "Estimate",
    "timed",
    "timing_spread",
    "user_sample",
    "validation_seconds",
]

#: Quantiles of users' click counts that :meth:`DataShape.from_split` records.
QUANTILES = (0.1, 0.5, 0.9, 0.99)
#: ASSUMED sigma of log(clicks per user) when a shape gives no quantiles (not fitted).
DEFAULT_ACTIVITY_SIGMA = 1.0
#: ASSUMED exponent of the Zipf-like item popularity (not fitted).
ZIPF_EXPONENT = 0.9
#: Seed of the synthetic matrices (the same shape always gives the same matrices).
SYNTHETIC_SEED = 0
#: Held-out users: each with at least HOLDOUT_MIN items gives floor(HOLDOUT_FRACTION) of
#: them to the holdout (the protocol of DESIGN.md section 3).
HOLDOUT_FRACTION, HOLDOUT_MIN = 0.2, 5
_ROUNDS, _ZIPF_ROUNDS = 8, 4
_CHUNK_CLICKS = 1 << 22  # clicks drawn at once (bounds the temporaries)


@dataclass
class Estimate:
    """A model's estimated fit time (seconds, validation passes included) and peak memory
    (bytes on its device, the data included), with the formula that gave them."""

    seconds: float | None
    peak_bytes: int | None
    detail: str = ""
    #: What would fit when ``peak_bytes`` does not (e.g. "factors <= 2,900 fits"), shown
    #: with a refusal.
    fits: str = ""


@dataclass(frozen=True, eq=False)
class DataShape:
    """The shape of a data set as a plan needs it, with the matrices when they were read.

    Attributes:
        dataset: its name (for per-data-set defaults), or None.
        train_users: rows of the training matrix.
        items: its columns (the items of the split).
        train_clicks: its non-zeros.
        valid_users: validation users (0: none).
        test_users: test users.
        valid_clicks: validation users' clicks, fold-in and holdout (None: as active as
            the training users).
        activity_quantiles: ((q, clicks), ...): training users' click counts at
            quantiles q in (0, 1); () when unknown.
        max_activity: the most clicks of one training user (None: unknown; at most items).
        min_activity: the fewest (a filter's threshold; default 1).
        train: (train_users, items) binary float32 CSR, or None before the data are read.
        valid: the validation users' ``HeldOut``, or None.
    """

    dataset: str | None
    train_users: int
    items: int
    train_clicks: int
    valid_users: int = 0
    test_users: int = 0
    valid_clicks: int | None = None
    activity_quantiles: tuple[tuple[float, float], ...] = ()
    max_activity: int | None = None
    min_activity: int = 1
    train: sp.csr_matrix | None = None
    valid: HeldOut | None = None
    _cache: dict[Any, Any] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        if min(self.train_users, self.items, self.train_clicks, self.valid_users, self.test_users) < 0:
            raise ValueError(f"a data shape's counts are >= 0, not {self.train_users} x "
                             f"{self.items} with {self.train_clicks} clicks")
        if self.train_clicks > self.train_users * self.items:
            raise ValueError(f"{self.train_clicks:,} clicks do not fit {self.train_users:,} x "
                             f"{self.items:,} binary entries")
        if self.train is not None and self.train.shape != (self.train_users, self.items):
            raise ValueError(f"train is {self.train.shape}, the shape says "
                             f"{(self.train_users, self.items)}")

    @classmethod
    def from_split(cls, split: Split) -> DataShape:
        """Every count of ``split``, with its training matrix and validation users."""
        train = split.train
        lens = np.diff(train.indptr)
        return cls(
            dataset=split.meta.get("dataset"),
            train_users=int(train.shape[0]),
            items=int(train.shape[1]),
            train_clicks=int(train.nnz),
            valid_users=int(split.valid.n_users),
            test_users=int(split.test.n_users),
            valid_clicks=int(split.valid.fold_in.nnz + split.valid.holdout.nnz),
            activity_quantiles=tuple((q, float(np.quantile(lens, q))) for q in QUANTILES) if len(lens) else (),
            max_activity=int(lens.max()) if len(lens) else None,
            min_activity=max(1, int(lens.min())) if len(lens) else 1,
            train=train,
            valid=split.valid,
        )

    def counts_only(self) -> DataShape:
        """The same shape without its matrices (what a published shape gives)."""
        return dataclasses.replace(self, train=None, valid=None)

    @property
    def has_data(self) -> bool:
        return self.train is not None

    def activity_sigma(self) -> float:
        """sigma of log(clicks per user): fitted to the quantiles, else the assumed default."""
        pts = [(statistics.NormalDist().inv_cdf(q), np.log(v))
               for q, v in self.activity_quantiles if 0 < q < 1 and v > 0]
        if len({z for z, _ in pts}) < 2:
            return DEFAULT_ACTIVITY_SIGMA
        z, lv = np.array(pts).T
        slope = float(np.polyfit(z, lv, 1)[0])
        return float(np.clip(slope, 0.05, 3.0))

    def train_matrix(self, max_users: int | None = None, *, seed: int = SYNTHETIC_SEED) -> sp.csr_matrix:
        """The training matrix: the real one when present, else a synthetic one of this shape.

        Args:
            max_users: only a random sample of this many rows (None: all).
            seed: the seed of the sample and of the synthetic matrix.
        """
        n = self.train_users
        k = n if max_users is None else min(n, max(1, int(max_users)))
        if self.train is not None:
            return self.train if k == n else user_sample(self.train, 0.0, k, seed)
        key = ("train", k, seed)
        if key not in self._cache:
            if self.train_clicks < 1:
                raise ValueError(f"no synthetic matrix of {n:,} x {self.items:,} without clicks")
            rng = np.random.default_rng([seed, 1])
            counts = self._counts(n, self.train_clicks, rng)
            rows = np.arange(n) if k == n else np.sort(rng.choice(n, size=k, replace=False))
            self._cache[key] = self._draw(counts[rows], seed, 2)
        return self._cache[key]

    def valid_part(self, max_users: int | None = None, *, seed: int = SYNTHETIC_SEED) -> HeldOut:
        """The validation users: the real ones when present (the first ``max_users``), else
        synthetic ones (activity as the training users', or ``valid_clicks``; each with at
        least 5 items gives floor(20%) of them to the holdout)."""
        n = self.valid_users
        k = n if max_users is None else min(n, max(0, int(max_users)))
        if self.valid is not None:
            return self.valid if k == self.valid.n_users else self.valid.subset(np.arange(k))
        key = ("valid", k, seed)
        if key not in self._cache:
            if n == 0 or k == 0:
                empty = sp.csr_matrix((k, self.items), dtype=np.float32)
                self._cache[key] = HeldOut(empty, empty.copy())
            else:
                rng = np.random.default_rng([seed, 3])
                total = self.valid_clicks or round(self.train_clicks / self.train_users * n)
                rows = self._draw(self._counts(n, total, rng)[:k], seed, 4)
                self._cache[key] = _hold_out(rows, np.random.default_rng([seed, 5]))
        return self._cache[key]

    # --- the synthetic draw ----------------------------------------------------------------
    def _counts(self, n: int, total: int, rng: np.random.Generator) -> np.ndarray:
        """(n,) lognormal click counts clipped to the activity range, summing to ~``total``."""
        sigma = self.activity_sigma()
        hi = min(self.items, self.max_activity or self.items)
        lo = min(max(1, self.min_activity), hi)
        z = sigma * rng.standard_normal(n)
        total = int(np.clip(total, lo * n, hi * n))

        def counts(mu: float) -> np.ndarray:
            return np.clip(np.rint(np.exp(mu + z)), lo, hi).astype(np.int64)

        a, b = np.log(lo) - 6 * sigma - 1, np.log(hi) + 6 * sigma + 1  # sums: below, above
        for _ in range(60):  # bisection: the sum grows with mu
            mid = (a + b) / 2
            if counts(mid).sum() < total:
                a = mid
            else:
                b = mid
        return counts(b)

    def _draw(self, counts: np.ndarray, seed: int, stream: int) -> sp.csr_matrix:
        """Rows of ``counts`` distinct items each (as far as the rounds get), Zipf-like."""
        m = self.items
        rng = np.random.default_rng([seed, stream])
        cdf = np.cumsum((np.arange(m) + 1.0) ** -ZIPF_EXPONENT)
        cdf /= cdf[-1]
        columns = rng.permutation(m)  # popularity rank -> column
        bounds = np.searchsorted(np.cumsum(counts), np.arange(0, counts.sum(), _CHUNK_CLICKS), "right")
        starts = [0, *sorted({int(b) for b in bounds[1:] if 0 < b < len(counts)}), len(counts)]

        def chunk(i: int, r0: int, r1: int) -> tuple[np.ndarray, np.ndarray]:
            crng = np.random.default_rng([seed, stream, i])
            want = counts[r0:r1]
            keys = np.zeros(0, dtype=np.int64)  # row * m + popularity rank, distinct
            need = want
            for rnd in range(_ROUNDS):
                rows = np.repeat(np.arange(r1 - r0, dtype=np.int64), need)
                u = crng.random(len(rows))
                ranks = np.searchsorted(cdf, u) if rnd < _ZIPF_ROUNDS else (u * m).astype(np.int64)
                redo = need[keys // m] > 0  # only the rows still short are deduplicated again
                fresh = _distinct(np.concatenate([keys[redo], rows * m + np.minimum(ranks, m - 1)]))
                keys = np.concatenate([keys[~redo], fresh])
                need = want - np.bincount(keys // m, minlength=r1 - r0)
                if not need.any():
                    break
            return keys // m + r0, columns[keys % m]

        # each chunk has its own seeded stream: the same matrix whatever the threads (NumPy's
        # sampling, sorting and searching release the GIL, so the chunks run side by side)
        from concurrent.futures import ThreadPoolExecutor

        from .resources import available_cpus

        spans = list(zip(starts[:-1], starts[1:], strict=True))
        with ThreadPoolExecutor(max(1, min(available_cpus(), len(spans)))) as pool:
            parts = list(pool.map(lambda a: chunk(a[0], *a[1]), enumerate(spans)))
        rows = np.concatenate([p[0] for p in parts])
        cols = np.concatenate([p[1] for p in parts])
        x = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(len(counts), m))
        x.sort_indices()
        return x


def _distinct(keys: np.ndarray) -> np.ndarray:
    """The distinct values of ``keys``, sorted (a sort, faster here than ``np.unique``)."""
    keys = np.sort(keys)
    return keys[np.concatenate(([True], keys[1:] != keys[:-1]))] if len(keys) else keys


def _hold_out(x: sp.csr_matrix, rng: np.random.Generator) -> HeldOut:
    """floor(20%) of each row with >= 5 items, chosen at random, to the holdout."""
    lens = np.diff(x.indptr)
    row = np.repeat(np.arange(x.shape[0]), lens)
    order = np.lexsort((rng.random(x.nnz), row))  # random order within each row
    rank = np.empty(x.nnz, dtype=np.int64)
    rank[order] = np.arange(x.nnz) - x.indptr[row[order]]
    n_hold = np.where(lens >= HOLDOUT_MIN, np.floor(HOLDOUT_FRACTION * lens), 0).astype(np.int64)
    hold = rank < n_hold[row]
    coo = x.tocoo()
    part = [sp.csr_matrix((coo.data[s], (coo.row[s], coo.col[s])), shape=x.shape) for s in (~hold, hold)]
    return HeldOut(part[0], part[1])


#: Every :func:`timed` measurement of this process: (median, min, max) seconds. A plan
#: reads the ones taken while it was made, to say how noisy its own timings were.
TIMINGS: list[tuple[float, float, float]] = []


def timed(fn: Callable[[], Any], repeats: int = 3) -> float:
    """Median wall time of ``fn`` over ``repeats`` calls, after one warm-up call (recorded
    in :data:`TIMINGS` with the fastest and slowest call)."""
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    median = statistics.median(times)
    TIMINGS.append((median, min(times), max(times)))
    return median


def timing_spread(since: int = 0) -> tuple[int, float | None]:
    """(how many timings, the largest (slowest - fastest) / median among them) of the
    timings recorded from index ``since`` on; None when none was repeated."""
    spreads = [(hi - lo) / med for med, lo, hi in TIMINGS[since:] if med > 0]
    return len(TIMINGS) - since, (max(spreads) if spreads else None)


def user_sample(x: sp.csr_matrix, fraction: float, minimum: int, seed: int = 0) -> sp.csr_matrix:
    """A random sample of the rows of ``x`` (at least ``minimum`` rows, at most all)."""
    n = x.shape[0]
    k = int(min(n, max(minimum, round(fraction * n))))
    rows = np.sort(np.random.default_rng(seed).choice(n, size=k, replace=False))
    return sp.csr_matrix(x[rows])


def validation_seconds(model: Any, shape: DataShape, users: int = 1000) -> float:
    """Seconds of one validation NDCG@100 pass over ``shape``'s validation users, timed on
    up to ``users`` of them (:meth:`DataShape.valid_part`) and scaled to all."""
    n = shape.valid_users
    if n == 0:
        return 0.0
    k = min(n, users)
    sub = shape.valid_part(max_users=k)
    t = time.perf_counter()
    validation_ndcg(model.score, sub)
    return (time.perf_counter() - t) * n / k
