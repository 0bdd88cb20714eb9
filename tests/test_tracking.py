"""``run --mlflow URI``: every fit logged to a real (local, file-store) MLflow and read back."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import REPO

from benchmark import tracking

NEEDS_MLFLOW = "mlflow is not installed: pip install 'cf-benchmark[mlflow]' (the test extra has it)"


def _clicks(path: Path, n_users: int = 240, n_items: int = 40) -> Path:
    """Four planted taste groups as user,item lines: a data set that fits in a moment."""
    rng = np.random.default_rng(0)
    rows = []
    for u in range(n_users):
        g = u % 4
        block = np.arange(g * (n_items // 4), (g + 1) * (n_items // 4))
        rows += [(u, int(i)) for i in rng.choice(block, size=rng.integers(6, 10), replace=False)]
        rows.append((u, int(rng.integers(0, n_items))))
    pd.DataFrame(rows, columns=["user", "item"]).drop_duplicates().to_csv(path, index=False)
    return path


def cli(*args: str, cwd: Path, pythonpath: Path | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["BENCHMARK_MODELS_DIR"] = str(REPO / "models")
    env["MPLCONFIGDIR"] = str(cwd / "mpl")
    if pythonpath is not None:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(pythonpath), env.get("PYTHONPATH")) if p)
    return subprocess.run([sys.executable, "-m", "benchmark", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


def _run_args(tmp: Path, *more: str) -> list[str]:
    data = _clicks(tmp / "clicks.csv")
    return ["run", "--models", "popularity,ease", "--dataset", f"file:{data}",
            "--heldout-users", "40", "--data-dir", str(tmp / "d"), "--results-dir", str(tmp / "r"),
            "--report-dir", str(tmp / "rep"), "--no-progress", *more]


@pytest.mark.slow
def test_run_logs_every_fit_to_mlflow_and_reads_back(tmp_path, monkeypatch):
    pytest.importorskip("mlflow", reason=NEEDS_MLFLOW)
    from mlflow.tracking import MlflowClient

    uri = (tmp_path / "mlruns").as_uri()  # file:///.../mlruns: a real local tracking store
    args = _run_args(tmp_path, "--mlflow", uri)
    p = cli(*args, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert f"mlflow: 2 run(s) logged to {uri}" in p.stderr

    rows = [json.loads(x) for x in (tmp_path / "r" / "results.jsonl").read_text().splitlines()]
    assert len(rows) == 4
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 asks for it to read one
    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(f"cf-benchmark/{rows[0]['dataset']}")
    assert exp is not None
    runs = {r.data.tags["model"]: r for r in client.search_runs([exp.experiment_id])}
    assert set(runs) == {"popularity", "ease"}

    for model, run in runs.items():
        test = next(r for r in rows if r["model"] == model and r["part"] == "test")
        valid = next(r for r in rows if r["model"] == model and r["part"] == "valid")
        assert run.info.status == "FINISHED" and run.info.run_name == f"{model} seed 0"
        # params: the model's parameters, stringified
        assert run.data.params == {k: str(v) for k, v in test["params"].items()}
        # metrics: test and valid metrics, their standard errors, the fit time
        m = run.data.metrics
        assert m["test_ndcg_at_100"] == pytest.approx(test["metrics"]["ndcg@100"], rel=1e-12)
        assert m["test_recall_at_20"] == pytest.approx(test["metrics"]["recall@20"], rel=1e-12)
        assert m["valid_ndcg_at_100"] == pytest.approx(valid["metrics"]["ndcg@100"], rel=1e-12)
        assert m["test_ndcg_at_100_sem"] == pytest.approx(test["sem"]["ndcg@100"], rel=1e-12)
        assert m["fit_seconds"] == pytest.approx(test["fit_seconds"], rel=1e-12)
        assert m["test_n_users"] == test["n_users"]
        # tags: what identifies the result
        tags = run.data.tags
        for key in ("model", "dataset", "run_key", "config_key", "split_hash", "suite_version"):
            assert tags[key] == str(test[key]), key
        assert tags["seed"] == "0"
        # artifacts: both rows, and the report rendered at the end of the run
        top = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert {"rows.json", "report"} <= top
        report = {a.path for a in client.list_artifacts(run.info.run_id, "report")}
        assert {"report/index.html", "report/tables.md"} <= report
        logged = json.loads(Path(client.download_artifacts(run.info.run_id, "rows.json",
                                                           str(tmp_path))).read_text())
        assert [r["id"] for r in logged] == [valid["id"], test["id"]]

    assert "ease" in runs and "l2" in runs["ease"].data.params  # the model's own parameter

    # rerun: the fits are found done, and nothing is logged twice
    again = cli(*args, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "already done" in again.stderr and f"mlflow: 0 run(s) logged to {uri}" in again.stderr
    assert len(client.search_runs([exp.experiment_id])) == 2


def test_mlflow_without_mlflow_installed_is_refused_before_any_fit(tmp_path):
    hidden = tmp_path / "hide"  # an `mlflow` that cannot be imported shadows any real one
    (hidden / "mlflow").mkdir(parents=True)
    (hidden / "mlflow" / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'mlflow'\", name='mlflow')\n")
    p = cli(*_run_args(tmp_path, "--mlflow", (tmp_path / "mlruns").as_uri()), cwd=tmp_path,
            pythonpath=hidden)
    assert p.returncode == 2, p.stderr
    assert "--mlflow needs MLflow: pip install 'cf-benchmark[mlflow]'" in p.stderr
    assert not (tmp_path / "r").exists() and not (tmp_path / "d").exists()  # nothing loaded
    assert not (tmp_path / "mlruns").exists()


def test_a_tracking_server_that_is_down_is_refused_before_any_fit(tmp_path):
    pytest.importorskip("mlflow", reason=NEEDS_MLFLOW)
    with socket.socket() as s:  # a loopback port that nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    p = cli(*_run_args(tmp_path, "--mlflow", f"http://127.0.0.1:{port}"), cwd=tmp_path)
    assert p.returncode == 2, p.stderr
    assert f"error: --mlflow: cannot open MLflow tracking store http://127.0.0.1:{port}" in p.stderr
    assert not (tmp_path / "r").exists()  # no model was fitted, no row written


def test_mlflow_problems(monkeypatch, tmp_path):
    assert tracking.mlflow_problems(None) == []
    assert "give a tracking URI" in tracking.mlflow_problems(" ")[0]
    with monkeypatch.context() as m:
        m.setitem(sys.modules, "mlflow", None)  # `import mlflow` raises ImportError
        assert tracking.mlflow_problems("file:///tmp/mlruns") == [tracking.MLFLOW_MISSING]
    pytest.importorskip("mlflow", reason=NEEDS_MLFLOW)
    assert tracking.mlflow_problems((tmp_path / "mlruns").as_uri()) == []
    (tmp_path / "afile").write_text("x")
    problems = tracking.mlflow_problems((tmp_path / "afile").as_uri())
    assert len(problems) == 1 and "--mlflow" in problems[0] and "is a file" in problems[0]


def test_names_and_flattening():
    assert tracking.metric_name("test", "ndcg@100") == "test_ndcg_at_100"
    assert tracking.metric_name("valid", "recall@20", "_sem") == "valid_recall_at_20_sem"
    assert tracking.flatten({"a": {"b": 1, "c": {"d": None}}, "e": [1, 2], "f": 0.5}) == {
        "a.b": "1", "a.c.d": "None", "e": "[1, 2]", "f": "0.5"}
    assert tracking.local_path("file:///x/my%20runs") == Path("/x/my runs")
    assert tracking.local_path("./mlruns") == Path("mlruns")
    assert tracking.local_path("http://localhost:5000") is None


def test_a_failure_to_log_after_the_run_fails_the_run_but_keeps_the_results(monkeypatch, tmp_path):
    def refuse(*a, **k):
        raise tracking.TrackingError("cannot open MLflow tracking store http://x: down")

    monkeypatch.setattr(tracking, "log_rows", refuse)
    failures = tracking.log_run("http://x", [{"run_key": "k"}], None)  # run_all: exit 1
    assert len(failures) == 1 and "down" in failures[0] and "rerun the same command" in failures[0]
