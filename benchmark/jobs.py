"""A run is a list of fit jobs: what one fit needs, what it gives back, and who runs it.

::

    runner: RunConfig -> datasets -> plan -> [FitJob, ...] -> executor -> [JobResult, ...]
                                                                   -> writer (one) -> report

A :class:`FitJob` carries everything one (dataset, model, seed) fit needs except the split:
the model by registry name (plus, for a plugin, its file and source hash: a plugin class
lives in a module that exists only in the process that imported it, so the class object
itself would not unpickle in a worker), the parameters, the seed, the run options, the run
key and the row facts fixed before the fit. It is picklable, so an executor may run it in
this process, in a child process, or on another machine.

:func:`fit_job` runs one job against a split and returns a :class:`JobResult`: the result
rows, the per-user arrays, and the saved model's folder when asked. It never writes into
the results folder: the runner's one writer does (:func:`benchmark.runner.write_result`).
An executor maps jobs to results; :class:`SequentialExecutor` fits them one after another
in this process; :class:`ChildProcessExecutor` fits each in a fresh process started with
``spawn`` (never ``fork`` after torch has started threads), so that a crash in native code
(a segfault in BLAS or LAPACK, the OS killing it for memory) is that fit's failure, named by
its signal, and the run goes on; :class:`RoutedExecutor` sends the jobs of some models to
one executor and the rest to another (``run`` isolates the models its plan marks as large).
"""

from __future__ import annotations

import inspect
import logging
import signal
import tempfile
import time
import traceback
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

import benchmark.registry as registry

from .beyond import ItemPopularity
from .evaluate import DEFAULT_METRICS, EvalResult, evaluate
from .logs import logger
from .model import FitOptions, Recommender
from .protocol import Split
from .results import ResultRow, git_commit, git_dirty, hardware, versions
from .sources import model_source_hash
from .version import __version__

__all__ = ["ModelRef", "FitJob", "JobResult", "Executor", "SequentialExecutor",
           "ChildProcessExecutor", "RoutedExecutor", "fit_job",
           "fit_and_evaluate", "epoch_budget"]

#: Prefix of the module names :mod:`benchmark.registry` gives plugin files it imports.
_PLUGIN_PREFIX = "benchmark_plugin_"


@dataclass(frozen=True)
class ModelRef:
    """A model class by name, resolvable in any process.

    Attributes:
        name: the registry name.
        source_hash: :func:`benchmark.sources.model_source_hash` of the class that the
            driver resolved; a worker refuses a class whose code differs.
        plugin_file: for a model from a plugin file, that file (a worker without it in its
            registry imports it); None for built-ins and entry points.
    """

    name: str
    source_hash: str
    plugin_file: str | None = None

    @classmethod
    def of(cls, model_cls: type[Recommender]) -> ModelRef:
        plugin = None
        if model_cls.__module__.startswith(_PLUGIN_PREFIX):
            plugin = inspect.getsourcefile(model_cls)
        return cls(model_cls.name, model_source_hash(model_cls), plugin)

    def resolve(self) -> type[Recommender]:
        """The class, importing the plugin file first when this process lacks it.

        Raises:
            RuntimeError: the class found here has other code than the driver's.
        """
        if self.plugin_file and self.name not in registry.discover():
            registry.import_plugin(Path(self.plugin_file))
        model_cls = registry.get(self.name)
        here = model_source_hash(model_cls)
        if here != self.source_hash:
            raise RuntimeError(f"{self.name}: the model's code here (source hash {here}) differs "
                               f"from the driver's ({self.source_hash}); install the same suite "
                               "version and plugin files on every machine")
        return model_cls


