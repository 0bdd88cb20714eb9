"""The plan before a run: every model named with its estimate; what cannot fit is refused
before anything is fitted."""

from __future__ import annotations

import json

from test_bad_input import _clicks, _run_args, cli

from benchmark import registry
from benchmark.model import FitOptions
from benchmark.plan import Estimate, format_plan, make_plan


def test_plan_names_every_model_with_an_estimate(tmp_path):
    data = _clicks(tmp_path / "c.csv")
    p = cli(*_run_args(tmp_path, data, "--models", "all", "--plan"), cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    plan = [ln for ln in p.stderr.splitlines() if ln.startswith(("plan:", "      "))]
    named = {ln.split()[1] if ln.startswith("plan:") else ln.split()[0] for ln in plan[1:]}
    assert named == set(registry.available()) | {"itemknn"} - {"model"}
    for line in plan[1:]:
        if line.split()[0] in ("ease", "multvae", "wmf", "slim", "lightfm"):
            assert " s " in line or " min " in line, line  # a time
            assert "iB" in line, line  # a memory estimate
    assert not (tmp_path / "r").exists()  # --plan fits nothing


def test_a_model_over_the_memory_limit_is_refused_before_fitting(tmp_path):
    data = _clicks(tmp_path / "c.csv")
    env = {"BENCHMARK_MEMORY_LIMIT": "1K"}
    p = cli(*_run_args(tmp_path, data, "--models", "popularity,wmf", "--no-report"), cwd=tmp_path, env=env)
    assert p.returncode == 1
    assert "REFUSED: needs about" in p.stderr and "1.0 KiB of host memory" in p.stderr
    assert "[wmf] not run: needs about" in p.stderr
    rows = [json.loads(x) for x in (tmp_path / "r" / "results.jsonl").read_text().splitlines()]
    assert {r["model"] for r in rows} == {"popularity"}


def test_a_model_over_the_time_budget_is_refused(planted_split):
    rows = make_plan(["ease", "multdae", "popularity"], planted_split,
                     {"multdae": {"batch_size": 100}}, FitOptions(device="cpu", progress=False),
                     time_budget=1e-9)
    by = {r.model: r for r in rows}
    assert by["ease"].problem and "over --time-budget" in by["ease"].problem
    assert by["multdae"].problem and by["multdae"].estimate.seconds > 0
    assert by["popularity"].problem is None and by["popularity"].estimate is None
    text = format_plan(rows)
    assert "REFUSED" in text and "no estimate" in text


def test_estimates_scale_with_the_epochs(planted_split):
    cls = registry.get("multdae")
    p = {**cls.default_params(), "batch_size": 100}
    few = cls.estimate_cost(planted_split, p, FitOptions(device="cpu", epochs=2, progress=False))
    many = cls.estimate_cost(planted_split, p, FitOptions(device="cpu", epochs=20, progress=False))
    assert isinstance(few, Estimate) and few.peak_bytes > 0 and few.seconds > 0
    assert few.detail.startswith("2 epochs x 4 updates") and many.detail.startswith("20 epochs x 4 updates")
    auto = registry.get("multvae").estimate_cost(
        planted_split, {**registry.get("multvae").default_params(), "anneal_cap": "auto"},
        FitOptions(device="cpu", epochs=3, progress=False))
    assert auto.detail.startswith("6 epochs")  # the beta search is a second training
