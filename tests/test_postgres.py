"""Two ``tune`` workers share one Optuna study on a real PostgreSQL server.

The test starts its own cluster (the Debian ``postgresql`` package's ``initdb`` and
``pg_ctl``; ``.ci/run`` installs it when missing) in a temporary folder, listening on
127.0.0.1 on a free port, as the ``postgres`` user when run as root. Skipped, with the
reason, when the server binaries or the psycopg2 driver are absent.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.postgres

REPO = Path(__file__).resolve().parents[1]

PLUGIN = '''
import time

import numpy as np

from benchmark.evaluate import validation_ndcg
from benchmark.model import EpochReport, FitOptions, Recommender
from benchmark.registry import register


@register("pg-toy", iterative=True)
class PgToy(Recommender):
    """Test model: popularity + weight * item co-occurrence; sleeps so trials overlap."""

    def __init__(self, weight=0.5, sleep=0.3):
        self.weight = weight
        self.sleep = sleep

    @classmethod
    def search_space(cls, trial):
        return {"weight": trial.suggest_float("weight", 0.001, 1.0, log=True)}

    def fit(self, train, valid=None, *, options=None):
        options = options or FitOptions()
        pop = np.asarray(train.sum(axis=0), dtype=np.float32).ravel()
        self.pop_ = pop / max(1.0, float(pop.max()))
        co = (train.T @ train).tocsr().astype(np.float32)
        self.co_ = co / max(1.0, float(co.max()))
        for epoch in (1, 2):
            time.sleep(self.sleep)
            rep = EpochReport(epoch=epoch, loss=1.0 / epoch, seconds=self.sleep)
            rep.ndcg100 = validation_ndcg(self.score, valid)
            if options.on_epoch is not None:
                options.on_epoch(rep)
        return self

    def score(self, fold_in):
        base = np.broadcast_to(self.pop_, (fold_in.shape[0], self.pop_.size))
        return (base + 50.0 * self.weight * (fold_in @ self.co_).toarray()).astype(np.float32)
'''


def _pg_bindir() -> Path:
    found = glob.glob("/usr/lib/postgresql/*/bin/initdb")
    if not found:
        pytest.skip(
            "PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin "
            "(apt-get install postgresql; .ci/run does this)"
        )
    found.sort(key=lambda p: int(re.search(r"postgresql/(\d+)", p).group(1)))
    return Path(found[-1]).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def postgres_url():
    """A fresh PostgreSQL cluster in a temporary folder; yields a database URL."""
    psycopg2 = pytest.importorskip("psycopg2", reason="psycopg2-binary (a test dependency) is not installed")
    bindir = _pg_bindir()
    prefix: list[str] = []
    owner = None
    if os.geteuid() == 0:  # the server refuses to run as root: use the postgres user
        import pwd

        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no 'postgres' user to run the server as")
        prefix = ["runuser", "-u", "postgres", "--"]
    tmp = Path(tempfile.mkdtemp(prefix="cfbench-pg-"))
    if owner is not None:
        os.chown(tmp, owner.pw_uid, owner.pw_gid)
    os.chmod(tmp, 0o700)
    data, logfile, port = tmp / "data", tmp / "server.log", _free_port()

    def pg(*args: str) -> None:
        done = subprocess.run(prefix + list(args), cwd=tmp, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            log = logfile.read_text() if logfile.exists() else ""
            raise RuntimeError(f"{' '.join(args)} failed:\n{done.stdout}\n{done.stderr}\n{log}")

    pg(str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
    opts = f"-p {port} -k {tmp} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=50"
    pg(str(bindir / "pg_ctl"), "-D", str(data), "-l", str(logfile), "-w", "-t", "60", "-o", opts, "start")
    try:
        conn = psycopg2.connect(host="127.0.0.1", port=port, user="postgres", dbname="postgres")
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("CREATE DATABASE optuna_test")
        conn.close()
        yield f"postgresql://postgres@127.0.0.1:{port}/optuna_test"
    finally:
        subprocess.run(prefix + [str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                       cwd=tmp, capture_output=True, timeout=60)
        shutil.rmtree(tmp, ignore_errors=True)


def test_two_workers_share_one_study(postgres_url, tmp_path):
    import optuna

    from benchmark.data import load_split
    from benchmark.tuning import normalize_url

    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "pg_toy.py").write_text(PLUGIN)
    data_dir = tmp_path / "data"
    split = load_split("synthetic", data_dir=data_dir)  # cache it once for both workers
    n, study = 8, "pg-shared"
    cmd = [
        sys.executable, "-m", "benchmark", "tune", "--models", "pg-toy", "--dataset", "synthetic",
        "--data-dir", str(data_dir), "--trials", str(n), "--storage", postgres_url,
        "--study", study, "--no-progress",
    ]
    env = dict(os.environ, BENCHMARK_MODELS_DIR=str(plugins), BENCHMARK_OFFLINE="1",
               OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    # Two workers, as on two machines: each its own process and results folder.
    procs = [
        subprocess.Popen(cmd + ["--results-dir", str(tmp_path / f"r{i}")], cwd=tmp_path, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for i in range(2)
    ]
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        outs.append(out)

    # A third view: the study through a fresh connection (the CLI took the plain URL).
    loaded = optuna.load_study(study_name=study, storage=normalize_url(postgres_url))
    trials = loaded.get_trials()
    assert [t.number for t in trials] == list(range(n))  # adds up; no number twice
    assert len({t._trial_id for t in trials}) == n
    assert all(t.state.is_finished() for t in trials)
    assert sum(bool(t.user_attrs.get("paper_defaults")) for t in trials) == 1
    assert len({t.user_attrs["worker"] for t in trials}) == 2  # both workers ran trials
    assert loaded.user_attrs["split_hash"] == split.split_hash

    # Each worker's final summary names the same best trial, the one the database holds.
    seen = [re.search(r"pg-toy: best trial #(\d+) value ([0-9.]+)", out) for out in outs]
    assert all(seen), outs
    assert seen[0].groups() == seen[1].groups()
    assert int(seen[0].group(1)) == loaded.best_trial.number
    assert float(seen[0].group(2)) == pytest.approx(loaded.best_value, abs=1e-6)
