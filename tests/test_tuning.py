"""Tuning with Optuna: budgets, paper defaults first, pruning, failures, resume, workers.

A toy iterative model (popularity blended with item co-occurrence) is written as a model
plugin file, so that ``python -m benchmark tune`` subprocesses see it too
(``BENCHMARK_MODELS_DIR``); its ``quality`` parameter makes a trial good, bad (pruned),
or break (NaN loss / out of memory).
"""

from __future__ import annotations

import copy
import importlib.util
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from benchmark import registry
from benchmark.tuning import (
    default_storage,
    normalize_url,
    probe_space,
    redact_url,
    study_name_for,
    tune_model,
)

REPO = Path(__file__).resolve().parents[1]

TOY_PLUGIN = '''
import time

import numpy as np

from benchmark.evaluate import validation_ndcg
from benchmark.model import EpochReport, FitOptions, Recommender
from benchmark.registry import register
from benchmark.training import TrainingDiverged


@register("toy-iter", iterative=True)
class ToyIter(Recommender):
    """Test model: popularity + weight * item co-occurrence, the weight grows per epoch."""

    def __init__(self, quality="good", weight=0.5, epochs=4, sleep=0.0):
        self.quality = quality
        self.weight = weight
        self.epochs = epochs
        self.sleep = sleep

    @classmethod
    def search_space(cls, trial):
        return {
            "quality": trial.suggest_categorical("quality", ["good", "bad"]),
            "weight": trial.suggest_float("weight", 0.01, 1.0, log=True),
        }

    def fit(self, train, valid=None, *, options=None):
        options = options or FitOptions()
        n = self.epochs if options.epochs is None else min(self.epochs, options.epochs)
        if self.weight >= 1.0:  # the edges of the range break the fit (never drawn by TPE)
            raise TrainingDiverged("toy-iter", 1, float("nan"), self.get_params())
        if self.weight <= 0.01:
            raise MemoryError("cannot allocate 10**12 bytes")
        pop = np.asarray(train.sum(axis=0), dtype=np.float32).ravel()
        self.pop_ = pop / max(1.0, float(pop.max()))
        co = (train.T @ train).tocsr().astype(np.float32)
        self.co_ = co / max(1.0, float(co.max()))
        self.epochs_run_ = 0
        self.history_ = []
        for epoch in range(1, n + 1):
            time.sleep(self.sleep)
            self.step_ = epoch / n
            self.epochs_run_ = epoch
            rep = EpochReport(epoch=epoch, loss=1.0 / epoch, seconds=self.sleep)
            if valid is not None:
                rep.ndcg100 = validation_ndcg(self.score, valid)
            self.history_.append(rep)
            if options.on_epoch is not None:
                options.on_epoch(rep)
        return self

    def score(self, fold_in):
        base = np.broadcast_to(self.pop_, (fold_in.shape[0], self.pop_.size))
        if self.quality == "bad":
            return (-base).astype(np.float32)
        co = (fold_in @ self.co_).toarray()
        return (base + 50.0 * self.weight * self.step_ * co).astype(np.float32)
'''


def _write_plugin(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "toy_iter.py").write_text(TOY_PLUGIN)
    return folder


@pytest.fixture
def toy(tmp_path):
    """Register the toy model in this process for one test, then remove it again."""
    path = _write_plugin(tmp_path / "plugins") / "toy_iter.py"
    spec = importlib.util.spec_from_file_location("benchmark_test_toy_iter", path)
    module = importlib.util.module_from_spec(spec)
    registry.discover()
    spec.loader.exec_module(module)
    yield registry.get("toy-iter")
    registry._REGISTRY.pop("toy-iter", None)


@pytest.fixture(scope="module")
def synth_dir(tmp_path_factory) -> Path:
    """A data root holding the cached synthetic split (made once for the module)."""
    from benchmark.data import load_split

    d = tmp_path_factory.mktemp("tune-data")
    load_split("synthetic", data_dir=d)
    return d


