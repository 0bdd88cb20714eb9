"""The report's figures (matplotlib, Agg canvas, no pyplot state): PNG, SVG and PDF each.

- ``quintiles``: test NDCG@100 by user-activity group (fold-in size), the reference and the
  best model of each family, marks against the reference (the paper's Figure 3);
- ``epochs``: validation NDCG@100 per epoch (or ALS sweep), one panel per iterative model
  (``extra.history``), the kept epoch marked;
- ``beta``: validation NDCG@100 against the KL weight beta (``extra.beta_curve``, Figure 1);
- ``likelihood``: multinomial / Gaussian / logistic x VAE / DAE (the paper's Table 3 models),
  marks against the multinomial model;
- ``tuning``: Optuna's own plots of each tuned model's trials (history, importances, slices);
- ``time``: test NDCG@100 against training time (times under 1 ms at the axis floor);
- ``cd``: with 3 or more datasets, Demšar's critical-difference diagram of average ranks.

Every model has one colour and marker in every figure and every report (:mod:`._plotting`),
legends name models by their display names, outside the axes. Figures use the main split of
each dataset (the one with the most models). Files are deterministic for the same results
(fixed SVG hash salt, no dates in the metadata). The quintile and likelihood figures are
drawn in :mod:`.paired_figures`, the tuning figures in :mod:`.tuning_figures`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ._plotting import UNITS, FigureInfo, Look, legend_outside, main_rows, new_figure, palette_order
from .cells import slug
from .load import METRIC_LABELS, STRONG, ReportData, number, protocol_name
from .paired_figures import likelihood_figure, quintile_figure
from .ranks import RankAnalysis
from .tuning_figures import tuning_figures

FIG_PREFIXES = ("quintiles-", "epochs-", "beta-", "likelihood-", "tuning-", "time-", "cd-", "protocols-")
FIG_SUFFIXES = (".png", ".svg", ".pdf")
#: Fit times below this (seconds) are under the timer's resolution: drawn at the axis floor.
TIME_FLOOR = 1e-3


def _extra_rows(data: ReportData, dataset: str, key: str) -> list[tuple[dict[str, Any], list]]:
    """(row, extra[key]) per model on the main split (the test row, else the valid row), in
    palette order."""
    found: dict[str, tuple[dict[str, Any], list]] = {}
    for part in ("valid", "test"):
        for r in main_rows(data, dataset, part):
            extra = r.get("extra")
            val = extra.get(key) if isinstance(extra, dict) else None
            if isinstance(val, list) and val:
                found[r["model"]] = (r, val)
    return [found[m] for m in sorted(found, key=palette_order)]


def unit_of(row: dict[str, Any]) -> str:
    """What one pass of an iterative model is: "epoch", "ALS sweep" (wmf, iALS), or the
    row's own ``extra.unit``."""
    extra = row.get("extra") if isinstance(row.get("extra"), dict) else {}
    own = extra.get("unit")
    return UNITS.get(row["model"]) or (own if isinstance(own, str) and own else "epoch")


def epochs_figure(data: ReportData, dataset: str, out: Path, look: Look, **_: Any) -> FigureInfo | None:
    series = []
    for r, hist in _extra_rows(data, dataset, "history"):
        pts = [(number(h.get("epoch")), number(h.get("ndcg@100"))) for h in hist if isinstance(h, dict)]
        pts = [(e, v) for e, v in pts if e is not None and v is not None]
        if pts:
            series.append((r, np.array(pts)))
    if not series:
        return None
    series.sort(key=lambda s: (unit_of(s[0]) != "epoch", unit_of(s[0]), palette_order(s[0]["model"])))
    ncols = min(3, len(series))
    nrows = math.ceil(len(series) / ncols)
    fig = new_figure(1.0 + 2.9 * ncols, 0.6 + 2.3 * nrows)
    axes = np.atleast_1d(fig.subplots(nrows, ncols, sharey=True, squeeze=False)).ravel()
    for ax, (r, pts) in zip(axes, series, strict=False):
        m, unit = r["model"], unit_of(r)
        ax.plot(pts[:, 0], pts[:, 1], color=look.color(m), lw=1.3, marker=look.marker(m), ms=2.5)
        b = _best_index(r, pts)
        ax.axvline(pts[b, 0], color="0.6", lw=0.8, ls=":")
        ax.plot(pts[b, 0], pts[b, 1], "o", ms=7, mfc="none", mec="black", mew=1.2)
        ax.annotate(f"kept: {unit} {pts[b, 0]:g}", (pts[b, 0], pts[b, 1]), xytext=(4, -12),
                    textcoords="offset points", fontsize=7)
        ax.set_title(look.label(r), fontsize=9, color=look.color(m))
        ax.set_xlabel(unit)
        ax.set_ylabel("validation NDCG@100")
        ax.yaxis.set_tick_params(labelleft=True)
    for ax in axes[len(series):]:
        ax.set_visible(False)
    fig.suptitle(f"Validation NDCG@100 per epoch: {dataset}", fontsize=10)
    caption = (
        f"Validation NDCG@100 after every epoch (ALS sweep for WMF and iALS) of the iterative "
        f"models on {dataset}, one panel per model, a shared y axis; the ring and dotted line "
        f"mark the epoch whose weights are kept and evaluated on the test users."
    )
    return FigureInfo.saved(fig, out, f"epochs-{slug(dataset)}",
                            f"Validation NDCG@100 per epoch ({dataset})", caption, dataset)


