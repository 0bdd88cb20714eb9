"""RecVAE: composite prior, per-user beta, the frozen old encoder, alternating updates.

The reference is the authors' code, github.com/ilya-shenbin/RecVAE (master, ``model.py``);
the transcriptions below follow its lines literally so the comparisons are against the
code, not against our reading of it.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from benchmark.cost import DataShape
from benchmark.model import FitOptions
from benchmark.models.recvae import (
    LN_EPS,
    MIXTURE_WEIGHTS,
    RecVAE,
    _RecVAENet,
    composite_prior_log_density,
    kl_weights,
    log_norm_pdf,
)
from benchmark.models.vae import DeviceCSR
from benchmark.registry import get

OPTS = dict(progress=False, threads=1, device="cpu")
SMALL = dict(hidden_dim=16, latent_dim=8, batch_size=100, epochs=3, lr=3e-3)


# --- literal transcriptions of the reference code (model.py) -------------------------------


def ref_log_norm_pdf(x, mu, logvar):  # model.py L12-13
    return -0.5 * (logvar + np.log(2 * np.pi) + (x - mu).pow(2) / logvar.exp())


def ref_composite_prior(z, post_mu, post_logvar, mixture_weights=(3 / 20, 3 / 4, 1 / 10)):
    """CompositePrior.forward (model.py L34-46), the old encoder's output passed in."""
    latent_dim = z.shape[1]
    mu_prior = torch.zeros(1, latent_dim, dtype=z.dtype)  # L22-23
    logvar_prior = torch.zeros(1, latent_dim, dtype=z.dtype)  # L25-26
    logvar_uniform_prior = torch.full((1, latent_dim), 10.0, dtype=z.dtype)  # L28-29
    stnd_prior = ref_log_norm_pdf(z, mu_prior, logvar_prior)
    post_prior = ref_log_norm_pdf(z, post_mu, post_logvar)
    unif_prior = ref_log_norm_pdf(z, mu_prior, logvar_uniform_prior)
    gaussians = [stnd_prior, post_prior, unif_prior]
    gaussians = [g.add(np.log(w)) for g, w in zip(gaussians, mixture_weights)]
    density_per_gaussian = torch.stack(gaussians, dim=-1)
    return torch.logsumexp(density_per_gaussian, dim=-1)


def ref_encoder_forward(enc, x):
    """Encoder.forward (model.py L66-77) on a dense x, no dropout, our encoder's weights."""
    hidden = enc.b_in.shape[0]

    def fc(w, b):
        lin = torch.nn.Linear(w.shape[0], w.shape[1]).double()
        lin.weight.data.copy_(w.T)
        lin.bias.data.copy_(b)
        return lin

    def ln(k):
        norm = torch.nn.LayerNorm(hidden, eps=1e-1).double()  # model.py L54: eps=1e-1
        norm.weight.data.copy_(enc.ln_w[k])
        norm.bias.data.copy_(enc.ln_b[k])
        return norm

    def swish(v):  # model.py L9-10
        return v.mul(torch.sigmoid(v))

    fc1, fc2, fc3, fc4, fc5 = [fc(enc.w_in, enc.b_in)] + [fc(enc.w[i], enc.b[i]) for i in range(4)]
    ln1, ln2, ln3, ln4, ln5 = (ln(k) for k in range(5))
    norm = x.pow(2).sum(dim=-1).sqrt()
    x = x / norm[:, None]
    h1 = ln1(swish(fc1(x)))
    h2 = ln2(swish(fc2(h1) + h1))
    h3 = ln3(swish(fc3(h2) + h1 + h2))
    h4 = ln4(swish(fc4(h3) + h1 + h2 + h3))
    h5 = ln5(swish(fc5(h4) + h1 + h2 + h3 + h4))
    return fc(enc.w_mu, enc.b_mu)(h5), fc(enc.w_lv, enc.b_lv)(h5)


def _rows(dense: np.ndarray) -> sp.csr_matrix:
    return sp.csr_matrix(dense.astype(np.float32))


# --- the composite prior ---------------------------------------------------------------------


