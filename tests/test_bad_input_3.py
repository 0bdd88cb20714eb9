"""The third round of bad input (issue: no silent merge, no silent swap, nothing run before a
bad input is found): each case's exit code and message, and that nothing was written."""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_cli import cli

from benchmark import registry
from benchmark.model import Recommender
from benchmark.protocol import HeldOut


def _nothing_written(tmp_path):
    assert not (tmp_path / "r").exists() and not (tmp_path / "results").exists()


@pytest.mark.parametrize("value", ["garbage", "nan", "12Q", " "])
def test_a_memory_limit_that_is_not_a_size_is_exit_2(tmp_path, value):
    """Row 7: BENCHMARK_MEMORY_LIMIT garbage -> exit 2 naming what it accepts."""
    p = cli("run", "--models", "popularity", "--dataset", "synthetic", "--results-dir",
            str(tmp_path / "r"), "--data-dir", str(tmp_path / "d"), cwd=tmp_path,
            env={"BENCHMARK_MEMORY_LIMIT": value}, check=False)
    assert p.returncode == 2, p.stderr
    assert "BENCHMARK_MEMORY_LIMIT" in p.stderr and "16G" in p.stderr and "Traceback" not in p.stderr
    _nothing_written(tmp_path)


def test_config_naming_a_folder_is_one_line_exit_2(tmp_path):
    """Row 8."""
    p = cli("run", "--config", str(tmp_path), cwd=tmp_path, check=False)
    assert p.returncode == 2 and "a folder, not an experiment file" in p.stderr
    assert "Traceback" not in p.stderr


def test_dataset_and_datasets_in_one_file_is_refused(tmp_path):
    """Row 9: one or the other, never a silent winner."""
    exp = tmp_path / "e.toml"
    exp.write_text('dataset = "synthetic"\ndatasets = ["ml-100k"]\n[models.popularity]\n')
    p = cli("run", "--config", str(exp), cwd=tmp_path, check=False)
    assert p.returncode == 2 and "both dataset and datasets" in p.stderr
    _nothing_written(tmp_path)


def test_seed_given_a_list_suggests_seeds(tmp_path):
    """Row 20."""
    exp = tmp_path / "e.toml"
    exp.write_text('datasets = ["synthetic"]\nseed = [0]\n[models.popularity]\n')
    p = cli("run", "--config", str(exp), cwd=tmp_path, check=False)
    assert p.returncode == 2 and "did you mean seeds = [0]?" in p.stderr


def test_report_reference_without_rows_is_exit_2_and_run_warns(tmp_path):
    """Row 13: report --reference nosuch / a model with no row -> exit 2; run --reference
    wmf without wmf in --models warns before anything runs."""
    cli("run", "--models", "popularity", "--dataset", "synthetic", "--data-dir",
        str(tmp_path / "d"), "--results-dir", str(tmp_path / "r"), "--no-report", cwd=tmp_path)
    p = cli("report", "--results-dir", str(tmp_path / "r"), "--out", str(tmp_path / "o"),
            "--reference", "wmf", cwd=tmp_path, check=False)
    assert p.returncode == 2 and "--reference wmf" in p.stderr and "popularity" in p.stderr
    assert not (tmp_path / "o" / "index.html").exists()
    p = cli("run", "--models", "popularity", "--dataset", "synthetic", "--data-dir",
            str(tmp_path / "d"), "--results-dir", str(tmp_path / "r"), "--reference", "wmf",
            "--check", cwd=tmp_path)
    assert "--reference wmf is not among --models" in p.stderr


@pytest.mark.parametrize("name", ["", "all", "a,b", "new\nline", "../../x", "Upper"])
def test_a_model_name_outside_the_rule_is_refused(name):
    """Row 18: names match [a-z0-9][a-z0-9._-]* and are not reserved."""
    with pytest.raises(ValueError, match="not allowed|reserved"):
        @registry.register(name)
        class Bad(Recommender):
            pass
    assert name not in registry._REGISTRY


FAKE_EASE = '''
from benchmark.models.popularity import Popularity
from benchmark.registry import register


@register("ease"{extra})
class NotEase(Popularity):
    """Popularity under EASE's name."""
'''


