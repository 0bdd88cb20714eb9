"""The report never passes off a number as more than it is: capped runs labelled, seeds
aggregated, significance against any reference with direction, ranks across datasets.

Golden files are regenerated after an intended change with::

    UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/test_report_trust.py -q
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy import stats
from test_report import N_USERS, _build, _check_golden, _per_user, add_row

from benchmark.report import critical_difference, load_results, nemenyi_q, significance
from benchmark.report.ranks import rank_analysis, rank_values
from benchmark.results import ResultStore

USERS = np.arange(3, 3 + N_USERS)
FOLD = (np.arange(N_USERS) * 7919 % 97 + 4).astype(np.int64)


def _epochs(model_epochs: int, cap: int | None) -> dict:
    eff = model_epochs if cap is None else min(cap, model_epochs)
    return {"param": "epochs", "model": model_epochs, "cap": cap, "effective": eff,
            "capped": eff < model_epochs}


# --- Nemenyi and ranks, against Demšar (2006) ------------------------------------------------
# Demšar 2006, Table 5(a): critical values q_0.05 of the two-tailed Nemenyi test, k = 2..10
DEMSAR_Q05 = [1.960, 2.343, 2.569, 2.728, 2.850, 2.949, 3.031, 3.102, 3.164]


def test_nemenyi_q_equals_demsars_table_and_cd_for_5_models_10_datasets():
    for k, q in zip(range(2, 11), DEMSAR_Q05, strict=True):
        assert nemenyi_q(k) == pytest.approx(q, abs=1e-3)
    # Demšar's worked example (section 3.2.4): k = 5 models, N = 10 datasets -> CD = 1.93
    assert critical_difference(5, 10) == pytest.approx(1.93, abs=0.01)
    with pytest.raises(ValueError):
        nemenyi_q(1)


def test_ranks_by_hand():
    # 3 datasets x 3 models (a, b, c):
    #   d1: a 0.40, b 0.30, c 0.20 -> ranks 1, 2, 3
    #   d2: a 0.35, b 0.35, c 0.10 -> ranks 1.5, 1.5, 3 (tie averaged)
    #   d3: a 0.20, b 0.25, c 0.30 -> ranks 3, 2, 1
    v = np.array([[0.40, 0.30, 0.20], [0.35, 0.35, 0.10], [0.20, 0.25, 0.30]])
    r = rank_values(v)
    np.testing.assert_array_equal(r, [[1, 2, 3], [1.5, 1.5, 3], [3, 2, 1]])
    np.testing.assert_allclose(r.mean(axis=0), [5.5 / 3, 5.5 / 3, 7 / 3])


def _three_datasets(tmp: Path) -> Path:
    store = ResultStore(tmp)
    rng = np.random.default_rng(5)
    levels = {  # the dataset order of ranks: ease best twice, multvae once
        "ml-20m": {"multvae": 0.42, "ease": 0.43, "wmf": 0.38, "popularity": 0.19},
        "netflix": {"multvae": 0.38, "ease": 0.39, "wmf": 0.35, "popularity": 0.16},
        "msd": {"multvae": 0.31, "ease": 0.30, "wmf": 0.26, "popularity": 0.06},
    }
    n = 0
    for d, by_model in levels.items():
        for model, level in by_model.items():
            for part in ("valid", "test"):
                add_row(store, model=model, part=part, dataset=d, n_line=n,
                        arrays=_per_user(rng, level, USERS, FOLD))
                n += 1
    add_row(store, model="slim", part="test", dataset="ml-20m", n_line=n,
            arrays=_per_user(rng, 0.40, USERS, FOLD))  # not on every dataset: not ranked
    return tmp


def test_three_datasets_give_the_rank_table_and_the_cd_diagram(tmp_path):
    results = _three_datasets(tmp_path / "r")
    data = load_results(results)
    ranks = rank_analysis(data)
    assert ranks is not None and ranks.excluded == ["slim"]
    nd = next(r for r in ranks.results if r.metric == "ndcg@100")
    assert nd.datasets == ["ml-20m", "netflix", "msd"]
    assert nd.models == ["ease", "multvae", "popularity", "wmf"]
    # the ranks follow the metric values of the rows, dataset by dataset
    for i, d in enumerate(nd.datasets):
        vals = {r["model"]: r["metrics"]["ndcg@100"] for r in data.part_rows(d) if r["model"] in nd.models}
        order = sorted(nd.models, key=lambda m: -vals[m])
        assert [nd.ranks[i][nd.models.index(m)] for m in order] == [1, 2, 3, 4]
    chi = stats.friedmanchisquare(*nd.values.T)
    assert nd.friedman_stat == pytest.approx(chi.statistic) and nd.friedman_p == pytest.approx(chi.pvalue)
    assert nd.cd == pytest.approx(critical_difference(4, 3))
    # popularity's average rank is 4: further than CD from the best only if CD allows
    cliques = nd.cliques()
    assert all(len(c) >= 2 for c in cliques)
    index, _ = _build(tmp_path, results)
    md = (index.parent / "tables.md").read_text()
    assert "### Average rank across datasets" in md and "Nemenyi critical difference" in md
    assert "Not ranked (no test row on every dataset): slim." in md
    manifest = json.loads((index.parent / "report.json").read_text())
    cd = [f for f in manifest["figures"] if f["key"] == "cd-ndcg-100"]
    assert cd and (index.parent / cd[0]["png"]).stat().st_size > 1000


def test_two_datasets_give_no_rank_table(tmp_path):
    store = ResultStore(tmp_path / "r")
    rng = np.random.default_rng(1)
    for d in ("ml-20m", "msd"):
        for m in ("multvae", "ease", "popularity"):
            add_row(store, model=m, part="test", dataset=d, arrays=_per_user(rng, 0.3, USERS, FOLD))
    assert rank_analysis(load_results(tmp_path / "r")) is None
    index, _ = _build(tmp_path, tmp_path / "r")
    assert "Average rank" not in (index.parent / "tables.md").read_text()


# --- capped runs -----------------------------------------------------------------------------
def make_capped(directory: Path) -> Path:
    """multvae fully trained (200 epochs) and capped at 5 epochs, plus ease, on one split."""
    store = ResultStore(directory)
    rng = np.random.default_rng(11)
    n = 0
    for tag, level, cap in (("", 0.42, None), ("-capped", 0.33, 5)):
        for part in ("valid", "test"):
            add_row(store, model="multvae", part=part, tag=tag, n_line=n, params={"epochs": 200},
                    arrays=_per_user(rng, level, USERS, FOLD),
                    more={"epochs": _epochs(200, cap), "epochs_cap": cap, "config_key": f"mv{tag}",
                          "run_key": f"mv{tag}-0"})
            n += 1
    for part in ("valid", "test"):
        add_row(store, model="ease", part=part, n_line=n, params={"l2": 500.0},
                arrays=_per_user(rng, 0.41, USERS, FOLD),
                more={"epochs": None, "epochs_cap": 5, "config_key": "ease", "run_key": "ease-0"})
        n += 1
    return directory


def test_capped_and_full_rows_of_one_model_are_both_shown_and_the_capped_one_labelled(tmp_path):
    results = make_capped(tmp_path / "r")
    index, _ = _build(tmp_path, results)
    md = (index.parent / "tables.md").read_text(encoding="utf-8")
    _check_golden(md, "report-capped.md")
    table2 = md.split("### Table 2: ml-20m")[1].split("###")[0]
    assert "| multvae (defaults, reference) |" in table2  # the full run, the default reference
    assert "| multvae [capped at 5 epochs] (defaults) |" in table2
    assert "CAPPED: multvae [capped at 5 epochs] had fewer epochs" in table2
    assert "ease [capped" not in md  # EASE has no epochs: --epochs does not cut it
    params = md.split("### Parameters")[1]
    assert '"epochs": "5 (capped by --epochs; model default 200)"' in params
    assert '"epochs": 200' in params
    # the capped run is compared with the full run of the same model, and is worse
    sig = significance(load_results(results))
    capped = [c for c in sig.comparisons if c.label == "multvae [capped at 5 epochs]"]
    assert len(capped) == 3 and all(c.paired and c.marks.startswith("\u25bc") for c in capped)


def test_rows_written_before_the_epochs_record_are_judged_from_epochs_cap(tmp_path):
    store = ResultStore(tmp_path / "r")
    rng = np.random.default_rng(2)
    add_row(store, model="multvae", part="test", params={"epochs": 200},
            arrays=_per_user(rng, 0.3, USERS, FOLD), more={"epochs_cap": 50})
    add_row(store, model="ease", part="test", params={"l2": 1.0},
            arrays=_per_user(rng, 0.3, USERS, FOLD), more={"epochs_cap": 50})
    index, _ = _build(tmp_path, tmp_path / "r")
    md = (index.parent / "tables.md").read_text(encoding="utf-8")
    assert "multvae [capped at 50 epochs]" in md and "ease [capped" not in md


# --- several seeds ---------------------------------------------------------------------------
SEED_LEVELS = {"multvae": 0.42, "multdae": 0.40, "ease": 0.415}


def make_seeds(directory: Path) -> Path:
    """multvae, multdae, ease x seeds 0, 1, 2 on one split, plus a superseded older config."""
    store = ResultStore(directory)
    rng = np.random.default_rng(2018)
    n = 0
    # an older configuration of multvae (another config_key): superseded, never averaged in
    add_row(store, model="multvae", part="test", seed=0, tag="-old", n_line=n,
            arrays=_per_user(rng, 0.2, USERS, FOLD), more={"config_key": "mv-old"})
    n += 1
    for seed in (0, 1, 2):
        for model, level in SEED_LEVELS.items():
            for part in ("valid", "test"):
                add_row(store, model=model, part=part, seed=seed, n_line=n,
                        arrays=_per_user(rng, level + 0.004 * seed, USERS, FOLD),
                        more={"config_key": f"{model}-cfg", "run_key": f"{model}-cfg-{seed}"})
                n += 1
    return directory


def test_seeds_are_averaged_with_se_over_users_and_sd_over_seeds(tmp_path):
    results = make_seeds(tmp_path / "r")
    data = load_results(results)
    test_rows = {r["model"]: r for r in data.part_rows("ml-20m")}
    assert set(test_rows) == set(SEED_LEVELS)
    assert len(data.superseded) == 1 and data.superseded[0]["config_key"] == "mv-old"
    for model, row in test_rows.items():
        assert row["seeds"] == [0, 1, 2] and row["n_seeds"] == 3
        per_seed = [np.load(results / "arrays" / f"ml-20m-{model}-a1b2-s{s}-test.npz") for s in (0, 1, 2)]
        for m in ("recall@20", "recall@50", "ndcg@100"):
            means = [a[m].mean() for a in per_seed]
            assert row["metrics"][m] == pytest.approx(np.mean(means))
            assert row["seed_sd"][m] == pytest.approx(np.std(means, ddof=1))
            user_mean = np.mean([a[m] for a in per_seed], axis=0)
            assert row["sem"][m] == pytest.approx(user_mean.std(ddof=1) / np.sqrt(N_USERS))
    # significance pairs each user's mean over the seeds
    sig = significance(data)
    c = next(c for c in sig.comparisons if c.model == "ease" and c.metric == "ndcg@100")
    mean_of = {
        model: np.mean([np.load(results / "arrays" / f"ml-20m-{model}-a1b2-s{s}-test.npz")["ndcg@100"]
                        for s in (0, 1, 2)], axis=0)
        for model in ("ease", "multvae")
    }
    t = stats.ttest_rel(mean_of["ease"], mean_of["multvae"])
    assert c.paired and c.result.n == N_USERS
    assert c.result.t_p == pytest.approx(t.pvalue)
    index, _ = _build(tmp_path, results)
    md = (index.parent / "tables.md").read_text(encoding="utf-8")
    _check_golden(md, "report-seeds.md")
    assert "multvae (3 seeds, defaults, reference)" in md
    assert "sd over seeds" not in md or "sd:" in md
    runs = md.split("### Runs (provenance)")[1].split("###")[0]
    assert runs.count("| 0, 1, 2 |") == 3
    env = md.split("### Environment")[1]
    assert "| Model seeds | 0, 1, 2 |" in env


# --- the reference model ---------------------------------------------------------------------
def _no_multvae(directory: Path) -> Path:
    store = ResultStore(directory)
    rng = np.random.default_rng(4)
    for n, (model, level) in enumerate({"ease": 0.41, "wmf": 0.36, "slim": 0.45, "popularity": 0.19}.items()):
        for part in ("valid", "test"):
            add_row(store, model=model, part=part, n_line=n, arrays=_per_user(rng, level, USERS, FOLD))
    return directory


def test_reference_ease_marks_direction_both_ways(tmp_path):
    results = _no_multvae(tmp_path / "r")
    index, _ = _build(tmp_path, results, reference="ease")
    md = (index.parent / "tables.md").read_text(encoding="utf-8")
    assert "### Significance against ease: ml-20m" in md
    table2 = md.split("### Table 2: ml-20m")[1].split("###")[0]
    line = {ln.split(" |")[0][2:].split(" (")[0]: ln for ln in table2.splitlines() if ln.startswith("| ")}
    assert "| ease (defaults, reference) |" in line["ease"]
    assert "\u25b2\u2020" in line["slim"]  # significantly better than ease
    assert "\u25bc\u2020" in line["wmf"] and "\u25bc\u2020" in line["popularity"]
    assert "\u25b2" not in line["wmf"]


def test_default_reference_without_multvae_is_the_best_by_validation(tmp_path):
    results = _no_multvae(tmp_path / "r")
    data = load_results(results)
    sig = significance(data)
    best = max(data.part_rows("ml-20m", "valid"), key=lambda r: r["metrics"]["ndcg@100"])["model"]
    assert sig.reference["ml-20m"] == best == "slim"
    assert "best validation NDCG@100" in sig.how["ml-20m"]


def test_no_empty_significance_section(tmp_path):
    store = ResultStore(tmp_path / "r")
    rng = np.random.default_rng(3)
    add_row(store, model="multvae", part="test", arrays=_per_user(rng, 0.4, USERS, FOLD))
    add_row(store, model="ease", part="test", dataset="ml-100k", arrays=_per_user(rng, 0.4, USERS, FOLD))
    add_row(store, model="wmf", part="test", dataset="ml-100k", arrays=None)  # nothing to pair
    index, _ = _build(tmp_path, tmp_path / "r", reference="multvae")
    md = (index.parent / "tables.md").read_text(encoding="utf-8")
    assert "Significance against" not in md  # ml-20m: one model; ml-100k: no multvae
    assert "no multvae test row on ml-100k" in md
