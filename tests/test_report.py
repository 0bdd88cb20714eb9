"""Report: golden Markdown/LaTeX, significance against scipy.stats, robustness, figures.

The fixture is a small fixed results folder built here from fixed rows and per-user arrays
(seeded NumPy ``Generator.random``). Regenerate the golden files after an intended change::

    UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/test_report.py -q
"""

from __future__ import annotations

import json
import os
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from benchmark.report import (
    ReportWarning,
    build_report,
    holm,
    load_results,
    paired_tests,
    significance,
)
from benchmark.results import ResultStore

GOLDEN = Path(__file__).parent / "golden"
N_USERS = 80
VERSIONS = {"python": "3.11.0", "numpy": "2.0.0", "torch": "2.13.0"}
HARDWARE = {"machine": "x86_64", "cpus": 2, "system": "Linux"}


def _metrics(arrays: dict[str, np.ndarray]) -> tuple[dict, dict]:
    ms = ("recall@20", "recall@50", "ndcg@100")
    mean = {m: float(arrays[m].mean()) for m in ms}
    sem = {m: float(arrays[m].std() / np.sqrt(len(arrays[m]))) for m in ms}
    return mean, sem


def _per_user(rng: np.random.Generator, level: float, users: np.ndarray, fold: np.ndarray) -> dict:
    """Per-user metrics that grow with activity (fold-in size), around ``level``."""
    act = (fold - fold.mean()) / fold.std()
    base = np.clip(level + 0.05 * act + 0.12 * (rng.random(len(users)) - 0.5), 0, 1)
    n = len(users)
    return {
        "recall@20": np.clip(base * 0.95 + 0.08 * (rng.random(n) - 0.5), 0, 1),
        "recall@50": np.clip(base * 1.25 + 0.08 * (rng.random(n) - 0.5), 0, 1),
        "ndcg@100": base,
        "users": users,
        "fold_in_size": fold,
    }


def add_row(
    store: ResultStore,
    *,
    model: str,
    part: str,
    arrays: dict | None,
    dataset: str = "ml-20m",
    split_hash: str = "a1b2c3d4e5f60718",
    seed: int = 0,
    fit_seconds: float = 10.0,
    extra: dict | None = None,
    tuning: dict | None = None,
    params: dict | None = None,
    write_arrays: bool = True,
    metrics_override: dict | None = None,
    n_line: int = 0,
    tag: str = "",
    more: dict | None = None,
) -> dict:
    row_id = f"{dataset}-{model}{tag}-{split_hash[:4]}-s{seed}-{part}"
    mean, sem = _metrics(arrays) if arrays is not None else ({}, {})
    if metrics_override is not None:
        mean = metrics_override
    row = {
        "id": row_id,
        "run_key": f"{dataset}-{model}-{seed}",
        "dataset": dataset,
        "model": model,
        "part": part,
        "metrics": mean,
        "sem": sem,
        "n_users": len(arrays["users"]) if arrays is not None else N_USERS,
        "n_excluded": 3,
        "params": params or {},
        "seed": seed,
        "fit_seconds": fit_seconds,
        "score_seconds": 0.5,
        "split_hash": split_hash,
        "split_seed": 98765,
        "device": "cpu",
        "versions": VERSIONS,
        "git_commit": "0123456789abcdef0123456789abcdef01234567",
        "hardware": HARDWARE,
        "timestamp": f"2025-01-0{1 + n_line % 9}T10:00:00+0000",
        "arrays": f"arrays/{row_id}.npz",
    }
    if more:
        row.update(more)
    if extra:
        row["extra"] = extra
    if tuning:
        row["tuning"] = tuning
    if arrays is not None and write_arrays:
        store.save_arrays(row_id, arrays)
    store.append(row)
    return row