def _load(results_dir: Path, name: str) -> optuna.Study:
    """The study ``name``, or the one study named ``name-<config hash>`` (default names)."""
    storage = default_storage(results_dir)
    names = optuna.get_all_study_names(storage)
    if name not in names:
        matches = [n for n in names if n.startswith(name + "-")]
        if len(matches) == 1:
            name = matches[0]
    return optuna.load_study(study_name=name, storage=storage)


def _env(plugins: Path | None = None, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(BENCHMARK_OFFLINE="1", OMP_NUM_THREADS="1", PYTHONPATH=str(REPO), **extra)
    if plugins is not None:
        env["BENCHMARK_MODELS_DIR"] = str(plugins)
    return env


# --- small pieces ---------------------------------------------------------------------------
def test_names_and_storage(tmp_path):
    assert study_name_for("ml-20m", "ease", "abc123") == "ml-20m-ease-abc123"
    url = default_storage(tmp_path / "new" / "results")
    assert url == f"sqlite:///{(tmp_path / 'new' / 'results' / 'optuna.db').resolve()}"
    assert (tmp_path / "new" / "results").is_dir()
    assert redact_url("postgresql://bench:s3cret@db.example:5432/optuna") == (
        "postgresql://bench:***@db.example:5432/optuna"
    )
    assert "s3cret" not in redact_url("postgresql+psycopg2://u:s3cret@h/db")
    # A driverless PostgreSQL URL gets an installed driver (psycopg 3 or psycopg2).
    for url in ("postgresql://u@h:5432/db", "postgres://u@h:5432/db"):
        assert normalize_url(url) in (
            "postgresql+psycopg://u@h:5432/db",
            "postgresql+psycopg2://u@h:5432/db",
            "postgresql://u@h:5432/db",  # neither driver installed
        )
    for url in ("postgresql+psycopg2://u@h/db", "sqlite:////tmp/x.db", "mysql+pymysql://u@h/db"):
        assert normalize_url(url) == url


def test_param_overrides_reach_every_trial_and_name_the_study(toy, planted_split, tmp_path):
    _, plain = tune_model("toy-iter", planted_split, trials=3, results_dir=tmp_path, seed=1)
    best, info = tune_model("toy-iter", planted_split, trials=4, results_dir=tmp_path, seed=1,
                            fixed_params={"weight": 0.3, "epochs": 2})
    assert info["study"] != plain["study"]  # overrides are part of the study's name
    trials = _load(tmp_path, info["study"]).get_trials()
    assert len(trials) == 4
    for t in trials:
        assert t.user_attrs["params"]["weight"] == 0.3  # in the search space: pinned
        assert t.user_attrs["params"]["epochs"] == 2  # not in it: set on the model
        assert t.params["weight"] == 0.3
        if t.intermediate_values:  # fitted (not a duplicate of a finished trial)
            assert max(t.intermediate_values) == 2  # the fits ran 2 epochs, not 4
    assert max(trials[0].intermediate_values) == 2
    assert best["weight"] == 0.3 and best["epochs"] == 2
    assert info["fixed_params"] == {"weight": 0.3, "epochs": 2}
    # another seed is another study (the seed changes every trial's number)
    _, other = tune_model("toy-iter", planted_split, trials=1, results_dir=tmp_path, seed=2)
    assert other["study"] != plain["study"]


def test_bad_arguments_are_refused(planted_split, tmp_path):
    with pytest.raises(ValueError, match="trials must be at least 1"):
        tune_model("popularity", planted_split, trials=0, results_dir=tmp_path)
    with pytest.raises(ValueError, match="workers must be at least 1"):
        tune_model("popularity", planted_split, trials=2, workers=0, results_dir=tmp_path)
    with pytest.raises(registry.UnknownModelError, match="unknown model"):
        tune_model("no-such-model", planted_split, trials=2, results_dir=tmp_path)


def test_study_of_another_split_is_refused(planted_split, synthetic_split, tmp_path):
    tune_model("popularity", planted_split, trials=1, results_dir=tmp_path, study_name="shared")
    with pytest.raises(ValueError, match="was made on split .* pass another --study"):
        tune_model("popularity", synthetic_split, trials=1, results_dir=tmp_path, study_name="shared")


# --- defaults first, pruning, failures, no test data ----------------------------------------
def test_defaults_first_then_tpe_and_best_params(toy, planted_split, tmp_path):
    best, info = tune_model("toy-iter", planted_split, trials=5, results_dir=tmp_path, seed=3)
    study = _load(tmp_path, info["study"])
    trials = study.get_trials()
    assert [t.number for t in trials] == [0, 1, 2, 3, 4]
    first = trials[0]
    assert first.user_attrs["paper_defaults"] is True
    assert first.params == {"quality": "good", "weight": 0.5}  # = ToyIter.default_params()
    assert sum(bool(t.user_attrs.get("paper_defaults")) for t in trials) == 1
    assert info["default_value"] == pytest.approx(first.value)
    assert info["best_value"] == pytest.approx(study.best_value)
    assert info["best_value"] >= info["default_value"]
    assert best == {"quality": study.best_params["quality"], "weight": study.best_params["weight"]}
    assert info["trials_run"] == 5 and info["complete"] + info["pruned"] + info["failed"] == 5
    assert info["study"].startswith(study_name_for("planted", "toy-iter", planted_split.split_hash) + "-")
    # Every trial ran on the validation users, epoch by epoch.
    assert set(first.intermediate_values) == {1, 2, 3, 4}

    # A larger budget later runs only the difference; the same budget runs nothing.
    _, again = tune_model("toy-iter", planted_split, trials=5, results_dir=tmp_path, seed=3)
    assert len(_load(tmp_path, info["study"]).get_trials()) == 5
    _, more = tune_model("toy-iter", planted_split, trials=7, results_dir=tmp_path, seed=3)
    after = _load(tmp_path, info["study"]).get_trials()
    assert [t.number for t in after] == list(range(7))
    assert [t.datetime_complete for t in after[:5]] == [t.datetime_complete for t in trials]


def test_pruning_stops_a_poor_trial_early(toy, planted_split, tmp_path):
    name = "prune-demo"
    storage = default_storage(tmp_path)
    study = optuna.create_study(study_name=name, storage=storage, direction="maximize")
    study.enqueue_trial({"quality": "good", "weight": 0.5})
    study.enqueue_trial({"quality": "bad", "weight": 0.5})
    pruner = optuna.pruners.MedianPruner(n_startup_trials=1, n_warmup_steps=0)
    _, info = tune_model(
        "toy-iter", planted_split, trials=3, results_dir=tmp_path, study_name=name,
        pruner=pruner, epochs=3,
    )
    good, bad = _load(tmp_path, name).get_trials()[:2]
    assert good.state == TrialState.COMPLETE and len(good.intermediate_values) == 3
    assert bad.state == TrialState.PRUNED
    assert len(bad.intermediate_values) < 3  # stopped before the epoch cap
    assert bad.user_attrs["epochs_run"] == len(bad.intermediate_values)
    assert info["pruned"] >= 1 and info["trials_run"] == 3


@pytest.mark.parametrize(
    "weight, reason",
    [(1.0, "TrainingDiverged: toy-iter: training diverged"), (0.01, "MemoryError")],
)
def test_failing_trial_is_recorded_and_the_study_goes_on(toy, planted_split, tmp_path, weight, reason):
    name = f"fail-{weight}"
    study = optuna.create_study(study_name=name, storage=default_storage(tmp_path), direction="maximize")
    study.enqueue_trial({"quality": "good", "weight": weight})
    study.enqueue_trial({"quality": "good", "weight": 0.5})
    _, info = tune_model("toy-iter", planted_split, trials=3, results_dir=tmp_path, study_name=name)
    trials = _load(tmp_path, name).get_trials()
    assert len(trials) == 3
    assert trials[0].state == TrialState.FAIL
    assert trials[0].user_attrs["fail_reason"].startswith(reason)
    assert trials[1].state == TrialState.COMPLETE
    assert info["failed"] == 1 and info["fail_reasons"]["0"].startswith(reason)
    assert info["best_trial"] != 0


def test_all_trials_failing_is_an_error(toy, planted_split, tmp_path):
    study = optuna.create_study(study_name="doomed", storage=default_storage(tmp_path), direction="maximize")
    study.enqueue_trial({"quality": "good", "weight": 0.01})
    with pytest.raises(RuntimeError, match="no trial of toy-iter completed.*MemoryError"):
        tune_model("toy-iter", planted_split, trials=1, results_dir=tmp_path, study_name="doomed")


class _NoTestData:
    """Stands in for ``split.test``: any access fails the test."""

    def __getattr__(self, name):
        raise AssertionError(f"test users read during tuning (split.test.{name})")


def test_tuning_never_reads_test_users(toy, planted_split, tmp_path):
    guarded = copy.copy(planted_split)
    object.__setattr__(guarded, "test", _NoTestData())
    with pytest.raises(AssertionError, match="test users read"):
        guarded.test.fold_in  # noqa: B018  (the guard works)
    names = ["toy-iter"] + [m for m in ("ease",) if m in registry.available()]
    for name in names:
        _, info = tune_model(name, guarded, trials=3, epochs=2, results_dir=tmp_path)
        assert info["complete"] >= 1, (name, info["fail_reasons"])


# --- one tiny study per model family (CLI, synthetic, --epochs 3) ---------------------------
FAMILIES = ["popularity", "multvae", "ease", "wmf", "slim", "lightfm"]
# The synthetic data restricted to items with >= 60 users (410 items): same generator, a
# fifth of the items, so a 3-trial study of every family stays quick.
SMALL = ["--dataset", "synthetic", "--min-item-users", "60", "--heldout-users", "300"]


def _split_hash(data_dir: Path, *args: str) -> str:
    from benchmark.cli import _split_from_args, build_parser

    ns = build_parser().parse_args(["prepare", "--data-dir", str(data_dir), *args])
    return _split_from_args(ns).split_hash


@pytest.mark.parametrize("model", FAMILIES)
def test_tiny_study_per_family(model, synth_dir, tmp_path, capsys):
    from benchmark.cli import main

    if model not in registry.available():
        pytest.skip(f"model {model} is not registered (yet)")
    rc = main([
        "tune", "--models", model, *SMALL, "--data-dir", str(synth_dir),
        "--trials", "3", "--epochs", "3", "--results-dir", str(tmp_path), "--no-progress",
    ])
    out = capsys.readouterr().out
    assert rc == 0
    assert model in out and "defaults ndcg@100" in out and "best trial #" in out
    cls = registry.get(model)
    study = _load(tmp_path, study_name_for("synthetic", model, _split_hash(synth_dir, *SMALL)))
    trials = study.get_trials()
    assert len(trials) == (3 if probe_space(cls) else 1)  # popularity: nothing to search
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL) for t in trials)
    assert trials[0].user_attrs["paper_defaults"] is True
    defaults = cls.default_params("synthetic")
    # trial 0 fits the defaults themselves (LightFM's alpha 0.0 lies outside its log-scale
    # range: the recorded Optuna parameter is a draw, what was fitted is 0.0)
    fitted = trials[0].user_attrs.get("params", {})
    assert all(fitted[k] == (list(v) if isinstance(v, tuple) else v) for k, v in defaults.items()
               if k in fitted), (fitted, defaults)
    assert trials[0].state != TrialState.FAIL, trials[0].user_attrs.get("fail_reason")
    assert study.best_value > 0


