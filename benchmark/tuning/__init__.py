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

The package: ``storage`` (names, storage URLs, per-study locks), ``policy`` (the exact
budget, pruners, resuming), ``space`` (search spaces and fixed parameters), ``workers``
(the objective, worker processes, :func:`tune_model`); the ``tune`` command's glue is
:mod:`benchmark.cli.tune`.
"""

from __future__ import annotations

from .policy import FINISHED, PRUNERS, BudgetStudy, make_pruner, study_info
from .space import enqueued_defaults, params_of, probe_distributions, probe_space, sampler_fixed
from .storage import (
    StudyLock,
    default_storage,
    heartbeat_interval,
    make_storage,
    normalize_url,
    redact_url,
    study_config_hash,
    study_name_for,
)
from .workers import tune_model

__all__ = [
    "FINISHED", "PRUNERS", "BudgetStudy", "StudyLock", "default_storage", "enqueued_defaults",
    "heartbeat_interval", "make_pruner", "make_storage", "normalize_url",
    "params_of", "probe_distributions", "probe_space", "redact_url", "sampler_fixed",
    "study_config_hash", "study_info", "study_name_for", "tune_model",
]
