"""Mult-DAE's loss against a literal transcription of the reference notebook.

The notebook (Liang et al. 2018, ``VAE_ML20M_WWW2018.ipynb``, class ``MultiDAE``) builds::

    dae = MultiDAE(p_dims, lam=0.01 / batch_size, random_seed=98765)   # batch_size = 500

    # MultiDAE.forward_pass
    h = tf.nn.l2_normalize(self.input_ph, 1)
    h = tf.nn.dropout(h, self.keep_prob_ph)
    for i, (w, b) in enumerate(zip(self.weights, self.biases)):
        h = tf.matmul(h, w) + b
        if i != len(self.weights) - 1:
            h = tf.nn.tanh(h)

    # MultiDAE.build_graph
    log_softmax_var = tf.nn.log_softmax(logits)
    neg_ll = -tf.reduce_mean(tf.reduce_sum(log_softmax_var * self.input_ph, axis=1))
    reg = l2_regularizer(self.lam)                     # lam * tf.nn.l2_loss(w) = lam * sum(w^2) / 2
    reg_var = apply_regularization(reg, self.weights)  # summed over the weights, not the biases
    loss = neg_ll + 2 * reg_var

Below, the same lines in torch on dense tensors (dropout off: keep_prob 1, as at the
notebook's evaluation), compared with our sparse, fused loss at the registered defaults.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from benchmark.models.vae import DeviceCSR, _Net
from benchmark.registry import get

DAES = ["multdae", "gaussian-dae", "logistic-dae"]


def tf_l2_normalize(x, axis, epsilon=1e-12):
    # tf.nn.l2_normalize: x / sqrt(max(sum(x ** 2), epsilon))
    return x / torch.sqrt(torch.clamp((x * x).sum(dim=axis, keepdim=True), min=epsilon))


def tf_l2_loss(w):
    # tf.nn.l2_loss: sum(w ** 2) / 2
    return (w * w).sum() / 2


def notebook_dae_loss(input_ph, weights, biases, lam):
    """MultiDAE.forward_pass + build_graph, line by line (keep_prob = 1)."""
    h = tf_l2_normalize(input_ph, 1)
    for i, (w, b) in enumerate(zip(weights, biases, strict=True)):
        h = h @ w + b
        if i != len(weights) - 1:
            h = torch.tanh(h)
    logits = h
    log_softmax_var = torch.log_softmax(logits, dim=1)
    neg_ll = -torch.mean(torch.sum(log_softmax_var * input_ph, dim=1))
    reg_var = sum(lam * tf_l2_loss(w) for w in weights)
    return neg_ll + 2 * reg_var


def _tiny(seed=0, n_users=7, n_items=12, latent=5):
    rng = np.random.default_rng(seed)
    X = (rng.random((n_users, n_items)) < 0.35).astype(np.float32)
    X[np.arange(n_users), rng.integers(0, n_items, n_users)] = 1.0  # no empty row
    gen = torch.Generator().manual_seed(seed)
    net = _Net(n_items, (), latent, False, "tanh", gen)
    with torch.no_grad():  # fixed, non-trivial weights and biases
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=torch.float64).float() * 0.3)
    return X, net


def test_default_penalty_is_the_notebooks_lam_over_batch_size_doubled():
    model = get("multdae")()
    # lam = 0.01 / batch_size through l2_regularizer (halved), added twice -> 2e-5 * sum(W^2)
    assert model.batch_size == 500
    assert model.weight_decay == pytest.approx(2 * (0.01 / 500) / 2)
    assert model.weight_decay == pytest.approx(2e-5)
    for name in DAES:
        assert get(name)().weight_decay == model.weight_decay


def test_multdae_loss_and_gradients_equal_the_notebook_transcription():
    X, net = _tiny()
    model = get("multdae")()
    lam = 0.01 / model.batch_size  # the notebook's MultiDAE(p_dims, lam=0.01 / batch_size)

    # ours: sparse input, fused likelihood, the registered default weight_decay
    batch = DeviceCSR(sp.csr_matrix(X), "cpu").batch(0, X.shape[0])
    net.zero_grad()
    ours = model._loss(net, batch, None, 0.0, torch.Generator(), float(model.weight_decay))
    ours.backward()
    ours_grads = [p.grad.detach().clone() for p in net.parameters()]

    # the notebook, dense, on copies of the same parameters
    weights = [w.detach().clone().requires_grad_(True) for w in net.weights()]
    biases = [b.detach().clone().requires_grad_(True) for b in [*net.enc_b, *net.dec_b]]
    ref = notebook_dae_loss(torch.from_numpy(X), weights, biases, lam)
    ref.backward()

    assert float(ours.detach()) == pytest.approx(float(ref.detach()), rel=1e-5)
    named = dict(zip([n for n, _ in net.named_parameters()], ours_grads, strict=True))
    ref_grads = {
        "enc_w.0": weights[0].grad, "dec_w.0": weights[1].grad,
        "enc_b.0": biases[0].grad, "dec_b.0": biases[1].grad,
    }
    for name, g in ref_grads.items():
        torch.testing.assert_close(named[name], g, rtol=1e-4, atol=1e-6)
    # the penalty is on weights only: the bias gradients carry no decay term
    reg_only = sum(float(lam * tf_l2_loss(w)) for w in weights) * 2
    l2 = sum(float(w.detach().square().sum()) for w in net.weights())
    assert reg_only == pytest.approx(model.weight_decay * l2, rel=1e-6)

