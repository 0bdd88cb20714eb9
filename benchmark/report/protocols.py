"""Ranking across protocols: does the order of the models survive a change of protocol?

For a dataset with test results under two or more evaluation protocols (``--protocol``;
each is its own Table 2, see :mod:`benchmark.report.load`) and at least three models in
common (a test NDCG@100 under every one of them), the report adds a section of its own:

- each model's rank per protocol (1 = best test NDCG@100, ties averaged), on the rows the
  Table 2 blocks show (the dataset's main split, the full run before a capped one, the
  seed mean for several seeds: :func:`benchmark.report.ranks.model_entries`);
- Kendall's tau-b (``scipy.stats.kendalltau``) between each pair of protocols' ranks, with
  its two-sided p-value;
- the pairs of models whose order flips between two protocols (A above B under one, below
  under the other; a tie is no flip), each with a two-sided paired t-test of A against B on
  the per-user test NDCG@100 within each protocol (users matched as in
  :mod:`benchmark.report.stats`), Holm-adjusted over the flips of that pair of protocols,
  separately per protocol; "n/a" when per-user arrays are missing;
- a bump chart of the ranks (x: protocol, y: rank), one line per model in its fixed colour.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from ..results import row_label
from ._plotting import FigureInfo, Look, legend_outside, new_figure
from .cells import DASH, Cell, Row, Table, fmt, fmt_diff, fmt_p, slug
from .load import ReportData, number, protocol_name
from .ranks import model_entries, rank_values
from .stats import ALPHA, MARK_T, holm, match_users, paired_tests

SECTION = "Ranking across protocols"
METRIC = "ndcg@100"
#: Fewest models in common for the section (fewer give no ranking worth a tau).
MIN_MODELS = 3


@dataclass
class Flip:
    """Models ``above`` and ``below`` (by test NDCG@100 under ``first``) swap under ``second``.

    ``diff``, ``p``, ``p_holm``: per protocol, the table means' difference above - below, and
    the paired t-test's raw and Holm-adjusted p (None without per-user arrays).
    """

    above: str
    below: str
    first: str
    second: str
    diff: dict[str, float] = field(default_factory=dict)
    p: dict[str, float | None] = field(default_factory=dict)
    p_holm: dict[str, float | None] = field(default_factory=dict)


@dataclass
class ProtocolRanking:
    """One dataset's models ranked under each of its protocols.

    Attributes:
        dataset: the recorded dataset name ("ml-100k").
        protocols: (P,) the protocols, strong first; ``labels`` their dataset labels.
        models: (k,) the models with a test NDCG@100 under every protocol, sorted by id.
        names: model -> its display name.
        values: (P, k) test NDCG@100; ``ranks``: (P, k) ranks per protocol (1 = best).
        taus: (first, second, tau-b, p) per pair of protocols.
        flips: the flipped pairs of every pair of protocols.
        left_out: models with a test row under some protocols only.
    """

    dataset: str
    protocols: list[str]
    labels: list[str]
    models: list[str]
    names: dict[str, str]
    values: np.ndarray
    ranks: np.ndarray
    taus: list[tuple[str, str, float, float]] = field(default_factory=list)
    flips: list[Flip] = field(default_factory=list)
    left_out: list[str] = field(default_factory=list)

    def rank(self, protocol: str, model: str) -> float:
        return float(self.ranks[self.protocols.index(protocol), self.models.index(model)])


def protocol_rankings(data: ReportData, metric: str = METRIC) -> list[ProtocolRanking]:
    """The ranking of every dataset with test rows under 2+ protocols and 3+ common models."""
    by_base: dict[str, list[str]] = {}
    for d in data.datasets():
        if data.part_rows(d, "test"):
            by_base.setdefault(data.base(d), []).append(d)
    out = []
    for base, labels in by_base.items():
        if len(labels) < 2:
            continue
        entries = [model_entries(data, d) for d in labels]
        scored = [{m for m, r in e.items() if number(r["metrics"].get(metric)) is not None} for e in entries]
        models = sorted(set.intersection(*scored))
        if len(models) < MIN_MODELS:
            continue
        values = np.array([[number(e[m]["metrics"].get(metric)) for m in models] for e in entries])
        protocols = [data.protocol(d) for d in labels]
        pr = ProtocolRanking(base, protocols, labels, models,
                             {m: row_label(entries[0][m], data.names) for m in models},
                             values, rank_values(values), left_out=sorted(set.union(*scored) - set(models)))
        for i, j in combinations(range(len(labels)), 2):
            res = stats.kendalltau(pr.ranks[i], pr.ranks[j])  # variant "b", two-sided
            pr.taus.append((protocols[i], protocols[j], float(res.statistic), float(res.pvalue)))
            pr.flips += _flips(data, pr, entries, i, j, metric)
        out.append(pr)
    return out


def _flips(data: ReportData, pr: ProtocolRanking, entries: list[dict[str, dict[str, Any]]],
           i: int, j: int, metric: str) -> list[Flip]:
    """The pairs whose order differs between protocols i and j, tested and Holm-adjusted."""
    flips = []
    for a, b in combinations(range(len(pr.models)), 2):
        di, dj = pr.values[i, a] - pr.values[i, b], pr.values[j, a] - pr.values[j, b]
        if di * dj >= 0:
            continue
        hi, lo = (pr.models[a], pr.models[b]) if di > 0 else (pr.models[b], pr.models[a])
        f = Flip(hi, lo, pr.protocols[i], pr.protocols[j])
        for k in (i, j):
            e = entries[k]
            f.diff[pr.protocols[k]] = float(number(e[hi]["metrics"][metric]) - number(e[lo]["metrics"][metric]))
            f.p[pr.protocols[k]] = _paired_p(data, e[hi], e[lo], metric)
        flips.append(f)
    for k in (i, j):  # Holm over this pair's flips, per protocol
        tested = [f for f in flips if f.p[pr.protocols[k]] is not None]
        for f, adj in zip(tested, holm([f.p[pr.protocols[k]] for f in tested]), strict=True):
            f.p_holm[pr.protocols[k]] = float(adj)
    return flips


def _paired_p(data: ReportData, x: dict[str, Any], y: dict[str, Any], metric: str) -> float | None:
    """Two-sided paired t-test p of x's per-user metric against y's (None: no arrays)."""
    ax, ay = data.arrays(x), data.arrays(y)
    if not ax or not ay or any(metric not in a or "users" not in a for a in (ax, ay)):
        return None
    ix, iy = match_users(ax["users"], ay["users"])
    p = paired_tests(np.asarray(ax[metric])[ix], np.asarray(ay[metric])[iy]).t_p
    return p if math.isfinite(p) else None


# --- tables ----------------------------------------------------------------------------------------
def protocol_tables(rankings: list[ProtocolRanking]) -> list[Table]:
    """Per dataset: ranks per protocol, Kendall's tau per pair, the flips per pair."""
    tables = []
    for pr in rankings:
        tables += [_ranks_table(pr), _tau_table(pr)]
        for first, second, _, _ in pr.taus:
            flips = [f for f in pr.flips if (f.first, f.second) == (first, second)]
            if flips:
                tables.append(_flips_table(pr, first, second, flips))
    return tables


