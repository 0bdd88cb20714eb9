"""The tuning figures: validation NDCG@100 by trial and parameter importance, from rows."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ._plotting import FigureInfo, main_rows, new_figure, save_figure
from .cells import slug
from .load import ReportData, number


def tuning_history(data: ReportData, row: dict[str, Any]) -> list[dict[str, Any]] | None:
    """Trial history of a tuned row, as the row records it (``tuning.history``): the report
    reads rows and arrays only, never a study's storage. Pruned trials carry their last
    reported (intermediate) value."""
    t = row.get("tuning")
    if not isinstance(t, dict):
        return None
    hist = t.get("history")
    if isinstance(hist, list) and hist:
        return [h for h in hist if isinstance(h, dict)]
    return None


def param_importance(history: list[dict[str, Any]]) -> dict[str, float] | None:
    """Optuna parameter importance (fANOVA, seeded; PED-ANOVA without scikit-learn).

    The search space is inferred from the completed trials (numbers: their range, log
    scale when they span more than two decades; anything else: categorical).
    """
    import optuna
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    done = [
        h for h in history
        if str(h.get("state", "COMPLETE")).upper().endswith("COMPLETE")
        and number(h.get("value")) is not None
        and isinstance(h.get("params"), dict)
    ]
    if len(done) < 3:
        return None
    names = sorted({k for h in done for k in h["params"]})
    dists: dict[str, Any] = {}
    for n in names:
        vals = [h["params"].get(n) for h in done]
        if any(v is None for v in vals):
            continue
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in vals):
            lo, hi = min(vals), max(vals)
            if lo == hi:
                continue
            if all(isinstance(v, int) for v in vals):
                dists[n] = IntDistribution(int(lo), int(hi))
            else:
                dists[n] = FloatDistribution(float(lo), float(hi), log=lo > 0 and hi / lo > 100)
        else:
            choices = tuple(sorted({v for v in vals}, key=str))
            if len(choices) > 1 and all(isinstance(c, (str, int, float, bool)) for c in choices):
                dists[n] = CategoricalDistribution(choices)
    if len(dists) < 2:
        return None  # one parameter explains everything: nothing to rank
    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            study = optuna.create_study(direction="maximize")
            for h in done:
                params = {k: (float(v) if isinstance(dists[k], FloatDistribution) else v) for k, v in h["params"].items() if k in dists}
                study.add_trial(optuna.trial.create_trial(params=params, distributions=dists, value=float(h["value"])))
            try:
                import sklearn  # noqa: F401

                evaluator = optuna.importance.FanovaImportanceEvaluator(seed=0)
            except ImportError:
                evaluator = optuna.importance.PedAnovaImportanceEvaluator()
            imp = optuna.importance.get_param_importances(study, evaluator=evaluator)
    finally:
        optuna.logging.set_verbosity(level)
    return {k: float(v) for k, v in imp.items()}


def tuning_figures(data: ReportData, dataset: str, out: Path, colors: dict) -> list[FigureInfo]:
    figs = []
    for r in main_rows(data, dataset):
        if not isinstance(r.get("tuning"), dict):
            continue
        hist = tuning_history(data, r)
        if not hist:
            continue  # only a summary was stored: the tuning table shows it
        pts = [(number(h.get("number")), number(h.get("value")), str(h.get("state", "COMPLETE")).upper()) for h in hist]
        pts = [(n, v, s) for n, v, s in pts if n is not None]
        if not pts:
            continue
        try:
            imp = param_importance(hist)
        except Exception as exc:
            imp = None
            data.notes.warn(f"parameter importance of {r['model']} on {dataset} failed: {type(exc).__name__}: {exc}")
        fig = new_figure(8.0 if imp else 5.0, 3.2)
        axes = fig.subplots(1, 2 if imp else 1, width_ratios=[1.4, 1] if imp else None)
        ax = np.atleast_1d(axes)[0]
        comp = [(n, v) for n, v, s in pts if v is not None and s.endswith("COMPLETE")]
        pruned = [(n, v) for n, v, s in pts if v is not None and s.endswith("PRUNED")]
        if comp:
            c = np.array(sorted(comp))
            ax.plot(c[:, 0], c[:, 1], "o", ms=3.5, color=colors.get(r["model"]), label="complete")
            ax.step(c[:, 0], np.maximum.accumulate(c[:, 1]), where="post", color="k", lw=1, label="best so far")
        if pruned:
            p = np.array(sorted(pruned))
            ax.plot(p[:, 0], p[:, 1], "x", ms=4, color="0.5", label="pruned (last value)")
        ax.set_xlabel("trial")
        ax.set_ylabel("validation NDCG@100")
        ax.set_title(f"Tuning history: {r['model']}")
        ax.legend(fontsize=7, frameon=False)
        if imp:
            ax2 = np.atleast_1d(axes)[1]
            names = sorted(imp, key=lambda k: (imp[k], k))
            ax2.barh(names, [imp[k] for k in names], color=colors.get(r["model"]))
            ax2.set_xlabel("importance")
            ax2.set_title("Parameter importance")
        name = f"tuning-{slug(dataset)}-{slug(r['model'])}"
        png, svg = save_figure(fig, out, name)
        n_c, n_p = len(comp), len([1 for _, _, s in pts if s.endswith("PRUNED")])
        caption = (
            f"Optuna trials of {r['model']} on {dataset} ({n_c} complete, {n_p} pruned): "
            f"validation NDCG@100 per trial and the best so far"
            + ("; right: parameter importance (Optuna's fANOVA over the completed trials)." if imp else ".")
        )
        figs.append(FigureInfo(name, f"Tuning of {r['model']} ({dataset})", caption, png, svg, dataset))
    return figs


# --- all --------------------------------------------------------------------------------------
