"""Running trials: the objective, one worker's loop, local worker processes, ``tune_model``."""

from __future__ import annotations

import gc
import math
import os
import socket
import sys
import time
import warnings
from collections.abc import Callable
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

import benchmark.registry as registry

from ..evaluate import validation_ndcg
from ..model import EpochReport, FitOptions, available_cpus
from ..protocol import Split
from .policy import (
    FINISHED,
    BudgetStudy,
    _BudgetSpent,
    _check_study,
    _describe_pruner,
    _finished_twin,
    _quiet_optuna,
    _wait_for_running,
    log,
    make_pruner,
    study_info,
)
from .pool import worker_seed
from .space import enqueued_defaults, params_of, probe_space, sampler_fixed
from .storage import (
    StudyLock,
    default_storage,
    make_storage,
    normalize_url,
    redact_url,
    study_config_hash,
    study_name_for,
)


def _make_objective(
    cls: type,
    split: Split,
    *,
    dataset: str | None,
    seed: int,
    device: str,
    epochs: int | None,
    threads: int | None,
    deadline: float | None,
    fixed_params: dict[str, Any] | None = None,
) -> Callable[[optuna.Trial], float]:
    fixed = dict(fixed_params or {})
    defaults = {**cls.default_params(dataset), **fixed}
    worker = f"{socket.gethostname()}:{os.getpid()}"

    def objective(trial: optuna.Trial) -> float:
        trial.set_user_attr("worker", worker)
        reported: list[int] = []

        def on_epoch(report: EpochReport) -> None:
            if report.ndcg100 is None:
                return
            value = float(report.ndcg100)
            if not math.isfinite(value):
                raise FloatingPointError(f"validation NDCG@100 is {value} at epoch {report.epoch}")
            reported.append(report.epoch)
            trial.report(value, report.epoch)
            if trial.should_prune():
                trial.set_user_attr("epochs_run", len(reported))
                raise optuna.TrialPruned(
                    f"pruned at epoch {report.epoch}: validation NDCG@100 {value:.4f}"
                )

        budget = None if deadline is None else max(1.0, deadline - time.perf_counter())
        options = FitOptions(
            seed=seed,
            device=device,
            epochs=epochs,
            time_budget=budget,
            on_epoch=on_epoch,
            progress=False,
            threads=threads,
            dataset=dataset,
        )
        model = None
        try:
            params = dict(defaults)
            space = cls.search_space(trial)
            if not trial.user_attrs.get("paper_defaults"):  # trial 0 fits the defaults as they are
                params.update(space)
            params.update(fixed)  # --param overrides hold in every trial
            trial.set_user_attr("params", _jsonable(params))
            twin = _finished_twin(trial)
            if twin is not None:  # same parameters as a finished trial: same (seeded) fit
                trial.set_user_attr("duplicate_of", twin.number)
                return float(twin.value)
            model = cls(**params)
            model.fit(split.train, split.valid, options=options)  # never split.test
            value = float(validation_ndcg(model.score, split.valid))
            if not math.isfinite(value):
                raise FloatingPointError(f"validation NDCG@100 is {value}")
        except optuna.TrialPruned:
            raise
        except Exception as exc:  # NaN loss, out of memory, time budget, bad params, ...
            reason = f"{type(exc).__name__}: {exc}"
            trial.set_user_attr("fail_reason", reason[:2000])  # the trial line prints it
            return float("nan")  # Optuna records a NaN value as FAIL and goes on
        finally:
            del model
            gc.collect()
            _free_cuda()
        if reported:
            trial.set_user_attr("epochs_run", len(reported))
        return value

    return objective

def _free_cuda() -> None:
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


def _jsonable(x: Any) -> Any:
    from ..results import _jsonable as j

    return j(x)


