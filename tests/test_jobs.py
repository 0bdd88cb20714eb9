"""A run is a list of picklable fit jobs; one writer; run_experiment's report switch."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys

import numpy as np
from conftest import REPO

from benchmark import registry
from benchmark.jobs import FitJob, ModelRef, SequentialExecutor, fit_job
from benchmark.results import ResultStore
from benchmark.runner import RunConfig, build_jobs, run, write_result


def _jobs(tmp_path, split, models="popularity,ease", seeds=(0,)):
    cfg = RunConfig(models=models, results_dir=str(tmp_path / "r"), seeds=seeds, progress=False,
                    report=False)
    classes = {n: registry.get(n) for n in registry.resolve(models)}
    return cfg, build_jobs(cfg, split, classes, ResultStore(cfg.results_dir))


def test_jobs_are_picklable_and_name_their_model_by_registry_name(planted_split, tmp_path):
    _, (jobs, found, failures) = _jobs(tmp_path, planted_split, models="popularity,multvae",
                                       seeds=(0, 1))
    assert not found and not failures
    # popularity's fit has no randomness: one job serves both seeds (same_fit_for)
    assert [(j.model.name, j.seed) for j in jobs] == [("popularity", 0), ("multvae", 0),
                                                        ("multvae", 1)]
    assert [s for s, _ in jobs[0].same_fit_for] == [1]
    for job in jobs:
        back = pickle.loads(pickle.dumps(job))
        assert isinstance(back, FitJob) and back == job
        assert back.model.plugin_file is None and len(back.model.source_hash) == 16
    assert len({j.run_key for j in jobs} | {k for _, k in jobs[0].same_fit_for}) == 4


def test_fit_job_gives_what_the_sequential_run_writes(planted_split, tmp_path):
    """The rows a job returns are the rows run writes (same numbers), and the writer puts
    the arrays beside them."""
    cfg, (jobs, _, _) = _jobs(tmp_path, planted_split, models="ease")
    result = fit_job(pickle.loads(pickle.dumps(jobs[0])), planted_split)
    assert result.ok and [r["part"] for r in result.rows] == ["valid", "test"]
    rows, failures = run(cfg, planted_split)
    assert not failures
    for mine, written in zip(result.rows, rows):
        assert mine["run_key"] == written["run_key"]
        assert mine["metrics"] == written["metrics"]
    store = ResultStore(cfg.results_dir)
    assert np.array_equal(store.load_arrays(rows[1]["id"])["ndcg@100"],
                          result.arrays[rows[1]["id"]]["ndcg@100"])


def test_a_failing_job_is_an_error_not_an_exception(planted_split, tmp_path):
    cfg, (jobs, _, _) = _jobs(tmp_path, planted_split, models="ease")
    bad = FitJob(**{**jobs[0].__dict__, "params": {**jobs[0].params, "l2": -1.0}})
    (result,) = list(SequentialExecutor().map([bad], planted_split))
    assert not result.ok and "l2=-1.0" in result.error and not result.rows
    assert write_result(ResultStore(cfg.results_dir), result) == []
    assert not (tmp_path / "r" / "results.jsonl").exists()


def test_a_plugin_job_carries_its_file_and_a_worker_refuses_other_code(tmp_path):
    """A plugin class exists only where its file was imported: the reference names the
    file, and a process that never imported it resolves the class from it; a file whose
    code differs from the driver's is refused."""
    plugin = tmp_path / "jobs_probe.py"
    plugin.write_text((REPO / "models" / "itemknn.py").read_text().replace('"itemknn"', '"jobs-probe"'))
    registry.import_plugin(plugin)
    try:
        ref = ModelRef.of(registry.get("jobs-probe"))
    finally:  # keep the process's registry as the other tests expect it
        registry._REGISTRY.pop("jobs-probe", None)
        sys.modules.pop("benchmark_plugin_jobs_probe", None)
    assert ref.plugin_file == str(plugin)
    code = ("import pickle, sys; ref = pickle.loads(sys.stdin.buffer.read()); "
            "print(ref.resolve().__name__)")
    env = {"PYTHONPATH": str(REPO), "BENCHMARK_MODELS_DIR": str(tmp_path / "none"), "PATH": ""}
    p = subprocess.run([sys.executable, "-c", code], input=pickle.dumps(ref), capture_output=True,
                       env=env, cwd=tmp_path)
    assert p.returncode == 0, p.stderr.decode()
    assert p.stdout.decode().strip() == "ItemKNN"
    plugin.write_text(plugin.read_text() + "\n# edited\n")
    p = subprocess.run([sys.executable, "-c", code], input=pickle.dumps(ref), capture_output=True,
                       env=env, cwd=tmp_path)
    assert p.returncode != 0 and b"differs from the driver's" in p.stderr


def test_run_experiment_report_false_renders_no_report(tmp_path):
    from benchmark.api import run_experiment

    rows = run_experiment("popularity", "synthetic", data_dir=tmp_path / "d",
                          results_dir=str(tmp_path / "r"), report_dir=str(tmp_path / "rep"),
                          report=False)
    assert len(rows) == 2 and not (tmp_path / "rep").exists()
    lines = (tmp_path / "r" / "results.jsonl").read_text().splitlines()
    assert [json.loads(x)["part"] for x in lines] == ["valid", "test"]


