"""Fits and trials as Ray tasks (``run --ray``, ``tune --ray``).

The unmarked tests check the parts without a cluster. The ``cluster`` ones start a real
two-node Ray cluster on this machine (``ray start --head --num-cpus 1`` and a second
``ray start --address ... --num-cpus 1``), torn down after; ``.ci/run`` runs them as their
own step (``pytest -m cluster``).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, place_raw

from benchmark.cluster import pack_dir, request_problem, unpack_dir
from benchmark.jobs import ModelRef
from benchmark.tuning.pool import worker_seed

NODES = [
    {"Alive": True, "NodeID": "a", "Resources": {"CPU": 4.0, "memory": 8e9}},
    {"Alive": True, "NodeID": "b", "Resources": {"CPU": 2.0, "memory": 30e9, "GPU": 1.0}},
    {"Alive": False, "NodeID": "c", "Resources": {"CPU": 64.0, "memory": 500e9, "GPU": 8.0}},
]


def test_a_request_no_alive_node_can_meet_is_named_with_the_largest_node():
    assert request_problem({"num_cpus": 4, "memory": 6e9}, NODES) is None
    assert request_problem({"num_cpus": 2, "num_gpus": 1, "memory": 20e9}, NODES) is None
    why = request_problem({"num_cpus": 4, "num_gpus": 1, "memory": 1e9}, NODES)
    assert why and "4 CPUs, 1 GPUs" in why and "the largest: 2 CPUs, 1 GPUs" in why
    assert "no alive node" in request_problem({"num_cpus": 1}, [NODES[2]])


def test_a_saved_model_travels_as_bytes_and_stays_in_its_folder(tmp_path):
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "model.json").write_text('{"a": 1}')
    (src / "sub" / "w.npy").write_bytes(b"\x00\x01")
    out = unpack_dir(pack_dir(src), tmp_path / "out")
    assert (out / "model.json").read_text() == '{"a": 1}'
    assert (out / "sub" / "w.npy").read_bytes() == b"\x00\x01"
    with pytest.raises(ValueError, match="outside"):
        unpack_dir({"../evil": b"x"}, tmp_path / "out2")


def test_a_plugin_reaches_a_worker_without_its_file_and_its_hash_is_checked(tmp_path):
    """The plugin's text travels with the job; a worker lacking the file writes it and
    imports it; a text that differs from the driver's code is refused by the source hash."""
    from benchmark.cluster import _with_plugin

    code = (REPO / "models" / "itemknn.py").read_text()
    ref = ModelRef("itemknn", "0" * 16, str(tmp_path / "gone" / "itemknn.py"))
    moved = _with_plugin(ref, code)
    assert moved.plugin_file != ref.plugin_file and Path(moved.plugin_file).read_text() == code
    with pytest.raises(RuntimeError, match="differs from the driver"):
        moved.resolve()  # the driver's hash above is not this code's


def test_workers_are_seeded_apart():
    seeds = {worker_seed(0, w, n) for w in range(1, 5) for n in (0, 6)}
    assert len(seeds) == 8 and worker_seed(0, 1, 0) == worker_seed(0, 1, 0)


# --- a real two-node cluster ---------------------------------------------------------------
def _ray_bin() -> str:
    exe = Path(sys.executable).with_name("ray")
    return str(exe) if exe.exists() else (shutil.which("ray") or "ray")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """Two Ray nodes of one CPU each on this machine; yields the head's address."""
    pytest.importorskip("ray", reason="Ray is not installed (pip install 'cf-benchmark[ray]')")
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
    port = _free_port()
    address = f"127.0.0.1:{port}"
    common = ["--num-cpus", "1", "--node-ip-address", "127.0.0.1", "--disable-usage-stats"]
    try:
        subprocess.run([_ray_bin(), "start", "--head", "--port", str(port),
                        "--include-dashboard=false", *common], env=env, check=True,
                       capture_output=True, timeout=120)
        subprocess.run([_ray_bin(), "start", "--address", address, *common], env=env,
                       check=True, capture_output=True, timeout=120)
        yield address, env
    finally:
        subprocess.run([_ray_bin(), "stop", "--force"], env=env, capture_output=True, timeout=120)


