"""WMF, SLIM, EASE and LightFM: each checked against an independent computation."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.sparse as sp

from benchmark.evaluate import evaluate
from benchmark.model import FitOptions
from benchmark.models import ease as ease_mod
from benchmark.models import linalg
from benchmark.models import slim as slim_mod
from benchmark.models import wmf as wmf_mod
from benchmark.models.ease import EASE
from benchmark.models.lightfm import LightFMRecommender
from benchmark.models.slim import SLIM, SlimTimeBudgetError
from benchmark.models.wmf import WMF, fold_in_factors
from benchmark.resources import InsufficientMemoryError
from benchmark.torch_parts import dense_on_device
from benchmark.units import parse_bytes

CPU = FitOptions(seed=0, device="cpu", progress=False, threads=1)


def _binary(n_users: int, n_items: int, density: float, seed: int) -> sp.csr_matrix:
    x = sp.random(n_users, n_items, density=density, format="csr", random_state=seed, dtype=np.float32)
    x.data[:] = 1.0
    return x


def _ease_reference(x: sp.csr_matrix, lam: float) -> np.ndarray:
    """Steck's closed form with a plain dense float64 NumPy inverse."""
    g = (x.T @ x).toarray().astype(np.float64) + lam * np.eye(x.shape[1])
    p = np.linalg.inv(g)
    b = -p / np.diag(p)[None, :]
    np.fill_diagonal(b, 0.0)
    return b


# --- EASE -----------------------------------------------------------------------------------


def test_ease_equals_direct_numpy_solve():
    x = _binary(300, 150, 0.08, 1)
    ref = _ease_reference(x, 25.0)
    m64 = EASE(l2=25.0, dtype="float64").fit(x, options=CPU)
    np.testing.assert_allclose(m64.weights_, ref, atol=1e-5, rtol=0)
    assert np.all(np.diag(m64.weights_) == 0)
    fold = _binary(20, 150, 0.1, 2)
    np.testing.assert_allclose(m64.score(fold), (fold @ ref).astype(np.float32), atol=1e-5)
    m32 = EASE(l2=25.0).fit(x, options=CPU)
    assert m32.weights_.dtype == np.float32 and m32.score(fold).dtype == np.float32
    np.testing.assert_allclose(m32.weights_, ref, atol=1e-5 * max(1.0, np.abs(ref).max()) * 10)


def test_ease_in_place_blocks_match_with_odd_sizes():
    # block sizes smaller than the catalogue exercise the blocked Gram and symmetrisation
    x = _binary(200, 97, 0.1, 3)
    g = linalg.gram_dense(x, "float64", block=10)
    np.testing.assert_array_equal(g, (x.T @ x).toarray())
    np.testing.assert_array_equal(linalg.gram_dense(x, "float32", block=7, threads=3), g)


def _scipy_inverse(g: np.ndarray) -> np.ndarray:
    """SciPy's potrf + potri (the CPU path before torch's), for comparison."""
    from scipy.linalg import lapack

    potrf, potri = (lapack.spotrf, lapack.spotri) if g.dtype == np.float32 else (lapack.dpotrf, lapack.dpotri)
    c, info = potrf(g, lower=1, clean=1)
    assert info == 0
    p, info = potri(c, lower=1)
    assert info == 0
    return np.tril(p) + np.tril(p, -1).T


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_the_cpu_inverse_equals_scipys_lapack_on_real_data(ml100k_split, dtype):
    """The in-place torch Cholesky inverse (EASE, EDLAE, DLAE on the CPU) gives SciPy's
    LAPACK numbers to 1e-5 relative on ml-100k, and the same EASE weights and scores."""
    x = ml100k_split.train
    g = linalg.gram_dense(x, dtype)
    g[np.diag_indices_from(g)] += 200.0
    ref = _scipy_inverse(g.copy())
    assert linalg.cholesky_inverse_inplace(g, threads=2) == 0
    assert np.abs(g - ref).max() <= 1e-5 * np.abs(ref).max()
    np.testing.assert_array_equal(g, g.T)
    b_ref = -ref / np.diag(ref)[None, :]
    b_ref[np.diag_indices_from(b_ref)] = 0.0
    b = EASE(l2=200.0, dtype=dtype).fit(x, options=FitOptions(device="cpu", progress=False)).weights_
    assert np.abs(b - b_ref).max() <= 1e-5 * np.abs(b_ref).max()
    fold = ml100k_split.test.fold_in
    s_ref, s = np.asarray(fold @ b_ref), np.asarray(fold @ b)
    assert np.abs(s - s_ref).max() <= 1e-5 * np.abs(s_ref).max()


