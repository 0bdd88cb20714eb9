"""The command line end to end: run, resume, prepare, errors and exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from conftest import REPO, place_raw


def cli(*args, cwd, env=None, check=True):
    e = dict(os.environ)
    e["BENCHMARK_MODELS_DIR"] = str(REPO / "models")
    e.update(env or {})
    p = subprocess.run(
        [sys.executable, "-m", "benchmark", *args], cwd=cwd, env=e, capture_output=True, text=True,
        timeout=600,
    )
    if check and p.returncode != 0:
        raise AssertionError(f"exit {p.returncode}\nstdout:\n{p.stdout}\nstderr:\n{p.stderr}")
    return p


def test_help_for_every_subcommand(tmp_path):
    out = cli("--help", cwd=tmp_path).stdout
    for sub in ("datasets", "prepare", "models", "run", "tune", "report"):
        assert sub in out
        assert "usage" in cli(sub, "--help", cwd=tmp_path).stdout


def test_run_popularity_end_to_end_and_resume(tmp_path):
    args = ("run", "--models", "popularity,itemknn", "--dataset", "synthetic", "--data-dir",
            str(tmp_path / "d"), "--results-dir", str(tmp_path / "r"), "--no-report", "--no-progress")
    p = cli(*args, cwd=tmp_path)
    assert "popularity" in p.stdout and "itemknn" in p.stdout and "test ndcg@100" in p.stdout
    rows = [json.loads(x) for x in (tmp_path / "r" / "results.jsonl").read_text().splitlines()]
    assert {(r["model"], r["part"]) for r in rows} == {
        ("popularity", "valid"), ("popularity", "test"), ("itemknn", "valid"), ("itemknn", "test")}
    for r in rows:
        for key in ("dataset", "model", "part", "metrics", "sem", "n_users", "n_excluded", "params",
                    "seed", "fit_seconds", "split_hash", "versions"):
            assert key in r, key
        assert set(r["metrics"]) == {"recall@20", "recall@50", "ndcg@100"}
        assert (tmp_path / "r" / r["arrays"]).exists()
    # the planted structure: item kNN beats popularity
    test = {r["model"]: r["metrics"]["ndcg@100"] for r in rows if r["part"] == "test"}
    assert test["itemknn"] > test["popularity"]
    # rerun: nothing recomputed, said so
    p2 = cli(*args, cwd=tmp_path)
    assert "already done" in p2.stderr
    assert len((tmp_path / "r" / "results.jsonl").read_text().splitlines()) == 4
    # --force recomputes
    cli(*args, "--force", cwd=tmp_path)
    assert len((tmp_path / "r" / "results.jsonl").read_text().splitlines()) == 8
    # another seed adds rows for that seed only; the report averages the two
    p3 = cli(*args, "--seeds", "0,1", cwd=tmp_path)
    assert "seed 0 already done" in p3.stderr
    assert len((tmp_path / "r" / "results.jsonl").read_text().splitlines()) == 12
    # the report against a chosen reference, with the direction of each difference
    cli("report", "--results-dir", str(tmp_path / "r"), "--out", str(tmp_path / "o"),
        "--reference", "itemknn", cwd=tmp_path)
    md = (tmp_path / "o" / "tables.md").read_text(encoding="utf-8")
    assert "### Significance against itemknn: synthetic" in md
    assert "| Item kNN (2 seeds, defaults, reference) |" in md
    assert "Popularity (2 seeds, defaults)" in md and "\u25bc" in md  # popularity is worse
    # bad seeds: exit 2 before anything runs
    bad = cli(*args, "--seeds", "0,x", cwd=tmp_path, check=False)
    assert bad.returncode == 2 and "--seeds" in bad.stderr


def test_prepare_ml100k_json(tmp_path):
    place_raw(tmp_path / "d", "ml-100k", "ml-100k")
    p = cli("prepare", "--dataset", "ml-100k", "--data-dir", str(tmp_path / "d"), "--json", cwd=tmp_path)
    stats = json.loads(p.stdout.strip().splitlines()[-1])
    assert stats["users"] == 938
    assert stats["interactions"] == 55_361
    assert stats["items_after_filter"] == 1_447
    assert stats["train_users"] + stats["valid_users"] + stats["test_users"] == 938
    assert stats["valid_users"] == stats["test_users"] == 100
    assert stats["items"] <= 1_447


def test_unknown_names_exit_2_with_the_list(tmp_path):
    p = cli("run", "--models", "nope", "--dataset", "synthetic", cwd=tmp_path, check=False)
    assert p.returncode == 2 and "popularity" in p.stderr
    p = cli("prepare", "--dataset", "nope", cwd=tmp_path, check=False)
    assert p.returncode == 2 and "ml-100k" in p.stderr and "synthetic" in p.stderr


def test_missing_raw_file_says_where_to_get_it(tmp_path):
    # downloads are not allowed in tests: point at an empty data dir and forbid fetching
    env = {"BENCHMARK_OFFLINE": "1"}
    p = cli("prepare", "--dataset", "ml-100k", "--data-dir", str(tmp_path / "empty"), cwd=tmp_path,
            env=env, check=False)
    assert p.returncode == 2
    assert "u.data" in p.stderr and "ml-100k.zip" in p.stderr
    assert not any((tmp_path / "empty").rglob("*.npz"))


def test_param_overrides_reach_the_model_and_bad_ones_exit_2(tmp_path):
    args = ("run", "--models", "itemknn", "--dataset", "synthetic", "--data-dir", str(tmp_path / "d"),
            "--results-dir", str(tmp_path / "r"), "--no-report", "--no-progress")
    cli(*args, "--param", "itemknn.k=7", "--param", "itemknn.shrink=0.5", cwd=tmp_path)
    rows = [json.loads(x) for x in (tmp_path / "r" / "results.jsonl").read_text().splitlines()]
    assert {r["params"]["k"] for r in rows} == {7}
    assert {r["params"]["shrink"] for r in rows} == {0.5}
    p = cli(*args, "--param", "itemknn.nope=1", cwd=tmp_path, check=False)
    assert p.returncode == 2 and "no parameter 'nope'" in p.stderr and "shrink" in p.stderr
    p = cli(*args, "--param", "itemknn=1", cwd=tmp_path, check=False)
    assert p.returncode == 2 and "MODEL.NAME=VALUE" in p.stderr