@pytest.mark.parametrize("weights", [MIXTURE_WEIGHTS, (0.5, 0.25, 0.25)])
def test_composite_prior_equals_the_reference_mixture(weights):
    g = torch.Generator().manual_seed(0)
    z = 3 * torch.randn(7, 5, generator=g, dtype=torch.float64)
    post_mu = torch.randn(7, 5, generator=g, dtype=torch.float64)
    post_logvar = torch.randn(7, 5, generator=g, dtype=torch.float64)
    ours = composite_prior_log_density(z, post_mu, post_logvar, weights)
    ref = ref_composite_prior(z, post_mu, post_logvar, weights)
    assert ours.shape == (7, 5)  # one mixture per latent coordinate, as the code does
    torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-12)


def test_composite_prior_by_hand_at_zero():
    # z = 0, old posterior N(0, 1): all three components at 0 give
    #   log(3/20 * phi(0) + 3/4 * phi(0) + 1/10 * phi(0) / exp(5)),  phi(0) = 1/sqrt(2 pi)
    z = torch.zeros(1, 1, dtype=torch.float64)
    got = composite_prior_log_density(z, z, z).item()
    phi0 = 1 / math.sqrt(2 * math.pi)
    assert got == pytest.approx(math.log(phi0 * (3 / 20 + 3 / 4 + 1 / 10 / math.exp(5))), rel=1e-12)
    assert log_norm_pdf(z, 0.0, 0.0).item() == pytest.approx(math.log(phi0), rel=1e-12)