def test_the_cpu_inverse_reports_a_matrix_that_is_not_positive_definite():
    g = np.array([[1.0, 2.0], [2.0, 1.0]], dtype=np.float32)
    assert linalg.cholesky_inverse_inplace(g) > 0


def test_ease_refuses_before_allocating_when_memory_is_short(monkeypatch):
    x = _binary(50, 40, 0.2, 4)
    monkeypatch.setattr(EASE, "memory_limit", 1000)

    def no_allocation(*args, **kwargs):
        raise AssertionError("EASE allocated before checking its memory")

    monkeypatch.setattr(linalg, "gram_dense", no_allocation)
    with pytest.raises(InsufficientMemoryError) as err:
        EASE(l2=10.0).fit(x, options=CPU)
    assert isinstance(err.value, MemoryError)
    msg = str(err.value)
    assert "needs about" in msg and "7.8 KiB" in msg and "1000 B " in msg and "available" in msg
    assert "40 items^2 x 4 bytes x 1.25 copies" in msg  # 40 * 40 * 4 * 1.25 = 8000 bytes
    reason = EASE.skip_reason({"items": 40}, explicit=False)
    assert reason is not None and "needs about" in reason


def test_ease_memory_limit_from_environment(monkeypatch):
    monkeypatch.setenv("BENCHMARK_MEMORY_LIMIT", "1K")
    with pytest.raises(InsufficientMemoryError, match="1.0 KiB"):
        EASE(l2=10.0, dtype="float64").fit(_binary(50, 40, 0.2, 4), options=CPU)
    monkeypatch.setenv("BENCHMARK_MEMORY_LIMIT", "1G")
    EASE(l2=10.0).fit(_binary(50, 40, 0.2, 4), options=CPU)  # fits
    assert parse_bytes("1.5GB") == int(1.5 * (1 << 30))


def test_ease_bad_parameters_are_named():
    x = _binary(50, 40, 0.2, 4)
    with pytest.raises(ValueError, match="dtype"):
        EASE(dtype="float16").fit(x, options=CPU)
    with pytest.raises(ValueError, match="lambda"):
        EASE(l2=0.0).fit(x, options=CPU)


def test_ease_defaults_follow_the_dataset():
    assert EASE.default_params("ml-20m")["l2"] == 500.0
    assert EASE.default_params("netflix")["l2"] == 1000.0
    assert EASE.default_params("msd")["l2"] == 200.0
    assert EASE.default_params("ml-100k")["l2"] == ease_mod.DEFAULT_LAMBDA
    assert EASE.default_params(None)["dtype"] == "float32"


def test_ease_torch_path_equals_lapack_path():
    """The CUDA code path (dense user chunks, torch Cholesky inverse) run on torch's CPU."""
    x = _binary(300, 120, 0.1, 12)
    ref = linalg.ease_weights_cpu(x, 10.0, "float64")
    got = linalg.ease_weights_torch(x, 10.0, "float64", "cpu", chunk=70)
    np.testing.assert_allclose(got.numpy(), ref, atol=1e-10)
    fold = _binary(9, 120, 0.2, 13)
    dense = dense_on_device(fold, got.dtype, "cpu").numpy()
    np.testing.assert_array_equal(dense, fold.toarray())


@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="needs a CUDA device")
def test_ease_on_cuda_equals_cpu():
    x = _binary(400, 300, 0.05, 5)
    fold = _binary(30, 300, 0.1, 6)
    cpu = EASE(l2=20.0, dtype="float64").fit(x, options=CPU)
    gpu = EASE(l2=20.0, dtype="float64").fit(x, options=FitOptions(device="cuda"))
    np.testing.assert_allclose(gpu.score(fold), cpu.score(fold), atol=1e-5)


# --- WMF ------------------------------------------------------------------------------------


def _per_user_solve(x: sp.csr_matrix, y: np.ndarray, reg: float, alpha: float) -> np.ndarray:
    """Hu et al.'s user update, one user at a time, with the full diagonal C_u."""
    y = y.astype(np.float64)
    k = y.shape[1]
    out = np.zeros((x.shape[0], k))
    dense = x.toarray()
    for u in range(x.shape[0]):
        p = dense[u]
        c = 1.0 + alpha * p
        a = y.T @ (c[:, None] * y) + reg * np.eye(k)
        out[u] = np.linalg.solve(a, y.T @ (c * p))
    return out