def test_a_plugin_taking_a_built_in_name_is_refused_unless_it_says_replace(tmp_path):
    """Row 2: exit 2 naming both files; with replace=True the rows name the plugin's file
    and the report marks the row."""
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "fake.py").write_text(FAKE_EASE.format(extra=""))
    args = ["run", "--models", "ease", "--dataset", "synthetic", "--data-dir", str(tmp_path / "d"),
            "--results-dir", str(tmp_path / "r"), "--report-dir", str(tmp_path / "rep"),
            "--models-dir", str(plugins)]
    p = cli(*args, cwd=tmp_path, check=False)
    assert p.returncode == 2, p.stderr
    assert "registered twice" in p.stderr and "fake.py" in p.stderr and "models/ease.py" in p.stderr
    _nothing_written(tmp_path)
    (plugins / "fake.py").write_text(FAKE_EASE.format(extra=", replace=True"))
    cli(*args, cwd=tmp_path)
    rows = [json.loads(x) for x in (tmp_path / "r" / "results.jsonl").read_text().splitlines()]
    assert all(r["plugin_file"].endswith("fake.py") and r["replaces"].endswith("models/ease.py")
               for r in rows)
    assert "plugin replacing the built-in ease" in (tmp_path / "rep" / "tables.md").read_text()


def test_one_name_in_several_plugin_files_is_refused(tmp_path):
    """Row 19: one name, one class; both files named, nothing run."""
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    for i in range(4):
        (plugins / f"p{i}.py").write_text(FAKE_EASE.replace('"ease"', '"mine"').format(extra=""))
    p = cli("run", "--models", "mine", "--dataset", "synthetic", "--models-dir", str(plugins),
            "--results-dir", str(tmp_path / "r"), cwd=tmp_path, check=False)
    assert p.returncode == 2 and "p0.py" in p.stderr and "p1.py" in p.stderr
    _nothing_written(tmp_path)


def test_a_lambda_out_of_range_is_refused_before_any_fit(tmp_path):
    """Row 12: [models.ease] l2 = 1e308 -> exit 2 naming the range; nothing written."""
    exp = tmp_path / "e.toml"
    exp.write_text('datasets = ["synthetic"]\n[models.ease]\nl2 = 1e308\n[models.edlae]\nl2 = -5.0\n')
    p = cli("run", "--config", str(exp), cwd=tmp_path, check=False)
    assert p.returncode == 2 and "l2=1e+308" in p.stderr and "l2=-5.0" in p.stderr
    assert "(0, 1e+30]" in p.stderr
    _nothing_written(tmp_path)


def test_no_held_out_item_anywhere_is_exit_2_before_any_fit(tmp_path):
    """Row 3: every user has one item (--min-user-items 1): no held-out user can give an
    item to evaluation; exit 2 naming the counts and the fix, no row written."""
    lines = ["user,item"] + [f"u{u},i{(u * 7) % 30}" for u in range(400)]
    (tmp_path / "one.csv").write_text("\n".join(lines) + "\n")
    p = cli("run", "--models", "popularity", "--dataset", f"file:{tmp_path / 'one.csv'}",
            "--min-user-items", "1", "--min-item-users", "1", "--heldout-users", "50",
            "--data-dir", str(tmp_path / "d"), "--results-dir", str(tmp_path / "r"), cwd=tmp_path,
            check=False)
    assert p.returncode == 2, p.stderr
    assert "have held-out items" in p.stderr and "--min-user-items 5" in p.stderr
    assert not (tmp_path / "r" / "results.jsonl").exists()


def test_markdown_cells_hold_no_raw_html_and_no_line_break():
    """Row 17: a name with <script>, a newline or | stays one cell of text."""
    from benchmark.report.cells import Cell, Row, Table
    from benchmark.report.render import table_markdown

    t = Table(key="t", title="a\nb <i>", header=["name", "value"],
              rows=[Row([Cell("<script>alert(1)</script>"), Cell("x|y\nz")])])
    md = table_markdown(t)
    assert "<script>" not in md and "&lt;script&gt;" in md and "x\\|y z" in md
    assert md.splitlines()[0] == "### a b &lt;i&gt;"


def test_ids_07_and_7_stay_two_users_and_prepare_says_how_ids_were_read(tmp_path):
    """Row 1: "07" and "7" (and "007") are different ids: a column with one id that is not a
    canonical integer is read as text; plain integers stay integers."""
    from benchmark.data import load_split
    from benchmark.summary import format_split

    lines = ["user,item"]
    for k in range(1, 151):
        for j in range(12):
            lines += [f"{k},{(k + j) % 40}", f"0{k},{(k * 3 + j) % 40}"]
    (tmp_path / "odd.csv").write_text("\n".join(lines) + "\n")
    split = load_split(f"file:{tmp_path / 'odd.csv'}", data_dir=tmp_path / "d")
    assert split.stats()["users"] == 300 and split.stats()["interactions"] == 3600
    assert {"07", "7"} <= set(split.users["train"]) | set(split.users["valid"]) | set(split.users["test"])
    text = format_split(split)
    assert "users read as text, items as integers" in text and "'07' and '7' stay apart" in text
    plain = tmp_path / "plain.csv"
    plain.write_text("\n".join(ln for ln in lines if not ln.startswith("0")) + "\n")
    split = load_split(f"file:{plain}", data_dir=tmp_path / "d")
    assert split.users["train"].dtype.kind == "i" and "users read as integers" in format_split(split)


