"""The ``run`` job: datasets -> plan -> fit jobs -> an executor -> one writer -> the report.

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

import os
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import benchmark.registry as registry

from .cost import DataShape
from .evaluate import DEFAULT_METRICS
from .jobs import (
    ChildProcessExecutor,
    Executor,
    FitJob,
    JobResult,
    ModelRef,
    RoutedExecutor,
    SequentialExecutor,
    epoch_budget,
)
from .logs import logger
from .model import FitOptions, Recommender
from .plan import FORCE_HINT, Plan, skipped_line
from .protocol import Split
from .resources import IGNORE_PLAN_ENV
from .results import ResultStore, run_key
from .tracking import log_run
from .version import __version__

__all__ = ["RunConfig", "RunOutcome", "run", "run_all", "build_jobs", "write_result",
           "epoch_budget", "config_key", "seed_run_key", "MODELS_DIR"]


@dataclass
class RunConfig:
    """Options of one ``run`` invocation (see ``python -m benchmark run --help``).

    ``datasets``: names or ``file:PATH`` (:func:`run_all` loads each; :func:`run` is given
    a split); ``split_seed``, ``protocol_overrides``, ``file_options``: how they are split.
    ``seeds``: model seeds; each model is fitted once per seed (``--seeds 0,1,2``).
    ``reference``: the model the report tests every other model against (None: multvae
    when present, else the best by validation NDCG@100). ``plan_only``: print the plan
    and fit nothing. ``isolate``: which fits run in a child process of their own, where a
    crash in native code fails that fit only: "auto" (those the plan marks as large), "all"
    or "none". ``mlflow``: a tracking URI every fit is logged to.
    """

    models: str = "popularity"
    datasets: Sequence[str] = ("synthetic",)
    data_dir: str | None = None
    split_seed: int | None = None
    protocol_overrides: dict[str, Any] = field(default_factory=dict)
    file_options: dict[str, Any] = field(default_factory=dict)
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
    save_models: bool = False
    plan_only: bool = False
    isolate: str = "auto"
    mlflow: str | None = None
    ray: str | None = None
    threads: int | None = None
    ray_retries: int = 2
    ignore_plan: bool = False  # fit what the plan refuses or skips for memory or time
    protocols: Sequence[str | None] = (None,)  # each dataset under each (None: the dataset's own)
    #: The effective experiment configuration (``--config`` + command line), kept in each row.
    experiment: dict[str, Any] | None = None


@dataclass
class RunOutcome:
    """What :func:`run_all` did: the rows (written now or found done) per dataset, the
    failures (one line each), the report folder (None when none was rendered), and with
    ``plan_only`` the plans."""

    rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    report: Path | None = None
    plans: list[Plan] = field(default_factory=list)


#: Where ``--save-models`` keeps fitted models, under the results folder: ``models/<run_key>/``.
MODELS_DIR = "models"


def config_key(*, dataset: str, split_hash: str, model: str, params: dict[str, Any],
               epochs: int | None, trials: int, source: str) -> str:
    """Hash of one configuration (everything that changes a number, except the seed)."""
    return run_key(dataset=dataset, split_hash=split_hash, model=model, params=params,
                   epochs=epochs, trials=trials, version=__version__, source=source)


def seed_run_key(config: str, seed: int) -> str:
    """The run key of one seed of a configuration (what ``run`` skips when present)."""
    return run_key(config=config, seed=int(seed))


def log(msg: str) -> None:
    """A progress line (the ``benchmark`` logger, INFO; failures go out as WARNING)."""
    (logger.warning if "FAILED" in msg or "not run:" in msg else logger.info)(msg)


# --- the whole run ------------------------------------------------------------------------
def run_all(cfg: RunConfig, executor: Executor | None = None) -> RunOutcome:
    """Every dataset of ``cfg``: load, plan, fit (unless ``plan_only``), then the report
    and MLflow. A model that fails is a line in ``failures``; the others go on. With
    ``ignore_plan`` the fits' own memory checks warn instead of refusing (this run only)."""
    if not cfg.ignore_plan or os.environ.get(IGNORE_PLAN_ENV):
        return _run_all(cfg, executor)
    os.environ[IGNORE_PLAN_ENV] = "1"  # read by check_memory, here and in child processes
    try:
        return _run_all(cfg, executor)
    finally:
        os.environ.pop(IGNORE_PLAN_ENV, None)


