"""No stale results: what changes a number changes the run key and the study name.

A run is skipped as "already done" only when its run key is in ``results.jsonl``; the key
hashes the dataset and split, the model, its parameters after overrides, the effective
epoch cap, the seed, the suite's version and the source of the model (its file and its
base classes' files, plugins included).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from benchmark import registry, sources
from benchmark.runner import RunConfig, epoch_budget, run

REPO = Path(__file__).resolve().parents[1]

PLUGIN = '''
import numpy as np

from benchmark.model import Recommender
from benchmark.registry import register


@register("stale-probe")
class StaleProbe(Recommender):
    """Test model: item popularity plus co-occurrence with the fold-in items."""

    def __init__(self, weight=1.0):
        self.weight = weight

    def fit(self, train, valid=None, *, options=None):
        self.pop_ = np.asarray(train.sum(axis=0), dtype=np.float32).ravel()
        self.co_ = (train.T @ train).toarray().astype(np.float32)
        return self

    def score(self, fold_in):
        return (self.pop_ + self.weight * (fold_in @ self.co_)).astype(np.float32)  # SCORE
'''


def _clicks(path: Path) -> Path:
    """A small file of planted taste groups (300 users, 60 items, 3 groups)."""
    rng = np.random.default_rng(3)
    rows = []
    for u in range(300):
        g = u % 3
        for i in rng.choice(np.arange(g * 20, g * 20 + 20), size=rng.integers(6, 12), replace=False):
            rows.append((f"u{u}", f"i{i}"))
        rows.append((f"u{u}", f"i{rng.integers(0, 60)}"))
    pd.DataFrame(rows, columns=["user", "item"]).drop_duplicates().to_csv(path, index=False)
    return path


def _cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, BENCHMARK_MODELS_DIR=str(tmp_path / "plugins"), PYTHONPATH=str(REPO))
    p = subprocess.run(
        [sys.executable, "-m", "benchmark", *args], cwd=tmp_path, env=env,
        capture_output=True, text=True, timeout=300,
    )
    assert p.returncode == 0, p.stderr
    return p


def _rows(results: Path) -> list[dict]:
    return [json.loads(x) for x in (results / "results.jsonl").read_text().splitlines()]


def test_editing_a_plugins_scoring_line_refits_it(tmp_path):
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    plugin = plugins / "stale_probe.py"
    plugin.write_text(PLUGIN)
    data = _clicks(tmp_path / "clicks.csv")
    args = ("run", "--models", "stale-probe", "--dataset", f"file:{data}", "--heldout-users", "50",
            "--data-dir", str(tmp_path / "d"), "--results-dir", str(tmp_path / "r"),
            "--no-report", "--no-progress")
    _cli(tmp_path, *args)
    first = _rows(tmp_path / "r")
    assert len(first) == 2
    assert all(r["source_hash"] == first[0]["source_hash"] for r in first)
    assert "git_dirty" in first[0] and "suite_version" in first[0]

    again = _cli(tmp_path, *args)  # nothing changed: skipped
    assert "already done" in again.stderr and len(_rows(tmp_path / "r")) == 2

    # edit the scoring line (popularity now counts negatively): the same command refits
    plugin.write_text(PLUGIN.replace("return (self.pop_ +", "return (-self.pop_ +"))
    edited = _cli(tmp_path, *args)
    assert "already done" not in edited.stderr
    rows = _rows(tmp_path / "r")
    assert len(rows) == 4
    assert rows[2]["source_hash"] != rows[0]["source_hash"]
    assert rows[2]["run_key"] != rows[0]["run_key"]
    new_test = next(r for r in rows[2:] if r["part"] == "test")
    old_test = next(r for r in rows[:2] if r["part"] == "test")
    assert new_test["metrics"]["ndcg@100"] != old_test["metrics"]["ndcg@100"]

    # an override is part of the key too (the same value as the default is not)
    _cli(tmp_path, *args, "--param", "stale-probe.weight=1.0")
    assert len(_rows(tmp_path / "r")) == 4
    _cli(tmp_path, *args, "--param", "stale-probe.weight=0.5")
    rows = _rows(tmp_path / "r")
    assert len(rows) == 6 and rows[-1]["params"]["weight"] == 0.5
    assert rows[-1]["overrides"] == {"weight": 0.5}


def test_epoch_cap_is_in_the_key_only_where_it_cuts(planted_split, tmp_path):
    common = dict(datasets=["planted"], results_dir=str(tmp_path), progress=False, report=False)
    rows, _ = run(RunConfig(models="popularity", epochs=None, **common), planted_split)
    rows2, _ = run(RunConfig(models="popularity", epochs=3, **common), planted_split)
    assert rows2[0]["run_key"] == rows[0]["run_key"]  # popularity has no epochs: same result
    assert rows2[0]["epochs"] is None

    dae = registry.get("multdae")
    assert epoch_budget(dae, dae.default_params(), None) == {
        "param": "epochs", "model": 200, "cap": None, "effective": 200, "capped": False}
    assert epoch_budget(dae, dae.default_params(), 3)["capped"] is True
    assert epoch_budget(dae, dae.default_params(), 500)["effective"] == 200
    wmf = registry.get("wmf")
    assert epoch_budget(wmf, wmf.default_params(), 2) == {
        "param": "iterations", "model": 15, "cap": 2, "effective": 2, "capped": True}

    capped = dict(common, models="multdae", params={"multdae": {"batch_size": 100}})
    r3, f3 = run(RunConfig(epochs=2, **capped), planted_split)
    r4, f4 = run(RunConfig(epochs=3, **capped), planted_split)
    assert not f3 and not f4
    assert r3[0]["run_key"] != r4[0]["run_key"]
    assert r3[0]["config_key"] != r4[0]["config_key"]
    assert r3[1]["epochs"] == {"param": "epochs", "model": 200, "cap": 2, "effective": 2, "capped": True}
    assert len(r3[1]["extra"]["history"]) == 2


def test_seeds_give_one_row_pair_each_with_one_config_key(planted_split, tmp_path):
    cfg = RunConfig(models="popularity", datasets=["planted"], results_dir=str(tmp_path),
                    seeds=(0, 1, 2), progress=False, report=False)
    rows, failures = run(cfg, planted_split)
    assert not failures
    assert [r["seed"] for r in rows if r["part"] == "test"] == [0, 1, 2]
    assert len({r["config_key"] for r in rows}) == 1
    assert len({r["run_key"] for r in rows}) == 3
    # a rerun with one more seed fits only the new one
    rows2, _ = run(RunConfig(**{**cfg.__dict__, "seeds": (0, 1, 2, 3)}), planted_split)
    lines = (tmp_path / "results.jsonl").read_text().splitlines()
    assert len(lines) == 8 and len(rows2) == 8


def test_a_models_source_includes_the_suite_code_its_module_imports():
    """Editing the network in vae_parts.py or a likelihood in torch_parts.py refits Mult-VAE."""
    import os

    from benchmark import registry

    files = {os.path.basename(f) for f in sources.model_source_files(registry.get("multvae"))}
    assert {"vae.py", "vae_parts.py", "torch_parts.py", "model.py", "training.py", "evaluate.py"} <= files
    ease = {os.path.basename(f) for f in sources.model_source_files(registry.get("ease"))}
    assert "vae_parts.py" not in ease