def test_every_dataset_is_resolved_before_the_first_fit(tmp_path):
    """Row 4: an unknown dataset, a missing file: path and a dataset with neither raw files
    nor a download source, all named at once, exit 2, nothing fitted or written (the first
    dataset, which is fine, is not fitted either)."""
    exp = tmp_path / "e.toml"
    exp.write_text('datasets = ["synthetic", "no-such-dataset", "file:missing.csv", "netflix"]\n'
                   f'data_dir = "{tmp_path / "d"}"\nresults_dir = "{tmp_path / "r"}"\n'
                   "[models.popularity]\n")
    p = cli("run", "--config", str(exp), cwd=tmp_path, check=False)
    assert p.returncode == 2, p.stderr
    for what in ("dataset no-such-dataset: unknown dataset", "dataset file:missing.csv: no such file",
                 "dataset netflix: no raw files"):
        assert what in p.stderr, p.stderr
    assert "Traceback" not in p.stderr
    _nothing_written(tmp_path)
    assert not (tmp_path / "d").exists()


def test_a_k_past_the_catalogue_is_the_catalogue_and_the_row_says_so(tmp_path):
    """Row 5: ndcg@1000000000 is evaluated at K = n_items (equal to ndcg@n_items, nothing
    allocated by K), the log and the row say so; a K that is not an integer is exit 2."""
    import scipy.sparse as sp

    from benchmark.evaluate import evaluate

    rng = np.random.default_rng(0)
    held = HeldOut(sp.csr_matrix((rng.random((30, 40)) < 0.2).astype(np.float32)),
                   sp.csr_matrix((rng.random((30, 40)) < 0.1).astype(np.float32)))
    scores = rng.random((30, 40)).astype(np.float32)
    ev = evaluate(lambda x: scores[: x.shape[0]], held, metrics=("ndcg@1000000000", "ndcg@40"),
                  batch_size=64)
    assert ev.mean()["ndcg@1000000000"] == ev.mean()["ndcg@40"]
    assert ev.extra["k_clipped"] == {"ndcg@1000000000": 40}
    p = cli("run", "--models", "popularity", "--dataset", "synthetic", "--metrics", "ndcg@1000000000",
            "--data-dir", str(tmp_path / "d"), "--results-dir", str(tmp_path / "r"), "--no-report",
            cwd=tmp_path)
    assert "ndcg@1000000000 evaluated at K = " in p.stderr and ", the catalogue" in p.stderr
    row = json.loads((tmp_path / "r" / "results.jsonl").read_text().splitlines()[0])
    k = row["k_clipped"]["ndcg@1000000000"]
    assert 0 < k < 10_000 and f"evaluated at K = {k:,}, the catalogue" in p.stderr
    from benchmark.evaluate import parse_metric  # what preflight refuses with exit 2

    for bad in ("ndcg@10^23", "ndcg@1e9", "ndcg@2.5"):
        with pytest.raises(ValueError, match="K >= 1"):
            parse_metric(bad)


def test_a_named_model_refused_for_memory_is_exit_1_and_ignore_plan_runs_it(tmp_path):
    """Row 6: a model named in --models and refused by the plan is an error (exit 1) with the
    estimate, the limit and the way to force it; --ignore-plan fits it; skipped from `all`,
    the line says how to include it and never 'ask for it by name' when naming would not do."""
    from benchmark.plan import skipped_line

    args = ("run", "--models", "ease,popularity", "--dataset", "synthetic", "--data-dir",
            str(tmp_path / "d"), "--results-dir", str(tmp_path / "r"), "--no-report")
    p = cli(*args, cwd=tmp_path, env={"BENCHMARK_MEMORY_LIMIT": "1M"}, check=False)
    assert p.returncode == 1, p.stderr
    line = next(ln for ln in p.stderr.splitlines() if ln.startswith("[ease] not run"))
    assert "19.1 MiB" in line and "1.0 MiB" in line and "--ignore-plan" in line
    assert "by name" not in p.stderr
    rows = [json.loads(x) for x in (tmp_path / "r" / "results.jsonl").read_text().splitlines()]
    assert {r["model"] for r in rows} == {"popularity"}  # the others went on
    # --ignore-plan fits what the plan refuses (here for time: a fit under a 1M memory cap
    # crawls through tiny blocks); the fit's own memory check then warns instead of raising
    p = cli(*args, "--time-budget", "0.0001", "--ignore-plan", cwd=tmp_path)
    rows = [json.loads(x) for x in (tmp_path / "r" / "results.jsonl").read_text().splitlines()]
    assert {r["model"] for r in rows} == {"popularity", "ease"}
    from benchmark.resources import IGNORE_PLAN_ENV, InsufficientMemoryError, check_memory

    with pytest.raises(InsufficientMemoryError):
        check_memory(10**6, "float32", "cpu", limit=2**20)
    with pytest.MonkeyPatch.context() as mp, pytest.warns(UserWarning, match="--ignore-plan"):
        mp.setenv(IGNORE_PLAN_ENV, "1")
        check_memory(10**6, "float32", "cpu", limit=2**20)
    stats = {"items": 10**6, "users": 10**6, "interactions": 10**8}
    assert "--ignore-plan" in skipped_line("ease", "too big", stats, False)


