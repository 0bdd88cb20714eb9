"""The study policy: the exact trial budget, pruners, resuming and checking a study."""

from __future__ import annotations

import time
import warnings
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from .storage import StudyLock, heartbeat_interval

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
    from ..logs import logger

    (logger.warning if "FAILED" in msg or "failed:" in msg else logger.info)(msg)

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

def _finished_twin(trial: optuna.Trial) -> FrozenTrial | None:
    """A COMPLETE trial of the study with exactly this trial's parameters, if any."""
    params = trial.params
    for t in trial.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        if t.params == params and t.number != trial.number:
            return t
    return None

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
        "history": trial_history(trials),
    }


def trial_history(trials: list) -> list[dict[str, Any]]:
    """Every finished trial as {number, value, state, params, distributions}: kept in the
    result row, so the report draws the tuning figures from rows alone (``distributions``:
    Optuna's JSON of each parameter's distribution, so ``optuna.trial.create_trial`` rebuilds
    the trial). A pruned trial carries its last reported (intermediate) value."""
    from optuna.distributions import distribution_to_json

    out = []
    for t in trials:
        if t.state not in FINISHED:
            continue
        value = t.value
        if value is None and t.intermediate_values:
            value = t.intermediate_values[max(t.intermediate_values)]
        out.append({"number": t.number, "value": value, "state": t.state.name,
                    "params": {k: v for k, v in t.params.items()},
                    "distributions": {k: distribution_to_json(d) for k, d in t.distributions.items()}})
    return out