def _best_index(row: dict[str, Any], pts: np.ndarray) -> int:
    """The kept epoch: ``extra.training.best_epoch`` when recorded, else the best value."""
    training = row["extra"].get("training") if isinstance(row.get("extra"), dict) else None
    best = number(training.get("best_epoch")) if isinstance(training, dict) else None
    hit = np.flatnonzero(pts[:, 0] == best) if best is not None else []
    return int(hit[0]) if len(hit) else int(np.argmax(pts[:, 1]))


def beta_figure(data: ReportData, dataset: str, out: Path, look: Look, **_: Any) -> FigureInfo | None:
    series = []
    for r, curve in _extra_rows(data, dataset, "beta_curve"):
        pts = [(number(c.get("beta")), number(c.get("ndcg@100"))) for c in curve if isinstance(c, dict)]
        pts = sorted((b, v) for b, v in pts if b is not None and v is not None)
        if pts:
            series.append((r, np.array(pts)))
    if not series:
        return None
    fig = new_figure(6.5, 3.4)
    ax = fig.add_subplot()
    for r, pts in series:
        m = r["model"]
        ax.plot(pts[:, 0], pts[:, 1], label=look.label(r), color=look.color(m), lw=1.2,
                marker=look.marker(m), ms=3)
        b = int(np.argmax(pts[:, 1]))
        ax.plot(pts[b, 0], pts[b, 1], "o", ms=8, mfc="none", mec="black", mew=1.2)
        ax.annotate(f"best β = {pts[b, 0]:.3g}", (pts[b, 0], pts[b, 1]), textcoords="offset points",
                    xytext=(4, 6), fontsize=7)
    ax.margins(y=0.15)
    ax.set_xlabel("β (KL weight, annealed)")
    ax.set_ylabel("validation NDCG@100")
    ax.set_title(f"Validation NDCG@100 against β: {dataset}")
    legend_outside(fig, ax)
    caption = (
        f"The paper's Figure 1 on {dataset}: validation NDCG@100 while β is annealed from 0 "
        f"towards 1; the ring marks the best β, the cap the model is then retrained to."
    )
    return FigureInfo.saved(fig, out, f"beta-{slug(dataset)}",
                            f"Validation NDCG@100 against β ({dataset})", caption, dataset)


def time_points(data: ReportData, dataset: str) -> list[tuple[dict[str, Any], float, float, float]]:
    """(row, fit seconds, test NDCG@100, its standard error) of each model, palette order."""
    pts = []
    for r in sorted(main_rows(data, dataset), key=lambda r: palette_order(r["model"])):
        t, v = number(r.get("fit_seconds")), number(r["metrics"].get("ndcg@100"))
        if t is not None and v is not None:
            pts.append((r, max(t, 0.0), v, number(r["sem"].get("ndcg@100")) or 0.0))
    return pts