CRASHER = '''
import os
import signal

from benchmark.model import ItemItemRecommender
from benchmark.registry import register


@register("crasher")
class Crasher(ItemItemRecommender):
    """Dies in the middle of its fit as a segfault in native code would."""

    def __init__(self, when: int = 1):
        self.when = when

    def _fit(self, train, valid, options):
        os.kill(os.getpid(), signal.SIGSEGV)
'''


def test_a_crash_in_a_child_process_fails_that_model_only(tmp_path):
    """``run --isolate all``: a fit killed by SIGSEGV is that model's FAILED line, named by
    its signal; the models after it run and write their rows; exit 1."""
    from test_cli import cli

    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "crasher.py").write_text(CRASHER)
    p = cli("run", "--models", "crasher,popularity", "--dataset", "synthetic", "--isolate", "all",
            "--data-dir", str(tmp_path / "d"), "--results-dir", str(tmp_path / "r"),
            "--no-report", cwd=tmp_path, env={"BENCHMARK_MODELS_DIR": str(plugins)}, check=False)
    assert p.returncode == 1, p.stderr
    assert "[crasher] FAILED" in p.stderr and "SIGSEGV" in p.stderr
    rows = [json.loads(x) for x in (tmp_path / "r" / "results.jsonl").read_text().splitlines()]
    assert {r["model"] for r in rows} == {"popularity"} and len(rows) == 2


def test_the_child_process_executor_gives_the_sequential_numbers(planted_split, tmp_path):
    from benchmark.jobs import ChildProcessExecutor

    _, (jobs, _, _) = _jobs(tmp_path, planted_split, models="popularity,ease")
    here = list(SequentialExecutor().map(jobs, planted_split))
    there = list(ChildProcessExecutor().map(jobs, planted_split))
    for a, b in zip(here, there):
        assert b.ok and b.worker["executor"] == "child-process"
        assert [r["metrics"] for r in a.rows] == [r["metrics"] for r in b.rows]


def test_a_model_without_randomness_is_fitted_once_for_several_seeds(planted_split, tmp_path):
    """``fit_uses_seed = False`` (EASE): one fit serves seeds 0, 1, 2 (rows marked
    ``same_fit_as``); Mult-VAE is fitted per seed; the table and the report show one fit;
    the rerun fits nothing."""
    from benchmark.report.load import load_results
    from benchmark.summary import format_table

    cfg = RunConfig(models="ease,multvae", seeds=(0, 1, 2), epochs=1, progress=False,
                    results_dir=str(tmp_path / "r"), report=False)
    rows, failures = run(cfg, planted_split)
    assert not failures
    ease = [r for r in rows if r["model"] == "ease"]
    vae = [r for r in rows if r["model"] == "multvae"]
    assert len(ease) == len(vae) == 6
    assert {r["seed"] for r in ease} == {0, 1, 2} and len({r["run_key"] for r in ease}) == 3
    assert len({r.get("same_fit_as") or r["run_key"] for r in ease}) == 1
    assert sum(bool(r.get("same_fit_as")) for r in ease) == 4
    assert len({r["metrics"]["ndcg@100"] for r in ease if r["part"] == "test"}) == 1
    assert not any(r.get("same_fit_as") for r in vae) and len({r["run_key"] for r in vae}) == 3
    for r in rows:
        assert (tmp_path / "r" / r["arrays"]).is_file()
    assert "3 (1 fit)" in format_table(rows)
    data = load_results(tmp_path / "r")
    shown = [r for r in data.rows if r["model"] == "ease"]
    assert len(shown) == 2 and all(r["shared_seeds"] == [0, 1, 2] for r in shown)
    assert not data.superseded
    classes = {n: registry.get(n) for n in ("ease", "multvae")}
    jobs, found, _ = build_jobs(cfg, planted_split, classes, ResultStore(cfg.results_dir))
    assert jobs == [] and len(found) == 12


def test_report_shows_only_the_models_and_datasets_asked_for(planted_split, tmp_path):
    """``report --models ease,popularity`` on a folder with three models: only those two in
    the tables; ``--exclude`` the converse; a name the folder lacks is exit 2."""
    from test_cli import cli

    cfg = RunConfig(models="popularity,ease,multvae", epochs=1, progress=False,
                    results_dir=str(tmp_path / "r"), report=False)
    run(cfg, planted_split)
    cli("report", "--results-dir", str(tmp_path / "r"), "--out", str(tmp_path / "a"),
        "--models", "ease,popularity", cwd=tmp_path)
    text = (tmp_path / "a" / "tables.md").read_text()
    rows = [line.split("|")[1].strip() for line in text.splitlines() if line.startswith("| ")]
    assert {"EASE", "Popularity"} <= {r.split(" ")[0] for r in rows}  # display names
    assert not any(r.startswith("Mult-VAE") for r in rows)
    assert "Restricted to models ease, popularity: 2 further entries" in text
    cli("report", "--results-dir", str(tmp_path / "r"), "--out", str(tmp_path / "b"),
        "--exclude", "ease", cwd=tmp_path)
    text = (tmp_path / "b" / "tables.md").read_text()
    rows = [line.split("|")[1].strip() for line in text.splitlines() if line.startswith("| ")]
    assert any(r.startswith("Mult-VAE") for r in rows) and not any(r.startswith("EASE") for r in rows)
    p = cli("report", "--results-dir", str(tmp_path / "r"), "--out", str(tmp_path / "c"),
            "--models", "ease,nosuch", "--datasets", "ml-20m", cwd=tmp_path, check=False)
    assert p.returncode == 2 and "nosuch" in p.stderr and "ml-20m" in p.stderr
