"""models/README.md's plugins are real: the iterative example (a linear autoencoder through
``IterativeRecommender``) copied into a fresh plugin folder runs, tunes, is reported and
passes the importable conformance suite; the closed-form example passes it too."""

from __future__ import annotations

import json
import re

import pytest
from conftest import REPO
from test_cli import cli


def _block(after: str) -> str:
    text = (REPO / "models" / "README.md").read_text()
    section = text[text.index(after):]
    return re.search(r"```python\n(.*?)```", section, flags=re.S).group(1)


@pytest.fixture()
def plugin_dir(tmp_path):
    d = tmp_path / "plugins"
    d.mkdir()
    (d / "linear_ae.py").write_text(_block("### An iterative model"))
    (d / "mymodel.py").write_text(_block("### A closed-form model"))
    return d


def test_readme_plugins_pass_the_conformance_suite(plugin_dir):
    from benchmark import registry
    from benchmark.testing import check_model

    namespace: dict = {}
    try:
        for f in ("linear_ae.py", "mymodel.py"):
            exec(compile((plugin_dir / f).read_text(), str(plugin_dir / f), "exec"), namespace)
        assert check_model("linear-ae")["ndcg@100"] > 0
        assert check_model("mymodel")["ndcg@100"] > 0
    finally:
        registry._REGISTRY.pop("linear-ae", None)
        registry._REGISTRY.pop("mymodel", None)


@pytest.mark.extended
def test_readme_iterative_plugin_runs_tunes_and_is_reported(plugin_dir, tmp_path):
    common = ("--dataset", "synthetic", "--data-dir", str(tmp_path / "d"), "--results-dir",
              str(tmp_path / "r"), "--models-dir", str(plugin_dir), "--no-progress")
    models = cli("models", "--models-dir", str(plugin_dir), cwd=tmp_path).stdout
    assert "linear-ae" in models and "[iterative]" in models.split("linear-ae")[1].splitlines()[0]
    cli("tune", "--models", "linear-ae", *common, "--trials", "2", "--epochs", "2", cwd=tmp_path)
    cli("run", "--models", "linear-ae,popularity", *common, "--epochs", "3",
        "--report-dir", str(tmp_path / "rep"), cwd=tmp_path)
    rows = [json.loads(x) for x in (tmp_path / "r" / "results.jsonl").read_text().splitlines()]
    ae = [r for r in rows if r["model"] == "linear-ae" and r["part"] == "test"]
    assert len(ae) == 1
    history = ae[0]["extra"]["history"]
    assert [h["epoch"] for h in history] == [1, 2, 3]  # --epochs capped the plugin's own 50
    assert all(h["ndcg@100"] is not None and h["loss"] > 0 for h in history)
    assert ae[0]["epochs"]["capped"] is True
    report = (tmp_path / "rep" / "tables.md").read_text()
    assert "Linear AE [capped at 3 epochs]" in report