def _run_all(cfg: RunConfig, executor: Executor | None) -> RunOutcome:
    if cfg.mlflow and not cfg.plan_only:
        from .checks import UsageError
        from .tracking import TrackingError, connect

        try:  # reach the tracking store before anything is fitted (exit 2 if it cannot be)
            connect(cfg.mlflow)
        except TrackingError as exc:
            raise UsageError(f"--mlflow: {exc}") from exc
    outcome = RunOutcome()
    whole = cfg
    for dataset, proto in [(d, p) for d in whole.datasets for p in whole.protocols]:
        cfg = whole if proto is None else replace(  # one split per (dataset, protocol)
            whole, protocol_overrides={**whole.protocol_overrides, "protocol": proto})
        if cfg.plan_only:
            outcome.plans.append(plan_dataset(cfg, *_shape_for_plan(cfg, dataset)))
            continue
        split = _load(cfg, dataset)
        from .checks import UsageError, evaluable_problem
        from .evaluate import clipped_ks

        problem = evaluable_problem(split, dataset)
        if problem:  # nothing could be scored: exit 2 before any fit
            raise UsageError(problem)
        for m, k in clipped_ks(cfg.metrics, split.n_items).items():
            logger.info(f"{m} evaluated at K = {k:,}, the catalogue ({dataset} has {k:,} items)")
        plan = plan_dataset(cfg, split, split.stats())
        logger.info(plan.format())
        # under Ray, the cluster's nodes (not this machine's memory) decide what fits; a
        # model named on the command line and skipped for its size is refused (exit 1)
        explicit = cfg.models.strip() != "all"
        refused = {} if cfg.ignore_plan else {
            r.model: r.problem or r.skipped for r in plan.rows
            if (r.problem and not (cfg.ray is not None and r.over_memory)) or (r.skipped and explicit)}
        names = [r.model for r in plan.rows if not (r.skipped or r.model in refused)]
        rows, failures = run(cfg, split, executor=executor or executor_for(cfg, plan),
                             refused=refused, names=names)
        outcome.rows[dataset + ("" if proto in (None, "strong") else f" ({proto})")] = rows
        outcome.failures += failures
    cfg = whole
    if cfg.plan_only:
        return outcome
    logger.info(f"results: {Path(cfg.results_dir) / 'results.jsonl'}")
    if cfg.report:
        outcome.report = maybe_report(cfg.results_dir, cfg.report_dir, reference=cfg.reference)
        if outcome.report:
            logger.info(f"report: {outcome.report}")
    if cfg.mlflow:
        report = Path(cfg.report_dir) if cfg.report else None
        outcome.failures += log_run(cfg.mlflow, [r for rows in outcome.rows.values() for r in rows],
                                    report if report and (report / "index.html").is_file() else None)
    return outcome


def _load(cfg: RunConfig, dataset: str) -> Split:
    from .data import load_split

    return load_split(dataset, data_dir=cfg.data_dir, protocol_overrides=cfg.protocol_overrides,
                      file_options=cfg.file_options if dataset.startswith("file:") else None,
                      **({} if cfg.split_seed is None else {"seed": cfg.split_seed}))


