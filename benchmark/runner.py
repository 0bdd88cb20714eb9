"""The ``run`` job: fit each model, select on validation, evaluate once on test, record.

For every model: parameters are the paper's defaults with the ``--param`` overrides (or the
best of an Optuna study when ``trials > 0``, overrides fixed in every trial); the model is
fitted on the training users with the validation users for model selection (best epoch);
then validation and test users are scored from their fold-in items. Each (model, seed,
part) becomes one row of ``results.jsonl`` plus per-user arrays.

Resumable, never stale: a row's ``run_key`` hashes everything that changes its numbers:
the dataset and split hash, the model, its parameters after overrides, the effective epoch
cap, the tuning budget, the seed, the suite's version and the model's source code
(:func:`benchmark.sources.model_source_hash`, plugin files included). Rerunning the same
command skips rows whose key exists (unless ``force``); change any of those and the model
is fitted again. ``config_key`` is the same hash without the seed: the report averages the
rows of one configuration over seeds.
"""

from __future__ import annotations

import sys
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import registry
from .evaluate import DEFAULT_METRICS, evaluate
from .logs import logger
from .model import FitOptions
from .protocol import Split
from .results import (
    ResultRow,
    ResultStore,
    git_commit,
    git_dirty,
    hardware,
    row_label,
    run_key,
    versions,
)
from .sources import model_source_hash
from .version import __version__


@dataclass
class RunConfig:
    """Options of one ``run`` invocation (see ``python -m benchmark run --help``).

    ``seeds``: model seeds; each model is fitted once per seed (``--seeds 0,1,2``).
    ``reference``: the model the report tests every other model against (None: multvae
    when present, else the best by validation NDCG@100).
    """

    models: str = "popularity"
    dataset: str = "synthetic"
    data_dir: str | None = None
    results_dir: str = "results"
    seeds: Sequence[int] = (0,)
    device: str = "auto"
    epochs: int | None = None
    trials: int = 0
    timeout: float | None = None
    storage: str | None = None
    force: bool = False
    progress: bool = True
    report: bool = True
    report_dir: str = "reports"
    metrics: Sequence[str] = DEFAULT_METRICS
    params: dict[str, dict[str, Any]] = field(default_factory=dict)
    reference: str | None = None
    time_budget: float | None = None
    refused: dict[str, str] = field(default_factory=dict)
    save_models: bool = False
    #: The effective experiment configuration (``--config`` + command line), kept in each row.
    experiment: dict[str, Any] | None = None


#: Where ``--save-models`` keeps fitted models, under the results folder: ``models/<run_key>/``.
MODELS_DIR = "models"


def epoch_budget(cls: type, params: dict[str, Any], cap: int | None) -> dict[str, Any] | None:
    """The epochs a fit will run at most: the model's own, capped by ``--epochs``.

    Returns:
        None for models without an epoch count (``--epochs`` does not apply), else
        ``{"param", "model", "cap", "effective", "capped"}`` where ``capped`` is True when
        the cap cut the model's own count (a result to be labelled, not a full run).
    """
    name = getattr(cls, "epochs_param", None) or "epochs"
    own = params.get(name)
    if isinstance(own, bool) or not isinstance(own, int):
        return None
    effective = own if cap is None else min(own, int(cap))
    return {"param": name, "model": own, "cap": cap, "effective": effective,
            "capped": effective < own}


def config_key(
    *,
    dataset: str,
    split_hash: str,
    model: str,
    params: dict[str, Any],
    epochs: int | None,
    trials: int,
    source: str,
) -> str:
    """Hash of one configuration (everything that changes a number, except the seed)."""
    return run_key(
        dataset=dataset, split_hash=split_hash, model=model, params=params, epochs=epochs,
        trials=trials, version=__version__, source=source,
    )


def seed_run_key(config: str, seed: int) -> str:
    """The run key of one seed of a configuration (what ``run`` skips when present)."""
    return run_key(config=config, seed=int(seed))


