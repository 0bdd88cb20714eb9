"""The significance table's intervals and effect sizes, checked against numbers computed here
independently (scipy, a plain bootstrap), and marks that follow the t-test alone."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from scipy import stats
from test_report import N_USERS, add_row
from test_report_trust import FOLD, USERS, make_seeds

from benchmark.report import effects as fx
from benchmark.report import load_results, significance
from benchmark.report.render import table_markdown
from benchmark.report.stats import Comparison, PairedResult
from benchmark.report.tables import results_table, significance_table
from benchmark.results import ResultStore


@pytest.fixture(scope="module")
def pair() -> tuple[np.ndarray, np.ndarray]:
    """A fixed example: two models' per-user metrics on the same 200 users."""
    rng = np.random.default_rng(12345)
    y = rng.random(200)
    return np.clip(y - 0.03 + 0.2 * (rng.random(200) - 0.5), 0, 1), y


def _plain_bootstrap(d: np.ndarray, seed: int = 0, resamples: int = 10_000) -> np.ndarray:
    """Straightforward: all resample indices at once, row b is resample b, percentiles."""
    idx = np.random.default_rng(seed).integers(0, len(d), size=(resamples, len(d)))
    return np.percentile(d[idx].mean(axis=1), [2.5, 97.5])


def test_t_interval_and_dz_match_scipy(pair):
    x, y = pair
    d = x - y
    lo, hi = fx.t_interval(d)
    ci = stats.ttest_rel(x, y).confidence_interval(0.95)
    assert lo == pytest.approx(ci.low, abs=1e-12) and hi == pytest.approx(ci.high, abs=1e-12)
    ref = stats.t.interval(0.95, len(d) - 1, loc=d.mean(), scale=stats.sem(d))
    np.testing.assert_allclose((lo, hi), ref, rtol=0, atol=1e-12)
    # d_z = t / sqrt(n) for the paired t statistic
    assert fx.cohens_dz(d) == pytest.approx(stats.ttest_rel(x, y).statistic / np.sqrt(len(d)), abs=1e-12)
    assert np.isnan(fx.cohens_dz(np.ones(5))) and np.isnan(fx.t_interval(np.ones(1))[0])


def test_bootstrap_equals_a_plain_implementation(pair):
    x, y = pair
    d = x - y
    got = fx.bootstrap_intervals(d)[0]
    np.testing.assert_allclose(got, _plain_bootstrap(d), rtol=0, atol=1e-12)
    np.testing.assert_array_equal(got, fx.bootstrap_intervals(d)[0])  # reproducible
    lo, hi = fx.t_interval(d)
    assert got[0] < d.mean() < got[1]
    assert abs(got[0] - lo) < 0.1 * (hi - lo) and abs(got[1] - hi) < 0.1 * (hi - lo)


def test_chunked_draws_are_the_same_resamples(pair, monkeypatch):
    """Drawn in many chunks, uncached, the resamples are those of the plain implementation."""
    x, y = pair
    d = x - y
    monkeypatch.setattr(fx, "CACHE_ELEMENTS", 0)
    monkeypatch.setattr(fx, "CHUNK_ELEMENTS", 7 * len(d) + 3)  # 7 resamples a chunk
    chunks = list(fx.resample_indices(len(d), 50))
    assert [len(c) for c in chunks] == [7] * 7 + [1]
    idx = np.random.default_rng(fx.SEED).integers(0, len(d), size=(50, len(d)))
    np.testing.assert_array_equal(np.concatenate(chunks), idx)
    counts = np.stack([np.bincount(row, minlength=len(d)) for row in idx])
    np.testing.assert_array_equal(fx.resample_counts(len(d), 50), counts)
    np.testing.assert_allclose(fx.bootstrap_intervals(d)[0], _plain_bootstrap(d), rtol=0, atol=1e-12)


def test_every_model_of_one_n_gets_the_same_resamples(pair):
    x, y = pair
    d1, d2 = x - y, np.sin(np.arange(200.0))
    both = fx.bootstrap_means(np.column_stack([d1, d2]))
    np.testing.assert_allclose(both[:, 0], fx.bootstrap_means(d1)[:, 0], rtol=0, atol=1e-14)
    np.testing.assert_allclose(both[:, 1], fx.bootstrap_means(d2)[:, 0], rtol=0, atol=1e-14)
    # the means are linear in d only when the resamples are shared
    np.testing.assert_allclose(fx.bootstrap_means(d1 + d2)[:, 0], both.sum(axis=1), atol=1e-12)
    e1, e2 = fx.effects([d1, d2])
    np.testing.assert_allclose([e2.boot_low, e2.boot_high], _plain_bootstrap(d2), rtol=0, atol=1e-12)
    assert e1.boot_low == pytest.approx(_plain_bootstrap(d1)[0], abs=1e-12)


def test_memory_stays_flat_at_50000_users():
    d = np.random.default_rng(0).random(50_000)
    peaks = []
    for resamples in (100, 400):
        tracemalloc.start()
        fx.bootstrap_intervals(d, resamples=resamples)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    assert max(peaks) < 64 * 2**20  # a chunk of ~1M indices, not resamples x users
    assert peaks[1] < 1.5 * peaks[0] + 2**20  # 4x the resamples, about the same memory