def make_results(directory: Path) -> Path:
    """The fixed results folder of the golden tests (ml-20m: 4 models, ml-100k: 2 models)."""
    store = ResultStore(directory)
    rng = np.random.default_rng(20180423)
    users = np.arange(3, 3 + N_USERS)
    fold = (np.arange(N_USERS) * 7919 % 97 + 4).astype(np.int64)
    history = [
        {"epoch": e, "loss": 500.0 - 10 * e, "seconds": 1.0, "ndcg@100": 0.30 + 0.02 * e - 0.0015 * e * e}
        for e in range(1, 11)
    ]
    beta_curve = [{"beta": b / 10, "ndcg@100": 0.40 - (b / 10 - 0.3) ** 2 / 4} for b in range(0, 11)]
    caps = [0.2, 0.1, 0.3, 0.25, 0.15, 0.35, 0.22, 0.18]
    drops = [0.5, 0.3, 0.6, 0.5, 0.4, 0.2, 0.5, 0.6]
    tuning = {
        "best_params": {"anneal_cap": 0.2, "dropout": 0.5},
        "trials": {"complete": 8, "pruned": 1, "failed": 0},
        "seconds": 812.5,
        "best_value": 0.424,
        "history": [
            {
                "number": i,
                "value": 0.424 - 0.4 * (caps[i] - 0.2) ** 2 - 0.01 * abs(drops[i] - 0.5),
                "state": "COMPLETE",
                "params": {"anneal_cap": caps[i], "dropout": drops[i]},
            }
            for i in range(8)
        ]
        + [{"number": 8, "value": 0.31, "state": "PRUNED", "params": {"anneal_cap": 0.9, "dropout": 0.1}}],
    }
    levels = {"multvae": 0.42, "multdae": 0.37, "gaussian-vae": 0.405, "ease": 0.415, "popularity": 0.19}
    n = 0
    for model, level in levels.items():
        for part in ("valid", "test"):
            arr = _per_user(rng, level, users, fold)
            add_row(
                store,
                model=model,
                part=part,
                arrays=arr,
                fit_seconds={"multvae": 120.0, "multdae": 60.0, "gaussian-vae": 130.0, "ease": 4.0, "popularity": 0.05}[model],
                extra={"history": history, "beta_curve": beta_curve} if model == "multvae" else None,
                tuning=tuning if model == "multvae" else None,
                params={"l2": 400.0} if model == "ease" else {},
                n_line=n,
            )
            n += 1
    for model, level in (("multvae", 0.30), ("popularity", 0.12)):
        arr = _per_user(rng, level, users[:40], fold[:40])
        add_row(store, model=model, part="test", arrays=arr, dataset="ml-100k", split_hash="ffee000011112222", n_line=n)
        n += 1
    return directory