def test_wmf_batched_fold_in_equals_per_user_exact_solve(monkeypatch):
    rng = np.random.default_rng(0)
    k = 12
    y = rng.normal(0, 0.3, (80, k)).astype(np.float32)
    # users with 0 .. 40 items: the dual branch (fewer than k items) and the primal one
    lengths = np.arange(41)
    rows = np.repeat(np.arange(41), lengths)
    cols = np.concatenate([rng.choice(80, n, replace=False) for n in lengths])
    x = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(41, 80))
    x = x[rng.permutation(41)]
    ref = _per_user_solve(x, y, 0.5, 10.0)
    np.testing.assert_allclose(fold_in_factors(x, y, 0.5, 10.0), ref, atol=1e-4, rtol=1e-4)
    # a tiny budget: many padded groups of users sorted by fold-in size
    monkeypatch.setattr(wmf_mod, "_GROUP_BUDGET", 300)
    groups = wmf_mod._batches(np.sort(np.diff(x.indptr)), k)
    assert len(groups) > 10 and groups[0][0] == 0 and groups[-1][1] == 41
    assert all(a[1] == b[0] for a, b in zip(groups, groups[1:]))
    np.testing.assert_allclose(fold_in_factors(x, y, 0.5, 10.0), ref, atol=1e-4, rtol=1e-4)


def test_wmf_item_factors_bit_identical_after_evaluation(planted_split):
    model = WMF(factors=16, iterations=5).fit(planted_split.train, options=CPU)
    before = model.item_factors_.copy()
    evaluate(model.score, planted_split.test)
    evaluate(model.score, planted_split.valid)
    assert np.array_equal(model.item_factors_, before)
    assert model.item_factors_.tobytes() == before.tobytes()
    assert not model.item_factors_.flags.writeable
    # scores are the folded-in users times the fixed item factors
    fold = planted_split.test.fold_in[:10]
    u = _per_user_solve(fold, before, model.regularization, model.alpha)
    np.testing.assert_allclose(model.score(fold), u @ before.T.astype(np.float64), atol=1e-4)