def _cli(*args, env, cwd, check=True, timeout=600):
    p = subprocess.run([sys.executable, "-m", "benchmark", *args], cwd=cwd, env=env,
                       capture_output=True, text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError(f"exit {p.returncode}\n{p.stderr[-4000:]}")
    return p


def _rows(results: Path) -> list[dict]:
    return [json.loads(x) for x in (results / "results.jsonl").read_text().splitlines()]


@pytest.mark.cluster
def test_run_on_two_nodes_gives_the_sequential_numbers(cluster, tmp_path):
    """popularity, EASE, SLIM, Mult-VAE (2 epochs), WMF on ml-100k through ``--ray`` equal a
    sequential run at one thread per fit to 1e-9; fits ran on both nodes; rows name them."""
    address, env = cluster
    data = tmp_path / "d"
    place_raw(data, "ml-100k", "ml-100k")
    common = ["--models", "popularity,ease,slim,multvae,wmf", "--epochs", "2", "--dataset",
              "ml-100k", "--data-dir", str(data), "--no-report"]
    _cli("run", *common, "--results-dir", str(tmp_path / "seq"), "--threads", "1", "--isolate",
         "none", env=env, cwd=tmp_path)
    p = _cli("run", *common, "--results-dir", str(tmp_path / "ray"), "--ray", address,
             env=env, cwd=tmp_path)
    assert "ray: 5 fit(s) submitted to 2 node(s)" in p.stderr
    seq = {(r["model"], r["part"]): r for r in _rows(tmp_path / "seq")}
    remote = _rows(tmp_path / "ray")
    assert len(remote) == 10 and {(r["model"], r["part"]) for r in remote} == set(seq)
    for r in remote:
        assert r["worker"]["executor"] == "ray" and r["worker"]["resources"]["CPU"] == 1.0
        assert r["worker"]["versions"]["numpy"] == np.__version__
        assert r["run_key"] == seq[(r["model"], r["part"])]["run_key"]
        if r["model"] in ("popularity", "ease", "slim", "wmf"):
            for k, v in r["metrics"].items():
                assert abs(v - seq[(r["model"], r["part"])]["metrics"][k]) <= 1e-9, (r["model"], k)
    assert len({r["worker"]["node_id"] for r in remote}) == 2  # both nodes fitted
    again = _cli("run", *common, "--results-dir", str(tmp_path / "ray"), "--ray", address,
                 env=env, cwd=tmp_path)
    assert again.stderr.count("already done") == 5 and len(_rows(tmp_path / "ray")) == 10


SLEEPER = '''
import os
import time
from pathlib import Path

from benchmark.models.popularity import Popularity
from benchmark.registry import register


@register("sleeper")
class Sleeper(Popularity):
    """Popularity that, the first time (no flag file yet), writes its pid and sleeps."""

    def __init__(self, flag: str = ""):
        super().__init__()
        self.flag = flag

    def _fit(self, train, valid, options):
        flag = Path(self.flag)
        if not flag.exists():
            flag.write_text(str(os.getpid()))
            time.sleep(300)
        return super()._fit(train, valid, options)
'''


@pytest.mark.cluster
def test_a_worker_killed_mid_fit_leaves_no_row_and_the_rerun_completes(cluster, tmp_path):
    """The worker process of a plugin's fit is killed: that fit is a FAILED line (no row,
    no arrays), the other model's rows are written, exit 1; the rerun fits it."""
    address, env = cluster
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "sleeper.py").write_text(SLEEPER)
    flag = tmp_path / "pid"
    args = ["run", "--models", "sleeper,popularity", "--dataset", "synthetic", "--data-dir",
            str(tmp_path / "d"), "--results-dir", str(tmp_path / "r"), "--no-report",
            "--ray", address, "--ray-retries", "0", "--models-dir", str(plugins),
            "--param", f"sleeper.flag={flag}"]
    proc = subprocess.Popen([sys.executable, "-m", "benchmark", *args], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while not (flag.exists() and flag.read_text().strip()) and time.time() < deadline:
        time.sleep(0.2)
    os.kill(int(flag.read_text()), signal.SIGKILL)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 1, err[-3000:]
    assert "[sleeper] FAILED" in err and "worker was lost" in err
    rows = _rows(tmp_path / "r")
    assert {r["model"] for r in rows} == {"popularity"}
    assert not any("sleeper" in p.name for p in (tmp_path / "r" / "arrays").iterdir())
    _cli(*args, env=env, cwd=tmp_path)
    rows = _rows(tmp_path / "r")
    assert sorted(r["model"] for r in rows) == ["popularity"] * 2 + ["sleeper"] * 2


@pytest.mark.cluster
def test_tune_on_two_nodes_runs_exactly_the_budget(cluster, tmp_path):
    """``tune --ray --workers 2 --trials 6``: the driver's SQLite study, served by Optuna's
    gRPC proxy, holds exactly 6 trials, with trial 0 the paper's defaults."""
    import optuna

    address, env = cluster
    _cli("tune", "--models", "multvae", "--trials", "6", "--workers", "2", "--epochs", "1",
         "--dataset", "synthetic", "--data-dir", str(tmp_path / "d"), "--results-dir",
         str(tmp_path / "r"), "--ray", address, env=env, cwd=tmp_path)
    storage = f"sqlite:///{tmp_path / 'r' / 'optuna.db'}"
    (summary,) = optuna.get_all_study_summaries(storage)
    trials = optuna.load_study(study_name=summary.study_name, storage=storage).get_trials()
    assert len(trials) == 6
    assert trials[0].user_attrs.get("paper_defaults") is True


def test_a_task_fits_on_a_writable_copy_of_a_read_only_split(ml100k_split):
    """Ray's object store gives tasks read-only arrays; LightFM's Cython refuses them."""
    import copy

    from benchmark.cluster import writable
    from benchmark.jobs import fit_and_evaluate
    from benchmark.model import FitOptions
    from benchmark.models.lightfm import LightFMRecommender as LightFM

    frozen = copy.deepcopy(ml100k_split)
    for m in (frozen.train, frozen.valid.fold_in, frozen.valid.holdout):
        for a in (m.data, m.indices, m.indptr):
            a.setflags(write=False)
    opts = FitOptions(epochs=1, progress=False, threads=1)
    with pytest.raises(ValueError, match="read-only"):
        fit_and_evaluate(LightFM, {}, frozen, opts, parts=("valid",))
    _, _, evals = fit_and_evaluate(LightFM, {}, writable(frozen), opts, parts=("valid",))
    assert evals["valid"].mean()["ndcg@100"] > 0
