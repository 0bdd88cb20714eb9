"""The fitted model in use: ``recommend`` from a saved model folder, ids in, ids out."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from conftest import place_raw
from test_cli import cli

from benchmark.recommend import NoItemIdsError, UnknownItemsError
from benchmark.results import ResultStore, load_result_model


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """EASE fitted by ``run --save-models`` on ml-100k: (results folder, its test row)."""
    tmp = tmp_path_factory.mktemp("saved")
    data = tmp / "d"
    place_raw(data, "ml-100k", "ml-100k")
    cli("run", "--models", "ease", "--dataset", "ml-100k", "--data-dir", str(data),
        "--results-dir", str(tmp / "r"), "--save-models", "--no-report", cwd=tmp)
    row = next(r for r in ResultStore(tmp / "r").rows() if r["part"] == "test")
    return tmp / "r", row


def test_a_row_names_its_model_inside_the_results_folder_only(saved):
    results, row = saved
    model = load_result_model(results, row)
    assert model.name == "ease" and len(model.item_ids_) > 1000
    for bad in ("../../../../etc/passwd", "/etc/passwd"):
        with pytest.raises(ValueError, match="outside the results folder"):
            load_result_model(results, {**row, "model_path": bad})
    with pytest.raises(ValueError, match="--save-models"):
        load_result_model(results, {**row, "model_path": None})


def test_cli_ids_in_ids_out_equal_the_python_answer(saved, tmp_path):
    results, row = saved
    model = load_result_model(results, row)
    history = [str(x) for x in model.item_ids_[[0, 5, 17]]]
    p = cli("recommend", str(results / row["model_path"]), "--user", ",".join(history), "--k",
            "5", cwd=tmp_path)
    lines = p.stdout.strip().splitlines()
    assert lines[0] == "user,rank,item,score" and len(lines) == 6
    got = [line.split(",")[2] for line in lines[1:]]
    want = model.recommend_ids([history], 5).as_lists()[0]
    assert got == [str(i) for i, _ in want] and not set(got) & set(history)
    assert [float(line.split(",")[3]) for line in lines[1:]] == pytest.approx(
        [s for _, s in want], rel=1e-5)
    # several users from a file, as JSON into a file
    (tmp_path / "h.csv").write_text("user,item\nann," + "\nann,".join(history) + f"\nbob,{history[1]}\n")
    cli("recommend", str(results / row["model_path"]), "--input", str(tmp_path / "h.csv"),
        "--k", "3", "--format", "json", "--out", str(tmp_path / "o" / "recs.json"), cwd=tmp_path)
    recs = json.loads((tmp_path / "o" / "recs.json").read_text())
    assert [r["user"] for r in recs] == ["ann"] * 3 + ["bob"] * 3
    assert [r["item"] for r in recs[:3]] == [i for i, _ in want[:3]]


def test_unknown_ids_and_a_newer_model_are_refused_with_exit_2(saved, tmp_path):
    results, row = saved
    folder = str(results / row["model_path"])
    p = cli("recommend", folder, "--user", "1,no-such-item,also-not", cwd=tmp_path, check=False)
    assert p.returncode == 2 and "no-such-item" in p.stderr and "also-not" in p.stderr
    newer = tmp_path / "newer"
    shutil.copytree(folder, newer)
    manifest = json.loads((newer / "model.json").read_text())
    (newer / "model.json").write_text(json.dumps({**manifest, "format": 99}))
    p = cli("recommend", str(newer), "--user", "1", cwd=tmp_path, check=False)
    assert p.returncode == 2 and "newer" in p.stderr and "upgrade" in p.stderr
    p = cli("recommend", str(tmp_path), "--user", "1", cwd=tmp_path, check=False)
    assert p.returncode == 2 and "not a saved model" in p.stderr


def test_positions_are_never_passed_off_as_ids(planted_split):
    from benchmark import get_model

    model = get_model("popularity")().fit(planted_split.train)
    with pytest.raises(NoItemIdsError):
        model.recommend(planted_split.test.fold_in[:2], k=3)
    with pytest.raises(NoItemIdsError):
        model.recommend_ids([1, 2], k=3)
    model.item_ids_ = np.array([f"i{j}" for j in range(planted_split.n_items)])
    with pytest.raises(UnknownItemsError, match="i-1"):
        model.recommend_ids(["i0", "i-1"], k=3)
    assert [i for i, _ in model.recommend_ids(["i0"], k=2).as_lists()[0]][0] != "i0"