def _shape_for_plan(cfg: RunConfig, dataset: str) -> tuple[Split | DataShape, dict[str, Any]]:
    """The data when it is on disk (or generated); else, for a dataset with a published
    shape and the paper's protocol, that shape, without reading or downloading anything."""
    from .data import dataset_dir, get_dataset
    from .data.preprocess import REFERENCE_SEED

    spec = None if dataset.startswith("file:") else get_dataset(dataset)
    pub = spec.published if spec else None
    overridden = (any(v is not None for v in cfg.protocol_overrides.values())
                  or cfg.split_seed not in (None, REFERENCE_SEED))
    if spec is None or pub is None or overridden or spec.generated:
        split = _load(cfg, dataset)
        return split, split.stats()
    root = dataset_dir(spec, cfg.data_dir)
    if spec.raw_present(root / "raw") or any((root / "processed").glob("*/meta.json")):
        split = _load(cfg, dataset)
        return split, split.stats()
    shape = DataShape(dataset=dataset, train_users=pub.train_users, items=pub.items,
                      train_clicks=pub.train_clicks, valid_users=pub.heldout,
                      test_users=pub.heldout, min_activity=max(1, spec.protocol.min_user_items))
    return shape, pub.stats(dataset)


def plan_dataset(cfg: RunConfig, data: Split | DataShape, stats: dict[str, Any]) -> Plan:
    """The plan of one dataset: every model of the run has a line (skipped ones with their
    reason); from the data when given a split, else from a published shape."""
    from .plan import plan_run

    names, skipped = registry.select(cfg.models, stats)
    if cfg.ignore_plan:  # every model of the run, in the run's order
        names, skipped = [n for n in registry.resolve(cfg.models) if n in names or n in skipped], {}
    explicit = cfg.models.strip() != "all"
    for name, reason in skipped.items():  # a named one's "not run" line comes with the fits
        if not explicit or cfg.plan_only:
            log(skipped_line(name, reason, stats, explicit))
    download = disk = None
    if isinstance(data, Split):
        shape, basis = DataShape.from_split(data), "the data"
    else:
        from .data import get_dataset

        pub = get_dataset(data.dataset).published
        shape, basis = data, f"the published shape ({pub.source}; the data was not read)"
        download = pub.download_bytes
        disk = (pub.download_bytes or 0) + (pub.unpacked_bytes or 0) + pub.cache_bytes
    return plan_run(names, skipped, shape, cfg.params,
                    FitOptions(device=cfg.device, epochs=cfg.epochs, progress=False,
                               threads=cfg.threads or (1 if cfg.ray is not None else None)),
                    basis=basis, time_budget=cfg.time_budget, download_bytes=download,
                    disk_bytes=disk)


def executor_for(cfg: RunConfig, plan: Plan) -> Executor:
    """Ray tasks with ``cfg.ray`` (each asking for the plan's memory and device); else
    sequential in this process, except the fits ``cfg.isolate`` puts in a child process
    ("auto": the models the plan marks as large; "all"; "none")."""
    if cfg.ray is not None:
        from .cluster import RayExecutor

        threads = cfg.threads or 1
        requests = {r.model: {"num_cpus": threads, "num_gpus": 1 if r.device == "cuda" else 0,
                              "memory": int(r.estimate.peak_bytes) if r.estimate else 0}
                    for r in plan.rows}
        seconds = {r.model: r.estimate.seconds for r in plan.rows
                   if r.estimate and r.estimate.seconds is not None}
        return RayExecutor(cfg.ray or None, requests=requests, threads=threads,
                           max_retries=cfg.ray_retries, seconds=seconds)
    large = {r.model for r in plan.rows if r.large}
    if cfg.isolate == "none" or (cfg.isolate == "auto" and not large):
        return SequentialExecutor()
    if cfg.isolate == "all":
        return ChildProcessExecutor()
    return RoutedExecutor(large, ChildProcessExecutor(), SequentialExecutor())