def test_encoder_equals_the_reference_dense_forward():
    """Sparse first layer, dense connections, swish, layer norm with eps 0.1, as model.py."""
    net = _RecVAENet(30, 12, 4, torch.Generator().manual_seed(3)).double()
    g = torch.Generator().manual_seed(4)
    with torch.no_grad():  # layer-norm affine weights away from (1, 0), so they count
        for p in (*net.encoder.ln_w, *net.encoder.ln_b):
            p.add_(0.1 * torch.randn(p.shape, dtype=p.dtype, generator=g))
    x = (np.random.default_rng(0).random((6, 30)) < 0.3).astype(np.float64)
    x[0, :] = 0
    x[0, 3] = 1  # a user with a single item
    batch = DeviceCSR(_rows(x), "cpu").batch(0, 6)
    batch.values = batch.values.double()
    mu, logvar = net.encoder(batch, 0.0, None)
    ref_mu, ref_logvar = ref_encoder_forward(net.encoder, torch.from_numpy(x))
    torch.testing.assert_close(mu, ref_mu, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(logvar, ref_logvar, rtol=1e-10, atol=1e-10)
    assert LN_EPS == 0.1


# --- beta = gamma * |I_u| --------------------------------------------------------------------


def _toy_batch(counts=(1, 2, 5), n_items=12):
    x = np.zeros((len(counts), n_items), dtype=np.float32)
    for u, c in enumerate(counts):
        x[u, np.arange(c) * 2] = 1
    return DeviceCSR(_rows(x), "cpu").batch(0, len(counts))


def test_kl_weight_is_gamma_times_the_users_item_count():
    batch = _toy_batch((1, 2, 5))
    assert kl_weights(batch, 0.005).tolist() == pytest.approx([0.005, 0.010, 0.025])


def _kl_per_user(model, net, batch, seed):
    """The loss's sampled KL per user, recomputed step by step with the same random draws."""
    g = torch.Generator().manual_seed(seed)
    mu, logvar = net.encoder(batch, float(model.dropout), g)
    z = mu + torch.randn(mu.shape, generator=g) * torch.exp(0.5 * logvar)
    post_mu, post_logvar = net.old_encoder(batch, 0.0, None)
    log_q = log_norm_pdf(z, mu, logvar)
    return (log_q - composite_prior_log_density(z, post_mu, post_logvar)).sum(dim=1)


def test_the_loss_weights_each_users_kl_by_gamma_times_item_count():
    counts = torch.tensor([1.0, 2.0, 5.0])
    batch = _toy_batch(tuple(int(c) for c in counts))
    net = _RecVAENet(12, 8, 4, torch.Generator().manual_seed(0))
    for gamma in (0.005, 0.01):
        model = RecVAE(hidden_dim=8, latent_dim=4, gamma=gamma)
        _, kld = model._encoder_loss(net, batch, torch.Generator().manual_seed(1))
        kl_u = _kl_per_user(model, net, batch, 1)
        assert kld.item() == pytest.approx((kl_u * gamma * counts).mean().item(), rel=1e-5)
    # gamma 0 with beta: one constant weight for every user (the code's --beta)
    model = RecVAE(hidden_dim=8, latent_dim=4, gamma=0.0, beta=0.3)
    _, kld = model._encoder_loss(net, batch, torch.Generator().manual_seed(1))
    assert kld.item() == pytest.approx(0.3 * _kl_per_user(model, net, batch, 1).mean().item(), rel=1e-5)


# --- the old encoder: a frozen copy, refreshed once per epoch --------------------------------


def test_old_encoder_is_frozen_and_starts_as_an_independent_encoder():
    net = _RecVAENet(20, 8, 4, torch.Generator().manual_seed(0))
    assert all(not p.requires_grad for p in net.old_encoder.parameters())
    assert not torch.equal(net.old_encoder.w_in, net.encoder.w_in)  # model.py L31: own init
    batch = _toy_batch((3, 4), n_items=20)
    loss, _ = RecVAE(hidden_dim=8, latent_dim=4)._encoder_loss(net, batch, torch.Generator().manual_seed(0))
    loss.backward()
    assert all(p.grad is None for p in net.old_encoder.parameters())
    assert net.encoder.w_in.grad is not None
    net.update_prior()
    for old, new in zip(net.old_encoder.parameters(), net.encoder.parameters(), strict=True):
        assert torch.equal(old, new) and old.data_ptr() != new.data_ptr()  # a copy, not shared
        assert not old.requires_grad


def test_old_encoder_is_refreshed_once_per_epoch_after_the_encoder_passes(planted_split, monkeypatch):
    calls = []
    original = _RecVAENet.update_prior

    def spy(self):
        before = [p.detach().clone() for p in self.old_encoder.parameters()]
        if calls:  # unchanged since the last refresh, through the encoder's Adam steps
            assert all(torch.equal(a, b) for a, b in zip(before, calls[-1]["old"], strict=True))
            assert not torch.equal(self.encoder.w_in, calls[-1]["old"][0])  # the encoder moved
        original(self)
        calls.append({"old": [p.detach().clone() for p in self.old_encoder.parameters()],
                      "enc": [p.detach().clone() for p in self.encoder.parameters()]})
        assert all(torch.equal(a, b) for a, b in zip(calls[-1]["old"], calls[-1]["enc"], strict=True))

    monkeypatch.setattr(_RecVAENet, "update_prior", spy)
    seen = []
    model = RecVAE(**SMALL)
    # after each epoch's decoder pass the old encoder still equals the encoder
    options = FitOptions(seed=0, on_epoch=lambda r: seen.append(
        all(torch.equal(a, b) for a, b in zip(model.net_.old_encoder.parameters(),
                                              model.net_.encoder.parameters(), strict=True))), **OPTS)
    model.fit(planted_split.train, planted_split.valid, options=options)
    assert len(calls) == SMALL["epochs"] and seen == [True] * SMALL["epochs"]


# --- alternating updates ---------------------------------------------------------------------


def test_encoder_passes_leave_the_decoder_and_decoder_passes_the_encoder(planted_split):
    model = RecVAE(**SMALL)
    net = _RecVAENet(planted_split.n_items, 16, 8, torch.Generator().manual_seed(0))
    batch = DeviceCSR(planted_split.train[:50], "cpu").batch(0, 50)
    enc0 = [p.detach().clone() for p in net.encoder.parameters()]
    dec0 = [p.detach().clone() for p in net.decoder_parameters()]
    opt_dec = torch.optim.Adam(net.decoder_parameters(), lr=1e-2)
    model._update(opt_dec, model._decoder_loss(net, batch, torch.Generator().manual_seed(0)))
    assert all(torch.equal(a, b) for a, b in zip(enc0, net.encoder.parameters(), strict=True))
    assert not torch.equal(dec0[0], net.dec_w)
    assert all(p.grad is None for p in net.encoder.parameters())  # no encoder gradient at all
    opt_enc = torch.optim.Adam(net.encoder.parameters(), lr=1e-2)
    dec1 = [p.detach().clone() for p in net.decoder_parameters()]
    model._update(opt_enc, model._encoder_loss(net, batch, torch.Generator().manual_seed(0))[0])
    assert all(torch.equal(a, b) for a, b in zip(dec1, net.decoder_parameters(), strict=True))
    assert not torch.equal(enc0[0], net.encoder.w_in)


def test_decoder_pass_uses_no_input_dropout():
    """Same draws, dropout 0.5 vs 0.9: the decoder loss is identical (no dropout there)."""
    net = _RecVAENet(12, 8, 4, torch.Generator().manual_seed(0))
    batch = _toy_batch((3, 5))
    losses = [RecVAE(hidden_dim=8, latent_dim=4, dropout=d)._decoder_loss(
        net, batch, torch.Generator().manual_seed(2)).item() for d in (0.5, 0.9)]
    assert losses[0] == losses[1]
    enc = [RecVAE(hidden_dim=8, latent_dim=4, dropout=d)._encoder_loss(
        net, batch, torch.Generator().manual_seed(2))[0].item() for d in (0.0, 0.9)]
    assert enc[0] != enc[1]  # the encoder passes do use it


def test_epochs_cap_and_update_count(planted_split):
    model = RecVAE(**{**SMALL, "epochs": 50, "n_enc_epochs": 3, "n_dec_epochs": 1})
    model.fit(planted_split.train, planted_split.valid, options=FitOptions(seed=0, epochs=2, **OPTS))
    batches = -(-planted_split.train.shape[0] // SMALL["batch_size"])
    assert len(model.history_) == 2
    assert model.update_count_ == 2 * batches * (3 + 1)
    assert model.training_["best_epoch"] in (1, 2)
    assert all(h.ndcg100 is not None and math.isfinite(h.loss) for h in model.history_)


def test_score_is_the_decoder_of_the_encoder_mean(planted_split):
    model = RecVAE(**SMALL).fit(planted_split.train, planted_split.valid, options=FitOptions(seed=0, **OPTS))
    fold = planted_split.test.fold_in[:20]
    net = model.net_
    mu, _ = ref_encoder_forward(copy.deepcopy(net.encoder).double(), torch.from_numpy(fold.toarray()).double())
    expected = (mu @ net.dec_w.double() + net.dec_b.double()).detach().numpy()
    np.testing.assert_allclose(model.score(fold), expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(model.score(fold), model.score(fold))  # no dropout, no sampling


# --- checks and plan -------------------------------------------------------------------------


def test_defaults_are_the_reference_codes():
    d = get("recvae").default_params()
    assert d == dict(hidden_dim=600, latent_dim=200, gamma=0.005, beta=None, dropout=0.5, lr=5e-4,
                     batch_size=500, n_enc_epochs=3, n_dec_epochs=1,
                     mixture_weights=(3 / 20, 3 / 4, 1 / 10), epochs=50, patience=None)


@pytest.mark.parametrize("params, words", [
    ({"gamma": 0.005, "beta": 0.2}, "give one"),
    ({"gamma": 0.0}, "without a weight"),
    ({"gamma": -1.0}, "gamma"),
    ({"mixture_weights": (0.5, 0.5, 0.5)}, "mixture_weights"),
    ({"dropout": 1.0}, "dropout"),
    ({"hidden_dim": 0}, "hidden_dim"),
    ({"n_enc_epochs": 0}, "n_enc_epochs"),
])
def test_bad_parameters_are_named(params, words, planted_split):
    model = RecVAE(**params)
    assert any(words in p for p in model.param_problems())
    with pytest.raises(ValueError, match="invalid parameters"):
        model.fit(planted_split.train, options=FitOptions(**OPTS))


def test_score_before_fit_and_wrong_width_raise(planted_split):
    with pytest.raises(RuntimeError, match="not fitted"):
        RecVAE().score(planted_split.test.fold_in)
    model = RecVAE(**{**SMALL, "epochs": 1}).fit(planted_split.train, options=FitOptions(seed=0, **OPTS))
    with pytest.raises(ValueError, match="items"):
        model.score(sp.csr_matrix((2, planted_split.n_items + 1), dtype=np.float32))


def test_estimate_cost_counts_encoder_and_decoder_updates(planted_split):
    est = RecVAE.estimate_cost(DataShape.from_split(planted_split), dict(RecVAE.default_params(), **SMALL), FitOptions(**OPTS))
    assert est.seconds is not None and est.seconds > 0 and est.peak_bytes > 0
    assert "3 encoder updates" in est.detail and "1 decoder" in est.detail


def test_published_rows_map_to_recvae():
    from benchmark.reference import MODEL_TO_METHOD, published_for

    assert MODEL_TO_METHOD["recvae"] == "RecVAE"
    got = {d: [e["ndcg@100"] for e in published_for(d) if e["model"] == "recvae"] for d in ("ml-20m", "netflix", "msd")}
    assert got == {"ml-20m": [0.442], "netflix": [0.394], "msd": [0.326]}  # Shenbin et al. 2020, Table 2