@dataclass(frozen=True)
class FitJob:
    """One fit: a model with its parameters, on one dataset, with one seed.

    Attributes:
        dataset: the dataset's name (its split is given to the executor, not kept here).
        model: the model class by reference.
        params: the constructor parameters of this fit (defaults, tuned values, overrides).
        seed: the model seed.
        run_key: the key the rows are written (and found done) under.
        options: the run options (seed, device, epoch cap, time budget, progress).
        metrics: the metrics to record.
        facts: row fields fixed before the fit (config key, overrides, epoch budget, split
            hash, tuning, experiment, ...), copied into both rows.
        save_model: keep the fitted model (its folder comes back in the result).
        same_fit_for: (seed, run key) of further seeds whose rows reuse this fit (a model
            whose fit has no randomness given the split, ``fit_uses_seed = False``).
        label: how log lines name the fit ("ease", "multvae seed 1").
    """

    dataset: str
    model: ModelRef
    params: dict[str, Any]
    seed: int
    run_key: str
    options: FitOptions
    metrics: tuple[str, ...] = DEFAULT_METRICS
    facts: dict[str, Any] = field(default_factory=dict)
    save_model: bool = False
    same_fit_for: tuple[tuple[int, str], ...] = ()
    label: str = ""


@dataclass
class JobResult:
    """What a fit gives back to the writer.

    Attributes:
        job: the job.
        rows: the valid and test rows (``ResultRow.as_dict()``), empty when it failed.
        arrays: per row id, the per-user metric arrays.
        model_dir: a temporary folder holding the saved model (``save_model`` only); the
            writer moves it into the results folder.
        error: "Type: message" when the fit or its evaluation raised, else None.
        model_files: the saved model as {relative path: bytes}, on its way from a remote
            worker (:mod:`benchmark.cluster`) to the writer; None elsewhere.
        worker: facts about where it ran (executor, node, resources), kept in the rows.
    """

    job: FitJob
    rows: list[dict[str, Any]] = field(default_factory=list)
    arrays: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    model_dir: str | None = None
    error: str | None = None
    worker: dict[str, Any] = field(default_factory=dict)
    model_files: dict[str, bytes] | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


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


def fit_and_evaluate(
    model_cls: type[Recommender],
    params: dict[str, Any],
    split: Split,
    options: FitOptions,
    *,
    parts: Iterable[str] = ("valid", "test"),
    metrics: Iterable[str] = DEFAULT_METRICS,
) -> tuple[Recommender, float, dict[str, EvalResult]]:
    """Fit one model on the training users and evaluate it on the given parts.

    Returns:
        (model, fit_seconds, {part: EvalResult})
    """
    model = model_cls(**params)
    t0 = time.perf_counter()
    model.fit(split.train, split.valid, options=options)
    fit_seconds = time.perf_counter() - t0
    model.item_ids_ = np.asarray(split.items)  # recommend() answers in the data's own ids
    popularity = ItemPopularity.of(split.train)  # for arp, aplt, gini, novelty
    evals = {
        part: evaluate(model.score, split.part(part), metrics=tuple(metrics), progress=False,
                       popularity=popularity)
        for part in parts
    }
    return model, fit_seconds, evals


