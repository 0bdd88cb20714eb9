"""Effect sizes and 95% intervals of paired per-user differences (the significance table).

For the differences ``d = model - reference`` over the paired users (n of them):

- the paired t interval: ``mean(d) ± t_{0.975, n-1} · sd(d) / √n`` (sd with ddof 1; what
  ``scipy.stats.ttest_rel(...).confidence_interval(0.95)`` gives);
- Cohen's d_z: ``mean(d) / sd(d)`` (ddof 1), the paired-samples effect size;
- the paired bootstrap over users: :data:`RESAMPLES` resamples of the n users with
  replacement, the mean difference of each, and the 2.5th and 97.5th percentiles of those
  means (numpy's default, linear, percentile). The resamples depend on nothing but the seed
  (:data:`SEED`) and n: resample ``b`` is the draws ``b·n .. (b+1)·n - 1`` of
  ``numpy.random.default_rng(SEED).integers(0, n)``, so every model paired on the same
  number of users is resampled with the SAME index sets (models paired on different
  numbers of users, e.g. on their common users only, get the resamples of their own n). The
  draws come in chunks of about :data:`CHUNK_ELEMENTS` indices, so memory stays flat
  whatever the number of users and resamples (10,000 resamples of 50,000 users: a few
  seconds per metric on one core). For small n (resamples × n ≤ :data:`CACHE_ELEMENTS`,
  e.g. 10,000 resamples of up to 209 users) the resamples are kept as a (resamples, n)
  matrix of counts, shared by every model of that n, and the resampled means of all metrics
  of a model are one matrix product;
- with several seeds on both sides, the seed-to-seed standard deviation of the difference:
  per common seed, the mean over the paired users of (model - reference) of that seed's
  run; then the standard deviation of those means (ddof 1). The unit of the interval stays
  the user (each user's mean over the seeds).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
from scipy import stats

from ..results import ResultStore
from .load import ReportData

LEVEL = 0.95
RESAMPLES = 10_000
SEED = 0
CHUNK_ELEMENTS = 1 << 20  # indices drawn at a time (8 MiB of int64), whatever n is
CACHE_ELEMENTS = 1 << 21  # resamples × n up to which the counts are kept (16 MiB of float64)


@dataclass
class Effect:
    """Interval and effect size of one paired difference (NaN where undefined)."""

    t_low: float = float("nan")
    t_high: float = float("nan")
    boot_low: float = float("nan")
    boot_high: float = float("nan")
    d_z: float = float("nan")
    seed_sd: float = float("nan")  # seed-to-seed sd of the mean difference
    n_seeds: int = 0  # seeds common to both rows (the seed sd needs 2 or more)


def t_interval(d: np.ndarray, level: float = LEVEL) -> tuple[float, float]:
    """The paired t interval of ``mean(d)``; NaNs with fewer than 2 values."""
    d = np.asarray(d, dtype=np.float64)
    n = len(d)
    if n < 2:
        return float("nan"), float("nan")
    m = float(d.mean())
    half = float(stats.t.ppf(0.5 + level / 2, n - 1)) * float(d.std(ddof=1)) / np.sqrt(n)
    return m - half, m + half


def cohens_dz(d: np.ndarray) -> float:
    """Cohen's d_z = mean(d) / sd(d) (ddof 1); NaN with fewer than 2 values or sd 0."""
    d = np.asarray(d, dtype=np.float64)
    if len(d) < 2:
        return float("nan")
    sd = float(d.std(ddof=1))
    return float(d.mean()) / sd if sd > 0 else float("nan")


