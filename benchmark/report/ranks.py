"""Models compared across datasets: average ranks, the Friedman test, Nemenyi's critical
difference (Demšar, "Statistical Comparisons of Classifiers over Multiple Data Sets",
JMLR 7, 2006, sections 3.2.2 and 3.2.4).

With k models on N datasets, r_ij is the rank of model j on dataset i (1 = best metric,
ties get the average rank) and R_j = mean_i r_ij its average rank. The Friedman statistic
(``scipy.stats.friedmanchisquare``) tests whether all R_j are equal. Nemenyi's post-hoc
test calls two models different when their average ranks differ by at least

    CD = q_alpha * sqrt(k (k + 1) / (6 N)),

q_alpha being the studentized range statistic (infinite degrees of freedom) divided by
sqrt(2): Demšar's Table 5(a) gives 1.960, 2.343, 2.569, 2.728, 2.850, 2.949, 3.031, 3.102,
3.164 for k = 2..10 at alpha = 0.05 (``scipy.stats.studentized_range``).

Only models with a test row on every dataset of the comparison take part (the Friedman
test needs complete blocks); a dataset contributes its main split and, per model, its
full (not capped) run when it has one. Datasets are compared within one evaluation protocol
(``--protocol``), never protocols as if they were datasets: :func:`rank_analyses` gives one
analysis per protocol.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats

from ..results import capped_epochs
from .load import STRONG, TABLE_METRICS, ReportData, number

#: Fewest datasets for a rank comparison (the issue's and Demšar's practice: N >= 3).
MIN_DATASETS = 3


def nemenyi_q(k: int, alpha: float = 0.05) -> float:
    """q_alpha of the Nemenyi test for k models: studentized range(1 - alpha; k, inf) / sqrt(2)."""
    if k < 2:
        raise ValueError(f"the Nemenyi test needs at least 2 models, got {k}")
    return float(stats.studentized_range.ppf(1.0 - alpha, k, np.inf) / math.sqrt(2.0))


def critical_difference(k: int, n: int, alpha: float = 0.05) -> float:
    """Nemenyi's critical difference of average ranks: q_alpha sqrt(k (k + 1) / (6 N))."""
    if n < 1:
        raise ValueError(f"the critical difference needs at least 1 dataset, got {n}")
    return nemenyi_q(k, alpha) * math.sqrt(k * (k + 1) / (6.0 * n))


@dataclass
class RankResult:
    """Average ranks of the models on one metric across datasets.

    Attributes:
        metric: e.g. ``ndcg@100``.
        models: the k models compared (on every dataset).
        datasets: the N datasets.
        values: (N, k) the metric, dataset by model.
        ranks: (N, k) ranks within each dataset (1 = best, ties averaged).
        avg_ranks: (k,) mean rank per model.
        friedman_stat, friedman_p: the Friedman test (NaN with fewer than 3 models).
        cd: Nemenyi's critical difference at ``alpha``.
        alpha: the level.
    """

    metric: str
    models: list[str]
    datasets: list[str]
    values: np.ndarray
    ranks: np.ndarray
    avg_ranks: np.ndarray
    friedman_stat: float
    friedman_p: float
    cd: float
    alpha: float = 0.05

    def cliques(self) -> list[list[str]]:
        """Maximal groups of models whose average ranks all lie within the CD (the bars
        of the CD diagram), best first; single models are left out."""
        order = np.argsort(self.avg_ranks, kind="stable")
        r = self.avg_ranks[order]
        out: list[tuple[int, int]] = []
        for i in range(len(r)):
            j = i
            while j + 1 < len(r) and r[j + 1] - r[i] < self.cd:
                j += 1
            if j > i and not any(a <= i and j <= b for a, b in out):
                out.append((i, j))
        return [[self.models[order[x]] for x in range(a, b + 1)] for a, b in out]


@dataclass
class RankAnalysis:
    results: list[RankResult] = field(default_factory=list)
    excluded: list[str] = field(default_factory=list)  # models not on every dataset
    protocol: str = STRONG  # the protocol of every dataset compared


def rank_values(values: np.ndarray) -> np.ndarray:
    """(N, k) metric values -> ranks per row, 1 for the largest, ties averaged."""
    return np.vstack([stats.rankdata(-row, method="average") for row in values])


def model_entries(data: ReportData, dataset: str, part: str = "test") -> dict[str, dict[str, Any]]:
    """Per model, its row on the dataset's main split: the full run when there is one,
    else its capped run (one row per model, for figures and ranks)."""
    main = data.main_split(dataset, part)
    out: dict[str, dict[str, Any]] = {}
    for r in data.part_rows(dataset, part):
        if r["split_hash"] != main:
            continue
        old = out.get(r["model"])
        if old is None or (capped_epochs(old) is not None and capped_epochs(r) is None):
            out[r["model"]] = r
    return out


def rank_analyses(data: ReportData, metrics: tuple[str, ...] = TABLE_METRICS,
                  alpha: float = 0.05) -> list[RankAnalysis]:
    """:func:`rank_analysis` of each protocol that has enough datasets, strong first."""
    out = [rank_analysis(data, metrics, alpha, protocol=p) for p in data.protocols()]
    return [r for r in out if r is not None]


def rank_analysis(
    data: ReportData, metrics: tuple[str, ...] = TABLE_METRICS, alpha: float = 0.05,
    protocol: str = STRONG,
) -> RankAnalysis | None:
    """Average ranks, Friedman and Nemenyi per metric over the datasets of one protocol
    (the paper's strong one by default); None with fewer than 3 datasets."""
    datasets = [d for d in data.datasets(protocol) if data.part_rows(d, "test")]
    if len(datasets) < MIN_DATASETS:
        return None
    entries = {d: model_entries(data, d) for d in datasets}
    every = set.intersection(*(set(e) for e in entries.values()))
    seen = set.union(*(set(e) for e in entries.values()))
    out = RankAnalysis(excluded=sorted(seen - every), protocol=protocol)
    for m in metrics:
        models = sorted(
            x for x in every if all(number(entries[d][x]["metrics"].get(m)) is not None for d in datasets)
        )
        if len(models) < 2:
            continue
        values = np.array([[number(entries[d][x]["metrics"].get(m)) for x in models] for d in datasets])
        ranks = rank_values(values)
        f_stat = f_p = float("nan")
        if len(models) >= 3:
            res = stats.friedmanchisquare(*values.T)
            f_stat, f_p = float(res.statistic), float(res.pvalue)
        out.results.append(
            RankResult(
                metric=m, models=models, datasets=datasets, values=values, ranks=ranks,
                avg_ranks=ranks.mean(axis=0), friedman_stat=f_stat, friedman_p=f_p,
                cd=critical_difference(len(models), len(datasets), alpha), alpha=alpha,
            )
        )
    return out if out.results else None
