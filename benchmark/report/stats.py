"""Paired significance tests of every model against a reference model on per-user metrics.

The reference (``--reference MODEL``; default: ``multvae`` when the dataset has it, else
the model with the best validation NDCG@100 on that dataset) is chosen per dataset.
Pairing: a model's test row is paired with the reference's test row of the same dataset
and the SAME split hash, user by user, over the evaluated users both rows share (matched
by their ``users`` arrays, the row indices of the held-out users). A row averaged over
seeds is paired through each user's mean over the seeds. Rows on another split, or
without per-user arrays, are not paired and the report says so. Marks carry the
direction: ``▲`` significantly better than the reference, ``▼`` significantly worse.

Tests: the paired t-test (``scipy.stats.ttest_rel``) and the Wilcoxon signed-rank test
(``scipy.stats.wilcoxon``, zero differences dropped), both two-sided. Holm's step-down
correction is applied within one dataset and split, separately for each test, across all
(model, metric) comparisons of that family. Marks (``▲``/``▼`` with ``†``) follow the
t-test alone; the Wilcoxon test is reported beside it as a check and sets no mark. Each
comparison also carries its 95% intervals (paired t and paired bootstrap over users),
Cohen's d_z and, with several seeds on both sides, the seed-to-seed sd of the difference
(:mod:`benchmark.report.effects`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats

from .effects import Effect, SeedRuns, effects, seed_sd
from .load import BASELINE, TABLE_METRICS, ReportData, number

ALPHA = 0.05
MARK_T = "\u2020"  # dagger: paired t-test, Holm-adjusted p < ALPHA
MARK_W = "\u2021"  # double dagger: Wilcoxon signed-rank, Holm-adjusted p < ALPHA
MARK_UP = "\u25b2"  # significantly better than the reference (mean difference > 0)
MARK_DOWN = "\u25bc"  # significantly worse than the reference


def holm(pvalues: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjusted p-values (NaN counts as 1).

    Args:
        pvalues: (m,) raw p-values of one family of tests.

    Returns:
        (m,) adjusted p-values, in the input order: sorted ascending p_(1..m), the i-th is
        ``max_{j<=i} min(1, (m - j + 1) p_(j))``.
    """
    p = np.asarray(pvalues, dtype=np.float64)
    p = np.where(np.isnan(p), 1.0, p)
    m = len(p)
    if m == 0:
        return p
    order = np.argsort(p, kind="stable")
    scaled = np.minimum(1.0, (m - np.arange(m)) * p[order])
    adj = np.maximum.accumulate(scaled)
    out = np.empty(m)
    out[order] = adj
    return out