def run(cfg: RunConfig, split: Split, *, executor: Executor | None = None,
        refused: dict[str, str] | None = None, names: list[str] | None = None,
        ) -> tuple[list[dict[str, Any]], list[str]]:
    """Run every model of ``cfg`` on ``split``; returns (rows written or found, failures).

    ``names``: the models (default: :func:`benchmark.registry.select` of ``cfg.models``);
    ``refused``: models the plan refused, reported as failures and not fitted.
    """
    if names is None:
        names, skipped = registry.select(cfg.models, split.stats())
        for name, reason in skipped.items():
            log(skipped_line(name, reason, split.stats(), False))
    store = ResultStore(cfg.results_dir)
    failures: list[str] = []
    for name, reason in (refused or {}).items():
        failures.append(f"{name}: not run: {reason}")
        log(f"[{name}] not run: {reason} (see the plan above; {FORCE_HINT})")
    classes = {n: registry.get(n) for n in names if n not in (refused or {})}
    jobs, rows, failed = build_jobs(cfg, split, classes, store)
    failures += failed
    for result in (executor or SequentialExecutor()).map(jobs, split):
        try:
            rows += write_result(store, result)
        except OSError as exc:  # e.g. the results folder became read-only: this model fails
            result.error = f"{type(exc).__name__}: {exc}"
        if result.error:
            failures.append(f"{result.job.label}: {result.error.split(': ', 1)[-1]}")
            log(f"[{result.job.label}] FAILED: {result.error}")
        else:
            _log_done(result)
    return rows, failures


def build_jobs(cfg: RunConfig, split: Split, classes: dict[str, type[Recommender]],
               store: ResultStore) -> tuple[list[FitJob], list[dict[str, Any]], list[str]]:
    """The fit jobs still to do (tuning first where ``cfg.trials``); returns (jobs, rows
    found done, failures of tuning)."""
    dataset = split.meta.get("dataset", "")
    done = {(r.get("run_key"), r.get("part")): r for r in store.rows(warn=False)}
    seeds = [int(s) for s in cfg.seeds]
    jobs: list[FitJob] = []
    found: list[dict[str, Any]] = []
    failures: list[str] = []
    for name, cls in classes.items():
        overrides = dict(cfg.params.get(name, {}))
        params = {**cls.default_params(dataset), **overrides}
        ref = ModelRef.of(cls)
        budget = epoch_budget(cls, params, cfg.epochs)
        config = config_key(dataset=dataset, split_hash=split.split_hash, model=name,
                            params=params, epochs=budget["effective"] if budget else None,
                            trials=cfg.trials, source=ref.source_hash)
        todo = [s for s in seeds if not _found(cfg, store, done, seed_run_key(config, s), found)]
        if not todo:
            continue
        tuning: dict[str, Any] = {}
        if cfg.trials > 0:
            tuned, failed = _tune(cfg, name, split, overrides, seeds[0])
            if failed:
                failures += failed
                continue
            _, best, tuning = tuned[0]
            params = {**params, **best, **overrides}
        facts = {"config_key": config, "overrides": overrides, "epochs_cap": cfg.epochs,
                 "split_hash": split.split_hash, "split_seed": split.meta.get("seed"),
                 **({"protocol": p} if (p := split.meta.get("protocol", {}).get("protocol")) else {}),
                 **({"experiment": cfg.experiment} if cfg.experiment else {}),
                 **({"tuning": tuning} if tuning else {})}
        reuse: dict[int, tuple[tuple[int, str], ...]] = {}
        if not cls.fit_uses_seed and len(todo) > 1:  # one fit serves every seed
            reuse = {todo[0]: tuple((s, seed_run_key(config, s)) for s in todo[1:])}
            log(f"[{name}] fitted once for seeds {', '.join(map(str, todo))}: its fit has no "
                "randomness given the split (fit_uses_seed = False)")
            todo = todo[:1]
        for seed in todo:
            options = FitOptions(seed=seed, device=cfg.device, epochs=cfg.epochs,
                                 progress=cfg.progress, dataset=dataset,
                                 time_budget=cfg.time_budget, threads=cfg.threads)
            jobs.append(FitJob(dataset=dataset, model=ref, params=dict(params), seed=seed,
                               run_key=seed_run_key(config, seed), options=options,
                               metrics=tuple(cfg.metrics), facts=facts,
                               save_model=cfg.save_models, same_fit_for=reuse.get(seed, ()),
                               label=name if len(seeds) == 1 or reuse else f"{name} seed {seed}"))
    return jobs, found, failures


