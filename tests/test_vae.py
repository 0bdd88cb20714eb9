"""The autoencoder family: likelihoods, KL, beta schedule, scoring, variants, quality."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from benchmark.evaluate import evaluate
from benchmark.model import FitOptions
from benchmark.models.vae import (
    AutoEncoder,
    DeviceCSR,
    MultDAE,
    MultVAE,
    beta_schedule,
    kl_divergence,
    log_likelihood,
)
from benchmark.protocol import HeldOut
from benchmark.registry import get
from benchmark.training import TrainingDiverged

LIKELIHOOD = {
    "multvae": "multinomial",
    "multdae": "multinomial",
    "gaussian-vae": "gaussian",
    "logistic-vae": "logistic",
    "gaussian-dae": "gaussian",
    "logistic-dae": "logistic",
}
VARIANTS = list(LIKELIHOOD)

# device="cpu": these tests compare against CPU arithmetic (the CUDA test says its own);
# threads=1: these fixtures are tiny, and on a shared 2-core machine two OpenMP threads
# wait on each other far longer than the arithmetic takes.
OPTS = dict(progress=False, threads=1, device="cpu")

# --- the 2-user x 4-item case, computed by hand --------------------------------------------
#   x = [[1, 0, 1, 0],      user 1 clicked items 0 and 2
#        [0, 1, 0, 0]]      user 2 clicked item 1
X24 = sp.csr_matrix(np.array([[1, 0, 1, 0], [0, 1, 0, 0]], dtype=np.float32))
LN = math.log


def _batch():
    return DeviceCSR(X24, "cpu").batch(0, 2)


def test_multinomial_likelihood_by_hand():
    # user 1: f = 0 -> softmax 1/4 each -> 2 log(1/4)
    # user 2: f = log(1, 2, 3, 4) -> softmax (1, 2, 3, 4) / 10 -> log(2/10)
    f = torch.tensor([[0.0, 0.0, 0.0, 0.0], [LN(1), LN(2), LN(3), LN(4)]])
    ll = log_likelihood(f, _batch(), "multinomial")
    assert ll.tolist() == pytest.approx([2 * LN(0.25), LN(0.2)], rel=1e-6)


def test_logistic_likelihood_by_hand():
    # user 1: f = 0 -> every term is log(1/2) -> 4 log(1/2)
    # user 2: s(log a) = a / (1 + a): log(1 - 1/2) + log(2/3) + log(1 - 3/4) + log(1 - 4/5)
    #        = log(1/2 * 2/3 * 1/4 * 1/5) = log(1/60)
    f = torch.tensor([[0.0, 0.0, 0.0, 0.0], [LN(1), LN(2), LN(3), LN(4)]])
    ll = log_likelihood(f, _batch(), "logistic")
    assert ll.tolist() == pytest.approx([4 * LN(0.5), LN(1 / 60)], rel=1e-6)


def test_gaussian_likelihood_by_hand():
    # c1 = 1 on clicks, c0 = 0.1 elsewhere; -sum c/2 (x - f)^2
    # user 1: f = 0: clicks give 1/2 (1 - 0)^2 twice -> -1.0
    # user 2: f = (0, 0.5, 1, 2): 0.05*0 + 0.5*0.25 + 0.05*1 + 0.05*4 = 0.375 -> -0.375
    f = torch.tensor([[0.0, 0.0, 0.0, 0.0], [0.0, 0.5, 1.0, 2.0]])
    ll = log_likelihood(f, _batch(), "gaussian", c0=0.1, c1=1.0)
    assert ll.tolist() == pytest.approx([-1.0, -0.375], rel=1e-6)


def test_kl_by_hand():
    # user 1: mu = 0, logvar = 0 -> KL 0
    # user 2: mu = (1, 2), var = (2, 1): 1/2 [(-log 2 + 2 + 1 - 1) + (0 + 1 + 4 - 1)] = 3 - log(2)/2
    mu = torch.tensor([[0.0, 0.0], [1.0, 2.0]])
    logvar = torch.tensor([[0.0, 0.0], [LN(2), 0.0]])
    assert kl_divergence(mu, logvar).tolist() == pytest.approx([0.0, 3 - LN(2) / 2], rel=1e-6)


@pytest.mark.parametrize("kind", ["multinomial", "logistic", "gaussian"])
def test_fused_likelihood_matches_dense_formula_and_its_gradient(kind):
    rng = np.random.default_rng(0)
    X = sp.random(6, 9, density=0.4, format="csr", random_state=1, dtype=np.float64)
    X.data[:] = 1.0
    batch = DeviceCSR(X, "cpu").batch(0, 6)
    batch.values = batch.values.double()
    f = torch.tensor(rng.normal(size=(6, 9)), requires_grad=True)
    xd = torch.tensor(X.toarray())
    if kind == "multinomial":
        ref = (xd * torch.log_softmax(f, 1)).sum(1)
    elif kind == "logistic":
        ref = (xd * F_logsig(f) + (1 - xd) * F_logsig(-f)).sum(1)
    else:
        c = torch.where(xd > 0, 1.7, 0.3)
        ref = -(c / 2 * (xd - f) ** 2).sum(1)
    ll = log_likelihood(f, batch, kind, c0=0.3, c1=1.7)
    assert torch.allclose(ll, ref)
    w = torch.tensor(rng.normal(size=6))
    (g_ref,) = torch.autograd.grad((ref * w).sum(), f)
    (g,) = torch.autograd.grad((ll * w).sum(), f)
    assert torch.allclose(g, g_ref)
    if kind != "multinomial":  # its backward reuses exp(f - max) in place: one pass only
        assert torch.autograd.gradcheck(lambda t: log_likelihood(t, batch, kind, 0.3, 1.7), (f,))
    else:
        ll = log_likelihood(f, batch, kind)
        ll.sum().backward(retain_graph=True)
        with pytest.raises(RuntimeError, match="one backward pass"):
            ll.sum().backward()


def F_logsig(t):
    return torch.nn.functional.logsigmoid(t)


@pytest.mark.parametrize(
    "kind, expected",
    [
        # counts per item (1, 1, 1, 0) of 2 users, smoothed p = (c + 1/2) / 3 = (1/2, 1/2, 1/2, 1/6)
        ("multinomial", [LN(0.5)] * 3 + [LN(1 / 6)]),
        ("logistic", [0.0] * 3 + [LN(1 / 5)]),  # log-odds: (1/6) / (5/6) = 1/5
        # c1 p / (c1 p + c0 (1 - p)): 0.5 / 0.55 = 10/11; (1/6) / (1/6 + 1/12) = 2/3
        ("gaussian", [10 / 11] * 3 + [2 / 3]),
    ],
)
def test_marginal_bias_init_by_hand(kind, expected):
    m = MultVAE(likelihood=kind, bias_init="marginal", c0=0.1, c1=1.0)
    got = m._marginal_bias(DeviceCSR(X24, "cpu"))
    assert got.tolist() == pytest.approx(expected, rel=1e-6)
    fitted = MultDAE(likelihood=kind, bias_init="marginal", epochs=1, lr=1e-12)
    fitted.fit(X24, options=FitOptions(**OPTS))
    assert fitted.net_.dec_b[-1].tolist() == pytest.approx(expected, rel=1e-4, abs=1e-6)


# --- beta schedule ---------------------------------------------------------------------------


def test_beta_schedule_is_monotone_and_reaches_the_cap_at_the_right_update():
    cap, total = 0.2, 200_000
    betas = [beta_schedule(u, cap, total) for u in range(0, 60_001, 500)]
    assert all(b2 >= b1 for b1, b2 in zip(betas, betas[1:], strict=False))
    assert beta_schedule(0, cap, total) == 0.0
    assert beta_schedule(39_999, cap, total) < cap
    assert beta_schedule(40_000, cap, total) == pytest.approx(cap)  # 0.2 * 200,000
    assert beta_schedule(10**7, cap, total) == cap
    assert beta_schedule(5, 0.3, 0) == 0.3  # no annealing: the cap from the start


def test_beta_continues_across_epochs(planted_split):
    # 400 training users, batch 100 -> 4 updates per epoch; beta = min(0.2, update / 20)
    m = MultVAE(batch_size=100, total_anneal_steps=20, anneal_cap=0.2, epochs=5, patience=None)
    m.fit(planted_split.train, planted_split.valid, options=FitOptions(**OPTS))
    assert m.update_count_ == 20
    betas = [h.beta for h in m.history_]
    # beta of the last minibatch of epoch e is min(cap, (4 e - 1) / 20): never reset
    assert betas == pytest.approx([min(0.2, (4 * e - 1) / 20) for e in range(1, 6)])
    assert [h.extra["updates"] for h in m.history_] == [4, 8, 12, 16, 20]
    assert m.results_extra()["history"][0]["beta"] == pytest.approx(0.15)


# --- scoring ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fitted_vae(planted_split):
    m = MultVAE(epochs=3)
    return m.fit(planted_split.train, planted_split.valid, options=FitOptions(seed=0, **OPTS))


def test_scores_are_deterministic_finite_and_shaped(fitted_vae, planted_split):
    fold = planted_split.test.fold_in
    s1 = fitted_vae.score(fold)
    s2 = fitted_vae.score(fold)
    assert s1.shape == fold.shape and s1.dtype == np.float32
    assert np.isfinite(s1).all()
    np.testing.assert_array_equal(s1, s2)  # dropout off, z = mu
    # row-by-row scoring gives the same numbers as the batch
    np.testing.assert_allclose(fitted_vae.score(fold[:7]), s1[:7], rtol=1e-5, atol=1e-5)


def test_scoring_uses_z_equal_mu_and_the_sparse_input_equals_the_dense_one(fitted_vae, planted_split):
    net = fitted_vae.net_
    fold = planted_split.test.fold_in[:20]
    with torch.no_grad():
        x = torch.tensor(fold.toarray())
        xn = x / x.norm(dim=1, keepdim=True).clamp_min(1e-12)
        h = torch.tanh(xn @ net.enc_w[0] + net.enc_b[0])  # dense reference: normalise, no dropout
        out = h @ net.enc_w[1] + net.enc_b[1]
        mu = out[:, : net.latent_dim]
        expected = net.decode(mu).numpy()
    np.testing.assert_allclose(fitted_vae.score(fold), expected, rtol=1e-4, atol=1e-5)


def test_fold_in_items_are_never_ranked(fitted_vae, planted_split):
    from benchmark.evaluate import topk_indices

    fold = planted_split.test.fold_in
    s = fitted_vae.score(fold)
    s[fold.nonzero()] = -np.inf  # what the evaluator does
    top = topk_indices(s, 20)
    assert not np.take_along_axis(fold.toarray() > 0, top, axis=1).any()


def test_dropout_acts_on_the_nonzeros_only_in_training(fitted_vae):
    net = fitted_vae.net_
    X = sp.csr_matrix(np.ones((4, 120), dtype=np.float32))
    batch = DeviceCSR(X, "cpu").batch(0, 4)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        h_drop, _ = net.encode(batch, 0.5, gen)
        h_eval, _ = net.encode(batch, 0.5, None)
        h_eval2, _ = net.encode(batch, 0.5, None)
    assert torch.equal(h_eval, h_eval2)
    assert not torch.allclose(h_drop, h_eval)


def test_score_errors(planted_split):
    with pytest.raises(RuntimeError, match="not fitted"):
        MultVAE().score(planted_split.test.fold_in)
    m = MultDAE(epochs=1).fit(planted_split.train, options=FitOptions(**OPTS))
    with pytest.raises(ValueError, match="items"):
        m.score(sp.csr_matrix((3, 7), dtype=np.float32))


# --- the six variants ------------------------------------------------------------------------


def test_six_variants_registered_with_paper_defaults():
    for name in VARIANTS:
        cls = get(name)
        assert issubclass(cls, AutoEncoder) and cls.iterative
        assert cls.name == name
        d = cls.default_params()
        assert d["activation"] == "tanh" and d["dropout"] == 0.5 and d["lr"] == 1e-3
        assert d["batch_size"] == 500
        assert d["likelihood"] == LIKELIHOOD[name]
        assert d["bias_init"] == ("paper" if name.startswith("mult") else "marginal")
        if name.endswith("vae"):
            assert d["variational"] and d["hidden_dims"] == (600,) and d["latent_dim"] == 200
            assert d["weight_decay"] == 0.0
            assert d["anneal_cap"] == 0.2 and d["total_anneal_steps"] == 200_000
        else:
            assert not d["variational"] and d["hidden_dims"] == () and d["latent_dim"] == 200
            assert d["weight_decay"] == pytest.approx(2e-5)  # the notebook: 2 * (0.01 / 500) / 2
        model = cls()
        assert model.get_params() == d
        assert cls(lr=0.01).get_params()["lr"] == 0.01
        assert "seed" not in d and "device" not in d


def test_invalid_parameters_are_named():
    X = sp.csr_matrix(np.eye(4, dtype=np.float32))
    with pytest.raises(ValueError, match="likelihood='poisson'"):
        MultVAE(likelihood="poisson").fit(X, options=FitOptions(**OPTS))
    with pytest.raises(ValueError, match="dropout"):
        MultVAE(dropout=1.0).fit(X, options=FitOptions(**OPTS))
    with pytest.raises(ValueError, match="bias_init"):
        MultVAE(bias_init="zeros").fit(X, options=FitOptions(**OPTS))
    with pytest.raises(ValueError, match="anneal_cap"):
        MultVAE(anneal_cap="high").fit(X, options=FitOptions(**OPTS))
    with pytest.raises(ValueError, match="needs validation users"):
        MultVAE(anneal_cap="auto").fit(X, options=FitOptions(**OPTS))
    with pytest.raises(ValueError, match="empty"):
        MultVAE().fit(sp.csr_matrix((3, 4), dtype=np.float32), options=FitOptions(**OPTS))


def test_weight_decay_is_lam_times_sum_of_squared_weights(planted_split):
    m = MultDAE(epochs=1).fit(planted_split.train, options=FitOptions(**OPTS))
    batch = DeviceCSR(planted_split.train, "cpu").batch(0, 50)
    net = m.net_
    losses = []
    for wd in (0.0, 0.01):
        m.weight_decay = wd
        with torch.no_grad():
            losses.append(float(m._loss(net, batch, None, 0.0, torch.Generator(), wd)))
    l2 = sum(float(w.detach().square().sum()) for w in net.weights())
    assert losses[1] - losses[0] == pytest.approx(0.01 * l2, rel=1e-4)


def test_fit_is_deterministic_under_a_seed(planted_split):
    def run(seed):
        m = MultVAE(epochs=2, batch_size=100)
        m.fit(planted_split.train, planted_split.valid, options=FitOptions(seed=seed, **OPTS))
        return m.score(planted_split.test.fold_in)

    a, b, c = run(0), run(0), run(1)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_nan_loss_raises_training_diverged(planted_split):
    X = planted_split.train.copy()
    X.data[5] = np.nan
    with pytest.raises(TrainingDiverged, match=r"multvae: training diverged at epoch 1.*'lr': 0.001"):
        MultVAE(epochs=2).fit(X, planted_split.valid, options=FitOptions(**OPTS))


def test_epochs_option_caps_and_patience_stops(planted_split):
    m = MultDAE(epochs=50, patience=None).fit(
        planted_split.train, planted_split.valid, options=FitOptions(epochs=3, **OPTS)
    )
    assert len(m.history_) == 3
    extra = m.results_extra()
    assert [h["epoch"] for h in extra["history"]] == [1, 2, 3]
    assert extra["training"]["epochs_run"] == 3 and extra["training"]["best_epoch"] >= 1
    assert all(h["ndcg@100"] is not None for h in extra["history"])


def test_anneal_cap_auto_searches_beta_up_to_one_and_retrains_capped_at_beta_star(planted_split):
    # 400 training users, batch 100: 4 updates an epoch, 8 epochs = 32 updates; the search
    # anneals 0 -> 1 over int(0.8 * 31) = 24 updates, whatever total_anneal_steps says
    m = MultVAE(anneal_cap="auto", batch_size=100, total_anneal_steps=200_000, epochs=8, patience=2)
    m.fit(planted_split.train, planted_split.valid, options=FitOptions(**OPTS))
    extra = m.results_extra()
    curve = extra["beta_curve"]
    assert len(curve) == 8  # every epoch of the search is run (no early stop), all validated
    betas = [c["beta"] for c in curve]
    # the beta of each epoch's last update (4e - 1) / 24, capped at 1
    assert betas == pytest.approx([min(1.0, (4 * e - 1) / 24) for e in range(1, 9)])
    assert betas[-1] == 1.0 and betas[-2] == 1.0
    assert extra["beta_search"]["total_anneal_steps"] == 24
    best = max(curve, key=lambda c: c["ndcg@100"])
    beta_star = best["beta"]
    assert extra["beta_search"]["beta_star"] == pytest.approx(beta_star)
    # the retrained model: anneal_cap = beta*, the search's schedule, stopped at beta*
    assert m.beta_ == pytest.approx(beta_star) and extra["beta"] == pytest.approx(beta_star)
    assert extra["anneal_steps"] == 24
    final = [h.beta for h in m.history_]
    assert max(final) <= beta_star + 1e-12
    assert final == pytest.approx([min(beta_star, (4 * e - 1) / 24) for e in range(1, len(final) + 1)])


def test_beta_search_reaches_one_whatever_the_data_size():
    for n, bs, epochs in [(116_677, 500, 200), (738, 500, 200), (400, 100, 8), (5, 500, 10)]:
        m = MultVAE(batch_size=bs)
        steps = m.beta_search_steps(n, epochs)
        updates = epochs * -(-n // bs)
        last = updates - 1
        assert beta_schedule(last, 1.0, steps) == 1.0
        # and not long before: beta is still below 1 at 75% of them
        assert beta_schedule(int(0.75 * last), 1.0, steps) < 1.0


@pytest.mark.parametrize("name", VARIANTS)
def test_variant_beats_popularity_on_planted_data(name, planted_split):
    pop = get("popularity")().fit(planted_split.train)
    base = evaluate(pop.score, planted_split.test).mean()["ndcg@100"]
    # 400 training users: batches of 100 give 4 updates per epoch (paper batch: 500)
    model = get(name)(batch_size=100, epochs=25)
    model.fit(planted_split.train, planted_split.valid, options=FitOptions(seed=0, **OPTS))
    got = evaluate(model.score, planted_split.test).mean()["ndcg@100"]
    assert got > base + 0.03, f"{name}: NDCG@100 {got:.4f} vs popularity {base:.4f}"


def test_multvae_beats_popularity_on_synthetic_data(synthetic_split):
    pop = get("popularity")().fit(synthetic_split.train)
    base = evaluate(pop.score, synthetic_split.test).mean()["ndcg@100"]
    # paper architecture; batches of 100 (40 updates per epoch) so that a few epochs do
    model = MultVAE(epochs=4, batch_size=100).fit(
        synthetic_split.train, synthetic_split.valid, options=FitOptions(seed=0, **OPTS)
    )
    got = evaluate(model.score, synthetic_split.test).mean()["ndcg@100"]
    assert got > base + 0.02, f"NDCG@100 {got:.4f} vs popularity {base:.4f}"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu_scores_closely(planted_split):
    # no dropout: the two devices then see the same batches and the same arithmetic
    opts = dict(OPTS, device="cpu")
    cpu = MultDAE(epochs=1, dropout=0.0).fit(planted_split.train, options=FitOptions(**opts))
    opts["device"] = "cuda"
    gpu = MultDAE(epochs=1, dropout=0.0).fit(planted_split.train, options=FitOptions(**opts))
    assert gpu.device_.startswith("cuda")
    s_gpu = gpu.score(planted_split.test.fold_in)
    assert s_gpu.dtype == np.float32 and np.isfinite(s_gpu).all()
    np.testing.assert_allclose(s_gpu, cpu.score(planted_split.test.fold_in), rtol=1e-2, atol=1e-2)


def test_held_out_rows_without_items_score_finite(fitted_vae):
    empty = sp.csr_matrix((3, 120), dtype=np.float32)
    s = fitted_vae.score(empty)
    assert s.shape == (3, 120) and np.isfinite(s).all()
    assert HeldOut(empty, empty).n_users == 3
