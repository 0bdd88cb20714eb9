"""The ``run`` job: fit each model, select on validation, evaluate once on test, record.

For every model: parameters are the paper's defaults (or the best of an Optuna study when
``trials > 0``); the model is fitted on the training users with the validation users for
model selection (best epoch); then validation and test users are scored from their fold-in
items. Each (model, part) becomes one row of ``results.jsonl`` plus per-user arrays.

Resumable: a row's ``run_key`` hashes the dataset, split, model, parameters, seed and
budget; rerunning the same command skips models whose test row exists (unless ``force``).
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
from .protocol import FitOptions, Split
from .results import ResultStore, git_commit, hardware, run_key, versions


@dataclass
class RunConfig:
    """Options of one ``run`` invocation (see ``python -m benchmark run --help``)."""

    models: str = "popularity"
    dataset: str = "synthetic"
    data_dir: str | None = None
    results_dir: str = "results"
    seed: int = 0
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


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


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
    evals = {
        part: evaluate(model.score, split.part(part), metrics=metrics, progress=False)
        for part in parts
    }
    return model, fit_seconds, evals


def run(cfg: RunConfig, split: Split) -> tuple[list[dict[str, Any]], list[str]]:
    """Run every model of ``cfg`` on ``split``; returns (rows written or found, failures)."""
    names = registry.resolve(cfg.models)
    explicit = cfg.models.strip() != "all"
    store = ResultStore(cfg.results_dir)
    done = {(r.get("run_key"), r.get("part")): r for r in store.rows(warn=False)}
    stats = split.stats()
    dataset = split.meta.get("dataset", cfg.dataset)
    rows: list[dict[str, Any]] = []
    failures: list[str] = []
    for name in names:
        cls = registry.get(name)
        reason = cls.skip_reason(stats, explicit=explicit)
        if reason:
            log(f"[{name}] skipped: {reason} (ask for it by name to run it anyway)")
            continue
        params = dict(cls.default_params(dataset))
        params.update(cfg.params.get(name, {}))
        key = run_key(
            dataset=dataset,
            split_hash=split.split_hash,
            model=name,
            params=params,
            seed=cfg.seed,
            epochs=cfg.epochs,
            trials=cfg.trials,
        )
        if not cfg.force and (key, "test") in done and (key, "valid") in done:
            log(f"[{name}] already done (run_key {key}); skipping; use --force to run it again")
            rows += [done[(key, "valid")], done[(key, "test")]]
            continue
        try:
            tuning_info: dict[str, Any] = {}
            if cfg.trials > 0:
                from .tuning import tune_model

                best, tuning_info = tune_model(
                    name,
                    split,
                    trials=cfg.trials,
                    timeout=cfg.timeout,
                    storage=cfg.storage,
                    results_dir=cfg.results_dir,
                    seed=cfg.seed,
                    device=cfg.device,
                    epochs=cfg.epochs,
                    progress=cfg.progress,
                )
                params.update(best)
            options = FitOptions(
                seed=cfg.seed,
                device=cfg.device,
                epochs=cfg.epochs,
                progress=cfg.progress,
                dataset=dataset,
            )
            np.random.seed(cfg.seed)
            log(f"[{name}] fitting on {split.train.shape[0]:,} users x {split.n_items:,} items ...")
            model, fit_seconds, evals = fit_and_evaluate(
                name, params, split, options, metrics=cfg.metrics
            )
        except KeyboardInterrupt:
            raise
        except Exception as exc:  # one model failing must not lose the others
            failures.append(f"{name}: {exc}")
            log(f"[{name}] FAILED: {type(exc).__name__}: {exc}")
            if "--debug" in sys.argv:
                traceback.print_exc()
            continue
        extra = model.results_extra()
        for part in ("valid", "test"):
            ev = evals[part]
            row_id = f"{key}-{part}"
            store.save_arrays(row_id, ev.arrays())
            row = {
                "id": row_id,
                "run_key": key,
                "dataset": dataset,
                "model": name,
                "part": part,
                "metrics": ev.mean(),
                "sem": ev.sem(),
                "n_users": ev.n_users,
                "n_excluded": ev.n_excluded,
                "params": model.get_params(),
                "seed": cfg.seed,
                "epochs_cap": cfg.epochs,
                "fit_seconds": fit_seconds,
                "score_seconds": ev.seconds,
                "split_hash": split.split_hash,
                "split_seed": split.meta.get("seed"),
                "device": options.resolve_device(),
                "versions": versions(),
                "git_commit": git_commit(),
                "hardware": hardware(),
                "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "arrays": f"arrays/{row_id}.npz",
            }
            if tuning_info:
                row["tuning"] = tuning_info
            if extra:
                row["extra"] = extra
            store.append(row)
            rows.append(row)
        m = evals["test"].mean()
        log(
            f"[{name}] test NDCG@100 {m['ndcg@100']:.4f}  Recall@20 {m['recall@20']:.4f}  "
            f"Recall@50 {m['recall@50']:.4f}  (fit {fit_seconds:.1f} s)"
        )
    return rows, failures


def format_table(rows: list[dict[str, Any]], metrics: Sequence[str] = DEFAULT_METRICS) -> str:
    """A plain-text table of test metrics (mean ± s.e.) with validation NDCG@100."""
    by_model: dict[str, dict[str, dict]] = {}
    for r in rows:
        by_model.setdefault(r["model"], {})[r["part"]] = r
    header = ["model", "valid ndcg@100"] + [f"test {m}" for m in metrics] + ["fit s"]
    lines = []
    for model, parts in by_model.items():
        test = parts.get("test", {})
        valid = parts.get("valid", {})
        cells = [model, _fmt(valid.get("metrics", {}).get("ndcg@100"))]
        for m in metrics:
            cells.append(_fmt(test.get("metrics", {}).get(m), test.get("sem", {}).get(m)))
        fs = test.get("fit_seconds")
        cells.append(f"{fs:.1f}" if isinstance(fs, (int, float)) else "")
        lines.append(cells)
    lines.sort(key=lambda c: c[1 + len(metrics)], reverse=True)
    widths = [max(len(str(x)) for x in col) for col in zip(header, *lines)]
    out = [" | ".join(h.ljust(w) for h, w in zip(header, widths))]
    out.append("-+-".join("-" * w for w in widths))
    out += [" | ".join(str(c).ljust(w) for c, w in zip(cells, widths)) for cells in lines]
    return "\n".join(out)


def _fmt(mean: Any, sem: Any = None) -> str:
    if not isinstance(mean, (int, float)):
        return "-"
    return f"{mean:.4f}" + (f" ± {sem:.4f}" if isinstance(sem, (int, float)) else "")


def maybe_report(results_dir: str | Path, out_dir: str | Path) -> Path | None:
    """Render the report when the report package is available; never fail the run."""
    try:
        from .report import build_report
    except ImportError:
        return None
    try:
        return build_report(results_dir, out_dir)
    except Exception as exc:  # the numbers are safe in results/; the report can be redone
        log(f"report: could not render ({type(exc).__name__}: {exc}); rerun `python -m benchmark report`")
        return None