def time_figure(data: ReportData, dataset: str, out: Path, look: Look, **_: Any) -> FigureInfo | None:
    pts = time_points(data, dataset)
    if not pts:
        return None
    fig = new_figure(6.8, 3.6)
    ax = fig.add_subplot()
    shown = [max(t, TIME_FLOOR) for _, t, _, _ in pts]
    below = any(t < TIME_FLOOR for _, t, _, _ in pts)
    log = below or max(shown) / min(shown) > 10
    for (r, t, v, e), x in zip(pts, shown, strict=True):
        m = r["model"]
        ax.errorbar([x], [v], yerr=[e], fmt=look.marker(m), color=look.color(m), ms=6, capsize=2,
                    lw=0.8, label=look.label(r), clip_on=False)
        if t < TIME_FLOOR:
            ax.annotate("< 1 ms", (x, v), xytext=(6, -3), textcoords="offset points", fontsize=7,
                        va="top", color="0.3")
    if log:
        ax.set_xscale("log")
    ax.margins(x=0.15, y=0.12)
    if below:
        ax.set_xlim(TIME_FLOOR, max(shown) * 3 if max(shown) > TIME_FLOOR else 1.0)
    ax.set_xlabel("training time: wall seconds of fit" + (" (log scale)" if log else ""))
    ax.set_ylabel("test NDCG@100")
    ax.set_title(f"Accuracy against training time: {dataset}")
    legend_outside(fig, ax)
    hw = sorted({str(r.get("device", "?")) for r in main_rows(data, dataset)})
    caption = (
        f"Test NDCG@100 (whiskers one standard error) against the wall time of fit on {dataset} "
        f"(device: {', '.join(hw)}); tuning time is not included."
        + (" Fits under the timer's 1 ms resolution are drawn at the axis floor, labelled "
           "\"< 1 ms\"." if below else "")
    )
    return FigureInfo.saved(fig, out, f"time-{slug(dataset)}",
                            f"NDCG@100 against training time ({dataset})", caption, dataset)


# --- across datasets --------------------------------------------------------------------------
def cd_figure(ranks: RankAnalysis, out: Path, look: Look | None = None, metric: str = "ndcg@100") -> FigureInfo | None:
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
        name = look.model_name(res.models[j]) if look else res.models[j]
        ax.text(x_text, y, f"{name} ({r:.2f})", ha="left" if best_half else "right",
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
    strong = ranks.protocol == STRONG
    within = "" if strong else f", {protocol_name(ranks.protocol)}"
    ax.set_title(f"Average rank on test {label}{within} (1 = best, on the right)")
    name = f"cd-{slug(metric)}" if strong else f"cd-{slug(ranks.protocol)}-{slug(metric)}"
    caption = (
        f"Average rank of each model on test {label} over {len(res.datasets)} datasets{within} "
        f"({', '.join(res.datasets)}; 1 = best, on the right). Models joined by a thick bar are "
        f"not significantly different by the Nemenyi test (alpha {res.alpha}); CD = "
        f"{res.cd:.3f} is the critical difference (Demšar 2006). Friedman p = "
        f"{res.friedman_p:.3g}."
    )
    return FigureInfo.saved(fig, out, name, f"Critical-difference diagram, {label}{within}", caption, "all")


def make_figures(data: ReportData, out_dir: Path, ranks: RankAnalysis | list[RankAnalysis] | None = None, *,
                 references: dict[str, str] | None = None,
                 figure_models: list[str] | None = None) -> list[FigureInfo]:
    """Draw every figure the results allow into ``out_dir`` (old report figures are removed).

    Args:
        references: dataset -> the reference model (the significance tests'); the quintile
            figure shows it and marks the other models against it.
        figure_models: the models of the quintile figure besides the reference (None: the
            best of each family).

    A figure that fails is skipped with a warning; the others are still drawn.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    for p in sorted(out_dir.iterdir()):
        if p.suffix in FIG_SUFFIXES and p.name.startswith(FIG_PREFIXES):
            p.unlink()
    if not data.rows:
        return []
    look = Look.of(data)
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
                res = maker(data, dataset, out_dir, look, reference=(references or {}).get(dataset),
                            figure_models=figure_models)
            except Exception as exc:
                data.notes.warn(f"figure '{what}' for {dataset} could not be drawn: {type(exc).__name__}: {exc}")
                continue
            if isinstance(res, list):
                figs += res
            elif res is not None:
                figs.append(res)
    for r in [ranks] if isinstance(ranks, RankAnalysis) else ranks or []:  # one per protocol
        try:
            cd = cd_figure(r, out_dir, look)
            if cd is not None:
                figs.append(cd)
        except Exception as exc:
            data.notes.warn(f"figure 'critical difference' could not be drawn: {type(exc).__name__}: {exc}")
    return figs