# --- the run command tunes first, then tests once -------------------------------------------
def test_run_with_trials_records_tuning(planted_split, tmp_path):
    from benchmark.runner import RunConfig, run

    model = "ease" if "ease" in registry.available() else "popularity"
    cfg = RunConfig(models=model, datasets=["planted"], results_dir=str(tmp_path), trials=3,
                    progress=False, report=False)
    rows, failures = run(cfg, planted_split)
    assert not failures
    test_row = next(r for r in rows if r["part"] == "test")
    tuning = test_row["tuning"]
    assert tuning["trials_run"] == (3 if model == "ease" else 1)
    assert tuning["storage"].startswith("sqlite:///")
    for k, v in tuning["best_params"].items():
        assert test_row["params"][k] == pytest.approx(v)
    from optuna.distributions import json_to_distribution  # the report rebuilds trials from these

    for h in tuning["history"]:
        for k, v in h["params"].items():
            d = json_to_distribution(h["distributions"][k])
            assert d._contains(d.to_internal_repr(v))
    valid_row = next(r for r in rows if r["part"] == "valid")
    # The refit with the best parameters reproduces the best trial's validation value.
    assert valid_row["metrics"]["ndcg@100"] == pytest.approx(tuning["best_value"], abs=1e-6)


# --- resume after a kill, with two local workers --------------------------------------------
def _tune_cmd(synth_dir: Path, results: Path, trials: int, *more: str) -> list[str]:
    return [
        sys.executable, "-m", "benchmark", "tune", "--models", "toy-iter", *SMALL,
        "--data-dir", str(synth_dir), "--trials", str(trials), "--epochs", "3",
        "--results-dir", str(results), "--no-progress", *more,
    ]


