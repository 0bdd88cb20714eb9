"""The documentation runs: docs/python-api.md executed block by block, and every experiment
file of docs/experiments.md checked (the ML-100K one run)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from conftest import REPO, place_raw, shared_dataset
from test_cli import cli


def _blocks(page: Path, lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", page.read_text(), flags=re.S)


def test_python_api_page_runs(tmp_path, monkeypatch):
    from benchmark import registry

    blocks = _blocks(REPO / "docs" / "python-api.md", "python")
    assert len(blocks) >= 6
    monkeypatch.chdir(tmp_path)
    namespace = {"DATA_DIR": tmp_path / "data", "OUT_DIR": tmp_path / "out"}
    (tmp_path / "out").mkdir()
    try:
        for i, code in enumerate(blocks):
            try:
                exec(compile(code, f"docs/python-api.md block {i + 1}", "exec"), namespace)
            except Exception as exc:  # name the block that failed
                raise AssertionError(f"docs/python-api.md block {i + 1} failed: {exc!r}\n{code}") from exc
    finally:
        registry._REGISTRY.pop("cooccurrence-demo", None)
    assert (tmp_path / "out" / "ndcg-by-activity.png").stat().st_size > 0
    assert (tmp_path / "out" / "ease-model" / "model.json").is_file()
    assert (tmp_path / "out" / "report" / "index.html").is_file()
    assert namespace["mine"]["ndcg@100"] > 0


def _experiment_files() -> dict[str, str]:
    page = (REPO / "docs" / "experiments.md").read_text()
    found = dict(re.findall(r"`experiments/(table2-[\w-]+\.toml)`\n\n```toml\n(.*?)```", page, flags=re.S))
    assert len(found) == 4, sorted(found)
    return found


@pytest.mark.parametrize("name", ["table2-ml-20m.toml", "table2-netflix.toml", "table2-msd.toml"])
def test_table2_files_are_the_documented_ones_and_valid(name, tmp_path):
    text = _experiment_files()[name]
    assert (REPO / "experiments" / name).read_text() == text, "docs and experiments/ differ"
    out = cli("run", "--config", str(REPO / "experiments" / name), "--dump-config", cwd=tmp_path).stdout
    assert "[models.multvae]" in out and "seeds = [0, 1, 2]" in out


def test_table2_ml100k_file_runs(tmp_path):
    shared_dataset("ml-100k")  # skips, with the reason, where the real data is absent
    name = "table2-ml-100k.toml"
    assert (REPO / "experiments" / name).read_text() == _experiment_files()[name]
    place_raw(tmp_path / "data", "ml-100k", "ml-100k")
    cli("run", "--config", str(REPO / "experiments" / name), "--data-dir", str(tmp_path / "data"),
        "--results-dir", str(tmp_path / "r"), "--report-dir", str(tmp_path / "rep"),
        "--seeds", "0", "--epochs", "3", "--no-progress", cwd=tmp_path)
    rows = [json.loads(x) for x in (tmp_path / "r" / "results.jsonl").read_text().splitlines()]
    assert {r["model"] for r in rows} == {"multvae", "multdae", "wmf", "slim", "popularity"}
    assert all(r["experiment"]["datasets"] == ["ml-100k"] for r in rows)
    assert (tmp_path / "rep" / "index.html").is_file()