def test_comparisons_carry_intervals_equal_to_independent_numbers(tmp_path):
    results = make_seeds(tmp_path / "r")
    data = load_results(results)
    sig = significance(data)
    comps = [c for c in sig.for_dataset("ml-20m") if c.paired]
    assert len(comps) == 6
    runs = {(m, s): np.load(results / "arrays" / f"ml-20m-{m}-a1b2-s{s}-test.npz")
            for m in ("multvae", "multdae", "ease") for s in (0, 1, 2)}
    for c in comps:
        x = np.mean([runs[(c.model, s)][c.metric] for s in (0, 1, 2)], axis=0)
        y = np.mean([runs[("multvae", s)][c.metric] for s in (0, 1, 2)], axis=0)
        e = c.effect
        ci = stats.ttest_rel(x, y).confidence_interval(0.95)
        np.testing.assert_allclose([e.t_low, e.t_high], [ci.low, ci.high], rtol=0, atol=1e-12)
        assert e.d_z == pytest.approx(stats.ttest_rel(x, y).statistic / np.sqrt(N_USERS), abs=1e-12)
        np.testing.assert_allclose([e.boot_low, e.boot_high], _plain_bootstrap(x - y), rtol=0, atol=1e-12)
        per_seed = [np.mean(runs[(c.model, s)][c.metric] - runs[("multvae", s)][c.metric]) for s in (0, 1, 2)]
        assert e.n_seeds == 3 and e.seed_sd == pytest.approx(np.std(per_seed, ddof=1), abs=1e-12)
    md = table_markdown(significance_table(data, sig, "ml-20m"))
    assert "| Model | Metric | Users paired | Δ mean | 95% CI (t) | 95% CI (bootstrap) | d_z | Seed sd of Δ |" in md
    c = next(c for c in comps if c.model == "ease" and c.metric == "ndcg@100")
    e = c.effect
    assert f"| [{e.t_low:+.4f}, {e.t_high:+.4f}] | [{e.boot_low:+.4f}, {e.boot_high:+.4f}] | {e.d_z:+.4f} | {e.seed_sd:.4f} (3 seeds) |" in md


def test_seed_sd_needs_two_seeds_on_both_sides(tmp_path):
    store = ResultStore(tmp_path / "r")
    rng = np.random.default_rng(5)
    for seed in (0, 1):
        add_row(store, model="ease", part="test", seed=seed, arrays=_levels(rng, 0.40),
                more={"config_key": "ease-cfg", "run_key": f"ease-{seed}"})
    add_row(store, model="multvae", part="test", arrays=_levels(rng, 0.42))
    data = load_results(tmp_path / "r")
    sig = significance(data, reference="multvae")
    c = next(c for c in sig.comparisons if c.metric == "ndcg@100")
    assert c.paired and c.seeds == (2, 1) and np.isnan(c.effect.seed_sd)
    md = table_markdown(significance_table(data, sig, "ml-20m"))
    row = next(ln for ln in md.splitlines() if ln.startswith("| ease | NDCG@100 |"))
    assert row.split(" | ")[7] == "-"  # the seed sd column, empty


def _levels(rng: np.random.Generator, level: float) -> dict:
    n = len(USERS)
    base = np.clip(level + 0.1 * (rng.random(n) - 0.5), 0, 1)
    return {"recall@20": base, "recall@50": base, "ndcg@100": base, "users": USERS, "fold_in_size": FOLD}


def test_marks_follow_the_t_test_alone(tmp_path):
    """Most users a little better, one far worse: Wilcoxon rejects, the t-test does not."""
    rng = np.random.default_rng(7)
    y = 0.4 + 0.1 * rng.random(N_USERS)
    d = 0.01 + 0.002 * rng.random(N_USERS)
    y[0], d[0] = 0.95, -0.85
    x = y + d
    t, w = stats.ttest_rel(x, y), stats.wilcoxon(x, y)
    assert t.pvalue > 0.3 and w.pvalue < 1e-6
    store = ResultStore(tmp_path / "r")
    arr = {"users": USERS, "fold_in_size": FOLD}
    add_row(store, model="multvae", part="test", arrays={**arr, **{m: y for m in ("recall@20", "recall@50", "ndcg@100")}})
    add_row(store, model="ease", part="test", arrays={**arr, **{m: x for m in ("recall@20", "recall@50", "ndcg@100")}})
    data = load_results(tmp_path / "r")
    sig = significance(data)
    comps = sig.for_dataset("ml-20m")
    assert all(c.w_p_holm < 0.05 and c.t_p_holm > 0.05 and c.marks == "" for c in comps)
    table2 = table_markdown(results_table(data, sig, "ml-20m"))
    ease = next(ln for ln in table2.splitlines() if ln.startswith("| ease"))
    assert not any(m in ease for m in "\u25b2\u25bc\u2020\u2021")
    assert "marks follow the t-test alone" in table2
    sig_md = table_markdown(significance_table(data, sig, "ml-20m"))
    row = next(ln for ln in sig_md.splitlines() if ln.startswith("| ease | NDCG@100"))
    assert "\u2021" in row and "\u25b2" not in row and "\u25bc" not in row and "\u2020" not in row


def test_marks_of_a_comparison():
    res = PairedResult(n=50, mean_diff=0.02, t_stat=1.0, t_p=0.01, w_stat=3.0, w_p=0.001)

    def comp(t_p: float, w_p: float, diff: float = 0.02) -> Comparison:
        r = PairedResult(**{**res.__dict__, "mean_diff": diff})
        return Comparison("d", "h", "m", "m", "ndcg@100", "1", "2", True, result=r, t_p_holm=t_p, w_p_holm=w_p)

    assert comp(0.2, 0.001).marks == ""
    assert comp(0.01, 0.9).marks == "\u25b2\u2020"
    assert comp(0.01, 0.001, diff=-0.02).marks == "\u25bc\u2020"