def test_wmf_fits_with_blas_limited_to_one_thread(monkeypatch, planted_split):
    import implicit.utils

    monkeypatch.setattr(implicit.utils, "_checked_blas_config", False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        WMF(factors=8, iterations=2).fit(planted_split.train, options=FitOptions(progress=False))
    assert not [w for w in caught if "threads" in str(w.message) and "BLAS" in str(w.message).upper()]


def test_wmf_epochs_cap_and_search_space():
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(20):
        space = WMF.search_space(study.ask())
        assert space["alpha"] in {2.0, 5.0, 10.0, 30.0, 50.0, 100.0}
        assert space["factors"] in {100, 200}
    x = _binary(60, 30, 0.2, 8)
    m = WMF(factors=4, iterations=15).fit(x, options=FitOptions(epochs=3, progress=False, threads=1))
    assert m.iterations_ == 3


def test_wmf_reports_every_sweep_and_honours_the_time_budget(planted_split):
    reports = []
    opts = FitOptions(progress=False, threads=1, on_epoch=reports.append)
    m = WMF(factors=8, iterations=4).fit(planted_split.train, planted_split.valid, options=opts)
    assert [r.epoch for r in reports] == [1, 2, 3, 4] and all(0 < r.ndcg100 <= 1 for r in reports)
    assert m.results_extra()["iterations"] == 4 and len(m.history_) == 4
    quick = WMF(factors=8, iterations=50).fit(
        planted_split.train, options=FitOptions(progress=False, threads=1, time_budget=0.0)
    )
    assert quick.iterations_ == 1


# --- SLIM -----------------------------------------------------------------------------------


@pytest.mark.parametrize("l1", [0.5, 3.0])
def test_slim_weights_satisfy_the_elastic_net_optimality_conditions(l1):
    """KKT of min 1/2||x_j - X w||^2 + l2/2 ||w||^2 + l1 ||w||_1, w >= 0, w_j = 0, over ALL
    items (l1 = 3 screens out every item co-occurring with j at most 3 times)."""
    x = _binary(120, 25, 0.25, 9)
    l2 = 1.0
    model = SLIM(l1=l1, l2=l2, tol=1e-10, max_iter=5000).fit(x, options=CPU)
    w = model.weights_.toarray().astype(np.float64)
    assert np.all(w >= 0) and np.all(np.diag(w) == 0)
    xd = x.toarray().astype(np.float64)
    for j in range(x.shape[1]):
        xj = xd.copy()
        xj[:, j] = 0.0
        grad = -xj.T @ (xd[:, j] - xj @ w[:, j]) + l2 * w[:, j]  # smooth part
        grad[j] = 0.0
        active = w[:, j] > 0
        np.testing.assert_allclose(grad[active], -l1, atol=1e-4)
        assert np.all(grad[~active] >= -l1 - 1e-4)


def test_slim_topk_pruning_and_parallel_threads_agree():
    x = _binary(200, 60, 0.15, 10)
    one = SLIM(l1=0.1, l2=0.5).fit(x, options=CPU)
    two = SLIM(l1=0.1, l2=0.5).fit(x, options=FitOptions(progress=False, threads=2))
    np.testing.assert_array_equal(one.weights_.toarray(), two.weights_.toarray())
    pruned = SLIM(l1=0.1, l2=0.5, topk=3).fit(x, options=CPU)
    per_col = np.diff(pruned.weights_.tocsc().indptr)
    assert per_col.max() <= 3
    dense, kept = one.weights_.toarray(), pruned.weights_.toarray()
    for j in range(60):
        nz = np.flatnonzero(kept[:, j])
        if len(nz):
            assert kept[nz, j].min() >= np.sort(dense[:, j])[-3] - 1e-7


def test_slim_time_budget_and_estimate(monkeypatch, capsys):
    x = _binary(100, 70, 0.15, 11)
    with pytest.raises(SlimTimeBudgetError, match="time budget"):
        SLIM().fit(x, options=FitOptions(progress=False, threads=1, time_budget=1e-9))
    monkeypatch.setattr(slim_mod, "ESTIMATE_FROM_ITEMS", 50)
    SLIM().fit(x, options=CPU)
    assert "estimated" in capsys.readouterr().err


def test_slim_skips_msd_sized_catalogues_unless_asked():
    msd = {"dataset": "msd", "items": 41140, "train_interactions": 30_000_000}
    assert "ask for it by name" in SLIM.skip_reason(msd, explicit=False)
    assert SLIM.skip_reason(msd, explicit=True) is None
    assert SLIM.skip_reason({"dataset": "x", "items": 40_000}, explicit=False)
    assert SLIM.skip_reason({"dataset": "ml-20m", "items": 20_108}, explicit=False) is None
    with pytest.raises(ValueError, match="l1"):
        SLIM(l1=0.0, l2=0.0).fit(_binary(10, 5, 0.5, 1), options=CPU)


def test_slim_search_space_is_the_paper_grid():
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(10):
        space = SLIM.search_space(study.ask())
        assert space["l1"] in {0.1, 0.5, 1.0, 5.0} and space["l2"] in {0.1, 0.5, 1.0, 5.0}


# --- LightFM --------------------------------------------------------------------------------


def test_lightfm_scores_a_user_absent_from_training(planted_split):
    split = planted_split
    model = LightFMRecommender(no_components=8, epochs=3).fit(split.train, options=CPU)
    state = [a.copy() for a in model._state()]
    fold = split.test.fold_in[:4]  # test users: never rows of split.train
    scores = model.score(fold)
    assert scores.shape == (4, split.n_items) and scores.dtype == np.float32
    # independent computation: mean of the fold-in items' feature embeddings
    dense = fold.toarray().astype(np.float64)
    users = (dense / dense.sum(1, keepdims=True)) @ state[0]
    np.testing.assert_allclose(scores, users @ state[1].T + state[2], rtol=1e-4, atol=1e-5)
    for a, b in zip(state, model._state()):  # scoring trains nothing
        assert np.array_equal(a, b)
    # the scores follow the fold-in: another item set gives another ranking
    other = sp.csr_matrix(fold[::-1])
    assert not np.allclose(model.score(other)[0], scores[0])


def test_lightfm_bpr_option_and_bad_loss(planted_split):
    m = LightFMRecommender(no_components=8, epochs=2, loss="bpr").fit(planted_split.train, options=CPU)
    assert np.isfinite(m.score(planted_split.test.fold_in)).all()
    with pytest.raises(ValueError, match="warp"):
        LightFMRecommender(loss="hinge").fit(planted_split.train, options=CPU)


def test_lightfm_keeps_the_best_validated_epoch(planted_split):
    reports = []
    m = LightFMRecommender(no_components=8, epochs=4).fit(
        planted_split.train, planted_split.valid, options=FitOptions(progress=False, threads=1, on_epoch=reports.append)
    )
    assert [r.epoch for r in reports] == [1, 2, 3, 4]
    best = max(reports, key=lambda r: r.ndcg100)
    assert m.best_epoch_ == best.epoch
    assert m.results_extra()["best_epoch"] == best.epoch