def test_models_dir_is_kept_in_the_dump_and_honoured_from_a_file(tmp_path):
    """Row 10: --models-dir survives --dump-config (as an absolute path) and that dump runs
    from another folder; models_dir in a file is read relative to the file's folder."""
    plugins = tmp_path / "exp" / "plugins"
    plugins.mkdir(parents=True)
    (plugins / "mine.py").write_text(FAKE_EASE.replace('"ease"', '"mine"').format(extra=""))
    dump = cli("run", "--models", "mine", "--dataset", "synthetic", "--models-dir", str(plugins),
               "--dump-config", cwd=tmp_path).stdout
    assert f'models_dir = "{plugins}"' in dump
    (tmp_path / "dump.toml").write_text(dump)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    p = cli("run", "--config", str(tmp_path / "dump.toml"), "--check", cwd=elsewhere,
            env={"BENCHMARK_MODELS_DIR": str(elsewhere)})
    assert "ok: 1 models" in p.stderr
    (tmp_path / "exp" / "e.toml").write_text('models_dir = "plugins"\ndatasets = ["synthetic"]\n'
                                             "[models.mine]\n")
    p = cli("run", "--config", str(tmp_path / "exp" / "e.toml"), "--check", cwd=elsewhere,
            env={"BENCHMARK_MODELS_DIR": str(elsewhere)})
    assert "ok: 1 models" in p.stderr
    (tmp_path / "exp" / "bad.toml").write_text('models_dir = "nowhere"\ndatasets = ["synthetic"]\n'
                                               "[models.mine]\n")
    p = cli("run", "--config", str(tmp_path / "exp" / "bad.toml"), cwd=elsewhere, check=False)
    assert p.returncode == 2 and "models_dir" in p.stderr and "no such folder" in p.stderr


