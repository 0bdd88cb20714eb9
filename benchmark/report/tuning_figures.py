"""The tuning figures: Optuna's own matplotlib plots (optimisation history, parameter
importances, slices) of a study rebuilt in memory from a row's trial history.

The report reads rows and arrays only, never a study's storage: ``tuning.history`` lists
every finished trial as ``{number, value, state, params}`` and, in rows that record it,
``distributions`` ({name: ``optuna.distributions.distribution_to_json``}, per trial or in
``tuning.distributions``). Without them the search space is inferred from the observed
values (numbers: their range, log scale when positive and spanning more than two decades;
anything else: categorical), and the captions say so.
"""

from __future__ import annotations

import json
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ._plotting import FigureInfo, Look, main_rows, palette_order
from .cells import slug
from .load import ReportData, number

TARGET = "validation NDCG@100"


def tuning_history(data: ReportData, row: dict[str, Any]) -> list[dict[str, Any]] | None:
    """Trial history of a tuned row, as the row records it (``tuning.history``). Pruned
    trials carry their last reported (intermediate) value."""
    t = row.get("tuning")
    if not isinstance(t, dict):
        return None
    hist = t.get("history")
    if isinstance(hist, list) and hist:
        return [h for h in hist if isinstance(h, dict) and number(h.get("number")) is not None]
    return None


def _state(h: dict[str, Any]) -> str:
    return str(h.get("state", "COMPLETE")).upper().rsplit(".", 1)[-1]


def _recorded(h: dict[str, Any], shared: Any, name: str):
    from optuna.distributions import json_to_distribution

    for src in (h.get("distributions"), shared):
        d = src.get(name) if isinstance(src, dict) else None
        if d is not None:
            try:
                return json_to_distribution(d if isinstance(d, str) else json.dumps(d))
            except Exception:
                continue
    return None


def _inferred(values: list[Any]):
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    if values and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        lo, hi = min(values), max(values)
        log = lo > 0 and hi / lo > 100
        if all(isinstance(v, int) for v in values):
            return IntDistribution(int(lo), int(hi), log=log)
        return FloatDistribution(float(lo), float(hi), log=log)
    choices = tuple(sorted(set(values), key=lambda v: (str(type(v)), str(v))))
    if all(c is None or isinstance(c, (str, int, float, bool)) for c in choices):
        return CategoricalDistribution(choices)
    return None


def rebuild_study(row: dict[str, Any], history: list[dict[str, Any]]):
    """An in-memory Optuna study with the row's trials (numbers kept: trials the history
    lacks, e.g. running ones, become failed placeholders). Returns (study, inferred): the
    names whose distribution was inferred from the values rather than recorded."""
    import optuna
    from optuna.trial import TrialState, create_trial

    shared = row["tuning"].get("distributions")
    usable = [h for h in history if isinstance(h.get("params"), dict)]
    names = sorted({k for h in usable for k in h["params"]})
    dists, inferred = {}, []
    for n in names:
        values = [h["params"][n] for h in usable if n in h["params"]]
        d = next((d for h in usable if (d := _recorded(h, shared, n)) is not None), None)
        ok = d is not None and all(_contains(d, v) for v in values)
        if not ok:
            d = _inferred(values)
            inferred.append(n)
        if d is not None:
            dists[n] = d
    by_number = {int(h["number"]): h for h in history if int(h["number"]) >= 0}
    numbers = sorted(by_number)
    if numbers and numbers[-1] < 2 * len(numbers) + 50:  # gaps filled, so numbers are kept
        numbers = list(range(numbers[-1] + 1))
    study = optuna.create_study(direction="maximize", study_name=str(row["tuning"].get("study", "report")))
    for i in numbers:
        h = by_number.get(i, {})
        given = h.get("params") if isinstance(h.get("params"), dict) else {}
        params = {k: v for k, v in given.items() if k in dists and _contains(dists[k], v)}
        kw = {"params": params, "distributions": {k: dists[k] for k in params}}
        value, state = number(h.get("value")), _state(h) if h else "FAIL"
        if state == "COMPLETE" and value is not None:
            trial = create_trial(value=value, state=TrialState.COMPLETE, **kw)
        elif state == "PRUNED":
            trial = create_trial(state=TrialState.PRUNED, intermediate_values={0: value} if value is not None else None, **kw)
        else:
            trial = create_trial(state=TrialState.FAIL, **kw)
        study.add_trial(trial)
    return study, inferred


def _contains(dist, value: Any) -> bool:
    try:
        return bool(dist._contains(dist.to_internal_repr(value)))
    except Exception:
        return False


@contextmanager
def _optuna_plotting():
    """Optuna's plots change matplotlib's global style and log: both are restored after,
    and the pyplot figures they open are closed."""
    import matplotlib
    import matplotlib.pyplot as plt
    import optuna

    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    before = set(plt.get_fignums())
    try:
        with warnings.catch_warnings(), matplotlib.rc_context(), plt.ioff():
            warnings.simplefilter("ignore")
            yield
    finally:
        optuna.logging.set_verbosity(level)
        for num in sorted(set(plt.get_fignums()) - before):  # ours only, drawn or not
            plt.close(num)


def _finish(fig, ax, title: str, width: float, height: float) -> None:
    fig.set_size_inches(width, height)
    fig.suptitle(title, fontsize=10)
    fig.set_layout_engine("constrained")
    if ax is not None and ax.get_legend() is not None:
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)


def _mark_trial0(ax, x: float, y: float, label: str | None = "trial 0 (paper defaults)") -> None:
    ax.plot([x], [y], "o", ms=10, mfc="none", mec="black", mew=1.5, label=label, zorder=5)