def _ranks_table(pr: ProtocolRanking) -> Table:
    order = sorted(range(len(pr.models)), key=lambda j: (*pr.ranks[:, j], pr.models[j]))
    rows = [Row([Cell(pr.names[pr.models[j]])]
                + [Cell(f"{pr.ranks[i, j]:g}", sub=f"({fmt(pr.values[i, j])})", bold=pr.ranks[i, j] == 1)
                   for i in range(len(pr.protocols))]) for j in order]
    notes = [f"Rank of each of the {len(pr.models)} models with a test NDCG@100 under every "
             f"protocol (1 = best, ties averaged; in parentheses the test NDCG@100 of its Table 2 "
             f"row, the seed mean for several seeds); rank 1 in bold. The figure "
             f"\"Ranks across protocols ({pr.dataset})\" draws them."]
    if pr.left_out:
        notes.append("Not ranked (no test NDCG@100 under every protocol): " + ", ".join(pr.left_out) + ".")
    return Table(key=f"protocol-ranks-{slug(pr.dataset)}", title=f"Rank per protocol: {pr.dataset}",
                 header=["Model"] + [protocol_name(p) for p in pr.protocols], rows=rows,
                 caption=f"{pr.dataset} under {', '.join(protocol_name(p) for p in pr.protocols)}; "
                         f"test NDCG@100.", notes=notes, group=SECTION)


def _tau_table(pr: ProtocolRanking) -> Table:
    n_pairs = len(pr.models) * (len(pr.models) - 1) // 2
    rows = []
    for first, second, tau, p in pr.taus:
        n = sum((f.first, f.second) == (first, second) for f in pr.flips)
        rows.append(Row([Cell(f"{protocol_name(first)} vs {protocol_name(second)}"),
                         Cell(f"{tau:+.3f}" if math.isfinite(tau) else DASH), Cell(fmt_p(p)),
                         Cell(f"{n} of {n_pairs}")]))
    notes = [f"Kendall's tau-b (scipy.stats.kendalltau) between the two protocols' ranks of the "
             f"same {len(pr.models)} models, with its two-sided p-value: 1 = the same order, -1 = "
             f"reversed. Pairs flipped: pairs of models whose order differs (a tie is no flip)."]
    return Table(key=f"protocol-kendall-{slug(pr.dataset)}",
                 title=f"Kendall's tau between protocols: {pr.dataset}",
                 header=["Protocols", "Kendall's tau-b", "p", "Pairs flipped"], rows=rows,
                 notes=notes, group=SECTION)


