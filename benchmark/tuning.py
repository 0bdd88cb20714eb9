"""Optuna tuning: every model searched the same way, on validation NDCG@100 only.

Lifecycle of one study (:func:`tune_model`)::

    storage: SQLite file <results>/optuna.db by default, or any Optuna RDB URL
    └─ study "<dataset>-<model>-<split hash>"         direction: maximize
         trial 0    the paper's defaults (enqueued once, when the study is empty)
         trial 1..  TPE proposals (seeded) from ``cls.search_space(trial)``
         each trial:  fit on the training users -> validation NDCG@100 after every
                      epoch (iterative models; median or Hyperband pruning)
                      -> value = validation NDCG@100 of the fitted model (best epoch)
                      an exception (NaN loss, out of memory, ...) -> FAIL with the
                      reason in the user attribute "fail_reason"; the study goes on
         stop: the study holds ``trials`` trials, of any state, from every worker

The test users are never read: the objective touches ``split.train`` and ``split.valid``
only. The budget is exact with several workers (local processes or machines sharing a
PostgreSQL server): a new trial is created only under a per-study lock (a file lock for
SQLite, an advisory lock for PostgreSQL, ``GET_LOCK`` for MySQL) after counting the trials
already there. A rerun of the same command resumes: finished trials are kept and counted,
trials left RUNNING by a killed worker are failed once their heartbeat is stale (every
``BENCHMARK_TUNE_HEARTBEAT`` seconds, default 10; stale after 4 missed beats) and counted
too, and only the remainder is run.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import math
import os
import socket
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from . import registry
from .evaluate import validation_ndcg
from .protocol import EpochReport, FitOptions, Split, available_cpus

__all__ = [
    "default_storage",
    "format_summary",
    "normalize_url",
    "redact_url",
    "study_name_for",
    "tune_command",
    "tune_model",
]

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
PRUNERS = ("median", "hyperband", "none")


class _BudgetSpent(Exception):
    """Raised by the study's ``ask`` when the study already holds its trial budget."""


class _QuietFailures:
    """Drops Optuna's own 'Trial N failed ...' warnings: the trial line says why instead."""

    def filter(self, record) -> bool:
        return not record.getMessage().startswith("Trial ") or " failed " not in record.getMessage()


def _quiet_optuna() -> None:
    import logging

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    lg = logging.getLogger("optuna.study._optimize")
    if not any(isinstance(f, _QuietFailures) for f in lg.filters):
        lg.addFilter(_QuietFailures())


def log(msg: str) -> None:
    """A progress line (the ``benchmark`` logger, INFO; failures go out as WARNING)."""
    from .logs import logger

    (logger.warning if "FAILED" in msg or "failed:" in msg else logger.info)(msg)


# --- names and storage ----------------------------------------------------------------------
def study_name_for(dataset: str, model: str, split_hash: str, config: str | None = None) -> str:
    """The default study name, ``<dataset>-<model>-<split hash>[-<config hash>]``.

    ``config`` (see :func:`study_config_hash`) changes with anything else that changes a
    trial's number, so a study is never resumed with stale trials.
    """
    name = f"{dataset}-{model}-{split_hash}"
    return f"{name}-{config}" if config else name


def study_config_hash(
    cls: type, *, fixed_params: dict[str, Any], epochs: int | None, seed: int
) -> str:
    """Hash (8 hex digits) of what a study's trials depend on besides their parameters:
    the fixed ``--param`` overrides, the epoch cap, the seed, the suite's version and the
    model's source code."""
    from . import __version__
    from .results import run_key

    return run_key(
        fixed=fixed_params, epochs=epochs, seed=seed, version=__version__,
        source=registry.model_source_hash(cls),
    )[:8]