def _history_figure(study, r, dataset, look: Look, pruned: list[tuple[int, float]]):
    from optuna.visualization.matplotlib import plot_optimization_history

    ax = plot_optimization_history(study, target_name=TARGET)
    t0 = study.trials[0] if study.trials else None
    if t0 is not None and t0.value is not None:
        _mark_trial0(ax, 0, t0.value)
    if pruned:
        ax.plot([p[0] for p in pruned], [p[1] for p in pruned], "x", ms=5, color="0.45",
                label="pruned (last value)")
    ax.set_xlabel("trial")
    ax.set_ylabel(TARGET)
    ax.set_title("")
    _finish(ax.figure, ax, f"Optimisation history: {look.label(r)} on {dataset}", 7.2, 3.6)
    return ax.figure


def _importance_figure(study, r, dataset, look: Look):
    import optuna
    from optuna.visualization.matplotlib import plot_param_importances

    try:
        import sklearn  # noqa: F401

        evaluator, how = optuna.importance.FanovaImportanceEvaluator(seed=0), "fANOVA, seeded"
    except ImportError:
        evaluator, how = optuna.importance.PedAnovaImportanceEvaluator(), "PED-ANOVA"
    ax = plot_param_importances(study, evaluator=evaluator, target_name=TARGET)
    ax.set_xlabel(f"importance for {TARGET} ({how})")
    ax.set_ylabel("hyperparameter")
    for loc in ("left", "center", "right"):
        ax.set_title("", loc=loc)
    if ax.get_legend() is not None:
        ax.get_legend().remove()  # one objective: the axis label says what it is
    n = len(ax.get_yticklabels())
    _finish(ax.figure, None, f"Parameter importances: {look.label(r)} on {dataset}", 6.0, 1.6 + 0.35 * n)
    return ax.figure, how


def _slice_figure(study, r, dataset, look: Look):
    import matplotlib
    import numpy as np
    from optuna.visualization.matplotlib import plot_slice

    matplotlib.rcParams["figure.constrained_layout.use"] = True  # room for the colour bar
    matplotlib.rcParams["figure.figsize"] = (5.4, 3.4)  # plot_slice: half a width per panel
    axes = np.atleast_1d(plot_slice(study, target_name=TARGET))
    done = [t for t in study.trials if t.state.name == "COMPLETE"]
    names = sorted({p for t in done for p in t.params})  # plot_slice's order
    t0 = study.trials[0] if study.trials else None
    for ax, name in zip(axes, names, strict=False):
        if t0 is not None and t0.value is not None and name in t0.params:
            v = t0.params[name]
            categorical = not (isinstance(v, (int, float)) and not isinstance(v, bool)) or \
                type(t0.distributions[name]).__name__ == "CategoricalDistribution"
            _mark_trial0(ax, repr(v) if categorical else v, t0.value, None)
        ax.set_ylabel(TARGET if ax is axes[0] else "")
        ax.set_xlabel(name)
        ax.set_title("")
    fig = axes[0].figure
    _finish(fig, None, f"Slices: {look.label(r)} on {dataset} (ring: trial 0)",
            max(5.0, 2.7 * len(axes) + 1.0), 3.4)
    return fig


def tuning_figures(data: ReportData, dataset: str, out: Path, look: Look, **_: Any) -> list[FigureInfo]:
    figs = []
    for r in sorted(main_rows(data, dataset), key=lambda r: palette_order(r["model"])):
        hist = tuning_history(data, r) if isinstance(r.get("tuning"), dict) else None
        if not hist:
            continue  # only a summary was stored: the tuning table shows it
        with _optuna_plotting():
            study, inferred = rebuild_study(r, hist)
            done = [t for t in study.trials if t.state.name == "COMPLETE"]
            if not done:
                continue
            pruned = [(t.number, t.intermediate_values[0]) for t in study.trials
                      if t.state.name == "PRUNED" and 0 in t.intermediate_values]
            base = f"tuning-{slug(dataset)}-{slug(r['model'])}"
            who = f"{look.label(r)} on {dataset}"
            space = (f" The search space of {', '.join(inferred)} is inferred from the values tried "
                     f"(the row records no distributions)." if inferred else "")
            made: list[tuple[Any, str, str, str]] = []
            fig = _history_figure(study, r, dataset, look, pruned)
            made.append((fig, base, f"Tuning of {look.label(r)} ({dataset})", (
                f"Optuna's optimisation history of {who} ({len(done)} complete, {len(pruned)} "
                f"pruned): {TARGET} of every completed trial and the best so far; the ring marks "
                f"trial 0 (the paper defaults), crosses the last value of pruned trials. Drawn from "
                f"the trial history the row records (a study rebuilt in memory).")))
            varied = [n for n, d in study.best_trial.distributions.items() if not d.single()]
            if len(varied) >= 2 and len(done) >= 3:
                try:
                    fig, how = _importance_figure(study, r, dataset, look)
                    made.append((fig, f"{base}-importance", f"Parameter importances of {look.label(r)} ({dataset})",
                                 f"Optuna's parameter importances ({how}) of {who} over its {len(done)} "
                                 f"completed trials.{space}"))
                except Exception as exc:
                    data.notes.warn(f"parameter importance of {r['model']} on {dataset} failed: "
                                    f"{type(exc).__name__}: {exc}")
            if varied:
                fig = _slice_figure(study, r, dataset, look)
                made.append((fig, f"{base}-slices", f"Slices of the tuning of {look.label(r)} ({dataset})",
                             f"Optuna's slice plot of {who}: {TARGET} of each completed trial against "
                             f"each hyperparameter (darker: later trials); the ring marks trial 0.{space}"))
            for fig, name, title, caption in made:
                figs.append(FigureInfo.saved(fig, out, name, title, caption, dataset))
    return figs