def test_report_never_reads_arrays_outside_the_results_folder(tmp_path):
    """Row 11 (the report's side; load_result_model's is in test_recommend): a row whose
    arrays path is ../../x or absolute is not opened; the warning names the row."""
    from benchmark.report import load_results

    secret = tmp_path / "secret.npz"
    np.savez(secret, users=np.arange(3), **{"ndcg@100": np.ones(3)})
    results = tmp_path / "r" / "inner"
    results.mkdir(parents=True)
    rows = [{"id": f"x{i}", "dataset": "d", "model": "popularity", "part": "test", "seed": 0,
             "metrics": {"ndcg@100": 0.5}, "arrays": arrays}
            for i, arrays in enumerate(["../../secret.npz", str(secret)])]
    (results / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.warns(UserWarning):
        data = load_results(results)
        for row in rows:
            assert data.arrays(row) is None
    text = " ".join(data.notes.messages)
    assert "row x0" in text and "row x1" in text and text.count("outside the results folder") == 2


def test_a_resumed_study_never_replays_a_proposal(planted_split, tmp_path):
    """Row 14: a study resumed (same seed, one worker) draws apart from the first run: no
    parameter set of a continuous search space is proposed twice."""
    from benchmark.tuning import tune_model

    for trials in (4, 8):  # the first run stops at 4; the second resumes it to 8
        tune_model("ease", planted_split, trials=trials, results_dir=tmp_path, seed=0,
                   progress=False)
    import optuna

    (summary,) = optuna.get_all_study_summaries(f"sqlite:///{tmp_path / 'optuna.db'}")
    study = optuna.load_study(study_name=summary.study_name, storage=f"sqlite:///{tmp_path / 'optuna.db'}")
    values = [t.params["l2"] for t in study.get_trials() if t.params]
    assert len(study.get_trials()) == 8 and len(values) == 8
    assert len(set(values)) == 8, sorted(values)


def _damage(folder, how):
    m = folder / "model.json"
    doc = json.loads(m.read_text())
    if how == "arrays":
        data = (folder / "arrays.npz").read_bytes()
        (folder / "arrays.npz").write_bytes(data[: len(data) // 2])
    elif how == "tensors":
        (folder / "tensors.pt").write_bytes(b"PK\x03\x04 truncated")
    elif how == "json":
        m.write_text(m.read_text()[:40])
    elif how == "no-model":
        m.write_text(json.dumps({k: v for k, v in doc.items() if k != "model"}))
    elif how == "unknown-param":
        m.write_text(json.dumps({**doc, "params": {**doc["params"], "nosuch": 1}}))
    elif how == "l2":
        m.write_text(json.dumps({**doc, "params": {**doc["params"], "l2": -5}}))


@pytest.mark.parametrize("how,part,says", [
    ("arrays", "arrays.npz", "damaged"), ("tensors", "tensors.pt", "damaged"),
    ("json", "model.json", "not JSON"), ("no-model", "model.json", "no 'model'"),
    ("unknown-param", "model.json", "nosuch"), ("l2", "model.json", "l2")])
def test_a_damaged_saved_model_is_one_model_file_error(planted_split, tmp_path, how, part, says):
    """Row 15: one ModelFileError naming the folder and the damaged part; parameters are
    checked by the model's param_problems on load."""
    import shutil

    from benchmark.models.ease import EASE
    from benchmark.persist import ModelFileError

    saved = tmp_path / "ease"
    EASE().fit(planted_split.train).save(saved)
    Recommender.load(saved)  # intact: loads
    folder = tmp_path / how
    shutil.copytree(saved, folder)
    _damage(folder, how)
    with pytest.raises(ModelFileError) as err:
        Recommender.load(folder)
    assert str(folder) in str(err.value) and part in str(err.value) and says in str(err.value)


def test_recommend_breaks_ties_as_the_evaluator_and_names_a_wrong_width(planted_split):
    """Row 16: an empty fold-in row (all scores tied) is ordered as evaluate.topk_indices
    orders it; a fold-in of the wrong width, with the model's recorded ids, names the width."""
    import scipy.sparse as sp

    from benchmark.evaluate import topk_indices
    from benchmark.models.ease import EASE

    model = EASE().fit(planted_split.train)
    n = planted_split.n_items
    empty = sp.csr_matrix((1, n), dtype=np.float32)
    rec = model.recommend(empty, 7, items=np.arange(n))
    assert list(rec.ids[0]) == list(topk_indices(np.asarray(model.score(empty), np.float32), 7)[0])
    model.item_ids_ = np.arange(n) + 1000
    with pytest.raises(ValueError, match=f"fold_in has {n - 1:,} columns, but the model was fitted on {n:,} items"):
        model.recommend(sp.csr_matrix((1, n - 1), dtype=np.float32), 5)


def test_trial_0_is_exactly_the_defaults(planted_split, tmp_path):
    """Row 21: iALS's trial 0 fits regularization 0.003 (its search space calls it
    regularization_nu1), and the conformance kit's check fails a model that does not map
    its names; a default outside its distribution (iALS's 8,192 factors on MSD) no longer
    fails trial 0."""
    import optuna

    from benchmark.models.ials import IALS
    from benchmark.testing import check_defaults_trial
    from benchmark.tuning import enqueued_defaults, probe_space, tune_model

    tune_model("ials", planted_split, trials=1, results_dir=tmp_path, progress=False, epochs=2)
    (summary,) = optuna.get_all_study_summaries(f"sqlite:///{tmp_path / 'optuna.db'}")
    (trial,) = optuna.load_study(study_name=summary.study_name,
                                 storage=f"sqlite:///{tmp_path / 'optuna.db'}").get_trials()
    defaults = IALS.default_params(planted_split.meta["dataset"])
    assert trial.user_attrs["paper_defaults"] and trial.state.name == "COMPLETE"
    assert trial.user_attrs["params"]["regularization"] == defaults["regularization"] == 0.003
    assert trial.params["regularization_nu1"] == 0.003
    assert "factors" not in enqueued_defaults(IALS, "msd", probe_space(IALS))  # 8192: not a choice
    check_defaults_trial(IALS)

    class Unmapped(IALS):
        @classmethod
        def trial_params(cls, params):
            return dict(params)

    with pytest.raises(AssertionError, match="draws regularization="):
        check_defaults_trial(Unmapped)