def resample_indices(n: int, resamples: int = RESAMPLES, seed: int = SEED) -> Iterator[np.ndarray]:
    """The bootstrap resamples of n users, in order, as (chunk, n) matrices of user
    positions (row b: the users drawn into resample b), about :data:`CHUNK_ELEMENTS` at a
    time. Where the chunks are cut does not change the draws."""
    rng = np.random.default_rng(seed)
    step = int(min(resamples, max(1, CHUNK_ELEMENTS // n)))
    for start in range(0, resamples, step):
        yield rng.integers(0, n, size=(min(step, resamples - start), n))


@lru_cache(maxsize=2)
def resample_counts(n: int, resamples: int = RESAMPLES, seed: int = SEED) -> np.ndarray:
    """(resamples, n) how often each user is drawn into each resample (float64, read-only),
    for a small ``resamples × n``: kept, and shared by every model paired on n users."""
    out = np.concatenate([np.bincount((idx + (np.arange(len(idx)) * n)[:, None]).ravel(),
                                      minlength=idx.size).reshape(idx.shape)
                          for idx in resample_indices(n, resamples, seed)]).astype(np.float64)
    out.flags.writeable = False
    return out


def bootstrap_means(diffs: np.ndarray, resamples: int = RESAMPLES, seed: int = SEED) -> np.ndarray:
    """Resampled means of the columns of ``diffs``.

    Args:
        diffs: (n, k) paired differences, one column per metric (a (n,) vector is one column).

    Returns:
        (resamples, k) the mean of each column in each resample (same resamples for all).
    """
    d = np.asarray(diffs, dtype=np.float64)
    d = d[:, None] if d.ndim == 1 else d
    n = d.shape[0]
    if n * resamples <= CACHE_ELEMENTS:  # one small matrix product
        return resample_counts(n, resamples, seed) @ d / n
    cols = [np.ascontiguousarray(d[:, j]) for j in range(d.shape[1])]
    return np.concatenate([np.column_stack([c[idx].mean(axis=1) for c in cols])
                           for idx in resample_indices(n, resamples, seed)])


def bootstrap_intervals(diffs: np.ndarray, level: float = LEVEL, resamples: int = RESAMPLES,
                        seed: int = SEED) -> np.ndarray:
    """(k, 2) percentile intervals of the mean of each column of ``diffs`` (n, k)."""
    d = np.asarray(diffs, dtype=np.float64)
    d = d[:, None] if d.ndim == 1 else d
    if d.shape[0] < 2:
        return np.full((d.shape[1], 2), np.nan)
    tail = 100 * (1 - level) / 2
    return np.percentile(bootstrap_means(d, resamples, seed), [tail, 100 - tail], axis=0).T


def effects(diffs: Sequence[np.ndarray]) -> list[Effect]:
    """The :class:`Effect` of each difference vector (one per metric of a model). Vectors of
    the same length are bootstrapped together, from the same resamples."""
    out = [Effect(*t_interval(d), d_z=cohens_dz(d)) for d in diffs]
    by_n: dict[int, list[int]] = {}
    for i, d in enumerate(diffs):
        by_n.setdefault(len(d), []).append(i)
    for n, which in by_n.items():
        if n < 2:
            continue
        ci = bootstrap_intervals(np.column_stack([np.asarray(diffs[i], dtype=np.float64) for i in which]))
        for i, (lo, hi) in zip(which, ci, strict=True):
            out[i].boot_low, out[i].boot_high = float(lo), float(hi)
    return out


# --- several seeds --------------------------------------------------------------------------
class SeedRuns:
    """The per-seed runs behind rows averaged over seeds (read once, when first needed)."""

    def __init__(self, data: ReportData) -> None:
        self.data = data
        self._by_id: dict[str, dict[str, Any]] | None = None

    def arrays(self, row: dict[str, Any]) -> dict[Any, dict[str, np.ndarray]]:
        """seed -> per-user arrays of each seed run of ``row``; empty for a one-seed row or
        when a seed run or its arrays cannot be found."""
        ids = row.get("member_ids") or []
        if row.get("n_seeds", 1) < 2 or len(ids) < 2:
            return {}
        if self._by_id is None:
            self._by_id = {str(r.get("id")): r for r in ResultStore(self.data.results_dir).rows(warn=False)}
        out = {}
        for i in ids:
            run = self._by_id.get(str(i))
            a = self.data.arrays(run) if run is not None and "model" in run else None
            if a is None or "users" not in a:
                return {}
            out[run.get("seed")] = a
        return out


def seed_sd(a_runs: dict[Any, dict[str, np.ndarray]], b_runs: dict[Any, dict[str, np.ndarray]],
            users: np.ndarray, metric: str) -> tuple[float, int]:
    """Seed-to-seed sd (ddof 1) of the mean difference over ``users``, over the seeds both
    sides ran, and how many those are; NaN with fewer than 2 common seeds."""
    common = sorted(set(a_runs) & set(b_runs), key=lambda s: (s is None, str(s)))
    means = []
    for s in common:
        a, b = a_runs[s], b_runs[s]
        if metric not in a or metric not in b:
            return float("nan"), 0
        pa, pb = _positions(a["users"], users), _positions(b["users"], users)
        if pa is None or pb is None:
            return float("nan"), 0
        means.append(float(np.mean(np.asarray(a[metric], dtype=np.float64)[pa]
                                   - np.asarray(b[metric], dtype=np.float64)[pb])))
    if len(means) < 2:
        return float("nan"), len(means)
    return float(np.std(means, ddof=1)), len(means)


def _positions(users: np.ndarray, wanted: np.ndarray) -> np.ndarray | None:
    """Positions of ``wanted`` in ``users``; None when one is missing."""
    users = np.asarray(users)
    if not len(users):
        return None
    order = np.argsort(users, kind="stable")
    pos = np.minimum(np.searchsorted(users[order], wanted), len(users) - 1)
    return order[pos] if np.array_equal(users[order][pos], wanted) else None
