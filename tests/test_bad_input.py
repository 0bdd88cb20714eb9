"""Bad input never costs a run or leaves a wrong row.

Every case is a repro from a user's point of view: the exit code, a message that names the
option or file and the fix, nothing half-written, nothing computed earlier lost.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import REPO, place_raw

from benchmark import registry
from benchmark.data import DatasetError, load_split
from benchmark.evaluate import InvalidScoresError, check_scores
from benchmark.results import ResultStore, run_key
from benchmark.runner import RunConfig, run

HAS_CUDA = False
try:
    import torch

    HAS_CUDA = torch.cuda.is_available()
except ImportError:  # pragma: no cover
    pass


def cli(*args: str, cwd: Path, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    e = dict(os.environ, BENCHMARK_MODELS_DIR=str(REPO / "models"), PYTHONPATH=str(REPO))
    e.update(env or {})
    return subprocess.run([sys.executable, "-m", "benchmark", *args], cwd=cwd, env=e,
                          capture_output=True, text=True, timeout=timeout)


def _clicks(path: Path, n_users: int = 240, n_items: int = 40, seed: int = 0) -> Path:
    """Planted taste groups as user,item lines (every user has 8-12 items)."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        g = u % 4
        block = np.arange(g * (n_items // 4), (g + 1) * (n_items // 4))
        for i in rng.choice(block, size=rng.integers(6, 10), replace=False):
            rows.append((u, int(i)))
        rows.append((u, int(rng.integers(0, n_items))))
    pd.DataFrame(rows, columns=["user", "item"]).drop_duplicates().to_csv(path, index=False)
    return path


def _run_args(tmp: Path, data: Path, *more: str) -> list[str]:
    return ["run", "--dataset", f"file:{data}", "--heldout-users", "40", "--data-dir", str(tmp / "d"),
            "--results-dir", str(tmp / "r"), "--report-dir", str(tmp / "rep"), "--no-progress", *more]


# --- 1. checked before anything is fitted, every problem at once -------------------------------
@pytest.mark.skipif(HAS_CUDA, reason="this machine has CUDA: --device cuda is valid here")
def test_device_cuda_without_cuda_is_refused_before_any_fit(tmp_path):
    data = _clicks(tmp_path / "c.csv")
    p = cli(*_run_args(tmp_path, data, "--models", "popularity,ease", "--device", "cuda"), cwd=tmp_path)
    assert p.returncode == 2
    assert "--device cuda" in p.stderr and "--device cpu" in p.stderr
    assert not (tmp_path / "r").exists() and not (tmp_path / "d").exists()


def test_results_and_report_folders_that_are_files_are_refused_up_front(tmp_path):
    data = _clicks(tmp_path / "c.csv")
    (tmp_path / "afile").write_text("keep me")
    args = _run_args(tmp_path, data, "--models", "popularity")
    args[args.index("--results-dir") + 1] = str(tmp_path / "afile")
    p = cli(*args, cwd=tmp_path)
    assert p.returncode == 2 and "--results-dir" in p.stderr and "is a file" in p.stderr
    assert (tmp_path / "afile").read_text() == "keep me"
    args = _run_args(tmp_path, data, "--models", "popularity")
    args[args.index("--results-dir") + 1] = str(tmp_path / "afile" / "sub")
    p = cli(*args, cwd=tmp_path)
    assert p.returncode == 2 and "cannot be created" in p.stderr
    p = cli("report", "--results-dir", str(tmp_path / "r"), "--out", str(tmp_path / "afile"), cwd=tmp_path)
    assert p.returncode == 2 and "--out" in p.stderr and "is a file" in p.stderr
    assert not (tmp_path / "d").exists()  # nothing was read or split


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through read-only permissions")
def test_read_only_results_folder_is_refused_up_front(tmp_path):
    data = _clicks(tmp_path / "c.csv")
    (tmp_path / "r").mkdir()
    os.chmod(tmp_path / "r", 0o555)
    try:
        p = cli(*_run_args(tmp_path, data, "--models", "popularity"), cwd=tmp_path)
    finally:
        os.chmod(tmp_path / "r", 0o755)
    assert p.returncode == 2 and "cannot write" in p.stderr


def test_every_problem_is_reported_at_once_with_exit_2(tmp_path):
    p = cli("run", "--models", "ease,multvae", "--dataset", "synthetic", "--data-dir", str(tmp_path / "d"),
            "--results-dir", str(tmp_path / "r"), "--param", "ease.l2=abc", "--param", "multvae.lr=abc",
            "--param", "ease.lambda_=250", "--seed", "-1", "--epochs", "0", "--heldout-users", "0",
            "--trials", "-2", cwd=tmp_path)
    assert p.returncode == 2
    err = p.stderr
    assert "7 problems, nothing was run" in err
    assert "--param ease.l2=abc: expects a number, e.g. 100.0" in err
    assert "--param multvae.lr=abc: expects a number, e.g. 0.001" in err
    assert "ease has no parameter 'lambda_'; it has l2, dtype" in err
    assert "--seed -1: must be an integer in [0, 4,294,967,296)" in err
    assert "--epochs 0: must be an integer >= 1" in err
    assert "--heldout-users 0: must be an integer >= 1" in err
    assert "--trials -2: must be an integer >= 0" in err
    assert not (tmp_path / "d").exists() and not (tmp_path / "r").exists()


@pytest.mark.parametrize("value, message", [
    ("NaN", "NaN is not a finite number"),
    ("-1", "shrink=-1.0 (a finite number >= 0)"),
    ("Infinity", "Infinity is not a finite number"),
])
def test_nonsense_parameter_values_are_refused(tmp_path, value, message):
    p = cli("run", "--models", "itemknn", "--dataset", "synthetic", "--param", f"itemknn.shrink={value}",
            "--check", cwd=tmp_path)
    assert p.returncode == 2 and message in p.stderr and "--param itemknn.shrink" in p.stderr


@pytest.mark.parametrize("value", ["0", "-3"])
def test_heldout_users_below_one_are_refused(tmp_path, value):
    p = cli("prepare", "--dataset", "synthetic", "--heldout-users", value, "--data-dir", str(tmp_path / "d"),
            cwd=tmp_path)
    assert p.returncode == 2 and f"--heldout-users {value}: must be an integer >= 1" in p.stderr
    assert not (tmp_path / "d").exists()


def test_negative_filters_and_bad_seeds_are_refused(tmp_path):
    for args, message in (
        (["--min-user-items", "-1"], "--min-user-items -1: must be an integer >= 0"),
        (["--min-item-users", "-5"], "--min-item-users -5: must be an integer >= 0"),
        (["--split-seed", "-1"], "--split-seed -1: must be an integer in [0"),
        (["--min-rating", "nan"], "--min-rating nan: must be a finite number"),
    ):
        p = cli("prepare", "--dataset", "synthetic", "--data-dir", str(tmp_path / "d"), *args, cwd=tmp_path)
        assert p.returncode == 2 and message in p.stderr, p.stderr
    p = cli("run", "--models", "popularity", "--dataset", "synthetic", "--seeds", "0,0", "--check", cwd=tmp_path)
    assert p.returncode == 2 and "repeats a seed" in p.stderr


# --- 2. nonsense never written as a result -------------------------------------------------------
NAN_PLUGIN = '''
import numpy as np
from benchmark.model import Recommender
from benchmark.registry import register


@register("nan-scores")
class NaNScores(Recommender):
    """Test model: popularity, but NaN for a few items and +inf for one."""

    def fit(self, train, valid=None, *, options=None):
        self.pop_ = np.asarray(train.sum(axis=0), dtype=np.float32).ravel()
        return self

    def score(self, fold_in):
        s = np.tile(self.pop_, (fold_in.shape[0], 1))
        s[:, :3] = np.nan
        s[0, 5] = np.inf
        return s
'''


def test_nan_or_inf_scores_fail_the_model_naming_counts(tmp_path):
    s = np.zeros((4, 6), dtype=np.float32)
    check_scores(s, (4, 6))
    s[1, 2] = -np.inf
    check_scores(s, (4, 6))  # -inf: "never", allowed
    s[2, 3] = np.nan
    s[3, 0] = np.inf
    with pytest.raises(InvalidScoresError, match=r"NaN or \+inf for 2 of 4 users and 2 of 6 items"):
        check_scores(s, (4, 6))
    with pytest.raises(InvalidScoresError, match="returned shape"):
        check_scores(s, (4, 7))

    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "nan_scores.py").write_text(NAN_PLUGIN)
    data = _clicks(tmp_path / "c.csv")
    p = cli(*_run_args(tmp_path, data, "--models", "popularity,nan-scores", "--no-report"),
            cwd=tmp_path, env={"BENCHMARK_MODELS_DIR": str(plugins)})
    assert p.returncode == 1
    assert re.search(r"\[nan-scores\] FAILED: InvalidScoresError: score\(\) returned NaN or \+inf for 40 of "
                     r"40 users and [34] of \d+ items", p.stderr), p.stderr
    rows = [json.loads(x) for x in (tmp_path / "r" / "results.jsonl").read_text().splitlines()]
    assert {r["model"] for r in rows} == {"popularity"}
    assert sorted(x.name.split("-")[-1] for x in (tmp_path / "r" / "arrays").iterdir()) == ["test.npz", "valid.npz"]


def test_nan_and_none_give_different_run_keys():
    assert run_key(params={"shrink": float("nan")}) != run_key(params={"shrink": None})
    assert run_key(params={"x": float("inf")}) != run_key(params={"x": float("-inf")})
    assert run_key(params={"x": 1.0}) == run_key(params={"x": 1.0})


def test_damaged_or_edited_cache_entries_are_rebuilt(tmp_path):
    data = _clicks(tmp_path / "c.csv")
    name = f"file:{data}"
    split = load_split(name, data_dir=tmp_path / "d", protocol_overrides={"n_heldout": 40})
    (entry,) = (p for p in (tmp_path / "d").rglob("meta.json"))
    for bad in ("{}", json.dumps(dict(json.loads(entry.read_text()), split_hash="0" * 16))):
        entry.write_text(bad)
        with pytest.warns(UserWarning, match="rebuilding it from the raw data"):
            again = load_split(name, data_dir=tmp_path / "d", protocol_overrides={"n_heldout": 40})
        assert again.split_hash == split.split_hash
        assert json.loads(entry.read_text())["split_hash"] == split.split_hash  # repaired


def test_same_size_edit_with_the_time_kept_gives_a_new_split(tmp_path):
    data = _clicks(tmp_path / "c.csv")
    first = load_split(f"file:{data}", data_dir=tmp_path / "d", protocol_overrides={"n_heldout": 40})
    st = data.stat()
    text = data.read_text()
    lines = text.splitlines()
    # swap two users' ids on one line each (same size), then put the times back (touch -r)
    i = next(k for k, ln in enumerate(lines) if ln.startswith("1,"))
    j = next(k for k, ln in enumerate(lines) if ln.startswith("2,"))
    lines[i], lines[j] = "2," + lines[i][2:], "1," + lines[j][2:]
    data.write_text("\n".join(lines) + "\n")
    os.utime(data, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert data.stat().st_size == st.st_size and data.stat().st_mtime_ns == st.st_mtime_ns
    second = load_split(f"file:{data}", data_dir=tmp_path / "d", protocol_overrides={"n_heldout": 40})
    assert second.split_hash != first.split_hash
    assert len(list((tmp_path / "d").rglob("meta.json"))) == 2


def test_file_contents_that_are_errors(tmp_path):
    def split_of(path: Path, **kw):
        return load_split(f"file:{path}", data_dir=tmp_path / "d", **kw)

    extra = tmp_path / "extra.csv"
    extra.write_text("user,item\n" + "".join(f"{u},{i}\n" for u in range(60) for i in range(6)) + "7,3,99\n")
    with pytest.raises(DatasetError, match=r"line 362.*expected 2 fields.*found 3.*--extra-fields ignore"):
        split_of(extra, protocol_overrides={"n_heldout": 5})
    assert split_of(extra, protocol_overrides={"n_heldout": 5},
                    file_options={"extra_fields": "ignore"}).n_items == 6

    nan_user = tmp_path / "nan.csv"
    nan_user.write_text("user,item\n" + "".join(f"{u},{i}\n" for u in range(60) for i in range(6)) + "NaN,2\n")
    with pytest.raises(DatasetError, match=r"no user id \(empty, NaN or NA\).*data row 361"):
        split_of(nan_user, protocol_overrides={"n_heldout": 5})

    no_rating = tmp_path / "norating.csv"
    no_rating.write_text("user,item\n" + "".join(f"{u},{i}\n" for u in range(60) for i in range(6)))
    with pytest.raises(DatasetError, match=r"--min-rating 3.5\) was given.*no rating column"):
        split_of(no_rating, protocol_overrides={"n_heldout": 5, "min_rating": 3.5})
    with pytest.raises(DatasetError, match=r"min_user_items=-1"):
        split_of(no_rating, protocol_overrides={"n_heldout": 5, "min_user_items": -1})


def test_header_only_and_filtered_away_files_say_which_step(tmp_path):
    header = tmp_path / "header.csv"
    header.write_text("user,item,rating\n")
    p = cli("prepare", "--dataset", f"file:{header}", "--data-dir", str(tmp_path / "d"), cwd=tmp_path)
    assert p.returncode == 2 and "no interactions were read" in p.stderr
    low = tmp_path / "low.csv"
    low.write_text("user,item,rating\n" + "".join(f"{u},{i},2\n" for u in range(30) for i in range(6)))
    p = cli("prepare", "--dataset", f"file:{low}", "--min-rating", "3.5", "--data-dir", str(tmp_path / "d"),
            cwd=tmp_path)
    assert p.returncode == 2
    assert "rating > 3.5: 0 rows" in p.stderr and "the step 'rating > 3.5' removed every row" in p.stderr
    assert "--heldout-users 1" not in p.stderr
    few = tmp_path / "few.csv"
    few.write_text("user,item\n" + "".join(f"{u},{i}\n" for u in range(30) for i in range(6)))
    p = cli("prepare", "--dataset", f"file:{few}", "--heldout-users", "20", "--data-dir", str(tmp_path / "d"),
            cwd=tmp_path)
    assert p.returncode == 2 and "30 users remain" in p.stderr and "--heldout-users 14" in p.stderr


def test_unreadable_files_are_named(tmp_path):
    def err(path: Path, *more: str) -> str:
        p = cli("prepare", "--dataset", f"file:{path}", "--data-dir", str(tmp_path / "d"), *more, cwd=tmp_path)
        assert p.returncode == 2, p.stderr
        assert "Traceback" not in p.stderr
        return p.stderr

    binary = tmp_path / "clicks.csv"
    binary.write_bytes(bytes(range(256)) * 40)
    assert "does not look like a text table (binary content)" in err(binary)

    odd = tmp_path / "odd.txt"
    odd.write_text("a~b\nc\n")
    assert "--sep" in err(odd)

    quoted = tmp_path / "quoted.csv"
    quoted.write_text("user,item,rating\n" + "".join(f"{u},{i},4\n" for u in range(40) for i in range(6))
                      + '7,"3,4"\n')
    assert "found 2 (a quoted field counts as one)" in err(quoted)

    folder = tmp_path / "folder"
    folder.mkdir()
    assert "is a folder, not a file" in err(folder)

    not_gz = tmp_path / "plain.csv.gz"
    not_gz.write_text("user,item\n1,2\n")
    assert "not a readable .gz file" in err(not_gz)
    short = tmp_path / "short.csv.gz"
    packed = gzip.compress(("user,item\n" + "".join(f"{u},{i}\n" for u in range(3000) for i in range(5))).encode())
    short.write_bytes(packed[: len(packed) // 2])  # cut short
    assert "not a readable .gz file" in err(short)
    bad_xz = tmp_path / "bad.csv.xz"
    bad_xz.write_bytes(b"\xfd7zXZ\x00" + b"\x00" * 50)
    assert "not a readable .xz file" in err(bad_xz)


def test_utf8_bom_and_separator_option(tmp_path):
    bom = tmp_path / "bom.csv"
    body = "".join(f"u{u};i{i};5\n" for u in range(60) for i in range(6) if (u + i) % 7)
    bom.write_bytes(("\ufeffuserId;movieId;stars\n" + body).encode("utf-8"))
    p = cli("prepare", "--dataset", f"file:{bom}", "--user-col", "userId", "--item-col", "movieId",
            "--rating-col", "stars", "--sep", ";", "--heldout-users", "5", "--data-dir", str(tmp_path / "d"),
            "--json", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    stats = json.loads(p.stdout.strip().splitlines()[-1])
    assert stats["users"] == 60 and stats["items"] == 6


# --- 3. bad input never burns a study ------------------------------------------------------------
@pytest.mark.skipif(HAS_CUDA, reason="this machine has CUDA: --device cuda is valid here")
def test_tune_with_a_bad_device_or_epochs_never_starts_a_study(tmp_path):
    for more in (["--device", "cuda"], ["--epochs", "0"]):
        p = cli("tune", "--models", "ease", "--dataset", "synthetic", "--trials", "2",
                "--results-dir", str(tmp_path / "r"), *more, cwd=tmp_path)
        assert p.returncode == 2, p.stderr
        assert not (tmp_path / "r" / "optuna.db").exists()


@pytest.mark.parametrize("folder", ["x?y", "r%41x", "a#b"])
def test_odd_results_folder_names_keep_the_study_inside(tmp_path, folder):
    from benchmark.tuning import default_storage, make_storage

    url = default_storage(tmp_path / folder)
    make_storage(url)
    assert (tmp_path / folder / "optuna.db").is_file()
    assert [p.name for p in tmp_path.iterdir()] == [folder]


# --- 4. messages and examples ---------------------------------------------------------------------
def _examples() -> list[str]:
    from benchmark.cli import EPILOG_RUN

    lines = [ln.strip() for ln in EPILOG_RUN.splitlines() if ln.strip().startswith("python -m benchmark")]
    readme = (REPO / "README.md").read_text()
    for block in re.findall(r"```bash\n(.*?)```", readme, flags=re.S):
        lines += [ln.strip() for ln in block.splitlines() if ln.strip().startswith("python -m benchmark")
                  and "<run_key>" not in ln]  # a placeholder, not a runnable example
    return lines


def test_every_example_in_help_and_readme_is_accepted(tmp_path):
    place_raw(tmp_path / "data", "ml-100k", "ml-100k")
    (tmp_path / "my_clicks.csv").write_text("user,item\n1,2\n")
    shutil.copytree(REPO / "experiments", tmp_path / "experiments")  # --config examples
    examples = list(dict.fromkeys(_examples()))  # each distinct example once
    assert len(examples) >= 12

    def check(line: str) -> None:
        args = shlex.split(line, comments=True)[3:]
        if args[0] in ("run", "tune"):
            args.append("--check")
        if args[0] in ("prepare", "run", "tune", "datasets"):
            args += ["--data-dir", str(tmp_path / "data")]
        p = cli(*args, cwd=tmp_path)
        if "--device cuda" in line and not HAS_CUDA:
            assert p.returncode == 2 and "--device cuda" in p.stderr, line
        else:
            assert p.returncode == 0, f"{line}\n{p.stderr}"

    from concurrent.futures import ThreadPoolExecutor

    prepare = [e for e in examples if " prepare " in e]  # first: the others may read its split
    for line in prepare:
        check(line)
    with ThreadPoolExecutor(max_workers=2) as pool:  # independent processes, two at a time
        list(pool.map(check, [e for e in examples if e not in prepare]))


def test_plugin_folder_option_and_broken_plugin_warning(tmp_path):
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "good.py").write_text(NAN_PLUGIN)
    (plugins / "broken.py").write_text("import numpy\n\nx = undefined_name + 1\n")
    p = cli("models", "--models-dir", str(plugins), cwd=tmp_path, env={"BENCHMARK_MODELS_DIR": ""})
    assert p.returncode == 0
    assert "nan-scores" in p.stdout and "itemknn" not in p.stdout
    assert f"{plugins / 'broken.py'}, line 3 could not be imported" in p.stderr
    assert "NameError: name 'undefined_name' is not defined" in p.stderr
    p = cli("models", cwd=tmp_path, env={"BENCHMARK_MODELS_DIR": str(plugins)})
    assert "nan-scores" in p.stdout
    p = cli("models", "--models-dir", str(tmp_path / "none"), cwd=tmp_path)
    assert p.returncode == 2 and "no such folder" in p.stderr


def test_two_reports_into_one_folder_and_two_saves_of_one_split(tmp_path, planted_split):
    store = ResultStore(tmp_path / "r")
    rows, failures = run(RunConfig(models="popularity,ease", datasets=["planted"], results_dir=str(tmp_path / "r"),
                                   progress=False, report=False), planted_split)
    assert not failures and store.rows()
    procs = [
        subprocess.Popen([sys.executable, "-m", "benchmark", "report", "--results-dir", str(tmp_path / "r"),
                          "--out", str(tmp_path / "rep")], cwd=tmp_path, stderr=subprocess.PIPE,
                         env=dict(os.environ, PYTHONPATH=str(REPO)))
        for _ in range(3)
    ]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    out = tmp_path / "rep"
    assert sorted(x.name for x in out.iterdir()) == ["figures", "index.html", "report.json", "tables.md", "tables.tex"]
    # a second process saving the split the first just saved keeps the first one's
    target = tmp_path / "split"
    planted_split.save(target)
    before = (target / "split.npz").stat().st_ino
    planted_split.save(target)
    assert (target / "split.npz").stat().st_ino == before
    assert sorted(x.name for x in tmp_path.iterdir() if x.name.startswith(".")) == []


def test_shared_folders_follow_the_umask(tmp_path):
    data = _clicks(tmp_path / "c.csv")
    code = (
        "import os, sys; os.umask(0o022); from benchmark.cli import main; "
        f"sys.exit(main({_run_args(tmp_path, data, '--models', 'popularity', '--no-report')!r}))"
    )
    p = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                       env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert p.returncode == 0, p.stderr
    arrays = list((tmp_path / "r" / "arrays").iterdir())
    assert arrays and all(a.stat().st_mode & 0o777 == 0o644 for a in arrays)
    (entry,) = (m.parent for m in (tmp_path / "d").rglob("meta.json"))
    assert entry.stat().st_mode & 0o777 == 0o755
    assert all(f.stat().st_mode & 0o777 == 0o644 for f in entry.iterdir())


# --- faults during a run ---------------------------------------------------------------------------
FLAKY_PLUGIN = '''
import os
import time

import numpy as np
from benchmark.model import Recommender
from benchmark.registry import register


@register("flaky")
class Flaky(Recommender):
    """Test model: raises while FLAKY_FAIL is set; sleeps FLAKY_SLEEP seconds in fit."""

    def fit(self, train, valid=None, *, options=None):
        if os.environ.get("FLAKY_FAIL"):
            raise RuntimeError("flaky failed on purpose")
        time.sleep(float(os.environ.get("FLAKY_SLEEP", "0")))
        self.pop_ = np.asarray(train.sum(axis=0), dtype=np.float32).ravel()
        return self

    def score(self, fold_in):
        return np.tile(self.pop_, (fold_in.shape[0], 1)) + (fold_in @ np.ones((fold_in.shape[1], 1))) * 0
'''


def _rows(results: Path) -> list[dict]:
    return [json.loads(x) for x in (results / "results.jsonl").read_text().splitlines() if x.strip()]


def test_faults_during_a_run_keep_every_other_result(tmp_path, monkeypatch):
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "flaky.py").write_text(FLAKY_PLUGIN)
    data = _clicks(tmp_path / "c.csv")
    args = _run_args(tmp_path, data, "--models", "popularity,flaky,ease", "--no-report")
    env = {"BENCHMARK_MODELS_DIR": str(plugins)}

    # (a) the second model raises: the others are written, exit 1; the rerun fits only it
    p = cli(*args, cwd=tmp_path, env={**env, "FLAKY_FAIL": "1"})
    assert p.returncode == 1 and "[flaky] FAILED: RuntimeError: flaky failed on purpose" in p.stderr
    assert [r["model"] for r in _rows(tmp_path / "r")] == ["popularity"] * 2 + ["ease"] * 2
    p = cli(*args, cwd=tmp_path, env=env)
    assert p.returncode == 0
    assert p.stderr.count("already done") == 2 and "[flaky] test NDCG@100" in p.stderr
    assert [r["model"] for r in _rows(tmp_path / "r")][4:] == ["flaky", "flaky"]

    # (b) the results folder turns read-only mid-run (the second write fails): that model
    # fails, the others are kept, no array is left without its row; the rerun completes it
    from benchmark import results as results_mod
    from benchmark.data import load_split as load

    split = load(f"file:{data}", data_dir=tmp_path / "d", protocol_overrides={"n_heldout": 40})
    registry.discover()
    calls = {"n": 0}
    real = results_mod.ResultStore.append

    def flaky_append(self, row):
        calls["n"] += 1
        if calls["n"] == 2:
            raise PermissionError(13, "Permission denied", str(self.path))
        return real(self, row)

    monkeypatch.setattr(results_mod.ResultStore, "append", flaky_append)
    cfg = RunConfig(models="popularity,ease,wmf", datasets=[split.meta["dataset"]], results_dir=str(tmp_path / "r2"),
                    progress=False, report=False)
    rows, failures = run(cfg, split)
    assert len(failures) == 1 and failures[0].startswith("ease") and "Permission denied" in failures[0]
    assert [r["model"] for r in _rows(tmp_path / "r2")] == ["popularity"] * 2 + ["wmf"] * 2
    arrays = sorted(x.name for x in (tmp_path / "r2" / "arrays").iterdir())
    assert len(arrays) == 4 and all(a.startswith(tuple(r["run_key"] for r in _rows(tmp_path / "r2"))) for a in arrays)
    monkeypatch.setattr(results_mod.ResultStore, "append", real)
    rows, failures = run(cfg, split)
    assert not failures
    assert [r["model"] for r in _rows(tmp_path / "r2")][4:] == ["ease", "ease"]

    # (c) the process is killed during the second model: the rerun does exactly the rest
    args3 = [a if a != str(tmp_path / "r") else str(tmp_path / "r3") for a in args]
    proc = subprocess.Popen([sys.executable, "-m", "benchmark", *args3], cwd=tmp_path,
                            env=dict(os.environ, PYTHONPATH=str(REPO), FLAKY_SLEEP="60", **env),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while time.time() < deadline:
        if (tmp_path / "r3" / "results.jsonl").exists() and len(_rows(tmp_path / "r3")) == 2:
            break
        time.sleep(0.2)
    time.sleep(1.0)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert [r["model"] for r in _rows(tmp_path / "r3")] == ["popularity"] * 2
    p = cli(*args3, cwd=tmp_path, env=env)
    assert p.returncode == 0 and p.stderr.count("already done") == 1
    assert [r["model"] for r in _rows(tmp_path / "r3")] == ["popularity"] * 2 + ["flaky"] * 2 + ["ease"] * 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(ResultStore(tmp_path / "r3").rows()) == 6