def log(msg: str) -> None:
    """A progress line (the ``benchmark`` logger, INFO; failures go out as WARNING)."""
    (logger.warning if "FAILED" in msg or "not run:" in msg else logger.info)(msg)


def fit_and_evaluate(
    name: str,
    params: dict[str, Any],
    split: Split,
    options: FitOptions,
    *,
    parts: Sequence[str] = ("valid", "test"),
    metrics: Sequence[str] = DEFAULT_METRICS,
):
    """Fit one model and evaluate it on the given parts.

    Returns:
        (model, fit_seconds, {part: EvalResult})
    """
    cls = registry.get(name)
    model = cls(**params)
    t0 = time.perf_counter()
    model.fit(split.train, split.valid, options=options)
    fit_seconds = time.perf_counter() - t0
    model.item_ids_ = np.asarray(split.items)  # recommend() answers in the data's own ids
    evals = {
        part: evaluate(model.score, split.part(part), metrics=metrics, progress=False)
        for part in parts
    }
    return model, fit_seconds, evals


def run(cfg: RunConfig, split: Split) -> tuple[list[dict[str, Any]], list[str]]:
    """Run every model of ``cfg`` on ``split``; returns (rows written or found, failures)."""
    stats = split.stats()
    names, skipped = registry.select(cfg.models, stats)
    for name, reason in skipped.items():
        log(f"[{name}] skipped: {reason} (ask for it by name to run it anyway)")
    store = ResultStore(cfg.results_dir)
    done = {(r.get("run_key"), r.get("part")): r for r in store.rows(warn=False)}
    dataset = split.meta.get("dataset", cfg.dataset)
    seeds = [int(s) for s in cfg.seeds]
    rows: list[dict[str, Any]] = []
    failures: list[str] = []
    for name in names:
        cls = registry.get(name)
        if name in cfg.refused:
            failures.append(f"{name}: not run: {cfg.refused[name]}")
            log(f"[{name}] not run: {cfg.refused[name]} (see the plan above; raise --time-budget "
                f"or BENCHMARK_MEMORY_LIMIT, or leave it out)")
            continue
        overrides = dict(cfg.params.get(name, {}))
        params = dict(cls.default_params(dataset))
        params.update(overrides)
        budget = epoch_budget(cls, params, cfg.epochs)
        source = model_source_hash(cls)
        config = config_key(
            dataset=dataset, split_hash=split.split_hash, model=name, params=params,
            epochs=budget["effective"] if budget else None, trials=cfg.trials, source=source,
        )
        todo = []
        for seed in seeds:
            key = seed_run_key(config, seed)
            have = [done.get((key, part)) for part in ("valid", "test")]
            complete = all(r is not None and set(cfg.metrics) <= set(r.get("metrics") or {}) for r in have)
            if cfg.save_models and not (store.dir / MODELS_DIR / key / "model.json").is_file():
                complete = False  # asked to keep the fitted model, and it is not there yet
            if not cfg.force and complete:
                log(f"[{name}] seed {seed} already done (run_key {key}); skipping; use --force "
                    f"to run it again")
                rows += [done[(key, "valid")], done[(key, "test")]]
            else:
                todo.append(seed)
        if not todo:
            continue
        tuning_info: dict[str, Any] = {}
        if cfg.trials > 0:
            try:
                from .tuning import tune_model

                best, tuning_info = tune_model(
                    name,
                    split,
                    trials=cfg.trials,
                    timeout=cfg.timeout,
                    storage=cfg.storage,
                    results_dir=cfg.results_dir,
                    seed=seeds[0],
                    device=cfg.device,
                    epochs=cfg.epochs,
                    progress=cfg.progress,
                    fixed_params=overrides,
                )
            except KeyboardInterrupt:
                raise
            except Exception as exc:
                _failed(failures, name, exc)
                continue
            params.update(best)
            params.update(overrides)
        for seed in todo:
            key = seed_run_key(config, seed)
            options = FitOptions(
                seed=seed,
                device=cfg.device,
                epochs=cfg.epochs,
                progress=cfg.progress,
                dataset=dataset,
                time_budget=cfg.time_budget,
            )
            label = name if len(seeds) == 1 else f"{name} seed {seed}"
            try:
                log(f"[{label}] fitting on {split.train.shape[0]:,} users x {split.n_items:,} "
                    f"items ...")
                model, fit_seconds, evals = fit_and_evaluate(
                    name, params, split, options, metrics=cfg.metrics
                )
            except KeyboardInterrupt:
                raise
            except Exception as exc:  # one model failing must not lose the others
                _failed(failures, label, exc)
                continue
            final = model.get_params()
            common = {
                "run_key": key,
                "config_key": config,
                "dataset": dataset,
                "model": name,
                "params": final,
                "overrides": overrides,
                "seed": seed,
                "epochs": epoch_budget(cls, final, cfg.epochs),
                "epochs_cap": cfg.epochs,
                "fit_seconds": fit_seconds,
                "split_hash": split.split_hash,
                "split_seed": split.meta.get("seed"),
                "device": options.resolve_device(),
                "suite_version": __version__,
                "source_hash": source,
                "versions": versions(),
                "git_commit": git_commit(),
                "git_dirty": git_dirty(),
                "hardware": hardware(),
                "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            }
            if cfg.experiment:
                common["experiment"] = cfg.experiment
            if tuning_info:
                common["tuning"] = tuning_info
            extra = model.results_extra()
            if extra:
                common["extra"] = extra
            try:
                if cfg.save_models:  # the model first: a row never names a missing model
                    model.save(store.dir / MODELS_DIR / key)
                    common["model_path"] = f"{MODELS_DIR}/{key}"
                rows += write_rows(store, key, common, evals)
            except OSError as exc:  # e.g. the results folder became read-only: this model
                _failed(failures, label, exc)  # fails, the others go on
                continue
            m = evals["test"].mean()
            capped = common["epochs"] and common["epochs"]["capped"]
            log(
                f"[{label}] test NDCG@100 {m['ndcg@100']:.4f}  Recall@20 {m['recall@20']:.4f}  "
                f"Recall@50 {m['recall@50']:.4f}  (fit {fit_seconds:.1f} s"
                + (f", capped at {common['epochs']['effective']} epochs" if capped else "")
                + ")"
            )
    return rows, failures


def write_rows(store: ResultStore, key: str, common: dict[str, Any], evals: dict) -> list[dict]:
    """Write the per-user arrays, then the rows, of one fit; never an array without its row.

    Arrays go first (each written to a temporary name, then renamed); if writing any array
    or row fails, the arrays of this fit are removed again and the error propagates.
    Both rows go into ``results.jsonl`` in one write.
    """
    rows = []
    for part in ("valid", "test"):
        ev = evals[part]
        row_id = f"{key}-{part}"
        rows.append(ResultRow(
            **common,
            id=row_id,
            part=part,
            metrics=ev.mean(),
            sem=ev.sem(),
            n_users=ev.n_users,
            n_excluded=ev.n_excluded,
            score_seconds=ev.seconds,
            arrays=f"arrays/{row_id}.npz",
        ).as_dict())
    written: list[Path] = []
    try:
        for row in rows:
            written.append(store.save_arrays(row["id"], evals[row["part"]].arrays()))
        store.append(rows)  # both rows in one write
    except BaseException:
        for p in written:
            p.unlink(missing_ok=True)
        raise
    return rows


def _failed(failures: list[str], label: str, exc: BaseException) -> None:
    failures.append(f"{label}: {exc}")
    log(f"[{label}] FAILED: {type(exc).__name__}: {exc}")
    if "--debug" in sys.argv:
        traceback.print_exc()


def run_experiment(
    models: str | Sequence[str],
    dataset: str,
    *,
    data_dir: str | None = None,
    results_dir: str = "results",
    report_dir: str | None = "reports",
    **options: Any,
) -> list[dict[str, Any]]:
    """``python -m benchmark run`` from Python: fit, evaluate, record, report.

    Args:
        models: names (or "all").
        dataset: a dataset name or ``file:PATH``.
        data_dir: the data root (default ``$BENCHMARK_DATA_DIR`` or ``./datasets``).
        results_dir: where rows and arrays go.
        report_dir: where the report goes (None: no report).
        options: further :class:`RunConfig` fields (``seeds``, ``epochs``, ``trials``,
            ``device``, ``params``, ``reference``, ``force``, ...).

    Returns:
        The result rows (written now or found done).

    Raises:
        RuntimeError: naming every model that failed (the others' rows are kept).
    """
    from .data import load_split

    names = models if isinstance(models, str) else ",".join(models)
    cfg = RunConfig(models=names, dataset=dataset, data_dir=data_dir, results_dir=results_dir,
                    progress=options.pop("progress", False), **options)
    split = load_split(dataset, data_dir=data_dir)
    rows, failures = run(cfg, split)
    if report_dir is not None:
        maybe_report(results_dir, report_dir, reference=cfg.reference)
    if failures:
        raise RuntimeError("; ".join(failures))
    return rows


def format_table(rows: list[dict[str, Any]], metrics: Sequence[str] = DEFAULT_METRICS) -> str:
    """A plain-text table of test metrics with validation NDCG@100, one line per model.

    One seed: mean ± s.e. over users. Several seeds: the mean over seeds ± the standard
    deviation over seeds (the report adds the s.e. over users of the per-user means).
    """
    by_model: dict[str, dict[str, list[dict]]] = {}
    for r in rows:
        by_model.setdefault(row_label(r), {}).setdefault(r["part"], []).append(r)
    header = ["model", "seeds", "valid ndcg@100"] + [f"test {m}" for m in metrics] + ["fit s"]
    lines = []
    for model, parts in by_model.items():
        test, valid = parts.get("test", []), parts.get("valid", [])
        cells = [model, str(len(test)), _fmt(_mean(valid, "ndcg@100"))]
        for m in metrics:
            if len(test) > 1:
                vals = [r["metrics"][m] for r in test if isinstance((r.get("metrics") or {}).get(m), (int, float))]
                sd = float(np.std(vals, ddof=1)) if len(vals) > 1 else None
                cells.append(_fmt(_mean(test, m), sd, "sd"))
            else:
                cells.append(_fmt(_mean(test, m), test[0].get("sem", {}).get(m) if test else None))
        fs = [r["fit_seconds"] for r in test if isinstance(r.get("fit_seconds"), (int, float))]
        cells.append(f"{np.mean(fs):.1f}" if fs else "")
        lines.append(cells)
    lines.sort(key=lambda c: c[2 + len(metrics)], reverse=True)
    widths = [max(len(str(x)) for x in col) for col in zip(header, *lines)]
    out = [" | ".join(h.ljust(w) for h, w in zip(header, widths))]
    out.append("-+-".join("-" * w for w in widths))
    out += [" | ".join(str(c).ljust(w) for c, w in zip(cells, widths)) for cells in lines]
    return "\n".join(out)


def _mean(rows: list[dict[str, Any]], metric: str) -> float | None:
    vals = [r["metrics"][metric] for r in rows
            if isinstance((r.get("metrics") or {}).get(metric), (int, float))]
    return float(np.mean(vals)) if vals else None


def _fmt(mean: Any, sem: Any = None, what: str = "") -> str:
    if not isinstance(mean, (int, float)):
        return "-"
    return f"{mean:.4f}" + (f" ± {sem:.4f}{' ' + what if what else ''}" if isinstance(sem, (int, float)) else "")


def maybe_report(
    results_dir: str | Path, out_dir: str | Path, *, reference: str | None = None
) -> Path | None:
    """Render the report when the report package is available; never fail the run."""
    try:
        from .report import build_report
    except ImportError:
        return None
    try:
        return build_report(results_dir, out_dir, reference=reference)
    except Exception as exc:  # the numbers are safe in results/; the report can be redone
        log(f"report: could not render ({type(exc).__name__}: {exc}); rerun `python -m benchmark report`")
        return None
