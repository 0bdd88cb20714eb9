"""The report's figures (matplotlib, Agg canvas, no pyplot state): PNG and SVG per figure.

- ``quintiles``: test NDCG@100 by user-activity quintile (fold-in size), per model, with
  Mult-VAE vs Mult-DAE significance marks (the paper's Figure 3);
- ``epochs``: validation NDCG@100 per epoch of iterative models (``extra.history``);
- ``beta``: validation NDCG@100 against the KL weight beta (``extra.beta_curve``, Figure 1);
- ``likelihood``: multinomial / Gaussian / logistic x VAE / DAE (the paper's Table 3 models);
- ``tuning``: Optuna trial history and parameter importance per tuned model;
- ``time``: test NDCG@100 against training time;
- ``cd``: with 3 or more datasets, Demšar's critical-difference diagram of average ranks.

Figures use the main split of each dataset (the one with the most models). Files are
deterministic for the same results (fixed SVG hash salt, no dates in the metadata). The
tuning figures are drawn in :mod:`.tuning_figures`; what both modules share (style, saving,
colours, the main rows) is in :mod:`._plotting`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ._plotting import FigureInfo, main_rows, model_colors, new_figure, save_figure
from .cells import slug
from .load import BASELINE, METRIC_LABELS, TABLE_METRICS, ReportData, number
from .ranks import RankAnalysis
from .stats import ALPHA, holm, match_users, paired_tests, quintile_groups
from .tuning_figures import tuning_figures

FIG_PREFIXES = ("quintiles-", "epochs-", "beta-", "likelihood-", "tuning-", "time-", "cd-")
LIKELIHOOD_MODELS: dict[tuple[str, str], str] = {
    ("multinomial", "VAE"): "multvae",
    ("gaussian", "VAE"): "gaussian-vae",
    ("logistic", "VAE"): "logistic-vae",
    ("multinomial", "DAE"): "multdae",
    ("gaussian", "DAE"): "gaussian-dae",
    ("logistic", "DAE"): "logistic-dae",
}


# --- figures ----------------------------------------------------------------------------------
def quintile_figure(data: ReportData, dataset: str, out: Path, colors: dict) -> FigureInfo | None:
    rows = []
    for r in main_rows(data, dataset):
        a = data.arrays(r)
        if a is not None and {"ndcg@100", "fold_in_size", "users"} <= set(a):
            rows.append((r, a))
    if not rows:
        return None
    ref_r, ref_a = next(((r, a) for r, a in rows if r["model"] == BASELINE), rows[0])
    ref_groups = quintile_groups(ref_a["fold_in_size"], ref_a["users"])
    labels = []
    for i, g in enumerate(ref_groups):
        sizes = ref_a["fold_in_size"][g]
        rng = f"{int(sizes.min())}-{int(sizes.max())}" if len(g) else "none"
        labels.append(f"Q{i + 1}\n{rng} items")
    fig = new_figure(max(6.0, 1.2 + 0.35 * len(rows) * 5 / 2), 3.6)
    ax = fig.add_subplot()
    width = 0.8 / len(rows)
    tops = np.zeros(5)
    bar_x: dict[str, np.ndarray] = {}
    for j, (r, a) in enumerate(rows):
        groups = quintile_groups(a["fold_in_size"], a["users"])
        vals = np.array([a["ndcg@100"][g].mean() if len(g) else np.nan for g in groups])
        errs = np.array([a["ndcg@100"][g].std() / math.sqrt(len(g)) if len(g) else 0 for g in groups])
        x = np.arange(5) + (j - (len(rows) - 1) / 2) * width
        bar_x[r["model"]] = x
        ax.bar(x, vals, width, yerr=errs, label=r["model"], color=colors.get(r["model"]), capsize=2, error_kw={"lw": 0.8})
        tops = np.fmax(tops, vals + errs)
    caption = (
        f"Test NDCG@100 by user activity on {dataset}: test users sorted by fold-in size and "
        f"cut into five equal groups (Q1 least active); bars are means, whiskers one standard error."
    )
    pair = {r["model"]: a for r, a in rows}
    if BASELINE in pair and "multdae" in pair:
        va, vd = pair[BASELINE], pair["multdae"]
        ia, id_ = match_users(va["users"], vd["users"])
        groups = quintile_groups(va["fold_in_size"][ia], va["users"][ia])
        ps = [paired_tests(va["ndcg@100"][ia][g], vd["ndcg@100"][id_][g]).t_p for g in groups]
        adj = holm(ps)
        for q, p in enumerate(adj):
            if p < ALPHA:
                xs = (bar_x[BASELINE][q] + bar_x["multdae"][q]) / 2
                ax.text(xs, tops[q] * 1.02, "*", ha="center", va="bottom", fontsize=12)
        caption += (
            f" *: {BASELINE} and multdae differ in that group (paired t-test on the same users, "
            f"Holm-adjusted over the five groups, p < {ALPHA})."
        )
    ax.set_xticks(np.arange(5), labels)
    ax.set_ylabel("NDCG@100")
    ax.set_title(f"NDCG@100 by user activity: {dataset}")
    ax.set_ylim(0, max(0.05, float(np.nanmax(tops)) * 1.15))
    ax.legend(fontsize=7, ncols=min(4, len(rows)), loc="upper left", frameon=False)
    name = f"quintiles-{slug(dataset)}"
    png, svg = save_figure(fig, out, name)
    return FigureInfo(name, f"NDCG@100 by activity quintile ({dataset})", caption, png, svg, dataset)


def _extra_rows(data: ReportData, dataset: str, key: str) -> list[tuple[dict[str, Any], list]]:
    """(row, extra[key]) per model on the main split (the test row, else the valid row)."""
    found: dict[str, tuple[dict[str, Any], list]] = {}
    for part in ("valid", "test"):
        for r in main_rows(data, dataset, part):
            extra = r.get("extra")
            val = extra.get(key) if isinstance(extra, dict) else None
            if isinstance(val, list) and val:
                found[r["model"]] = (r, val)
    return [found[m] for m in sorted(found)]


def epochs_figure(data: ReportData, dataset: str, out: Path, colors: dict) -> FigureInfo | None:
    series = []
    for r, hist in _extra_rows(data, dataset, "history"):
        pts = [
            (number(h.get("epoch")), number(h.get("ndcg@100")))
            for h in hist
            if isinstance(h, dict)
        ]
        pts = [(e, v) for e, v in pts if e is not None and v is not None]
        if pts:
            series.append((r["model"], np.array(pts)))
    if not series:
        return None
    fig = new_figure(6.0, 3.6)
    ax = fig.add_subplot()
    for model, pts in series:
        ax.plot(pts[:, 0], pts[:, 1], label=model, color=colors.get(model), lw=1.2)
        b = int(np.argmax(pts[:, 1]))
        ax.plot(pts[b, 0], pts[b, 1], "o", color=colors.get(model), ms=4)
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation NDCG@100")
    ax.set_title(f"Validation NDCG@100 per epoch: {dataset}")
    ax.legend(fontsize=7, frameon=False)
    name = f"epochs-{slug(dataset)}"
    png, svg = save_figure(fig, out, name)
    caption = (
        f"Validation NDCG@100 after every epoch of the iterative models on {dataset}; the dot "
        f"marks the best epoch, the one that is kept and evaluated on the test users."
    )
    return FigureInfo(name, f"Validation NDCG@100 per epoch ({dataset})", caption, png, svg, dataset)


def beta_figure(data: ReportData, dataset: str, out: Path, colors: dict) -> FigureInfo | None:
    series = []
    for r, curve in _extra_rows(data, dataset, "beta_curve"):
        pts = [(number(c.get("beta")), number(c.get("ndcg@100"))) for c in curve if isinstance(c, dict)]
        pts = sorted((b, v) for b, v in pts if b is not None and v is not None)
        if pts:
            series.append((r, np.array(pts)))
    if not series:
        return None
    fig = new_figure(6.0, 3.4)
    ax = fig.add_subplot()
    for r, pts in series:
        ax.plot(pts[:, 0], pts[:, 1], label=r["model"], color=colors.get(r["model"]), lw=1.2)
        b = int(np.argmax(pts[:, 1]))
        ax.plot(pts[b, 0], pts[b, 1], "o", color=colors.get(r["model"]), ms=5)
        ax.annotate(f"best β = {pts[b, 0]:.3g}", (pts[b, 0], pts[b, 1]), textcoords="offset points", xytext=(4, 6), fontsize=7)
    ax.margins(y=0.15)
    ax.set_xlabel("β (KL weight, annealed)")
    ax.set_ylabel("validation NDCG@100")
    ax.set_title(f"Validation NDCG@100 against β: {dataset}")
    ax.legend(fontsize=7, frameon=False)
    name = f"beta-{slug(dataset)}"
    png, svg = save_figure(fig, out, name)
    caption = (
        f"The paper's Figure 1 on {dataset}: validation NDCG@100 while β is annealed from 0 "
        f"towards 1; the dot marks the best β, the cap the model is then retrained to."
    )
    return FigureInfo(name, f"Validation NDCG@100 against β ({dataset})", caption, png, svg, dataset)


def likelihood_figure(data: ReportData, dataset: str, out: Path, colors: dict) -> FigureInfo | None:
    rows = {r["model"]: r for r in main_rows(data, dataset)}
    present = {k: rows[m] for k, m in LIKELIHOOD_MODELS.items() if m in rows}
    if not any(lik != "multinomial" for lik, _ in present):
        return None  # nothing to compare beyond Table 2
    fig = new_figure(10.0, 3.2)
    axes = fig.subplots(1, len(TABLE_METRICS))
    liks = ["multinomial", "gaussian", "logistic"]
    for ax, metric in zip(np.atleast_1d(axes), TABLE_METRICS, strict=True):
        for j, (kind, hatch) in enumerate((("VAE", ""), ("DAE", "//"))):
            vals, errs = [], []
            for lk in liks:
                r = present.get((lk, kind))
                vals.append(number(r["metrics"].get(metric)) if r else None)
                errs.append(number(r["sem"].get(metric)) if r else None)
            x = np.arange(3) + (j - 0.5) * 0.38
            v = np.array([np.nan if a is None else a for a in vals])
            e = np.array([0.0 if a is None else a for a in errs])
            ax.bar(x, v, 0.38, yerr=e, label=kind, color="#4c72b0" if kind == "VAE" else "#dd8452", hatch=hatch, capsize=2, error_kw={"lw": 0.8})
            for xi, vi in zip(x, vals, strict=True):
                if vi is None:
                    ax.text(xi, 0.01, "not run", ha="center", va="bottom", fontsize=6, rotation=90, color="0.4")
        ax.set_xticks(np.arange(3), ["multinomial", "Gaussian", "logistic"], fontsize=8)
        ax.set_xlim(-0.6, 2.6)
        ax.set_title(METRIC_LABELS[metric])
        finite = [number(r["metrics"].get(metric)) for r in present.values()]
        finite = [f for f in finite if f is not None]
        ax.set_ylim(0, max(finite) * 1.2 if finite else 1)
    np.atleast_1d(axes)[-1].legend(fontsize=7, frameon=False, loc="upper right")
    fig.suptitle(f"Likelihoods, test users: {dataset}", fontsize=10)
    name = f"likelihood-{slug(dataset)}"
    png, svg = save_figure(fig, out, name)
    missing = sorted(m for k, m in LIKELIHOOD_MODELS.items() if k not in present)
    caption = (
        f"Multinomial, Gaussian and logistic likelihoods for the VAE and the DAE on {dataset} "
        f"(the paper's Table 3); whiskers one standard error."
        + (f" Not run: {', '.join(missing)}." if missing else "")
    )
    return FigureInfo(name, f"Likelihood comparison ({dataset})", caption, png, svg, dataset)


def time_figure(data: ReportData, dataset: str, out: Path, colors: dict) -> FigureInfo | None:
    pts = []
    for r in main_rows(data, dataset):
        t, v = number(r.get("fit_seconds")), number(r["metrics"].get("ndcg@100"))
        if t is not None and v is not None:
            pts.append((r["model"], max(t, 1e-3), v, number(r["sem"].get("ndcg@100")) or 0.0))
    if not pts:
        return None
    fig = new_figure(6.0 if len(pts) <= 5 else 7.2, 3.6)
    ax = fig.add_subplot()
    for model, t, v, e in pts:
        ax.errorbar([t], [v], yerr=[e], fmt="o", color=colors.get(model), ms=5, capsize=2, lw=0.8, label=model)
    ts = [p[1] for p in pts]
    log = max(ts) / min(ts) > 10
    if log:
        ax.set_xscale("log")
    if len(pts) <= 5:
        vs = [p[2] for p in pts]
        for model, t, v, y in _label_positions(pts, log, gap=0.05 * max(max(vs) - min(vs), 0.02)):
            ax.annotate(
                model, (t, v), xytext=(t * 1.35 if log else t, y), textcoords="data", fontsize=7,
                va="center", arrowprops={"arrowstyle": "-", "lw": 0.4, "color": "0.6"} if y != v else None,
            )
    else:
        ax.legend(fontsize=7, frameon=False, loc="center left", bbox_to_anchor=(1.0, 0.5))
    ax.set_xlabel("training time (fit, seconds)")
    ax.set_ylabel("test NDCG@100")
    ax.set_title(f"Accuracy against training time: {dataset}")
    ax.margins(x=0.15, y=0.12)
    name = f"time-{slug(dataset)}"
    png, svg = save_figure(fig, out, name)
    hw = sorted({str(r.get("device", "?")) for r in main_rows(data, dataset)})
    caption = (
        f"Test NDCG@100 (whiskers one standard error) against the wall time of fit on {dataset} "
        f"(device: {', '.join(hw)}); tuning time is not included."
    )
    return FigureInfo(name, f"NDCG@100 against training time ({dataset})", caption, png, svg, dataset)


def _label_positions(pts: list[tuple], log: bool, gap: float) -> list[tuple[str, float, float, float]]:
    """Label heights that do not overlap: top to bottom, pushed down below near neighbours."""
    placed: list[tuple[str, float, float, float]] = []
    for model, t, v, _ in sorted(pts, key=lambda p: (-p[2], p[0])):
        x = math.log10(t) if log else t
        y = v
        moved = True
        while moved:
            moved = False
            for _, t2, _, y2 in placed:
                x2 = math.log10(t2) if log else t2
                near = abs(x - x2) < (0.9 if log else 0.15 * max(p[1] for p in pts))
                if near and abs(y - y2) < gap * 0.999:
                    y, moved = y2 - gap, True
        placed.append((model, t, v, y))
    return placed


# --- tuning -----------------------------------------------------------------------------------
def cd_figure(ranks: RankAnalysis, out: Path, metric: str = "ndcg@100") -> FigureInfo | None:
    """Demšar's critical-difference diagram of the average ranks on one metric."""
    res = next((r for r in ranks.results if r.metric == metric), None)
    if res is None:
        return None
    k = len(res.models)
    order = list(np.argsort(res.avg_ranks, kind="stable"))
    cliques = res.cliques()
    fig = new_figure(7.0, 1.6 + 0.22 * k + 0.12 * len(cliques))
    ax = fig.add_subplot()
    ax.set_xlim(k + 0.3, 0.7)  # rank 1 (best) on the right, as in Demšar's figures
    top = 1.0
    ax.hlines(top, 1, k, color="black", lw=1)
    for t in range(1, k + 1):
        ax.vlines(t, top, top + 0.06, color="black", lw=1)
        ax.text(t, top + 0.1, str(t), ha="center", va="bottom", fontsize=8)
    half = (k + 1) // 2
    for pos, j in enumerate(order):
        r = float(res.avg_ranks[j])
        best_half = pos < half
        y = top - 0.22 * ((pos if best_half else k - 1 - pos) + 1)
        x_text = 0.75 if best_half else k + 0.25
        ax.plot([r, r, x_text], [top, y, y], color="black", lw=0.8)
        ax.text(x_text, y, f"{res.models[j]} ({r:.2f})", ha="left" if best_half else "right",
                va="center", fontsize=8)
    for i, group in enumerate(cliques):
        rs = [float(res.avg_ranks[res.models.index(m)]) for m in group]
        y = top - 0.08 - 0.1 * i
        ax.hlines(y, min(rs) - 0.03, max(rs) + 0.03, color="black", lw=3)
    ax.hlines(top + 0.35, 1, 1 + res.cd, color="black", lw=1.2)
    ax.text(1 + res.cd / 2, top + 0.38, f"CD = {res.cd:.2f}", ha="center", va="bottom", fontsize=8)
    ax.set_ylim(top - 0.22 * (half + 1), top + 0.55)
    ax.axis("off")
    label = METRIC_LABELS.get(metric, metric)
    name = f"cd-{slug(metric)}"
    png, svg = save_figure(fig, out, name)
    caption = (
        f"Average rank of each model on test {label} over {len(res.datasets)} datasets "
        f"({', '.join(res.datasets)}; 1 = best, on the right). Models joined by a thick bar are "
        f"not significantly different by the Nemenyi test (alpha {res.alpha}); CD = "
        f"{res.cd:.3f} is the critical difference (Demšar 2006). Friedman p = "
        f"{res.friedman_p:.3g}."
    )
    return FigureInfo(name, f"Critical-difference diagram, {label}", caption, png, svg, "all")