def _found(cfg: RunConfig, store: ResultStore, done: dict, key: str, found: list) -> bool:
    """Whether the fit under ``key`` is complete (both rows, every metric, the model when
    asked); its rows join ``found`` then."""
    have = [done.get((key, part)) for part in ("valid", "test")]
    complete = all(r is not None and set(cfg.metrics) <= set(r.get("metrics") or {}) for r in have)
    saved = (have[0] or {}).get("model_path") or f"{MODELS_DIR}/{key}"  # a reused fit's model
    if cfg.save_models and not (store.dir / saved / "model.json").is_file():
        complete = False  # asked to keep the fitted model, and it is not there yet
    if cfg.force or not complete:
        return False
    log(f"[{have[0]['model']}] seed {have[0]['seed']} already done (run_key {key}); skipping; "
        "use --force to run it again")
    found += have
    return True


def _tune(cfg: RunConfig, name: str, split: Split, overrides: dict[str, Any], seed: int):
    """Tune one model (``cfg.trials`` trials, overrides fixed): ``tuning.batch.tune_models``."""
    from .tuning.batch import tune_models

    return tune_models([name], split, fixed_params={name: overrides}, trials=cfg.trials,
                       timeout=cfg.timeout, storage=cfg.storage, results_dir=cfg.results_dir,
                       seed=seed, device=cfg.device, epochs=cfg.epochs, progress=cfg.progress)


def write_result(store: ResultStore, result: JobResult) -> list[dict[str, Any]]:
    """The one writer: the saved model, then the per-user arrays, then both rows in one
    append; never a row without its arrays or model (a failure removes what it wrote)."""
    import shutil

    if not result.ok:
        return []
    rows = [dict(r) for r in result.rows]
    written: list[Path] = []
    target = store.dir / MODELS_DIR / result.job.run_key
    try:
        for r in rows:
            r["worker"] = result.worker or None
        if result.model_dir:  # the model first: a row never names a missing model
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.rmtree(target, ignore_errors=True)
            shutil.move(result.model_dir, target)
            for r in rows:
                r["model_path"] = f"{MODELS_DIR}/{result.job.run_key}"
        for row in rows:
            written.append(store.save_arrays(row["id"], result.arrays[row["id"]]))
        store.append(rows)  # both rows in one write
    except BaseException:
        for p in written:
            p.unlink(missing_ok=True)
        raise
    finally:
        if result.model_dir:
            shutil.rmtree(Path(result.model_dir).parent, ignore_errors=True)
    return rows


def _log_done(result: JobResult) -> None:
    test = next(r for r in result.rows if r["part"] == "test")
    m, epochs = test["metrics"], test.get("epochs")
    capped = epochs and epochs["capped"]
    log(f"[{result.job.label}] test NDCG@100 {m['ndcg@100']:.4f}  Recall@20 {m['recall@20']:.4f}"
        f"  Recall@50 {m['recall@50']:.4f}  (fit {test['fit_seconds']:.1f} s"
        + (f", capped at {epochs['effective']} epochs" if capped else "") + ")")


def maybe_report(
    results_dir: str | Path, out_dir: str | Path, *, reference: str | None = None
) -> Path | None:
    """Render the report; never fail the run (the numbers are safe in the results folder)."""
    from .report import build_report

    try:
        return build_report(results_dir, out_dir, reference=reference)
    except Exception as exc:  # the numbers are safe in results/; the report can be redone
        log(f"report: could not render ({type(exc).__name__}: {exc}); rerun `python -m benchmark report`")
        return None