def fit_job(job: FitJob, split: Split) -> JobResult:
    """Fit and evaluate one job; any exception becomes the result's ``error`` (Ctrl-C not)."""
    try:
        logger.info(f"[{job.label}] fitting on {split.train.shape[0]:,} users x "
                    f"{split.n_items:,} items ...")
        model_cls = job.model.resolve()
        model, fit_seconds, evals = fit_and_evaluate(
            model_cls, job.params, split, job.options, metrics=job.metrics)
        result = JobResult(job)
        result.rows, result.arrays = _rows(job, model, fit_seconds, evals)
        if job.save_model:
            result.model_dir = str(model.save(Path(tempfile.mkdtemp(prefix="cf-model-")) / "model"))
        return result
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # one model failing must not lose the others
        logger.debug("".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
        return JobResult(job, error=f"{type(exc).__name__}: {exc}")


def _rows(job: FitJob, model: Recommender, fit_seconds: float,
          evals: dict[str, EvalResult]) -> tuple[list[dict[str, Any]], dict[str, dict]]:
    final = model.get_params()  # e.g. anneal_cap "auto" resolved by the fit
    common = {
        **job.facts,
        "run_key": job.run_key,
        "dataset": job.dataset,
        "model": job.model.name,
        "display_name": type(model).label_for_reports(),
        "plugin_file": job.model.plugin_file,
        "replaces": getattr(type(model), "replaces", None),
        "params": final,
        "seed": job.seed,
        "epochs": epoch_budget(type(model), final, job.options.epochs),
        "fit_seconds": fit_seconds,
        "device": job.options.resolve_device(),
        "suite_version": __version__,
        "source_hash": job.model.source_hash,
        "versions": versions(),
        "git_commit": git_commit(),
        "git_dirty": git_dirty(),
        "hardware": hardware(),
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    extra = model.results_extra()
    if extra:
        common["extra"] = extra
    rows, arrays = [], {}
    for part in ("valid", "test"):
        ev = evals[part]
        row_id = f"{job.run_key}-{part}"
        rows.append(ResultRow(
            **common, id=row_id, part=part, metrics=ev.mean(), sem=ev.sem(), n_users=ev.n_users,
            n_excluded=ev.n_excluded, score_seconds=ev.seconds, arrays=f"arrays/{row_id}.npz",
            k_clipped=ev.extra.get("k_clipped"),
        ).as_dict())
        arrays[row_id] = ev.arrays()
    for seed, key in job.same_fit_for:  # the same fit, recorded under each further seed
        for row in rows[:2]:
            row_id = f"{key}-{row['part']}"
            rows.append({**row, "id": row_id, "run_key": key, "seed": seed,
                         "same_fit_as": job.run_key, "arrays": f"arrays/{row_id}.npz"})
            arrays[row_id] = arrays[row["id"]]
    return rows, arrays


class Executor(Protocol):
    """Runs fit jobs against a split and yields their results (in any order)."""

    def map(self, jobs: list[FitJob], split: Split) -> Iterator[JobResult]: ...


class SequentialExecutor:
    """Fits each job in this process, one after another (the default)."""

    name = "sequential"

    def map(self, jobs: list[FitJob], split: Split) -> Iterator[JobResult]:
        for job in jobs:
            result = fit_job(job, split)
            result.worker = {"executor": self.name}
            yield result


def _child_main(job: FitJob, split: Split, conn: Any, level: int) -> None:
    """In the child process: the parent's log level, one fit, the result through the pipe."""
    from .logs import configure_cli

    configure_cli({logging.WARNING: -1, logging.INFO: 0}.get(level, 1))
    conn.send(fit_job(job, split))
    conn.close()


class ChildProcessExecutor:
    """Fits each job in its own process (``spawn``): a crash is that fit's failure.

    The split and the job go to the child by pickle; the result (rows, arrays, the saved
    model's temporary folder) comes back through a pipe. A child that dies without a
    result (a signal, or an exit without one) gives a result whose ``error`` names it.
    """

    name = "child-process"

    def __init__(self, start_method: str = "spawn") -> None:
        if start_method == "fork":
            raise ValueError("fork after torch has started threads can deadlock: use spawn or forkserver")
        self.start_method = start_method

    def map(self, jobs: list[FitJob], split: Split) -> Iterator[JobResult]:
        import multiprocessing as mp

        ctx = mp.get_context(self.start_method)
        for job in jobs:
            yield self._one(ctx, job, split)

    def _one(self, ctx: Any, job: FitJob, split: Split) -> JobResult:
        receive, send = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=_child_main, args=(job, split, send, logger.getEffectiveLevel()),
                           name=f"fit {job.label}")
        proc.start()
        send.close()
        try:
            result = receive.recv()
        except EOFError:  # the child died before sending
            result = None
        finally:
            receive.close()
            proc.join()
        if result is None:
            code = proc.exitcode
            how = (f"was killed by signal {signal.Signals(-code).name}" if code is not None and code < 0
                   else f"exited with code {code} without a result")
            return JobResult(job, error=(
                f"ChildProcessError: the fit's process {how} (a crash in native code such "
                "as BLAS or LAPACK, or the OS out of memory); the other models go on"),
                worker={"executor": self.name})
        result.worker = {"executor": self.name, "pid": proc.pid}
        return result


class RoutedExecutor:
    """The jobs of the models in ``names`` to ``chosen``, the others to ``rest``, in order."""

    def __init__(self, names: set[str], chosen: Executor, rest: Executor) -> None:
        self.names, self.chosen, self.rest = set(names), chosen, rest

    def map(self, jobs: list[FitJob], split: Split) -> Iterator[JobResult]:
        for job in jobs:
            executor = self.chosen if job.model.name in self.names else self.rest
            yield from executor.map([job], split)
