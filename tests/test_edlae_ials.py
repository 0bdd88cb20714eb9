"""EDLAE / DLAE (Steck 2020) and iALS (Rendle et al. 2022), each against a literal
transcription of its reference: the authors' notebook for the closed forms, the per-user
normal equation and loss of the iALS reference code (``ials_main.cc``)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from benchmark.cost import DataShape
from benchmark.model import FitOptions
from benchmark.models import edlae as edlae_mod
from benchmark.models import ials as ials_mod
from benchmark.models import linalg
from benchmark.models.ease import EASE
from benchmark.models.edlae import DLAE, EDLAE
from benchmark.models.ials import IALS
from benchmark.resources import InsufficientMemoryError

CPU = FitOptions(seed=0, device="cpu", progress=False, threads=1)


def _binary(n_users: int, n_items: int, density: float, seed: int) -> sp.csr_matrix:
    x = sp.random(n_users, n_items, density=density, format="csr", random_state=seed, dtype=np.float32)
    x.data[:] = 1.0
    return x


# --- EDLAE / DLAE -----------------------------------------------------------------------------


def _notebook_edlae_fullrank(train: sp.csr_matrix, pdrop: float, L2const: float) -> np.ndarray:  # noqa: N803
    """``learn_EDLAE_fullrank`` of EDLAE_NeurIPS2020.ipynb, line by line (float64 here)."""
    XtX = np.asarray(train.T.dot(train).todense(), dtype=np.float64)  # noqa: N806
    XtXdiag = np.diag(XtX).copy()  # noqa: N806
    ii_diag = np.diag_indices(XtX.shape[0])
    XtX[ii_diag] = XtXdiag + L2const + XtXdiag * pdrop / (1.0 - pdrop)
    BB = np.linalg.inv(XtX)  # noqa: N806
    BB /= -np.diag(BB)
    BB[ii_diag] = 0.0
    return BB


def _paper_dlae_fullrank(train: sp.csr_matrix, p: float, lam: float) -> np.ndarray:
    """Full-rank DLAE: B = (X^T X + Lambda)^-1 X^T X, Lambda = p/(1-p) dMat(diag(X^T X)) + lam I
    (the notebook's ``gammaVec = L2const + XtXdiag * pdrop / (1.0-pdrop)``)."""
    g = (train.T @ train).toarray().astype(np.float64)
    lam_mat = np.diag(p / (1.0 - p) * np.diag(g) + lam)
    return np.linalg.solve(g + lam_mat, g)


def test_edlae_equals_the_notebook_closed_form():
    x = _binary(120, 40, 0.15, 1)
    ref = _notebook_edlae_fullrank(x, 0.25, 7.0)
    model = EDLAE(dropout=0.25, l2=7.0, dtype="float64").fit(x, options=CPU)
    np.testing.assert_allclose(model.weights_, ref, rtol=1e-5, atol=1e-12)
    assert np.all(np.diag(model.weights_) == 0.0)
    fold = _binary(9, 40, 0.2, 2)
    np.testing.assert_allclose(model.score(fold), (fold @ ref).astype(np.float32), rtol=1e-5, atol=1e-6)
    m32 = EDLAE(dropout=0.25, l2=7.0).fit(x, options=CPU)
    assert m32.weights_.dtype == np.float32
    np.testing.assert_allclose(m32.weights_, ref, atol=1e-4 * np.abs(ref).max())


def test_dlae_equals_the_paper_closed_form():
    x = _binary(120, 40, 0.15, 3)
    ref = _paper_dlae_fullrank(x, 0.5, 7.0)
    model = DLAE(dropout=0.5, l2=7.0, dtype="float64").fit(x, options=CPU)
    np.testing.assert_allclose(model.weights_, ref, rtol=1e-5, atol=1e-12)
    # B = I - C Lambda has a free (non-zero) diagonal, unlike EDLAE's
    assert np.all(np.diag(model.weights_) > 0)


def test_edlae_without_dropout_is_ease():
    x = _binary(150, 50, 0.1, 4)
    ease = EASE(l2=12.0, dtype="float64").fit(x, options=CPU)
    edlae = EDLAE(dropout=0.0, l2=12.0, dtype="float64").fit(x, options=CPU)
    np.testing.assert_array_equal(edlae.weights_, ease.weights_)


@pytest.mark.parametrize("cls", [EDLAE, DLAE])
def test_edlae_torch_path_equals_lapack_path(cls):
    """The CUDA code path (torch Gram and Cholesky inverse), run on torch's CPU."""
    x = _binary(200, 60, 0.1, 5)
    ref = cls(dropout=0.4, l2=5.0, dtype="float64").fit(x, options=CPU).weights_
    scale = 0.4 / 0.6
    if cls.emphasized:
        got = linalg.ease_weights_torch(x, 5.0, "float64", "cpu", chunk=70, diag_scale=scale)
    else:
        c, lam = linalg.regularised_inverse_torch(x, 5.0, "float64", "cpu", chunk=70, diag_scale=scale)
        got = c.mul_(-lam[None, :])
        got.diagonal().add_(1.0)
    np.testing.assert_allclose(got.numpy(), ref, atol=1e-10)


@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("cls", [EDLAE, DLAE])
def test_edlae_on_cuda_equals_cpu(cls):
    x = _binary(400, 300, 0.05, 6)
    fold = _binary(30, 300, 0.1, 7)
    cpu = cls(dropout=0.3, l2=20.0, dtype="float64").fit(x, options=CPU)
    gpu = cls(dropout=0.3, l2=20.0, dtype="float64").fit(x, options=FitOptions(device="cuda"))
    np.testing.assert_allclose(gpu.score(fold), cpu.score(fold), atol=1e-5)


def test_edlae_defaults_follow_the_dataset_and_bad_params_are_named():
    assert EDLAE.default_params("msd") == {"dropout": 0.25, "l2": 70.0, "dtype": "float32"}
    assert EDLAE.default_params("ml-20m")["dropout"] == 0.33 and EDLAE.default_params("ML-20M")["l2"] == 300.0
    assert EDLAE.default_params("netflix")["l2"] == 500.0
    assert DLAE.default_params("msd") == {"dropout": 0.75, "l2": 20.0, "dtype": "float32"}
    small = edlae_mod.SMALL_DEFAULTS
    assert (EDLAE.default_params("ml-100k")["dropout"], EDLAE.default_params("ml-100k")["l2"]) == small["edlae"]
    assert (DLAE.default_params(None)["dropout"], DLAE.default_params(None)["l2"]) == small["dlae"]
    x = _binary(50, 40, 0.2, 8)
    with pytest.raises(ValueError, match="dropout"):
        EDLAE(dropout=1.0).fit(x, options=CPU)
    with pytest.raises(ValueError, match="lambda"):
        DLAE(l2=0.0).fit(x, options=CPU)
    with pytest.raises(ValueError, match="dtype"):
        EDLAE(dtype="float16").fit(x, options=CPU)


def test_edlae_refuses_before_allocating_when_memory_is_short(monkeypatch):
    monkeypatch.setattr(EDLAE, "memory_limit", 1000)

    def no_allocation(*args, **kwargs):
        raise AssertionError("EDLAE allocated before checking its memory")

    monkeypatch.setattr(linalg, "gram_dense", no_allocation)
    with pytest.raises(InsufficientMemoryError, match="edlae needs about"):
        EDLAE(l2=10.0).fit(_binary(50, 40, 0.2, 9), options=CPU)
    assert "needs about" in (EDLAE.skip_reason({"items": 40}, explicit=True) or "")


def test_edlae_has_a_cost_estimate(planted_split):
    est = EDLAE.estimate_cost(DataShape.from_split(planted_split), EDLAE.default_params("planted"), CPU)
    n = planted_split.n_items
    assert est.seconds is not None and est.seconds > 0
    assert est.peak_bytes >= n * n * 4


# --- iALS -------------------------------------------------------------------------------------


def _literal_user_solve(x: np.ndarray, h: np.ndarray, lam: float, alpha0: float, nu: float) -> np.ndarray:
    """``Project`` of ials_main.cc for every user, one item at a time (float64):
    A = alpha0 H^T H + r_u I, then + h_i h_i^T and b += h_i over the user's items,
    r_u = lambda (|I_u| + alpha0 |I|)^nu (``RegularizationValue``)."""
    n_users, n_items = x.shape
    d = h.shape[1]
    out = np.zeros((n_users, d))
    for u in range(n_users):
        items = np.flatnonzero(x[u])
        if len(items) == 0:
            continue
        reg = lam * (len(items) + alpha0 * n_items) ** nu
        a = alpha0 * h.T @ h
        a[np.diag_indices(d)] += reg
        b = np.zeros(d)
        for i in items:
            a += np.outer(h[i], h[i])
            b += h[i]
        out[u] = np.linalg.solve(a, b)
    return out


def _literal_loss(x: np.ndarray, w: np.ndarray, h: np.ndarray, lam: float, alpha0: float, nu: float) -> float:
    """``ComputeLosses`` of ials_main.cc, summed pair by pair."""
    x = np.asarray(x, dtype=np.float64)
    n_users, n_items = x.shape
    loss = 0.0
    for u in range(n_users):
        for i in range(n_items):
            pred = w[u] @ h[i]
            loss += alpha0 * pred**2
            if x[u, i]:
                loss += (pred - 1.0) ** 2
    for u in range(n_users):
        loss += lam * (x[u].sum() + alpha0 * n_items) ** nu * (w[u] @ w[u])
    for i in range(n_items):
        loss += lam * (x[:, i].sum() + alpha0 * n_users) ** nu * (h[i] @ h[i])
    return float(loss)


@pytest.mark.parametrize("nu", [0.0, 1.0])
def test_ials_user_step_is_the_literal_normal_equation(nu):
    import torch

    x = _binary(30, 25, 0.2, 10).tolil()
    x[3, :] = 0  # a user without items gets w = 0
    x = sp.csr_matrix(x)
    x.eliminate_zeros()
    lengths = np.diff(x.indptr)
    assert (lengths[lengths > 0] < 6).any() and (lengths >= 6).any()  # dual and primal rows
    h = np.random.default_rng(0).normal(size=(25, 6))
    lam, alpha0 = 0.05, 0.3
    reg = ials_mod.regularisation(np.diff(x.indptr), 25, lam, alpha0, nu)
    ht = torch.from_numpy(h)
    got = ials_mod.solve_rows(x, ht, ht.T @ ht, reg, alpha0).numpy()
    ref = _literal_user_solve(x.toarray(), h, lam, alpha0, nu)
    np.testing.assert_allclose(got, ref, rtol=1e-9, atol=1e-12)
    assert np.all(got[3] == 0)
    # many small padded groups give the same solutions as one
    tiny = ials_mod.solve_rows(x, ht, ht.T @ ht, reg, alpha0, budget=1).numpy()
    np.testing.assert_allclose(tiny, ref, rtol=1e-9, atol=1e-12)
    # the solution minimises the literal loss in w_u: a nudge of any user's factor raises it
    w = got
    base = _literal_loss(x.toarray(), w, h, lam, alpha0, nu)
    for u in (0, 7):
        for sign in (-1, 1):
            w2 = w.copy()
            w2[u] += sign * 1e-3
            assert _literal_loss(x.toarray(), w2, h, lam, alpha0, nu) > base


def test_ials_loss_equals_the_literal_loss():
    import torch

    x = _binary(20, 15, 0.25, 11)
    rng = np.random.default_rng(1)
    w, h = rng.normal(size=(20, 4)), rng.normal(size=(15, 4))
    lam, alpha0, nu = 0.1, 0.2, 1.0
    ru = ials_mod.regularisation(np.diff(x.indptr), 15, lam, alpha0, nu)
    ri = ials_mod.regularisation(np.diff(x.tocsc().indptr), 20, lam, alpha0, nu)
    got = ials_mod.ials_loss(x, torch.from_numpy(w), torch.from_numpy(h), ru, ri, alpha0)
    assert got == pytest.approx(_literal_loss(x.toarray(), w, h, lam, alpha0, nu), rel=1e-12)


def test_ials_loss_decreases_every_epoch(planted_split):
    model = IALS(factors=16, regularization=0.01, unobserved_weight=0.1, epochs=8, dtype="float64")
    model.fit(planted_split.train, None, options=CPU)
    losses = [h.loss for h in model.history_]
    assert len(losses) == 8
    # exact block coordinate descent: the loss never goes up (float64 rounding aside)
    assert all(b <= a * (1 + 1e-12) for a, b in zip(losses, losses[1:])), losses
    assert losses[-1] < 0.9 * losses[0]


def test_ials_fold_in_of_a_training_row_reproduces_its_trained_factor(planted_split):
    """Folded in with the same regularisation, a training user's own row gives back (nearly)
    the factor training gave them: at convergence the user step is a fixed point."""
    x = planted_split.train
    # rank 4 on the 4 planted taste blocks: ALS converges well within 60 epochs
    model = IALS(factors=4, regularization=0.05, unobserved_weight=0.1, epochs=60, dtype="float64")
    model.fit(x, None, options=CPU)
    rows = np.arange(40)
    folded = model.user_factors(x[rows]).numpy()
    trained = model._train_user_factors[rows].numpy()
    assert np.abs(trained).max() > 0.1  # not the trivial all-zero fixed point
    err = np.linalg.norm(folded - trained, axis=1) / np.linalg.norm(trained, axis=1)
    assert err.max() < 1e-6, err.max()
    # and the fold-in is exactly the user step of training against the final items
    h = model.item_factors_
    reg = ials_mod.regularisation(np.diff(x.indptr), x.shape[1], 0.05, 0.1, 1.0)
    step = ials_mod.solve_rows(x, h, h.T @ h, reg, 0.1).numpy()
    np.testing.assert_allclose(model.user_factors(x).numpy(), step, rtol=1e-12, atol=1e-14)


def test_ials_init_and_seed():
    x = _binary(60, 30, 0.2, 12)
    opts = FitOptions(seed=3, device="cpu", progress=False, threads=1)
    a = IALS(factors=4, epochs=2).fit(x, options=opts).score(x[:5])
    b = IALS(factors=4, epochs=2).fit(x, options=opts).score(x[:5])
    np.testing.assert_array_equal(a, b)
    c = IALS(factors=4, epochs=2).fit(x, options=FitOptions(seed=4, device="cpu", progress=False, threads=1))
    assert not np.array_equal(c.score(x[:5]), a)


def test_ials_defaults_search_space_and_bad_params():
    import optuna

    assert IALS.default_params("ml-20m")["factors"] == 2048
    assert IALS.default_params("msd")["unobserved_weight"] == 0.02
    for name, setting in ials_mod.SMALL_DEFAULTS.items():
        assert {k: IALS.default_params(name)[k] for k in setting} == setting
    assert IALS.default_params("file:x.csv")["factors"] == ials_mod.OTHER_DEFAULTS["factors"]
    small = IALS.default_params("ml-100k")
    assert small["epochs"] == 16 and small["stddev"] == 0.1 and small["regularization_exp"] == 1.0
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = set()
    for _ in range(12):
        space = IALS.search_space(study.ask())
        seen.add(space["regularization_exp"])
        IALS(**{**small, **space}).check_params()
    assert seen == {0.0, 1.0}
    x = _binary(20, 10, 0.3, 13)
    with pytest.raises(ValueError, match="factors"):
        IALS(factors=0).fit(x, options=CPU)
    with pytest.raises(ValueError, match="unobserved_weight"):
        IALS(unobserved_weight=-1.0).fit(x, options=CPU)


def test_ials_has_a_cost_estimate(planted_split):
    est = IALS.estimate_cost(DataShape.from_split(planted_split), {**IALS.default_params("planted"), "factors": 16}, CPU)
    assert est.seconds is not None and est.seconds > 0 and est.peak_bytes > 0


@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="needs a CUDA device")
def test_ials_on_cuda_equals_cpu():
    x = _binary(300, 200, 0.05, 14)
    fold = _binary(20, 200, 0.1, 15)
    params = dict(factors=16, epochs=3, dtype="float64")
    cpu = IALS(**params).fit(x, options=CPU)
    gpu = IALS(**params).fit(x, options=FitOptions(device="cuda", progress=False))
    np.testing.assert_allclose(gpu.score(fold), cpu.score(fold), rtol=1e-6, atol=1e-9)