def _build(tmp_path: Path, results: Path, name: str = "report", **kw) -> tuple[Path, list[str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        index = build_report(results, tmp_path / name, **kw)
    msgs = [str(w.message) for w in caught if issubclass(w.category, ReportWarning)]
    return index, msgs


def _check_golden(text: str, name: str) -> None:
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8", newline="\n")
    assert path.exists(), f"golden file {path} missing: run with UPDATE_GOLDEN=1 to create it"
    expected = path.read_text(encoding="utf-8")
    assert text == expected, f"{name} differs from the golden file; if intended, rerun with UPDATE_GOLDEN=1"


@pytest.fixture(scope="module")
def fixed_report(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("report")
    results = make_results(tmp / "results")
    index, msgs = _build(tmp, results)
    return results, index.parent, msgs


# --- golden + determinism -------------------------------------------------------------------------
def test_markdown_matches_golden(fixed_report):
    _, out, _ = fixed_report
    _check_golden((out / "tables.md").read_text(encoding="utf-8"), "report.md")


def test_latex_matches_golden(fixed_report):
    _, out, _ = fixed_report
    _check_golden((out / "tables.tex").read_text(encoding="utf-8"), "report.tex")


def test_same_results_give_identical_bytes(fixed_report, tmp_path):
    results, out, _ = fixed_report
    copy = shutil.copytree(results, tmp_path / "elsewhere")
    index, _ = _build(tmp_path, copy, "again", figures=True)
    for name in ("tables.md", "tables.tex"):
        assert (out / name).read_bytes() == (index.parent / name).read_bytes()
    figs = sorted((out / "figures").glob("*.svg")) + sorted((out / "figures").glob("*.pdf"))
    assert figs
    for f in figs:  # SVG: fixed hash salt, no date; PDF: no dates, no producer
        assert f.read_bytes() == (index.parent / "figures" / f.name).read_bytes(), f.name


def test_table_content(fixed_report):
    _, out, msgs = fixed_report
    md = (out / "tables.md").read_text(encoding="utf-8")
    assert msgs == []  # a clean folder gives no warnings
    # best NDCG@100 (multvae) in bold; multdae and popularity are significantly worse
    vae_line = next(line for line in md.splitlines() if line.startswith("| multvae (") and "reference) |" in line)
    assert vae_line.count("**") >= 2
    dae_line = next(line for line in md.splitlines() if line.startswith("| multdae (defaults) |"))
    assert "\u25bc\u2020" in dae_line and "\u2021" not in dae_line  # worse, by the t-test
    # published reference rows with sources and the difference for mapped models
    assert "*Mult-VAE^PR, Liang et al. 2018 [V]*" in md
    assert "Δ" in md and "EASE^R, Steck 2019 [P]" in md
    # low-confidence Table 3 rows only for the likelihood models that were run
    assert "Gaussian-VAE, Liang et al. 2018, Table 3 [P, low confidence]" in md
    assert "Logistic-VAE" not in md
    tex = (out / "tables.tex").read_text(encoding="utf-8")
    assert r"\toprule" in tex and r"\bottomrule" in tex and r"\textsuperscript{PR}" in tex
    assert tex.count(r"\begin{table}") == tex.count(r"\end{table}") == 4
    manifest = json.loads((out / "report.json").read_text())
    keys = [f["key"] for f in manifest["figures"]]
    for k in ("quintiles-ml-20m", "epochs-ml-20m", "beta-ml-20m", "likelihood-ml-20m", "tuning-ml-20m-multvae", "time-ml-20m"):
        assert k in keys
    for f in manifest["figures"]:
        assert (out / f["png"]).stat().st_size > 1000 and (out / f["svg"]).exists()
        assert (out / f["pdf"]).read_bytes().startswith(b"%PDF")
    html = (out / "index.html").read_text(encoding="utf-8")
    assert html.count("data:image/png;base64,") == len(manifest["figures"])
    assert "http://" not in html and "https://" not in html and "<script" not in html


# --- significance ---------------------------------------------------------------------------------
def test_significance_matches_scipy(fixed_report):
    results, _, _ = fixed_report
    data = load_results(results)
    sig = significance(data)
    comps = [c for c in sig.for_dataset("ml-20m") if c.paired]
    assert {c.model for c in comps} == {"multdae", "gaussian-vae", "ease", "popularity"}
    assert len(comps) == 12
    base = np.load(results / "arrays" / "ml-20m-multvae-a1b2-s0-test.npz")
    raw_t, raw_w = [], []
    for c in comps:
        other = np.load(results / "arrays" / f"{c.row_id}.npz")
        t = stats.ttest_rel(other[c.metric], base[c.metric])
        w = stats.wilcoxon(other[c.metric], base[c.metric])
        assert c.result.n == N_USERS
        assert c.result.mean_diff == pytest.approx(float(np.mean(other[c.metric] - base[c.metric])))
        assert c.result.t_stat == pytest.approx(t.statistic) and c.result.t_p == pytest.approx(t.pvalue)
        assert c.result.w_stat == pytest.approx(w.statistic) and c.result.w_p == pytest.approx(w.pvalue)
        raw_t.append(t.pvalue)
        raw_w.append(w.pvalue)
    # Holm by hand: sort, multiply by (m - rank), running maximum, cap at 1
    for raw, got in ((raw_t, [c.t_p_holm for c in comps]), (raw_w, [c.w_p_holm for c in comps])):
        order = np.argsort(raw)
        expected = np.empty(len(raw))
        running = 0.0
        for rank, i in enumerate(order):
            running = max(running, min(1.0, (len(raw) - rank) * raw[i]))
            expected[i] = running
        np.testing.assert_allclose(got, expected)
    by = {(c.model, c.metric): c for c in comps}
    assert by[("multdae", "ndcg@100")].marks == "\u25bc\u2020"  # worse than multvae (t-test)
    assert by[("popularity", "ndcg@100")].marks == "\u25bc\u2020"


def test_holm_small_cases():
    # p = (0.01, 0.04, 0.03): sorted 0.01*3=0.03, 0.03*2=0.06, 0.04*1 -> max(0.06, 0.04)=0.06
    np.testing.assert_allclose(holm([0.01, 0.04, 0.03]), [0.03, 0.06, 0.06])
    np.testing.assert_allclose(holm([0.5, float("nan")]), [1.0, 1.0])
    assert len(holm([])) == 0


def test_paired_tests_edge_cases():
    same = paired_tests(np.ones(5), np.ones(5))
    assert same.w_p == 1.0 and same.mean_diff == 0.0
    one = paired_tests(np.array([0.5]), np.array([0.2]))
    assert one.n == 1 and np.isnan(one.t_p)


def test_pairing_only_on_same_split_and_common_users(tmp_path):
    store = ResultStore(tmp_path / "r")
    rng = np.random.default_rng(1)
    users = np.arange(50)
    fold = np.arange(50) % 9 + 5
    add_row(store, model="multvae", part="test", arrays=_per_user(rng, 0.4, users, fold))
    # same split, a subset of the users: paired on the 30 common users
    add_row(store, model="ease", part="test", arrays=_per_user(rng, 0.3, users[10:40], fold[10:40]))
    # another split: never paired
    add_row(store, model="wmf", part="test", arrays=_per_user(rng, 0.3, users, fold), split_hash="0000ffff0000ffff")
    index, msgs = _build(tmp_path, tmp_path / "r")
    sig = significance(load_results(tmp_path / "r"))
    ease = [c for c in sig.comparisons if c.model == "ease"]
    assert all(c.paired and c.result.n == 30 and c.reason == "paired on the common users only" for c in ease)
    wmf = [c for c in sig.comparisons if c.model == "wmf"]
    assert wmf and not any(c.paired for c in wmf) and "no multvae row on split 0000ffff" in wmf[0].reason
    md = (index.parent / "tables.md").read_text(encoding="utf-8")
    assert "wmf [split 0000ffff]" in md and "Not paired: wmf [split 0000ffff]" in md
    assert "Paired on their common users only" in md


# --- robustness -----------------------------------------------------------------------------------
def test_one_model(tmp_path):
    store = ResultStore(tmp_path / "r")
    rng = np.random.default_rng(2)
    users, fold = np.arange(40), np.arange(40) % 7 + 5
    for part in ("valid", "test"):
        add_row(store, model="ease", part=part, arrays=_per_user(rng, 0.4, users, fold), dataset="ml-100k")
    index, msgs = _build(tmp_path, tmp_path / "r")
    md = (index.parent / "tables.md").read_text(encoding="utf-8")
    assert "| ease |" in md and "**" not in md.split("### Table 2")[1].split("###")[0]
    assert any("only one model" in m for m in msgs)
    assert "only one model" in md


def test_missing_metrics_corrupt_line_missing_arrays(tmp_path):
    results = make_results(tmp_path / "r")
    store = ResultStore(results)
    # a corrupt line in the middle, a row without recall@50, a row whose arrays are gone
    with open(store.path, "a", encoding="utf-8") as f:
        f.write('{"id": "broken", "model": "x", \n')
    rng = np.random.default_rng(3)
    users, fold = np.arange(3, 3 + N_USERS), (np.arange(N_USERS) * 7919 % 97 + 4)
    arr = _per_user(rng, 0.3, users, fold)
    add_row(store, model="wmf", part="test", arrays=arr, metrics_override={"recall@20": 0.3, "ndcg@100": 0.33})
    add_row(store, model="slim", part="test", arrays=arr, write_arrays=False)
    (results / "arrays" / "ml-20m-multdae-a1b2-s0-test.npz").write_bytes(b"not a zip file")
    store.append({"model": "nameless"})
    index, msgs = _build(tmp_path, results)
    out = index.parent
    md = (out / "tables.md").read_text(encoding="utf-8")
    html = (out / "index.html").read_text(encoding="utf-8")
    assert any("skipped an unreadable result line" in m for m in msgs)
    assert any("wmf on ml-20m (test) has no value for recall@50" in m for m in msgs)
    assert any("per-user arrays of slim" in m and "missing" in m for m in msgs)
    assert any("per-user arrays of multdae" in m and "could not be read" in m for m in msgs)
    assert any("without dataset" in m for m in msgs)
    assert "## Warnings" in md and 'id="warnings"' in html
    wmf_line = next(line for line in md.splitlines() if line.startswith("| wmf ("))
    assert "| - |" in wmf_line  # the missing metric shown as a dash
    assert "| slim | all | not paired: no per-user arrays for slim |" in md
    assert "| multdae | all | not paired: no per-user arrays for multdae |" in md
    assert (out / "tables.tex").read_text().count(r"\begin{table}") == 4


@pytest.mark.parametrize("kind", ["missing", "empty", "blank"])
def test_no_results_gives_clear_message(tmp_path, kind):
    results = tmp_path / "r"
    if kind != "missing":
        results.mkdir()
    if kind == "blank":
        (results / "results.jsonl").write_text("\n")
    index, msgs = _build(tmp_path, results)
    assert msgs, "expected a warning"
    assert any("python -m benchmark run" in m or "no readable result rows" in m for m in msgs)
    for name in ("tables.md", "tables.tex", "index.html"):
        assert (index.parent / name).exists()
    assert "No results to report." in (index.parent / "tables.md").read_text()


def test_superseded_rows_are_counted(tmp_path):
    store = ResultStore(tmp_path / "r")
    rng = np.random.default_rng(4)
    users, fold = np.arange(30), np.arange(30) % 5 + 5
    add_row(store, model="multvae", part="test", arrays=_per_user(rng, 0.2, users, fold), seed=0)
    add_row(store, model="multvae", part="test", arrays=_per_user(rng, 0.5, users, fold), seed=1)
    data = load_results(tmp_path / "r")
    assert len(data.rows) == 1 and data.rows[0]["seed"] == 1 and len(data.superseded) == 1
    index, _ = _build(tmp_path, tmp_path / "r")
    md = (index.parent / "tables.md").read_text()
    assert "1 older rows were superseded" in md


def test_cli_report(tmp_path, capsys):
    from benchmark.cli import main

    results = make_results(tmp_path / "r")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(["report", "--results-dir", str(results), "--out", str(tmp_path / "o")]) == 0
    assert (tmp_path / "o" / "index.html").exists()
    assert "index.html" in capsys.readouterr().out


def test_published_reference_data():
    from benchmark.reference import canonical_dataset, load_published, published_for, source_label

    ref = load_published()
    assert set(ref["sources"]) >= {e["source"] for e in ref["entries"]}
    vae = [e for e in published_for("ml-20m") if e["model"] == "multvae" and e["source"] == "liang2018"]
    assert [(e["recall@20"], e["recall@50"], e["ndcg@100"]) for e in vae] == [(0.395, 0.537, 0.426)]
    assert source_label(vae[0]) == "Liang et al. 2018 [V]"
    assert canonical_dataset("ml-20m-excerpt") is None and published_for("ml-100k") == []
    ease_msd = next(e for e in published_for("msd") if e["model"] == "ease")
    assert ease_msd["ndcg@100"] == 0.389 and ease_msd["params"] == {"lambda": 200}


def test_tuning_figures_come_from_the_row_alone(tmp_path):
    """A tuned row carries its trial history: the report draws from it and opens no study
    (an optuna.db beside the rows is never read)."""
    results = tmp_path / "r"
    results.mkdir()
    (results / "optuna.db").write_bytes(b"not a database: the report must not open it")
    history = [{"number": i, "value": 0.3 + 0.01 * i * (5 - i), "state": "COMPLETE",
                "params": {"dropout": 0.1 * i, "hidden": 50 + 60 * i}} for i in range(6)]
    store = ResultStore(results)
    rng = np.random.default_rng(5)
    users, fold = np.arange(30), np.arange(30) % 6 + 5
    summary = {"study": "ml-100k-multdae-abc", "complete": 6, "pruned": 0, "failed": 0, "seconds": 3.0,
               "best_value": 0.36, "best_params": {"dropout": 0.2, "hidden": 170}, "history": history}
    for model in ("multvae", "multdae"):
        add_row(store, model=model, part="test", arrays=_per_user(rng, 0.3, users, fold), dataset="ml-100k",
                tuning=summary if model == "multdae" else None)
    index, msgs = _build(tmp_path, results)
    manifest = json.loads((index.parent / "report.json").read_text())
    assert "tuning-ml-100k-multdae" in [f["key"] for f in manifest["figures"]]
    md = (index.parent / "tables.md").read_text()
    assert "| ml-100k | multdae | 6 / 0 / 0 | 3.00 | 0.3600 |" in md
    assert msgs == []


def test_odd_field_types_do_not_crash(tmp_path):
    """Rows written by other tools or older versions: wrong types are shown as '-', not fatal."""
    store = ResultStore(tmp_path / "r")
    rng = np.random.default_rng(6)
    users, fold = np.arange(20), np.arange(20) % 4 + 5
    add_row(store, model="multvae", part="test", arrays=_per_user(rng, 0.3, users, fold))
    store.append({
        "id": "odd", "dataset": "ml-20m", "model": "odd", "part": "test", "metrics": {"recall@20": "high", "ndcg@100": None},
        "sem": "n/a", "n_users": "many", "fit_seconds": "slow", "extra": {"history": ["x", {"epoch": "1"}], "beta_curve": 3},
        "tuning": {"history": "none", "complete": "five"}, "params": ["not", "a", "dict"], "split_hash": 12345,
        "arrays": "arrays/../../nowhere.npz",
    })
    store.append({"id": "odd2", "dataset": "ml-20m", "model": "odd2", "part": "other", "metrics": {}})
    index, msgs = _build(tmp_path, tmp_path / "r")
    md = (index.parent / "tables.md").read_text()
    assert "| odd [split 12345] (tuned) | - | - | - |" in md
    assert any("neither 'valid' nor 'test'" in m for m in msgs)