@pytest.mark.extended
def test_killed_tune_resumes_without_repeating(synth_dir, tmp_path):
    """SIGKILL a tune after two trials, rerun it with two workers: exactly N trials."""
    plugins = _write_plugin(tmp_path / "plugins")
    # 0.4 s per epoch: a trial lasts over a second, so the kill lands inside one
    (plugins / "toy_iter.py").write_text(TOY_PLUGIN.replace("sleep=0.0", "sleep=0.4"))
    results = tmp_path / "results"
    env = _env(plugins, BENCHMARK_TUNE_HEARTBEAT="1")
    name = study_name_for("synthetic", "toy-iter", _split_hash(synth_dir, *SMALL))
    cmd = _tune_cmd(synth_dir, results, 7)
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 90
        while time.time() < deadline and proc.poll() is None:
            time.sleep(0.2)
            try:
                trials = _load(results, name).get_trials()
            except Exception:  # not created yet
                continue
            if sum(t.state == TrialState.COMPLETE for t in trials) >= 2:
                break
        assert proc.poll() is None, proc.communicate()
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    before = _load(results, name).get_trials()
    finished = [t for t in before if t.state == TrialState.COMPLETE]
    assert 2 <= len(finished) < 7
    assert len(before) < 7

    # The same command, now with two worker processes, completes the study.
    done = subprocess.run(cmd + ["--workers", "2"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    trials = _load(results, name).get_trials()
    assert [t.number for t in trials] == list(range(7))  # the total, no number twice
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL) for t in trials)
    for old in finished:  # finished trials kept as they were, not run again
        new = trials[old.number]
        assert (new.state, new.value, new.datetime_complete) == (old.state, old.value, old.datetime_complete)
    for old in before:
        if old.state == TrialState.RUNNING:  # the killed worker's trial: failed, counted
            assert trials[old.number].state == TrialState.FAIL
    assert sum(bool(t.user_attrs.get("paper_defaults")) for t in trials) == 1
    new_workers = {t.user_attrs.get("worker") for t in trials[len(before):]}
    assert len(new_workers) == 2  # both local workers ran trials of the one study
    assert "best trial #" in done.stdout