def match_users(a_users: np.ndarray, b_users: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positions of the common users in two ``users`` arrays.

    Args:
        a_users: (n_a,) user row indices of one row's per-user arrays.
        b_users: (n_b,) the same for the other row.

    Returns:
        (ia, ib): (n_common,) positions so that ``a_users[ia] == b_users[ib]``, by user.
    """
    _, ia, ib = np.intersect1d(np.asarray(a_users), np.asarray(b_users), return_indices=True)
    return ia, ib


@dataclass
class PairedResult:
    """Paired tests of ``x - y`` over users: t-test and Wilcoxon signed-rank."""

    n: int
    mean_diff: float
    t_stat: float
    t_p: float
    w_stat: float
    w_p: float


def paired_tests(x: np.ndarray, y: np.ndarray) -> PairedResult:
    """Two-sided paired t-test and Wilcoxon signed-rank test of x against y.

    Args:
        x: (n,) per-user metric of a model.
        y: (n,) per-user metric of the baseline for the same users, in the same order.

    Returns:
        the statistics and raw p-values; p is NaN when a test is undefined (fewer than 2
        users, or a zero-variance difference for the t-test) and 1.0 for Wilcoxon when
        every difference is zero.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    n = int(len(x))
    d = x - y
    mean_diff = float(d.mean()) if n else float("nan")
    t_stat = t_p = w_stat = w_p = float("nan")
    if n >= 2:
        with np.errstate(all="ignore"):
            t = stats.ttest_rel(x, y)
        t_stat, t_p = float(t.statistic), float(t.pvalue)
        if not np.any(d != 0):
            w_stat, w_p = 0.0, 1.0
        else:
            try:
                w = stats.wilcoxon(x, y)
                w_stat, w_p = float(w.statistic), float(w.pvalue)
            except ValueError:
                pass
    return PairedResult(n, mean_diff, t_stat, t_p, w_stat, w_p)


@dataclass
class Comparison:
    """One model x metric against the baseline on one dataset and split."""

    dataset: str
    split_hash: str
    model: str
    label: str
    metric: str
    row_id: str
    baseline_id: str | None
    paired: bool
    reason: str = ""
    result: PairedResult | None = None
    t_p_holm: float = float("nan")
    w_p_holm: float = float("nan")
    n_model: int = 0
    n_baseline: int = 0
    effect: Effect | None = None
    seeds: tuple[int, int] = (1, 1)  # seeds of the model's row and of the reference's

    @property
    def marks(self) -> str:
        """``▲†`` (better than the reference) or ``▼†`` (worse) when the Holm-adjusted
        t-test p < ALPHA; nothing otherwise, whatever the Wilcoxon test says."""
        if not (self.paired and self.t_p_holm < ALPHA and self.result is not None):
            return ""
        d = self.result.mean_diff
        return (MARK_UP if d > 0 else MARK_DOWN if d < 0 else "") + MARK_T


@dataclass
class Significance:
    """All comparisons of a report, plus lookup of table marks.

    Attributes:
        comparisons: every model x metric against its dataset's reference.
        notes: dataset -> remarks (e.g. no reference row).
        reference: dataset -> the reference model's name.
        reference_ids: dataset -> ids of the reference rows (one per split).
        how: dataset -> how the reference was chosen.
    """

    comparisons: list[Comparison] = field(default_factory=list)
    notes: dict[str, list[str]] = field(default_factory=dict)  # dataset -> remarks
    reference: dict[str, str] = field(default_factory=dict)
    reference_ids: dict[str, set[str]] = field(default_factory=dict)
    how: dict[str, str] = field(default_factory=dict)

    def is_reference(self, row: dict[str, Any]) -> bool:
        return str(row.get("id")) in self.reference_ids.get(row["dataset"], set())

    def marks(self, row: dict[str, Any], metric: str) -> str:
        for c in self.comparisons:
            if c.row_id == str(row.get("id")) and c.metric == metric:
                return c.marks
        return ""

    def for_dataset(self, dataset: str) -> list[Comparison]:
        return [c for c in self.comparisons if c.dataset == dataset]


def choose_reference(
    data: ReportData, dataset: str, requested: str | None, part: str = "test"
) -> tuple[str | None, str]:
    """The reference model of a dataset and how it was chosen.

    ``requested`` when given; else ``multvae`` when the dataset has it; else the model
    whose validation NDCG@100 is best (its test row's validation partner).
    """
    rows = data.part_rows(dataset, part)
    models = {r["model"] for r in rows}
    if requested:
        return requested, "asked for with --reference"
    if BASELINE in models:
        return BASELINE, "the default: the paper's model"
    scored = []
    for r in rows:
        v = data.partner(r, "valid")
        val = number(v["metrics"].get("ndcg@100")) if v else None
        if val is not None:
            scored.append((val, r["model"]))
    if not scored:
        return None, "no validation NDCG@100 to choose a reference by"
    best = max(scored, key=lambda t: (t[0], t[1]))
    return best[1], f"the default without {BASELINE}: the best validation NDCG@100, {best[0]:.4f}"


def _reference_row(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Of a model's rows on one split: the full run (not capped), most seeds, latest."""
    from ..results import capped_epochs

    return max(rows, key=lambda r: (capped_epochs(r) is None, r.get("n_seeds", 1), r["_line"]))


def significance(
    data: ReportData,
    *,
    reference: str | None = None,
    part: str = "test",
    metrics: Sequence[str] = TABLE_METRICS,
) -> Significance:
    """Pair every model with the reference per dataset and split; test; Holm-correct."""
    out = Significance()
    runs = SeedRuns(data)
    for dataset in data.datasets():
        rows = data.part_rows(dataset, part)
        remarks = out.notes.setdefault(dataset, [])
        models = sorted({r["model"] for r in rows})
        if len(rows) <= 1:
            if models:
                data.notes.warn(
                    f"{dataset}: only one model ({models[0]}) has {part} results, so there is "
                    f"nothing to compare it with and no significance test; run more models"
                )
            continue
        ref, how = choose_reference(data, dataset, reference, part)
        if ref is None:
            remarks.append(f"no significance tests on {dataset}: {how}")
            continue
        out.reference[dataset], out.how[dataset] = ref, how
        by_split: dict[str, list[dict[str, Any]]] = {}
        for r in rows:
            if r["model"] == ref:
                by_split.setdefault(r["split_hash"], []).append(r)
        bases = {h: _reference_row(rs) for h, rs in by_split.items()}
        out.reference_ids[dataset] = {str(b.get("id")) for b in bases.values()}
        if not bases:
            remarks.append(
                f"no {ref} {part} row on {dataset}: nothing to test against, so no "
                f"significance marks"
            )
            continue
        for split_hash in data.split_hashes(dataset, part):
            family: list[Comparison] = []
            base = bases.get(split_hash)
            for r in rows:
                if r["split_hash"] != split_hash or (base is not None and r is base):
                    continue
                family += _compare(data, r, base, ref, metrics, runs)
            _holm_family(family)
            out.comparisons += family
    return out


def _compare(
    data: ReportData,
    row: dict[str, Any],
    base: dict[str, Any] | None,
    baseline: str,
    metrics: Sequence[str],
    runs: SeedRuns | None = None,
) -> list[Comparison]:
    common = dict(
        dataset=row["dataset"],
        split_hash=row["split_hash"],
        model=row["model"],
        label=data.label(row),
        row_id=str(row.get("id")),
        baseline_id=str(base.get("id")) if base else None,
    )
    if base is None:
        reason = f"not paired: no {baseline} row on split {row['split_hash'][:8]}"
        return [Comparison(metric=m, paired=False, reason=reason, **common) for m in metrics]
    a, b = data.arrays(row), data.arrays(base)
    if a is None or b is None:
        who = row["model"] if a is None else baseline
        reason = f"not paired: no per-user arrays for {who}"
        return [Comparison(metric=m, paired=False, reason=reason, **common) for m in metrics]
    if "users" not in a or "users" not in b:
        reason = "not paired: per-user arrays lack 'users'"
        return [Comparison(metric=m, paired=False, reason=reason, **common) for m in metrics]
    ia, ib = match_users(a["users"], b["users"])
    out: list[Comparison] = []
    diffs: list[tuple[Comparison, np.ndarray, np.ndarray]] = []
    for m in metrics:
        if m not in a or m not in b:
            out.append(
                Comparison(metric=m, paired=False, reason=f"not paired: no per-user {m}", **common)
            )
            continue
        if len(ia) < 2:
            out.append(
                Comparison(metric=m, paired=False, reason="not paired: fewer than 2 common users", **common)
            )
            continue
        x, y = np.asarray(a[m], dtype=np.float64)[ia], np.asarray(b[m], dtype=np.float64)[ib]
        res = paired_tests(x, y)
        reason = "paired"
        if len(ia) < max(len(a["users"]), len(b["users"])):
            reason = "paired on the common users only"
        out.append(
            Comparison(
                metric=m,
                paired=True,
                reason=reason,
                result=res,
                n_model=len(a["users"]),
                n_baseline=len(b["users"]),
                **common,
            )
        )
        ok = np.isfinite(x) & np.isfinite(y)  # the users paired_tests keeps
        diffs.append((out[-1], (x - y)[ok], np.asarray(a["users"])[ia][ok]))
    _add_effects(diffs, row, base, runs or SeedRuns(data))
    return out


def _add_effects(diffs: list[tuple[Comparison, np.ndarray, np.ndarray]], row: dict[str, Any],
                 base: dict[str, Any], runs: SeedRuns) -> None:
    """Intervals, d_z (one bootstrap for all metrics of the row) and the seed sd."""
    seeds = (int(row.get("n_seeds", 1)), int(base.get("n_seeds", 1)))
    a_runs = runs.arrays(row) if min(seeds) >= 2 else {}
    b_runs = runs.arrays(base) if a_runs else {}
    for (c, _, users), e in zip(diffs, effects([d for _, d, _ in diffs]), strict=True):
        if a_runs and b_runs:
            e.seed_sd, e.n_seeds = seed_sd(a_runs, b_runs, users, c.metric)
        c.effect, c.seeds = e, seeds


def _holm_family(family: list[Comparison]) -> None:
    tested = [c for c in family if c.paired and c.result is not None]
    if not tested:
        return
    t_adj = holm([c.result.t_p for c in tested])
    w_adj = holm([c.result.w_p for c in tested])
    for c, tp, wp in zip(tested, t_adj, w_adj, strict=True):
        c.t_p_holm, c.w_p_holm = float(tp), float(wp)


def activity_edges(fold_in_size: np.ndarray, n_groups: int = 5) -> np.ndarray:
    """Where activity groups start: near-equal groups of users by fold-in size, never
    cutting between two users of the same size (so the groups are disjoint size ranges).

    Args:
        fold_in_size: (n,) fold-in items per evaluated user (integers).
        n_groups: how many groups at most (5: quintiles); fewer when ties leave no cut.

    Returns:
        (g - 1,) increasing integer sizes: group 0 holds sizes below ``edges[0]``, group i
        sizes in ``[edges[i - 1], edges[i] - 1]``, the last sizes from ``edges[-1]`` up.
    """
    s = np.sort(np.rint(np.asarray(fold_in_size, dtype=np.float64)).astype(np.int64))
    n = len(s)
    changes = np.flatnonzero(np.diff(s)) + 1  # positions where a larger size starts
    cuts: list[int] = []
    for k in range(1, n_groups):
        ideal = k * n / n_groups
        free = changes[changes > (cuts[-1] if cuts else 0)]
        if not len(free):
            break
        cuts.append(int(free[np.argmin(np.abs(free - ideal))]))
    return np.unique(s[cuts]) if cuts else np.zeros(0, dtype=np.int64)


def activity_labels(edges: np.ndarray, lowest: int, highest: int) -> list[str]:
    """The integer range of each group: ``["4-14", "15-21", "22-38", ...]``."""
    starts = [int(lowest), *(int(e) for e in edges)]
    ends = [*(int(e) - 1 for e in edges), int(highest)]
    return [f"{a}" if a == b else f"{a}-{b}" for a, b in zip(starts, ends, strict=True)]


def quintile_groups(fold_in_size: np.ndarray, users: np.ndarray, n_groups: int = 5,
                    edges: np.ndarray | None = None) -> list[np.ndarray]:
    """Users in activity groups by fold-in size (least active first), cut at ``edges``
    (default: :func:`activity_edges` of these users), every user of one size in one group.

    Args:
        fold_in_size: (n,) fold-in items per evaluated user.
        users: (n,) their user indices (order within a group: size, then user index).
        n_groups: how many groups at most (5: quintiles), when ``edges`` is None.
        edges: where groups start (the same edges for several models: the same bins).

    Returns:
        ``len(edges) + 1`` arrays of positions into the per-user arrays.
    """
    sizes = np.rint(np.asarray(fold_in_size, dtype=np.float64)).astype(np.int64)
    if edges is None:
        edges = activity_edges(sizes, n_groups)
    order = np.lexsort((np.asarray(users), sizes))
    group = np.searchsorted(np.asarray(edges), sizes[order], side="right")
    return [order[group == g] for g in range(len(edges) + 1)]