def default_storage(results_dir: str | os.PathLike) -> str:
    """``sqlite:///<results_dir>/optuna.db`` (absolute; the folder is created)."""
    from sqlalchemy.engine import URL

    folder = Path(results_dir).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    # built by SQLAlchemy, so "?", "#" and "%" in the path are escaped, not read as a query
    return URL.create("sqlite", database=str(folder / "optuna.db")).render_as_string(
        hide_password=False
    )


def redact_url(url: str) -> str:
    """The storage URL with its password replaced by ``***`` (for logs and result rows)."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a SQLAlchemy URL: hide anything between ':' and '@'
        head, sep, tail = url.partition("://")
        if sep and "@" in tail:
            cred, at, rest = tail.rpartition("@")
            user = cred.split(":", 1)[0]
            return f"{head}://{user}:***@{rest}"
        return url


def normalize_url(url: str) -> str:
    """Pick an installed PostgreSQL driver for a driverless ``postgresql://`` URL.

    SQLAlchemy 2.1 maps ``postgresql://`` to psycopg 3; with only psycopg2 installed (the
    ``postgres`` extra) the URL becomes ``postgresql+psycopg2://``. ``postgres://`` is
    accepted as ``postgresql://``. Other URLs are returned unchanged.
    """
    import importlib.util

    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://"):]
    if url.startswith("postgresql://"):
        for module, driver in (("psycopg", "psycopg"), ("psycopg2", "psycopg2")):
            if importlib.util.find_spec(module) is not None:
                return f"postgresql+{driver}://" + url[len("postgresql://"):]
    return url


def heartbeat_interval() -> int:
    """Seconds between heartbeats of a running trial (``BENCHMARK_TUNE_HEARTBEAT``)."""
    raw = os.environ.get("BENCHMARK_TUNE_HEARTBEAT", "10")
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"BENCHMARK_TUNE_HEARTBEAT must be a whole number of seconds, not {raw!r}") from None
    if value < 1:
        raise ValueError(f"BENCHMARK_TUNE_HEARTBEAT must be at least 1 second, not {value}")
    return value


def make_storage(url: str) -> optuna.storages.RDBStorage:
    """An RDB storage with heartbeats (stale RUNNING trials of dead workers get failed).

    SQLite waits up to 60 s for a locked database (several local workers); other
    databases check pooled connections before use.
    """
    from sqlalchemy.engine import make_url

    backend = make_url(url).get_backend_name()
    if backend == "sqlite":
        engine_kwargs: dict[str, Any] = {"connect_args": {"timeout": 60}}
    else:
        engine_kwargs = {"pool_pre_ping": True}
    interval = heartbeat_interval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        try:
            return optuna.storages.RDBStorage(
                url,
                engine_kwargs=engine_kwargs,
                heartbeat_interval=interval,
                grace_period=4 * interval,
            )
        except ImportError as exc:
            raise RuntimeError(
                f"storage {redact_url(url)}: its database driver is not installed ({exc}); "
                f"pip install psycopg2-binary (PostgreSQL) or pymysql (MySQL) into the venv"
            ) from exc


class StudyLock:
    """A lock shared by every worker of one study, wherever it runs.

    SQLite: an exclusive ``flock`` on ``<database>.lock`` (local processes; SQLite is a
    local file anyway). PostgreSQL: a session advisory lock keyed by the study name.
    MySQL/MariaDB: ``GET_LOCK``. Any other database: no lock (the budget can then be
    exceeded by at most one trial per extra worker).
    """

    def __init__(self, url: str, study_name: str) -> None:
        from sqlalchemy.engine import make_url

        self.url = url
        self.study_name = study_name
        u = make_url(url)
        self.backend = u.get_backend_name()
        self.database = u.database
        self._engine = None
        digest = hashlib.sha256(study_name.encode()).digest()
        self.key = int.from_bytes(digest[:8], "big", signed=True)

    def _get_engine(self):
        if self._engine is None:
            from sqlalchemy import create_engine

            self._engine = create_engine(self.url, pool_pre_ping=True)
        return self._engine

    @contextlib.contextmanager
    def __call__(self) -> Iterator[None]:
        if self.backend == "sqlite":
            if not self.database or self.database == ":memory:":
                yield
                return
            import fcntl

            with open(f"{self.database}.lock", "a") as fh:
                fcntl.flock(fh, fcntl.LOCK_EX)
                try:
                    yield
                finally:
                    fcntl.flock(fh, fcntl.LOCK_UN)
        elif self.backend == "postgresql":
            from sqlalchemy import text

            with self._get_engine().connect() as conn:
                conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": self.key})
                conn.commit()
                try:
                    yield
                finally:
                    conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self.key})
                    conn.commit()
        elif self.backend in ("mysql", "mariadb"):
            from sqlalchemy import text

            name = f"optuna-{self.key & 0xFFFFFFFFFFFF:x}"
            with self._get_engine().connect() as conn:
                conn.execute(text("SELECT GET_LOCK(:n, 600)"), {"n": name})
                try:
                    yield
                finally:
                    conn.execute(text("SELECT RELEASE_LOCK(:n)"), {"n": name})
        else:
            yield


class BudgetStudy(optuna.Study):
    """A study whose ``ask`` starts a trial only while fewer than ``budget`` have started.

    ``ask`` runs a WAITING (enqueued) trial first, else creates one. Counting and creating happen under :class:`StudyLock`, so workers on several machines
    together create exactly ``budget`` trials. The first ``ask`` on an empty study enqueues
    ``defaults`` (the paper's parameters) and so runs them as trial 0.
    """

    def __init__(
        self,
        study_name: str,
        storage: optuna.storages.BaseStorage,
        *,
        budget: int,
        lock: StudyLock,
        defaults: dict[str, Any] | None,
        sampler: optuna.samplers.BaseSampler | None = None,
        pruner: optuna.pruners.BasePruner | None = None,
    ) -> None:
        super().__init__(study_name=study_name, storage=storage, sampler=sampler, pruner=pruner)
        self.budget = budget
        self._lock = lock
        self._defaults = defaults

    def ask(self, fixed_distributions=None):  # type: ignore[override]
        with self._lock():
            trials = self.get_trials(deepcopy=False)
            started = sum(t.state != TrialState.WAITING for t in trials)
            if started >= self.budget:  # ask pops a WAITING trial first, else creates one
                raise _BudgetSpent()
            if not trials and self._defaults is not None:
                self.enqueue_trial(self._defaults, user_attrs={"paper_defaults": True})
            return super().ask(fixed_distributions)


# --- search spaces --------------------------------------------------------------------------
def _probe_trial(cls: type) -> optuna.Trial:
    """A trial after one random draw of ``cls.search_space`` (its names and distributions)."""
    _quiet_optuna()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        probe = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
        trial = probe.ask()
        cls.search_space(trial)
    return trial


def probe_space(cls: type) -> list[str]:
    """Names of the Optuna parameters ``cls.search_space`` suggests (one random draw)."""
    return list(_probe_trial(cls).params)


def sampler_fixed(cls: type, fixed_params: dict[str, Any]) -> dict[str, Any]:
    """The overrides that name a parameter of the search space with a value it can take
    (those are pinned in the sampler; the others are set on the model after sampling)."""
    if not fixed_params:
        return {}
    trial = _probe_trial(cls)
    out = {}
    for k, v in fixed_params.items():
        dist = trial.distributions.get(k)
        if dist is None:
            continue
        try:
            if dist._contains(dist.to_internal_repr(v)):
                out[k] = v
        except (TypeError, ValueError):
            pass
    return out


def probe_distributions(cls: type) -> dict[str, str]:
    """Each parameter of ``cls.search_space`` and its Optuna distribution, in words."""
    trial = _probe_trial(cls)
    out = {}
    for k, d in trial.distributions.items():
        if isinstance(d, optuna.distributions.CategoricalDistribution):
            out[k] = "one of " + ", ".join(map(str, d.choices))
        else:
            log_ = " (log)" if getattr(d, "log", False) else ""
            out[k] = f"{d.low:g} .. {d.high:g}{log_}"
    return out


def enqueued_defaults(
    cls: type, dataset: str | None, names: list[str], fixed_params: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The paper defaults (with the overrides) for the suggested names (JSON scalars only)."""
    defaults = {**cls.default_params(dataset), **(fixed_params or {})}
    return {
        k: defaults[k]
        for k in names
        if k in defaults and (defaults[k] is None or isinstance(defaults[k], (bool, int, float, str)))
    }


def params_of(cls: type, trial_params: dict[str, Any]) -> dict[str, Any]:
    """Constructor parameters that ``cls.search_space`` maps a trial's parameters to."""
    return dict(cls.search_space(optuna.trial.FixedTrial(dict(trial_params))))


def make_pruner(pruner: str | optuna.pruners.BasePruner, epochs: int | None) -> optuna.pruners.BasePruner:
    """The pruner of a study.

    Args:
        pruner: ``median`` (MedianPruner after 3 trials, no pruning in the first tenth of
            the epochs, at most 20), ``hyperband``, ``none``, or an Optuna pruner (as is).
        epochs: the most epochs a trial runs (the ``--epochs`` cap, else the model's
            default ``epochs``; None: unknown, taken as 50).
    """
    if isinstance(pruner, optuna.pruners.BasePruner):
        return pruner
    if pruner == "median":
        warmup = max(1, min(20, (epochs or 50) // 10))
        return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=warmup)
    if pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(
            min_resource=1, max_resource=epochs if epochs else "auto", reduction_factor=3
        )
    if pruner == "none":
        return optuna.pruners.NopPruner()
    raise ValueError(f"unknown pruner {pruner!r}; use one of {', '.join(PRUNERS)}")


def _describe_pruner(p: optuna.pruners.BasePruner) -> str:
    if isinstance(p, optuna.pruners.MedianPruner):
        startup = getattr(p, "_n_startup_trials", "?")
        warmup = getattr(p, "_n_warmup_steps", "?")
        return f"median(startup={startup}, warmup={warmup})"
    return type(p).__name__


# --- the objective --------------------------------------------------------------------------
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
            params.update(cls.search_space(trial))
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


def _finished_twin(trial: optuna.Trial) -> FrozenTrial | None:
    """A COMPLETE trial of the study with exactly this trial's parameters, if any."""
    params = trial.params
    for t in trial.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        if t.params == params and t.number != trial.number:
            return t
    return None


def _free_cuda() -> None:
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


def _jsonable(x: Any) -> Any:
    from .results import _jsonable as j

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
) -> None:
    """Run trials of one study until it holds ``budget`` trials (or ``timeout`` passes)."""
    _quiet_optuna()
    cls = registry.get(name)
    dataset = split.meta.get("dataset")
    label = name if worker_index == 0 else f"{name} w{worker_index}"
    if threads is not None:
        _limit_threads(threads)
    storage = make_storage(storage_url)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        sampler = optuna.samplers.TPESampler(seed=seed + worker_index, n_startup_trials=n_startup)
        pinned = sampler_fixed(cls, fixed_params or {})
        if pinned:  # overridden parameters of the search space are not searched
            sampler = optuna.samplers.PartialFixedSampler(pinned, sampler)
    study = BudgetStudy(
        study_name,
        storage,
        budget=budget,
        lock=StudyLock(storage_url, study_name),
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


def _worker_entry(name: str, split: Split, kwargs: dict[str, Any]) -> None:
    """Entry point of a spawned worker process (exit code 1 on error, 130 on Ctrl+C)."""
    try:
        _run_worker(name, split, **kwargs)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:
        log(f"[{name} w{kwargs.get('worker_index')}] worker failed: {type(exc).__name__}: {exc}")
        sys.exit(1)


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
    threads = None if workers == 1 else max(1, available_cpus() // workers)
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
    if workers == 1:
        _run_worker(name, split, worker_index=0, **kwargs)
    else:
        _run_workers(name, split, workers, kwargs)

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
    best_params.update(fixed)
    info["best_params"] = _jsonable(best_params)
    info["fixed_params"] = _jsonable(fixed)
    return best_params, info


def _run_workers(name: str, split: Split, workers: int, kwargs: dict[str, Any]) -> None:
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    procs = []
    for i in range(workers):
        p = ctx.Process(
            target=_worker_entry,
            args=(name, split, dict(kwargs, worker_index=i + 1)),
            name=f"tune-{name}-{i + 1}",
        )
        p.start()
        procs.append(p)
    log(f"[{name}] {workers} worker processes on one study (pids {', '.join(str(p.pid) for p in procs)})")
    try:
        for p in procs:
            p.join()
    except KeyboardInterrupt:
        for p in procs:
            p.join(timeout=10)
            if p.is_alive():
                p.terminate()
        raise
    bad = [p for p in procs if p.exitcode != 0]
    if bad:
        log(f"[{name}] {len(bad)} of {workers} workers exited with an error "
            f"(codes {[p.exitcode for p in bad]}); the others' trials are kept")


def _wait_for_running(study: optuna.Study, name: str, timeout: float | None) -> None:
    t0 = time.perf_counter()
    told = False
    while True:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)
        running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        if not running:
            return
        if timeout is not None and time.perf_counter() - t0 > timeout:
            return
        if not told:
            log(f"[{name}] waiting for {len(running)} trial(s) still running elsewhere "
                f"(#{', #'.join(str(t.number) for t in running)}); a dead worker's trial is "
                f"failed after {4 * heartbeat_interval()} s without a heartbeat")
            told = True
        time.sleep(min(2.0, heartbeat_interval()))


def _check_study(study: optuna.Study, *, name: str, dataset: Any, split_hash: str,
                 epochs: int | None, url: str) -> None:
    attrs = study.user_attrs
    if attrs.get("split_hash") not in (None, split_hash):
        raise ValueError(
            f"study {study.study_name!r} in {url} was made on split {attrs['split_hash']} "
            f"({attrs.get('dataset')}), not on this split {split_hash} ({dataset}); "
            f"pass another --study name"
        )
    if attrs.get("model") not in (None, name):
        raise ValueError(
            f"study {study.study_name!r} in {url} tunes model {attrs['model']!r}, not {name!r}; "
            f"pass another --study name"
        )
    if "epochs" in attrs and attrs["epochs"] != epochs:
        log(f"[{name}] warning: study {study.study_name} was started with --epochs "
            f"{attrs['epochs']}, this run uses {epochs}; their trials are mixed")


def study_info(study: optuna.Study, *, url: str, budget: int) -> dict[str, Any]:
    """Counts, best trial, paper-defaults value and tuning seconds of a study."""
    trials = study.get_trials(deepcopy=False)
    count = {s: sum(t.state == s for t in trials) for s in TrialState}
    seconds = sum(
        (t.datetime_complete - t.datetime_start).total_seconds()
        for t in trials
        if t.datetime_complete is not None and t.datetime_start is not None
    )
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    best = max(complete, key=lambda t: (t.value, -t.number)) if complete else None
    default = next((t for t in trials if t.user_attrs.get("paper_defaults")), None)
    fail_reasons = {
        str(t.number): t.user_attrs.get("fail_reason", "worker stopped (interrupted or killed)")
        for t in trials
        if t.state == TrialState.FAIL
    }
    return {
        "study": study.study_name,
        "storage": url,
        "trials_budget": budget,
        "trials_run": count[TrialState.COMPLETE] + count[TrialState.PRUNED] + count[TrialState.FAIL],
        "complete": count[TrialState.COMPLETE],
        "pruned": count[TrialState.PRUNED],
        "failed": count[TrialState.FAIL],
        "running": count[TrialState.RUNNING],
        "best_value": best.value if best else None,
        "best_trial": best.number if best else None,
        "best_trial_params": dict(best.params) if best else None,
        "default_value": default.value if default is not None and default.state == TrialState.COMPLETE else None,
        "default_state": default.state.name if default is not None else None,
        "seconds": seconds,
        "fail_reasons": fail_reasons,
    }


def format_summary(results: list[tuple[str, dict[str, Any]]]) -> str:
    """A table per model: defaults vs best validation NDCG@100, trial counts, seconds."""
    header = ["model", "defaults ndcg@100", "best ndcg@100", "best trial", "complete", "pruned",
              "failed", "tuning s"]
    rows = []
    for name, info in results:
        dv, bv = info.get("default_value"), info.get("best_value")
        rows.append([
            name,
            f"{dv:.4f}" if isinstance(dv, float) else (info.get("default_state") or "-").lower(),
            f"{bv:.4f}" if isinstance(bv, float) else "-",
            f"#{info['best_trial']}" if info.get("best_trial") is not None else "-",
            str(info["complete"]),
            str(info["pruned"]),
            str(info["failed"]),
            f"{info['seconds']:.1f}",
        ])
    widths = [max(len(x) for x in col) for col in zip(header, *rows)]
    out = [" | ".join(h.ljust(w) for h, w in zip(header, widths)), "-+-".join("-" * w for w in widths)]
    out += [" | ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows]
    for name, info in results:
        params = info.get("best_params") or {}
        ps = ", ".join(f"{k}={_short(v)}" for k, v in params.items()) or "(no search space)"
        out.append(f"{name}: best trial #{info.get('best_trial')} value {info.get('best_value'):.6f}"
                   f"  {ps}  [study {info['study']}]")
    return "\n".join(out)


def tune_command(args: Any, split_loader: Callable[[Any], Split]) -> int:
    """``python -m benchmark tune``: tune each model, print a summary; exit 0, 1 or 2."""
    names = registry.resolve(args.models)
    if args.trials < 1:
        log(f"error: --trials must be at least 1, got {args.trials}")
        return 2
    workers = int(getattr(args, "workers", 1) or 1)
    if workers < 1:
        log(f"error: --workers must be at least 1, got {workers}")
        return 2
    pruner = getattr(args, "pruner", None) or "median"
    if pruner not in PRUNERS:
        log(f"error: unknown pruner {pruner!r}; use one of {', '.join(PRUNERS)}")
        return 2
    split = split_loader(args)
    stats = split.stats()
    explicit = args.models.strip() != "all"
    results: list[tuple[str, dict[str, Any]]] = []
    failures: list[str] = []
    for name in names:
        cls = registry.get(name)
        reason = cls.skip_reason(stats, explicit=explicit)
        if reason:
            log(f"[{name}] skipped: {reason} (ask for it by name to tune it anyway)")
            continue
        study = None
        if args.study:
            study = args.study if len(names) == 1 else f"{args.study}-{name}"
        try:
            _, info = tune_model(
                name,
                split,
                trials=args.trials,
                timeout=args.timeout,
                storage=args.storage,
                results_dir=args.results_dir,
                seed=args.seed,
                device=args.device,
                epochs=args.epochs,
                progress=not args.no_progress,
                study_name=study,
                workers=workers,
                pruner=pruner,
                fixed_params=getattr(args, "fixed_params", {}).get(name, {}),
            )
        except KeyboardInterrupt:
            raise
        except Exception as exc:
            failures.append(f"{name}: {exc}")
            log(f"[{name}] FAILED: {type(exc).__name__}: {exc}")
            continue
        results.append((name, info))
    if results:
        print(format_summary(results), flush=True)
        log(f"storage: {results[0][1]['storage']}  (rerun the same command to resume or extend "
            f"with a larger --trials; `run --trials N` trains the best and tests once)")
    if failures:
        log("failed: " + "; ".join(failures))
        return 1
    return 0
