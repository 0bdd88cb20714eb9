"""The figures with paired significance marks: NDCG@100 by user activity (the paper's
Figure 3) and the likelihood comparison (its Table 3 models).

Marks are two-sided paired t-tests (``scipy.stats.ttest_rel``) on the same test users,
Holm-adjusted over all the comparisons one figure marks: ``▲`` significantly better,
``▼`` significantly worse than what the model is compared with.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from ._plotting import (
    BUILTIN_STYLES,
    FAMILIES,
    FigureInfo,
    Look,
    legend_outside,
    main_rows,
    new_figure,
    palette_order,
)
from .cells import slug
from .load import METRIC_LABELS, TABLE_METRICS, ReportData, number
from .stats import (
    ALPHA,
    MARK_DOWN,
    MARK_UP,
    activity_edges,
    activity_labels,
    holm,
    match_users,
    paired_tests,
    quintile_groups,
)

LIKELIHOOD_MODELS: dict[tuple[str, str], str] = {
    ("multinomial", "VAE"): "multvae",
    ("gaussian", "VAE"): "gaussian-vae",
    ("logistic", "VAE"): "logistic-vae",
    ("multinomial", "DAE"): "multdae",
    ("gaussian", "DAE"): "gaussian-dae",
    ("logistic", "DAE"): "logistic-dae",
}
TEST_NAME = "two-sided paired t-test on the same users, scipy.stats.ttest_rel"


def _score(data: ReportData, row: dict[str, Any]) -> float | None:
    """Validation NDCG@100 of a test row (its validation partner), else its test value."""
    v = data.partner(row, "valid")
    val = number(v["metrics"].get("ndcg@100")) if v else None
    return val if val is not None else number(row["metrics"].get("ndcg@100"))


def quintile_selection(data: ReportData, dataset: str, reference: str | None,
                       figure_models: list[str] | None = None) -> list[str]:
    """The models of the activity figure: the reference, then ``figure_models`` (those with
    a row on the dataset), or by default the best of each family (by validation NDCG@100)
    and the best plugin; in palette order after the reference."""
    have = {r["model"]: r for r in main_rows(data, dataset)}
    if figure_models is not None:
        chosen = [m for m in figure_models if m in have]
    else:
        groups = [*FAMILIES.values(), tuple(sorted(m for m in have if m not in BUILTIN_STYLES))]
        chosen = []
        for members in groups:
            scored = [(_score(data, have[m]), m) for m in members if m in have]
            scored = [(s, m) for s, m in scored if s is not None]
            if scored:
                chosen.append(max(scored, key=lambda t: (t[0], t[1]))[1])
    chosen = sorted(set(chosen) - {reference}, key=palette_order)
    return ([reference] if reference in have else []) + chosen


def quintile_figure(data: ReportData, dataset: str, out: Path, look: Look, *,
                    reference: str | None = None, figure_models: list[str] | None = None) -> FigureInfo | None:
    rows = []
    have = {r["model"]: r for r in main_rows(data, dataset)}
    for m in quintile_selection(data, dataset, reference, figure_models):
        a = data.arrays(have[m])
        if a is not None and {"ndcg@100", "fold_in_size", "users"} <= set(a):
            rows.append((have[m], a))
    if not rows:
        return None
    users = np.concatenate([a["users"] for _, a in rows])
    sizes = np.concatenate([a["fold_in_size"] for _, a in rows])
    _, first = np.unique(users, return_index=True)
    sizes = np.rint(sizes[first].astype(np.float64)).astype(np.int64)
    edges = activity_edges(sizes)
    n_g = len(edges) + 1
    counts = np.bincount(np.searchsorted(edges, sizes, side="right"), minlength=n_g)
    ranges = activity_labels(edges, sizes.min(), sizes.max())
    labels = [f"Q{i + 1}: {rng}\n{c} users" for i, (rng, c) in enumerate(zip(ranges, counts, strict=True))]
    fig = new_figure(max(6.5, 2.6 + 0.3 * len(rows) * n_g), 3.8)
    ax = fig.add_subplot()
    width = 0.8 / len(rows)
    tops, bar_x, bar_top = np.zeros(n_g), {}, {}
    for j, (r, a) in enumerate(rows):
        groups = quintile_groups(a["fold_in_size"], a["users"], edges=edges)
        vals = np.array([a["ndcg@100"][g].mean() if len(g) else np.nan for g in groups])
        errs = np.array([a["ndcg@100"][g].std() / math.sqrt(len(g)) if len(g) else 0 for g in groups])
        x = np.arange(n_g) + (j - (len(rows) - 1) / 2) * width
        bar_x[r["model"]], bar_top[r["model"]] = x, vals + errs
        ax.bar(x, vals, width, yerr=errs, label=look.label(r), color=look.color(r["model"]),
               capsize=2, error_kw={"lw": 0.8}, edgecolor="white", linewidth=0.4)
        tops = np.fmax(tops, vals + errs)
    ref = rows[0][0]["model"] if rows[0][0]["model"] == reference else None
    sel = "the models asked for with --figure-models" if figure_models is not None else (
        "the best model of each family (VAE, DAE, linear item-item, factorisation, "
        "popularity, plugins) by validation NDCG@100")
    if figure_models is None and any(data.partner(r, "valid") is None for r, _ in rows[1:]):
        sel += " (by test NDCG@100 where a model has no validation row)"
    groups = ", ".join(f"Q{i + 1} {rng} ({c} users)" for i, (rng, c) in enumerate(zip(ranges, counts, strict=True)))
    caption = (
        f"Test NDCG@100 by user activity on {dataset}: the test users in {n_g} groups of "
        f"near-equal size by their number of fold-in items, Q1 least active; users with the same "
        f"number share a group, so the ranges are disjoint: {groups}. Bars are means, whiskers "
        f"one standard error. Shown: " + (f"the reference ({look.label(rows[0][0])}) and " if ref else "")
        + f"{sel}."
    )
    if ref and len(rows) > 1:
        n_tests, n_marked = _mark_quintiles(ax, rows, edges, bar_x, bar_top)
        name_ref = look.label(rows[0][0])
        caption += (
            f" {MARK_UP}/{MARK_DOWN}: significantly better/worse than {name_ref} in that group "
            f"({TEST_NAME}; Holm-adjusted over the {n_tests} model-group comparisons, p < {ALPHA}): "
            f"{n_marked} marked."
        )
    ax.set_xticks(np.arange(n_g), labels)
    ax.set_xlabel("activity group: fold-in items per test user")
    ax.set_ylabel("test NDCG@100 (mean over users)")
    ax.set_title(f"NDCG@100 by user activity: {dataset}")
    ax.set_ylim(0, max(0.05, float(np.nanmax(tops)) * 1.15))
    legend_outside(fig, ax)
    return FigureInfo.saved(fig, out, f"quintiles-{slug(dataset)}",
                            f"NDCG@100 by activity quintile ({dataset})", caption, dataset)


def _mark_quintiles(ax, rows, edges, bar_x, bar_top) -> tuple[int, int]:
    """Paired t-tests of each shown model against the reference (``rows[0]``) per group."""
    ref_a = rows[0][1]
    tests = []  # (model, group, p, mean difference)
    for r, a in rows[1:]:
        ia, ir = match_users(a["users"], ref_a["users"])
        groups = quintile_groups(a["fold_in_size"][ia], a["users"][ia], edges=edges)
        for q, g in enumerate(groups):
            res = paired_tests(a["ndcg@100"][ia][g], ref_a["ndcg@100"][ir][g])
            tests.append((r["model"], q, res.t_p, res.mean_diff))
    adj = holm([t[2] for t in tests])
    marked = 0
    for (model, q, _, diff), p in zip(tests, adj, strict=True):
        if p < ALPHA and diff != 0:
            ax.annotate(MARK_UP if diff > 0 else MARK_DOWN, (bar_x[model][q], bar_top[model][q]),
                        xytext=(0, 1.5), textcoords="offset points", ha="center", va="bottom", fontsize=7)
            marked += 1
    return len(tests), marked


def likelihood_figure(data: ReportData, dataset: str, out: Path, look: Look, **_: Any) -> FigureInfo | None:
    rows = {r["model"]: r for r in main_rows(data, dataset)}
    present = {k: rows[m] for k, m in LIKELIHOOD_MODELS.items() if m in rows}
    if not any(lik != "multinomial" for lik, _ in present):
        return None  # nothing to compare beyond Table 2
    liks = ["multinomial", "gaussian", "logistic"]
    marks, n_tests = _likelihood_tests(data, present)
    fig = new_figure(10.5, 3.4)
    axes = np.atleast_1d(fig.subplots(1, len(TABLE_METRICS)))
    for ax, metric in zip(axes, TABLE_METRICS, strict=True):
        lows, highs = [], []
        for j, kind in enumerate(("VAE", "DAE")):
            for i, lk in enumerate(liks):
                x = i + (j - 0.5) * 0.36
                r = present.get((lk, kind))
                v = number(r["metrics"].get(metric)) if r else None
                if v is None:
                    ax.text(x, 0.03, "not run", transform=ax.get_xaxis_transform(), ha="center",
                            va="bottom", fontsize=6, rotation=90, color="0.4")
                    continue
                e = number(r["sem"].get(metric)) or 0.0
                m = r["model"]
                ax.errorbar([x], [v], yerr=[e], fmt=look.marker(m), color=look.color(m), ms=6,
                            capsize=3, lw=1, label=look.label(r) if metric == TABLE_METRICS[0] else None)
                lows.append(v - e)
                highs.append(v + e)
                mk = marks.get((m, metric))
                if mk:
                    ax.annotate(mk, (x, v + e), xytext=(0, 2), textcoords="offset points",
                                ha="center", va="bottom", fontsize=7)
        ax.set_xticks(np.arange(3), ["multinomial", "Gaussian", "logistic"], fontsize=8)
        ax.set_xlim(-0.6, 2.6)
        ax.set_xlabel("likelihood (left: VAE, right: DAE)")
        ax.set_ylabel(f"test {METRIC_LABELS[metric]}")
        if lows:
            span = max(max(highs) - min(lows), 1e-3)
            ax.set_ylim(max(0.0, min(lows) - 0.25 * span), max(highs) + 0.25 * span)
    legend_outside(fig, axes[0])
    fig.suptitle(f"Likelihoods, test users: {dataset}", fontsize=10)
    missing = sorted(m for k, m in LIKELIHOOD_MODELS.items() if k not in present)
    caption = (
        f"Multinomial, Gaussian and logistic likelihoods for the VAE and the DAE on {dataset} "
        f"(the paper's Table 3): test means, whiskers one standard error; the axes start near "
        f"the data, not at zero."
        + (f" {MARK_UP}/{MARK_DOWN}: significantly better/worse than the multinomial model of the "
           f"same kind ({TEST_NAME}; Holm-adjusted over the {n_tests} comparisons of this figure, "
           f"p < {ALPHA})." if n_tests else " No significance marks: per-user arrays are missing.")
        + (f" Not run: {', '.join(missing)}." if missing else "")
    )
    return FigureInfo.saved(fig, out, f"likelihood-{slug(dataset)}",
                            f"Likelihood comparison ({dataset})", caption, dataset)


def _likelihood_tests(data: ReportData, present: dict) -> tuple[dict[tuple[str, str], str], int]:
    """(model, metric) -> mark of each Gaussian/logistic model against the multinomial one."""
    tests = []
    for (lik, kind), r in present.items():
        base = present.get(("multinomial", kind))
        if lik == "multinomial" or base is None:
            continue
        a, b = data.arrays(r), data.arrays(base)
        if a is None or b is None or "users" not in a or "users" not in b:
            continue
        ia, ib = match_users(a["users"], b["users"])
        for metric in TABLE_METRICS:
            if metric in a and metric in b and len(ia) >= 2:
                res = paired_tests(np.asarray(a[metric])[ia], np.asarray(b[metric])[ib])
                tests.append((r["model"], metric, res.t_p, res.mean_diff))
    adj = holm([t[2] for t in tests])
    marks = {(m, k): (MARK_UP if d > 0 else MARK_DOWN)
             for (m, k, _, d), p in zip(tests, adj, strict=True) if p < ALPHA and d != 0}
    return marks, len(tests)
