"""The plan before a run: every model named with its estimate; what cannot fit is refused
before anything is fitted."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.sparse as sp
from conftest import REPO
from test_bad_input import _clicks, _run_args, cli

from benchmark import registry
from benchmark.cost import DataShape, Estimate
from benchmark.model import FitOptions
from benchmark.models import ease as ease_mod
from benchmark.models.ease import EASE
from benchmark.plan import format_plan, make_plan

CPU = FitOptions(device="cpu", epochs=1, progress=False, threads=1)


def test_plan_names_every_model_with_an_estimate(tmp_path):
    data = _clicks(tmp_path / "c.csv")
    p = cli(*_run_args(tmp_path, data, "--models", "all", "--plan"), cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    plan = [ln for ln in p.stdout.splitlines() if ln.startswith(("plan:", "      "))]
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
    shape = DataShape.from_split(planted_split)
    few = cls.estimate_cost(shape, p, FitOptions(device="cpu", epochs=2, progress=False))
    many = cls.estimate_cost(shape, p, FitOptions(device="cpu", epochs=20, progress=False))
    assert isinstance(few, Estimate) and few.peak_bytes > 0 and few.seconds > 0
    assert few.detail.startswith("2 epochs x 4 updates") and many.detail.startswith("20 epochs x 4 updates")
    auto = registry.get("multvae").estimate_cost(
        shape, {**registry.get("multvae").default_params(), "anneal_cap": "auto"},
        FitOptions(device="cpu", epochs=3, progress=False))
    assert auto.detail.startswith("6 epochs")  # the beta search is a second training


# --- the data's shape ----------------------------------------------------------------------


def test_a_shape_from_a_split_gives_ease_the_splits_own_matrices(planted_split, monkeypatch):
    split = planted_split
    shape = DataShape.from_split(split)
    assert shape.train_matrix() is split.train and shape.valid_part() is split.valid
    assert (shape.dataset, shape.train_users, shape.items, shape.train_clicks) == (
        split.meta.get("dataset"), split.train.shape[0], split.n_items, split.train.nnz)
    assert (shape.valid_users, shape.test_users) == (split.valid.n_users, split.test.n_users)
    assert shape.valid_clicks == split.valid.fold_in.nnz + split.valid.holdout.nnz
    lens = np.diff(split.train.indptr)
    assert dict(shape.activity_quantiles)[0.5] == np.quantile(lens, 0.5) and shape.max_activity == lens.max()
    # EASE's estimate reads the very matrices it read from the split: the same columns sampled
    seen = []
    gram = ease_mod.gram_dense
    monkeypatch.setattr(ease_mod, "gram_dense", lambda x, *a, **k: seen.append(x) or gram(x, *a, **k))
    est = EASE.estimate_cost(shape, {"l2": 100.0, "dtype": "float32"}, CPU)
    n = split.n_items
    cols = np.sort(np.random.default_rng(0).choice(n, size=min(n, 2048), replace=False))
    expected = sp.csr_matrix(split.train[:, cols], dtype=np.float32)
    assert seen and all(x.shape == expected.shape and (x != expected).nnz == 0 for x in seen)
    assert est.peak_bytes == int(n * n * 4 * 1.25) + split.train.nnz * 4 * 3  # EASE's formula
    via_split = make_plan(["ease"], split, {}, CPU)[0].estimate
    assert via_split.peak_bytes == est.peak_bytes and via_split.detail == est.detail


def test_a_shape_without_data_plans_every_model_on_a_synthetic_matrix_of_its_shape(planted_split):
    shape = DataShape.from_split(planted_split).counts_only()
    assert not shape.has_data
    x = shape.train_matrix()
    assert x.shape == (shape.train_users, shape.items) and x.dtype == np.float32
    assert abs(x.nnz - shape.train_clicks) <= 0.1 * shape.train_clicks
    assert np.all(x.data == 1.0) and x.has_canonical_format
    assert shape.train_matrix() is x  # drawn once
    again = DataShape.from_split(planted_split).counts_only().train_matrix()
    assert (again != x).nnz == 0  # seeded: the same shape draws the same matrix
    valid = shape.valid_part()
    assert valid.n_users == shape.valid_users and valid.fold_in.multiply(valid.holdout).nnz == 0
    assert abs(valid.fold_in.nnz + valid.holdout.nnz - shape.valid_clicks) <= 0.1 * shape.valid_clicks
    assert shape.valid_part(max_users=7).n_users == 7 and shape.train_matrix(max_users=9).shape[0] == 9

    names = registry.available()
    small = {"multvae": {"batch_size": 100}, "multdae": {"batch_size": 100}, "recvae": {"batch_size": 100}}
    real = {r.model: r for r in make_plan(names, planted_split, small, CPU)}
    rows = {r.model: r for r in make_plan(names, shape, small, CPU)}
    assert set(rows) == set(real)
    estimated = [m for m, r in real.items() if r.estimate is not None]
    assert {"ease", "edlae", "slim", "wmf", "multvae"} <= set(estimated)
    for m in estimated:
        e = rows[m].estimate
        assert e is not None and not e.detail.startswith("no estimate"), (m, e)
        assert e.seconds is not None and e.seconds > 0 and e.peak_bytes is not None and e.peak_bytes > 0, m
    for m in set(real) - set(estimated):
        assert rows[m].estimate is None
    assert "no estimate" in format_plan(list(rows.values()))


def test_a_published_shape_fits_its_activity_quantiles():
    shape = DataShape("toy", train_users=3000, items=400, train_clicks=45_000, valid_users=300,
                      test_users=300, activity_quantiles=((0.1, 4.0), (0.5, 10.0), (0.9, 40.0)))
    # log quantiles on normal quantiles: slope (log 40 - log 4) / (2 x 1.2816) = 0.898
    assert shape.activity_sigma() == pytest.approx(0.898, abs=0.01)
    assert DataShape("toy", 10, 10, 20).activity_sigma() == 1.0  # no quantiles: the assumption
    x = shape.train_matrix()
    assert x.shape == (3000, 400) and abs(x.nnz - 45_000) <= 4500
    pop = np.sort(np.bincount(x.indices, minlength=400))[::-1]
    assert pop[0] > 5 * pop[200]  # Zipf-like: the head far above the middle
    with pytest.raises(ValueError, match="do not fit"):
        DataShape("toy", 10, 10, 101)



NO_NETWORK = '''
import socket

def _refuse(*args, **kwargs):
    raise RuntimeError("network access attempted")

socket.socket.connect = _refuse
socket.create_connection = _refuse
socket.getaddrinfo = _refuse
'''


def test_msd_is_planned_from_its_published_shape_before_any_download(tmp_path):
    """No data on disk, the network blocked: the plan comes from the paper's shape, on
    stdout, every model of the run named (skipped and refused ones with their reason),
    iALS refused with what would fit, and the totals; nothing downloaded or written."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(NO_NETWORK)
    env = {"PYTHONPATH": f"{site}:{REPO}", "BENCHMARK_MEMORY_LIMIT": "16G"}
    p = cli("run", "--models", "ease,edlae,popularity,ials", "--dataset", "msd", "--plan",
            "--data-dir", str(tmp_path / "data"), "--results-dir", str(tmp_path / "r"),
            "--epochs", "1", cwd=tmp_path, env=env)
    assert p.returncode == 0, p.stderr
    out = p.stdout
    assert "from the published shape" in out and "the data was not read" in out
    assert "471,355 training users x 41,140 items" in out
    models = {ln.split()[0] for ln in out.splitlines() if ln.startswith("      ")}
    assert models == {"ease", "edlae", "popularity", "ials"}
    ials = next(ln for ln in out.splitlines() if ln.startswith("      ials"))
    assert "REFUSED: needs about" in ials and "factors <= " in ials
    ease, edlae = (next(ln for ln in out.splitlines() if ln.startswith(f"      {m} "))
                   for m in ("ease", "edlae"))
    assert ease.split()[2:4] == edlae.split()[2:4]  # one shared timing of the same kernel
    total = next(ln for ln in out.splitlines() if ln.startswith("total:"))
    assert "3 models" in total and "download 476.8 MiB" in total and "disk " in total
    assert not (tmp_path / "data").exists() and not (tmp_path / "r").exists()
    j = cli("run", "--models", "popularity", "--dataset", "msd", "--plan", "--json",
            "--data-dir", str(tmp_path / "data"), "--results-dir", str(tmp_path / "r"),
            cwd=tmp_path, env=env)
    assert j.returncode == 0, j.stderr
    doc = json.loads(j.stdout)
    (plan,) = doc["plans"]
    assert plan["shape"]["items"] == 41_140 and plan["totals"]["models"] == 1
    assert plan["totals"]["download_bytes"] == 500 * 10**6
    assert [m["model"] for m in plan["models"]] == ["popularity"]


def test_a_skipped_model_has_its_line_in_the_plan(planted_split):
    """``all`` skips SLIM on MSD; the plan names it with the reason, never drops it."""
    from benchmark.plan import plan_run

    plan = plan_run(["popularity"], {"slim": "too many items"}, DataShape.from_split(planted_split),
                    {}, CPU, basis="the data")
    assert [(r.model, r.skipped) for r in plan.rows] == [("popularity", None), ("slim", "too many items")]
    text = plan.format()
    assert "SKIPPED: too many items" in text and "total: 1 models" in text