def make_figures(data: ReportData, out_dir: Path, ranks: RankAnalysis | None = None) -> list[FigureInfo]:
    """Draw every figure the results allow into ``out_dir`` (old report figures are removed).

    A figure that fails is skipped with a warning; the others are still drawn.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    for p in sorted(out_dir.iterdir()):
        if p.suffix in (".png", ".svg") and p.name.startswith(FIG_PREFIXES):
            p.unlink()
    if not data.rows:
        return []
    colors = model_colors([r["model"] for r in data.rows])
    makers: list[tuple[str, Callable]] = [
        ("activity quintiles", quintile_figure),
        ("validation per epoch", epochs_figure),
        ("beta curve", beta_figure),
        ("likelihood comparison", likelihood_figure),
        ("tuning", tuning_figures),
        ("training time", time_figure),
    ]
    figs: list[FigureInfo] = []
    for dataset in data.datasets():
        for what, maker in makers:
            try:
                res = maker(data, dataset, out_dir, colors)
            except Exception as exc:
                data.notes.warn(f"figure '{what}' for {dataset} could not be drawn: {type(exc).__name__}: {exc}")
                continue
            if isinstance(res, list):
                figs += res
            elif res is not None:
                figs.append(res)
    if ranks is not None:
        try:
            cd = cd_figure(ranks, out_dir)
            if cd is not None:
                figs.append(cd)
        except Exception as exc:
            data.notes.warn(f"figure 'critical difference' could not be drawn: {type(exc).__name__}: {exc}")
    return figs
