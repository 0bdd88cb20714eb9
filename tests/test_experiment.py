"""One experiment file (``run --config``), ``--dump-config``, ``--save-models`` and the
Python side of fitted models: ``recommend`` in the data's own ids, ``save``/``load``."""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_cli import cli

from benchmark.evaluate import evaluate

EXPERIMENT = """\
datasets = ["synthetic"]
seeds = [0, 1]
epochs = 2
results-dir = "{tmp}/r"
report_dir = "{tmp}/rep"
data_dir = "{tmp}/d"
no_progress = true

[models.popularity]
[models.ease]
l2 = 50.0
"""


def _write(tmp_path, text: str, name: str = "exp.toml"):
    p = tmp_path / name
    p.write_text(text.format(tmp=tmp_path))
    return p


def test_unknown_keys_models_and_params_are_named_with_the_nearest_valid_one(tmp_path):
    bad = _write(tmp_path, 'dataset = "synthetic"\nepoch = 3\ndevice = 3\n\n[models.eas]\n\n'
                           '[models.multvae]\nanneal_capp = 0.2\n')
    p = cli("run", "--config", str(bad), cwd=tmp_path, check=False)
    assert p.returncode == 2
    err = p.stderr
    assert "unknown key 'epoch'; did you mean 'epochs'?" in err
    assert "device = 3: expects text" in err
    assert "[models.eas]: no such model; did you mean 'ease'?" in err
    assert "multvae has no parameter 'anneal_capp'; did you mean 'anneal_cap'?" in err
    assert not (tmp_path / "results").exists()  # nothing was run
    broken = _write(tmp_path, "seeds = [0,\n", "broken.toml")
    p = cli("run", "--config", str(broken), cwd=tmp_path, check=False)
    assert p.returncode == 2 and "not valid TOML" in p.stderr


def test_command_line_overrides_the_file_and_the_dump_reads_back(tmp_path):
    exp = _write(tmp_path, EXPERIMENT)
    out = cli("run", "--config", str(exp), "--dump-config", "--seeds", "5", "--param", "ease.l2=7",
              cwd=tmp_path).stdout
    import tomllib

    conf = tomllib.loads(out)
    assert conf["seeds"] == [5]  # command line wins
    assert conf["epochs"] == 2 and conf["datasets"] == ["synthetic"]  # the file's
    assert conf["models"] == {"popularity": {}, "ease": {"l2": 7.0}}
    again = tmp_path / "dumped.toml"
    again.write_text(out)
    assert cli("run", "--config", str(again), "--dump-config", cwd=tmp_path).stdout == out


def test_run_from_the_file_saves_models_that_score_and_recommend_like_the_rows(tmp_path):
    exp = _write(tmp_path, EXPERIMENT)
    cli("run", "--config", str(exp), "--save-models", "--no-report", cwd=tmp_path)
    rows = [json.loads(x) for x in (tmp_path / "r" / "results.jsonl").read_text().splitlines()]
    assert {(r["model"], r["seed"]) for r in rows} == {(m, s) for m in ("popularity", "ease") for s in (0, 1)}
    for r in rows:
        assert r["experiment"]["models"]["ease"] == {"l2": 50.0}
        assert r["experiment"]["seeds"] == [0, 1]
    from benchmark import Recommender, load_split

    split = load_split("synthetic", data_dir=tmp_path / "d")
    row = next(r for r in rows if r["model"] == "ease" and r["part"] == "test" and r["seed"] == 1)
    assert row["params"]["l2"] == 50.0
    model = Recommender.load(tmp_path / "r" / row["model_path"])
    ndcg = evaluate(model.score, split.test).mean()["ndcg@100"]
    assert ndcg == pytest.approx(row["metrics"]["ndcg@100"], abs=1e-6)
    recs = model.recommend(split.test.fold_in[:3], k=5)
    assert set(recs.ids.ravel()) <= set(split.items.tolist())  # the data's own item ids
    for u in range(3):
        assert not set(recs.ids[u]) & set(split.items[split.test.fold_in[u].indices].tolist())
    # a rerun with --save-models finds everything done, models included
    p = cli("run", "--config", str(exp), "--save-models", "--no-report", cwd=tmp_path)
    assert "already done" in p.stderr
    assert len((tmp_path / "r" / "results.jsonl").read_text().splitlines()) == len(rows)


def test_recommend_pads_a_user_with_too_few_candidates(planted_split):
    from benchmark import get_model

    model = get_model("popularity")().fit(planted_split.train)
    n = planted_split.n_items
    import scipy.sparse as sp

    everything_but_two = sp.csr_matrix(np.r_[np.ones(n - 2), 0, 0].astype(np.float32)[None, :])
    with pytest.raises(ValueError, match="no recorded item ids"):
        model.recommend(everything_but_two, k=4)  # positions are never passed off as ids
    recs = model.recommend(everything_but_two, k=4, items=np.arange(n))
    assert recs.valid.tolist() == [[True, True, False, False]]
    assert sorted(recs.ids[0][:2].tolist()) == [n - 2, n - 1]
    assert recs.as_lists()[0] == [(int(i), float(s)) for i, s in zip(recs.ids[0][:2], recs.scores[0][:2])]
    with pytest.raises(ValueError, match="k must be a positive integer"):
        model.recommend(everything_but_two, k=0, items=np.arange(n))


def test_load_names_the_problem(tmp_path):
    from benchmark import Recommender, get_model

    with pytest.raises(FileNotFoundError, match="not a saved model"):
        Recommender.load(tmp_path)
    with pytest.raises(ValueError, match="not fitted"):
        get_model("ease")().save(tmp_path / "x")


def test_an_experiment_file_writes_to_folders_named_after_it(tmp_path):
    """No results_dir / report_dir in the file: results/<stem>/ and reports/<stem>/; the
    file or the command line may still name them."""
    exp = tmp_path / "mine.toml"
    exp.write_text('datasets = ["synthetic"]\n[models.popularity]\n')
    p = cli("run", "--config", str(exp), "--dump-config", cwd=tmp_path)
    assert 'results_dir = "results/mine"' in p.stdout and 'report_dir = "reports/mine"' in p.stdout
    p = cli("run", "--config", str(exp), "--results-dir", "elsewhere", "--dump-config", cwd=tmp_path)
    assert 'results_dir = "elsewhere"' in p.stdout and 'report_dir = "reports/mine"' in p.stdout
    exp.write_text('datasets = ["synthetic"]\nresults_dir = "r"\n[models.popularity]\n')
    assert 'results_dir = "r"' in cli("run", "--config", str(exp), "--dump-config", cwd=tmp_path).stdout