# --- one worker -----------------------------------------------------------------------------
def _run_worker(
    name: str,
    split: Split,
    *,
    storage_url: str,
    study_name: str,
    budget: int,
    defaults: dict[str, Any] | None,
    seed: int,
    device: str,
    epochs: int | None,
    timeout: float | None,
    pruner: str | optuna.pruners.BasePruner,
    threads: int | None,
    worker_index: int,
    n_startup: int,
    fixed_params: dict[str, Any] | None = None,
    storage: optuna.storages.BaseStorage | None = None,
    lock: Any = None,
    sampler_seed: int | None = None,
) -> None:
    """Run trials of one study until it holds ``budget`` trials (or ``timeout`` passes).

    ``storage``, ``lock``: the study's storage and lock when not those of ``storage_url``
    (a Ray worker: Optuna's gRPC proxy of the driver's SQLite, a Ray lock); ``sampler_seed``:
    TPE's seed (default ``seed + worker_index`` on a new study; on a resumed one, and for Ray
    workers, one from the seed, the worker's index and the study's trial count, so a resumed
    or second worker never replays the first one's proposals)."""
    _quiet_optuna()
    cls = registry.get(name)
    dataset = split.meta.get("dataset")
    label = name if worker_index == 0 else f"{name} w{worker_index}"
    if threads is not None:
        _limit_threads(threads)
    storage = storage or make_storage(storage_url)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if sampler_seed is None:  # a resumed study: a seed apart, so no proposal is replayed
            at_start = storage.get_n_trials(storage.get_study_id_from_name(study_name))
            sampler_seed = seed + worker_index if at_start == 0 else worker_seed(seed, worker_index, at_start)
        sampler = optuna.samplers.TPESampler(seed=sampler_seed, n_startup_trials=n_startup)
        pinned = sampler_fixed(cls, fixed_params or {})
        if pinned:  # overridden parameters of the search space are not searched
            sampler = optuna.samplers.PartialFixedSampler(pinned, sampler)
    study = BudgetStudy(
        study_name,
        storage,
        budget=budget,
        lock=lock or StudyLock(storage_url, study_name),
        defaults=defaults,
        sampler=sampler,
        pruner=make_pruner(pruner, epochs),
    )
    t0 = time.perf_counter()
    deadline = None if timeout is None else t0 + timeout
    objective = _make_objective(
        cls,
        split,
        dataset=dataset,
        seed=seed,
        device=device,
        epochs=epochs,
        threads=threads,
        deadline=deadline,
        fixed_params=fixed_params,
    )

    def report(study_: optuna.Study, t: FrozenTrial) -> None:
        log(_trial_line(label, t, budget, study_))

    while True:
        remaining = None if deadline is None else deadline - time.perf_counter()
        if remaining is not None and remaining <= 0:
            log(f"[{label}] time budget of {timeout:.0f} s spent; rerun to continue the study")
            return
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                study.optimize(objective, timeout=remaining, callbacks=[report], gc_after_trial=True)
            log(f"[{label}] time budget of {timeout:.0f} s spent; rerun to continue the study")
            return
        except _BudgetSpent:
            return
        except optuna.exceptions.UpdateFinishedTrialError as exc:
            # Another worker failed our trial as stale (a long stall without heartbeat):
            # its result is lost, it counts as failed; carry on with the next one.
            log(f"[{label}] a trial was failed as stale by another worker ({exc}); continuing")


def _limit_threads(threads: int) -> None:
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(threads)
    except ImportError:  # pragma: no cover
        pass
    torch = sys.modules.get("torch")
    if torch is None:
        try:
            import torch
        except ImportError:  # pragma: no cover
            return
    torch.set_num_threads(threads)