def _flips_table(pr: ProtocolRanking, first: str, second: str, flips: list[Flip]) -> Table:
    rows = [Row(_flip_cells(pr, f, first, second)) for f in flips]
    a, b = protocol_name(first), protocol_name(second)
    notes = [f"A vs B: A has the higher test NDCG@100 under {a}, the lower under {b}. Δ = A - B "
             f"(the Table 2 means). p: two-sided paired t-test of A against B on the per-user test "
             f"NDCG@100 of the users both rows evaluated under that protocol (each user's mean "
             f"over the seeds for several seeds); in parentheses Holm-adjusted over the "
             f"{len(flips)} flipped pair{'s' * (len(flips) > 1)} of {a} vs {b}, per protocol; {MARK_T}: adjusted p < "
             f"{ALPHA}. n/a: per-user arrays missing."]
    return Table(key=f"protocol-flips-{slug(pr.dataset)}-{slug(first)}-{slug(second)}",
                 title=f"Order flips, {a} vs {b}: {pr.dataset}",
                 header=["Pair (A vs B)", f"Δ, {first}", f"t-test p (Holm), {first}",
                         f"Δ, {second}", f"t-test p (Holm), {second}"],
                 rows=rows, notes=notes, group=SECTION)


def _flip_cells(pr: ProtocolRanking, f: Flip, first: str, second: str) -> list[Cell]:
    cells = [Cell(f"{pr.names[f.above]} vs {pr.names[f.below]}")]
    for p in (first, second):
        adj = f.p_holm.get(p)
        cells += [Cell(fmt_diff(f.diff[p])),
                  Cell(fmt_p(f.p[p]), sub=f"({fmt_p(adj)})" if adj is not None else "",
                       marks=MARK_T if adj is not None and adj < ALPHA else "")]
    return cells


# --- figure ----------------------------------------------------------------------------------------
def bump_figure(pr: ProtocolRanking, out: Path, look: Look) -> FigureInfo:
    """x: protocol, y: rank (1 at the top), one line per model in its fixed colour."""
    k, n_p = len(pr.models), len(pr.protocols)
    fig = new_figure(2.6 + 1.5 * n_p, 1.6 + 0.4 * k)
    ax = fig.add_subplot()
    x = np.arange(n_p)
    for j in sorted(range(k), key=lambda j: (pr.ranks[0, j], pr.models[j])):
        m = pr.models[j]
        ax.plot(x, pr.ranks[:, j], color=look.color(m), marker=look.marker(m), ms=6, lw=1.6,
                label=look.model_name(m))
    ax.set_xticks(x, [protocol_name(p) for p in pr.protocols])
    ax.set_yticks(np.arange(1, k + 1))
    ax.set_ylim(k + 0.5, 0.5)  # rank 1 at the top
    ax.set_xlim(-0.3, n_p - 0.7)
    ax.set_xlabel("protocol")
    ax.set_ylabel("rank (1 = best)")
    ax.set_title(f"Rank on test NDCG@100 per protocol: {pr.dataset}")
    legend_outside(fig, ax)
    taus = "; ".join(f"{protocol_name(a)} vs {protocol_name(b)}: tau = {t:.3f} (p = {fmt_p(p)})"
                     for a, b, t, p in pr.taus)
    caption = (f"Rank of each model on test NDCG@100 under each protocol on {pr.dataset} (1 = best, "
               f"ties averaged); crossing lines are flipped pairs. Kendall's tau-b: {taus}.")
    return FigureInfo.saved(fig, out, f"protocols-{slug(pr.dataset)}",
                            f"Ranks across protocols ({pr.dataset})", caption, pr.dataset)


def protocol_figures(data: ReportData, rankings: list[ProtocolRanking], out: Path) -> list[FigureInfo]:
    """The bump chart of every ranking (a failure is a warning, the others still drawn)."""
    look, figs = Look.of(data), []
    for pr in rankings:
        try:
            figs.append(bump_figure(pr, out, look))
        except Exception as exc:
            data.notes.warn(f"figure 'ranks across protocols' for {pr.dataset} could not be drawn: "
                            f"{type(exc).__name__}: {exc}")
    return figs