def _trial_line(label: str, t: FrozenTrial, budget: int, study: optuna.Study) -> str:
    secs = (t.datetime_complete - t.datetime_start).total_seconds() if t.datetime_complete and t.datetime_start else 0.0
    head = f"[{label}] trial {t.number + 1}/{budget}"
    params = ", ".join(f"{k}={_short(v)}" for k, v in t.params.items())
    if t.state == TrialState.COMPLETE:
        try:
            best = study.best_trial
            best_s = f" (best {best.value:.4f} #{best.number})"
        except ValueError:
            best_s = ""
        tag = " [paper defaults]" if t.user_attrs.get("paper_defaults") else ""
        if "duplicate_of" in t.user_attrs:
            tag += f" [same params as #{t.user_attrs['duplicate_of']}, not refitted]"
        return f"{head} ndcg@100 {t.value:.4f}{best_s} {secs:.1f} s{tag}  {params}"
    if t.state == TrialState.PRUNED:
        last = max(t.intermediate_values) if t.intermediate_values else "?"
        return f"{head} pruned at epoch {last} {secs:.1f} s  {params}"
    reason = t.user_attrs.get("fail_reason", "see the log above")
    return f"{head} FAILED ({reason[:200]}) {secs:.1f} s  {params}"


def _short(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


# --- the public entry points ----------------------------------------------------------------
def tune_model(
    name: str,
    split: Split,
    *,
    trials: int,
    timeout: float | None = None,
    storage: str | None = None,
    results_dir: str | os.PathLike = "results",
    seed: int = 0,
    device: str = "auto",
    epochs: int | None = None,
    progress: bool = True,
    study_name: str | None = None,
    workers: int = 1,
    pruner: str | optuna.pruners.BasePruner = "median",
    wait_for_running: bool = True,
    fixed_params: dict[str, Any] | None = None,
    ray: str | None = None,
    threads: int | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Tune one model on validation NDCG@100; resume the study if it exists.

    Args:
        name: a registered model.
        split: the dataset split; only ``train`` and ``valid`` are read.
        trials: the study's total budget of trials (all states, all workers); a study
            that holds fewer runs only the remainder. Models with an empty search space
            run one trial (their defaults).
        timeout: seconds for this call (per worker); the study can be resumed later.
        storage: an Optuna RDB URL (default: ``sqlite:///<results_dir>/optuna.db``).
        results_dir: where the default SQLite storage lives.
        seed: TPE seed (worker i uses seed + i) and the models' fit seed.
        device: run option for the models.
        epochs: cap on epochs of iterative models (also scales the pruner's warm-up).
        progress: unused by the trials (their fits run without progress bars); kept for
            the ``run`` interface.
        study_name: default ``<dataset>-<model>-<split hash>-<config hash>``, the
            config hash covering the overrides, epoch cap, seed, suite version and the
            model's source (:func:`study_config_hash`).
        workers: local worker processes (spawned) sharing the study.
        pruner: ``median``, ``hyperband``, ``none`` or an Optuna pruner.
        wait_for_running: at the end, wait for trials other workers are still running
            (failing those whose heartbeat went stale) so the best trial is final.
        fixed_params: constructor parameters held fixed in every trial (``--param``).
        ray: run the ``workers`` as Ray tasks on this cluster ("": the default one, see
            :func:`benchmark.tuning.pool.run_ray_workers`); None: local processes.
        threads: CPU threads per worker (default: all cores for one local worker, else the
            cores shared out among the workers).

    Returns:
        (best constructor params, info) where info holds the study name, storage (no
        password), the best value and trial, the paper-defaults value, counts of
        complete / pruned / failed trials, tuning seconds and the fail reasons.

    Raises:
        ValueError: bad arguments, or the study belongs to another split or model.
        RuntimeError: no trial completed.
    """
    del progress
    _quiet_optuna()
    if trials < 1:
        raise ValueError(f"trials must be at least 1, got {trials}")
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    t_start = time.perf_counter()
    cls = registry.get(name)
    dataset = split.meta.get("dataset")
    split_hash = split.split_hash
    fixed = dict(fixed_params or {})
    study_name = study_name or study_name_for(
        str(dataset), name, split_hash,
        study_config_hash(cls, fixed_params=fixed, epochs=epochs, seed=seed),
    )
    url = normalize_url(storage) if storage else default_storage(results_dir)
    safe_url = redact_url(url)

    names = probe_space(cls)
    budget = trials if names else 1
    if not names:
        log(f"[{name}] has no search space: one trial with its defaults")
    defaults = enqueued_defaults(cls, dataset, names, fixed)
    defaults_all = {**cls.default_params(dataset), **fixed}
    max_epochs = epochs
    model_epochs = cls.default_params(dataset).get("epochs")
    if isinstance(model_epochs, int) and not isinstance(model_epochs, bool):
        max_epochs = model_epochs if epochs is None else min(epochs, model_epochs)
    pruner_obj = make_pruner(pruner, max_epochs)

    lock = StudyLock(url, study_name)
    with lock():  # workers may start at once: create the schema, the study, its labels once
        st = make_storage(url)
        study = optuna.create_study(
            storage=st, study_name=study_name, direction="maximize", load_if_exists=True
        )
        _check_study(study, name=name, dataset=dataset, split_hash=split_hash, epochs=epochs, url=safe_url)
        attrs = study.user_attrs
        for k, v in {
            "model": name,
            "dataset": dataset,
            "split_hash": split_hash,
            "objective": "validation ndcg@100",
            "epochs": epochs,
            "seed": seed,
            "fixed_params": _jsonable(fixed),
        }.items():
            if k not in attrs:
                study.set_user_attr(k, v)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)
    existing = study.get_trials(deepcopy=False)
    done = sum(t.state in FINISHED for t in existing)
    started = sum(t.state != TrialState.WAITING for t in existing)
    if existing:
        log(f"[{name}] study {study_name} holds {len(existing)} trials ({done} finished); "
            f"budget {budget}: {max(0, budget - started)} to go")
    else:
        log(f"[{name}] study {study_name} in {safe_url}: {budget} trials, TPE seed {seed}, "
            f"pruner {_describe_pruner(pruner_obj)}")

    n_startup = max(2, min(10, budget // 3))
    if threads is None and (workers > 1 or ray is not None):
        threads = max(1, available_cpus() // workers)
    kwargs = dict(
        storage_url=url,
        study_name=study_name,
        budget=budget,
        defaults=defaults,
        seed=seed,
        device=device,
        epochs=epochs,
        timeout=timeout,
        pruner=pruner_obj,
        threads=threads,
        n_startup=n_startup,
        fixed_params=fixed,
    )
    if ray is not None:
        from .pool import run_ray_workers

        run_ray_workers(_run_worker, name, split, workers, kwargs, address=ray or None)
    elif workers == 1:
        _run_worker(name, split, worker_index=0, **kwargs)
    else:
        from .pool import run_local_workers

        run_local_workers(_run_worker, name, split, workers, kwargs)

    if wait_for_running:
        _wait_for_running(study, name, timeout=None if timeout is None else max(0.0, timeout - (time.perf_counter() - t_start)))
    info = study_info(study, url=safe_url, budget=budget)
    info["wall_seconds"] = time.perf_counter() - t_start
    info["workers"] = workers
    info["pruner"] = _describe_pruner(pruner_obj)
    info["sampler"] = f"TPE(seed={seed}, startup={n_startup})"
    if info["best_trial"] is None:
        reasons = "; ".join(sorted(set(info["fail_reasons"].values())))[:500]
        raise RuntimeError(
            f"no trial of {name} completed in study {study_name} ({info['failed']} failed, "
            f"{info['pruned']} pruned){': ' + reasons if reasons else ''}. The study's "
            f"{info['trials_run']} trials count against --trials {budget}: fix the cause, then "
            f"pass a larger --trials to add trials, or another --study to start afresh"
        )
    best = next(t for t in study.get_trials(deepcopy=False) if t.number == info["best_trial"])
    best_params = params_of(cls, best.params) if names else {}
    if best.user_attrs.get("paper_defaults"):  # what trial 0 fitted: the defaults themselves
        best_params = {k: defaults_all[k] for k in best_params if k in defaults_all}
    best_params.update(fixed)
    info["best_params"] = _jsonable(best_params)
    info["fixed_params"] = _jsonable(fixed)
    return best_params, info
