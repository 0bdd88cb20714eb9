"""RecVAE (Shenbin, Alekseev, Tutubalina, Malykh, Nikolenko, WSDM 2020, arXiv 1912.11160).

Mult-VAE with four changes: a deeper encoder, a composite prior, a KL weight that grows
with the user's number of items, and alternating encoder / decoder updates. Implemented
after the authors' code, github.com/ilya-shenbin/RecVAE, branch master at 05fdd52
(``model.py``, ``run.py``; defaults of ``run.py`` at eda46ac, the 2020 refactoring that
the README's reproduction command ``run.py --n-epochs 50 --gamma 0.005`` goes with).
Where the paper and that code differ, the code is followed; each difference is named below.

Encoder (``model.py`` L49-77; paper section 3, model architecture, Figure 1), x_u the binary row::

    x = x_u / ||x_u||_2 -> dropout (training only)
    h1 = LN(swish(W1 x + b1))
    hk = LN(swish(Wk h(k-1) + bk + h1 + ... + h(k-1)))      k = 2..5   (dense connections)
    mu = W_mu h5 + b_mu,  logvar = W_lv h5 + b_lv

with swish(a) = a * sigmoid(a) and LN a layer norm with epsilon 0.1 (``model.py`` L50: the
code's ``eps=1e-1``, not torch's 1e-5). Decoder: one linear layer z -> logits over the
items, multinomial likelihood log p(x|z) = sum_i x_ui log softmax(f)_i (``model.py`` L86, L108).

Composite prior (``model.py`` L16-46; paper section 3, composite prior), per latent coordinate j::

    p(z_j | x) = 3/20 N(z_j; 0, 1) + 3/4 N(z_j; mu_old(x)_j, exp(logvar_old(x)_j))
               + 1/10 N(z_j; 0, exp(10))

where (mu_old, logvar_old) is the posterior of a frozen copy of the encoder (no dropout),
copied from the encoder once per epoch. The mixture is taken per coordinate (the code's
``logsumexp`` over the last axis of a (b, d, 3) stack), so p(z|x) is a product of d
one-dimensional mixtures, not a mixture of three d-dimensional Gaussians as the paper's
formula reads; the code's version is used. The weights (3/20, 3/4, 1/10) are
``model.py`` L17; the wide component's log-variance 10 is L29. The paper describes the
middle component as the posterior under the previous epoch's parameters; the paper-time
code (branch ``wsdm``, ``recvae.ipynb``) kept per-user embeddings of it, the master code
re-encodes x with the frozen copy, which also works for users outside the training set.

KL term and beta (``model.py`` L102-109; paper section 3, rescaling beta): a one-sample estimate

    KL_u = sum_j [log q(z_j | x_u) - log p(z_j | x_u)],  z ~ q(z | x_u)

weighted per user by beta_u = gamma * |I_u| (|I_u| = sum of the user's row, the item count
for binary data), so the loss of a minibatch is mean_u(-log p(x_u|z_u) + gamma |I_u| KL_u).
gamma = 0.005 (``run.py`` L19 at eda46ac and the README's ML-20M command).

Alternating training (``run.py`` L154-177; paper section 3, alternating training and
regularisation by denoising): two Adam optimisers (lr 5e-4, L20), one over the encoder
and one over the decoder. Each epoch runs
``n_enc_epochs`` = 3 passes over the shuffled training users updating the encoder only,
with dropout 0.5 on the input (L175), then copies the encoder into the prior's frozen copy
(L176, ``update_prior``), then ``n_dec_epochs`` = 1 pass updating the decoder only, without
input dropout (L177, ``dropout_rate=0``) but with z still sampled (the model is in training
mode). The decoder pass's gradient does not involve the KL term (it does not depend on the
decoder), so it is not computed there. Batch 500 users (L17), hidden 600 (L15), latent 200
(L16), 50 epochs (L21 at eda46ac; the README's command), the epoch kept is the one with the
best validation NDCG@100 (L186-188).

Two details the code fixes and the paper does not state, both followed: the prior's frozen
encoder starts as an independently initialised encoder (``model.py`` L31), so the first
epoch's encoder passes see the posterior of a random network as the middle component; and
all linear layers use torch's default initialisation, U(-1/sqrt(fan_in), 1/sqrt(fan_in))
for weights and biases (drawn here from the seeded generator).

At scoring (the only inference path): z = mu of the encoder without dropout, scores =
decoder logits (``run.py`` L103 with ``model.eval()``).

Departures, none of which changes the model's arithmetic: the input layer is an
``embedding_bag`` over the sparse row (the L2 normalisation and dropout are per-sample
weights, dropout on zero entries being a no-op), the multinomial likelihood is the fused
sparse-target kernel of :mod:`benchmark.models.vae`, the decoder's weights are frozen
(``requires_grad=False``) during encoder passes instead of computing gradients the
encoder's optimiser then ignores, and validation, best-epoch restore and the time budget
go through :func:`benchmark.training.run_epochs`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from ..cost import DataShape, Estimate, timed, validation_seconds
from ..model import EpochReport, FitOptions, IterativeRecommender, seed_streams
from ..registry import register
from ..torch_parts import (
    DeviceCSR,
    SparseBatch,
    _adam,
    log_likelihood,
    score_in_batches,
    timing_batches,
)
from ..training import resolve_epochs

__all__ = ["RecVAE", "log_norm_pdf", "composite_prior_log_density", "kl_weights"]

from .recvae_net import (  # noqa: F401  (re-exported)
    LN_EPS,
    MIXTURE_WEIGHTS,
    N_LAYERS,
    WIDE_LOGVAR,
    _Encoder,
    _RecVAENet,
    composite_prior_log_density,
    kl_weights,
    log_norm_pdf,
)


@register("recvae", display_name="RecVAE")
class RecVAE(IterativeRecommender):
    """RecVAE (Shenbin et al. WSDM 2020): composite prior, beta = gamma |I_u|, alternating updates.

    Args:
        hidden_dim: width of the encoder's five dense-connected layers (``run.py`` L15: 600).
        latent_dim: size of z (``run.py`` L16: 200).
        gamma: KL weight per item of the user, beta_u = gamma * |I_u| (``run.py`` L19 at
            eda46ac and the README's ML-20M command: 0.005; paper section 3, rescaling beta). 0 with
            ``beta`` set uses a constant weight instead (the code's ``--beta``).
        beta: constant KL weight, used only when ``gamma`` is 0 (``model.py`` L105-106;
            the paper's ablation); None by default.
        dropout: dropout rate on the L2-normalised input during the encoder passes
            (``run.py`` L175: 0.5); the decoder passes use none (L177).
        lr: learning rate of both Adam optimisers (``run.py`` L20: 5e-4).
        batch_size: training users per minibatch (``run.py`` L17: 500).
        n_enc_epochs: encoder passes over the training users per epoch (``run.py`` L22: 3).
        n_dec_epochs: decoder passes per epoch (``run.py`` L23: 1).
        mixture_weights: weights of the prior's standard normal, old posterior and wide
            normal components (``model.py`` L17: 3/20, 3/4, 1/10).
        epochs: epochs of alternating updates (``run.py`` L21 at eda46ac and the README: 50);
            ``--epochs`` caps it.
        patience: stop after this many epochs without a better validation NDCG@100
            (None, the code's behaviour: run every epoch and keep the best).

    Attributes:
        net_: the trained network (best validation epoch).
        history_: one EpochReport per epoch (loss = mean -ELBO of the encoder passes).
        update_count_: minibatch updates made (encoder and decoder together).
    """

    iterative = True
    _SCORE_BATCH = 2048

    def __init__(
        self,
        *,
        hidden_dim: int = 600,
        latent_dim: int = 200,
        gamma: float = 0.005,
        beta: float | None = None,
        dropout: float = 0.5,
        lr: float = 5e-4,
        batch_size: int = 500,
        n_enc_epochs: int = 3,
        n_dec_epochs: int = 1,
        mixture_weights: tuple[float, float, float] = MIXTURE_WEIGHTS,
        epochs: int = 50,
        patience: int | None = None,
    ) -> None:
        self.hidden_dim = hidden_dim
        self.latent_dim = latent_dim
        self.gamma = gamma
        self.beta = beta
        self.dropout = dropout
        self.lr = lr
        self.batch_size = batch_size
        self.n_enc_epochs = n_enc_epochs
        self.n_dec_epochs = n_dec_epochs
        self.mixture_weights = mixture_weights
        self.epochs = epochs
        self.patience = patience

    # --- checks ------------------------------------------------------------------------------
    def param_problems(self) -> list[str]:
        problems = []

        def is_int(v: Any, lo: int) -> bool:
            return isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= lo

        def is_num(v: Any) -> bool:
            return isinstance(v, (int, float, np.number)) and not isinstance(v, bool) and math.isfinite(v)

        for name in ("hidden_dim", "latent_dim", "batch_size", "epochs", "n_enc_epochs"):
            if not is_int(getattr(self, name), 1):
                problems.append(f"{name}={getattr(self, name)!r} (an integer >= 1)")
        if not is_int(self.n_dec_epochs, 0):
            problems.append(f"n_dec_epochs={self.n_dec_epochs!r} (an integer >= 0)")
        if not (is_num(self.dropout) and 0.0 <= self.dropout < 1.0):
            problems.append(f"dropout={self.dropout!r} (must be in [0, 1))")
        if not (is_num(self.lr) and self.lr > 0):
            problems.append(f"lr={self.lr!r} (must be > 0)")
        if not (is_num(self.gamma) and self.gamma >= 0):
            problems.append(f"gamma={self.gamma!r} (a number >= 0)")
        elif self.beta is not None and not (is_num(self.beta) and self.beta >= 0):
            problems.append(f"beta={self.beta!r} (a number >= 0, or None)")
        elif self.gamma > 0 and self.beta is not None:
            problems.append(f"gamma={self.gamma} and beta={self.beta}: give one (gamma 0 for a constant beta)")
        elif self.gamma == 0 and self.beta is None:
            problems.append("gamma=0 and beta=None leave the KL term without a weight (set beta, e.g. 0.2)")
        w = self.mixture_weights
        if not (
            isinstance(w, (list, tuple))
            and len(w) == 3
            and all(is_num(v) and v >= 0 for v in w)
            and abs(sum(w) - 1.0) < 1e-6
            and w[1] + w[0] > 0
        ):
            problems.append(
                f"mixture_weights={w!r} (three weights >= 0 summing to 1, for the standard "
                f"normal, the old posterior and the wide normal)"
            )
        if self.patience is not None and not is_int(self.patience, 0):
            problems.append(f"patience={self.patience!r} (an integer >= 0, or None)")
        return problems

    def _empty_module(self, name: str) -> torch.nn.Module:
        """A fresh network of the fitted shape, for :meth:`load` to fill."""
        if name != "net_":
            return super()._empty_module(name)
        return _RecVAENet(int(self.n_items_), int(self.hidden_dim), int(self.latent_dim),
                          torch.Generator().manual_seed(0))

    # --- training ----------------------------------------------------------------------------
    def _kl_weight(self, batch: SparseBatch) -> torch.Tensor | float:
        if float(self.gamma) > 0:
            return kl_weights(batch, float(self.gamma))
        return float(self.beta)

    def _encoder_loss(
        self, net: _RecVAENet, batch: SparseBatch, gen: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """-ELBO of an encoder pass (``model.py`` L96-112): returns (loss, mean weighted KL)."""
        mu, logvar = net.encoder(batch, float(self.dropout), gen)
        std = torch.exp(0.5 * logvar)
        z = mu + torch.randn(std.shape, generator=gen, device=std.device) * std
        ll = log_likelihood(net.decode(z), batch, "multinomial")
        with torch.no_grad():
            post_mu, post_logvar = net.old_encoder(batch, 0.0, None)
        log_p = composite_prior_log_density(z, post_mu, post_logvar, tuple(self.mixture_weights))
        kl = (log_norm_pdf(z, mu, logvar) - log_p).sum(dim=1)
        kld = (kl * self._kl_weight(batch)).mean()
        return kld - ll.mean(), kld.detach()

    def _decoder_loss(self, net: _RecVAENet, batch: SparseBatch, gen: torch.Generator) -> torch.Tensor:
        """-log-likelihood of a decoder pass: encoder without dropout, z sampled (``run.py`` L177)."""
        with torch.no_grad():
            mu, logvar = net.encoder(batch, 0.0, None)
            std = torch.exp(0.5 * logvar)
            z = mu + torch.randn(std.shape, generator=gen, device=std.device) * std
        return -log_likelihood(net.decode(z), batch, "multinomial").mean()

    @staticmethod
    def _update(opt: torch.optim.Optimizer, loss: torch.Tensor) -> None:
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def _start(self, train: sp.csr_matrix, options: FitOptions) -> None:
        """A fresh network, two Adam optimisers (encoder, decoder) and the random streams.

        Seeds: one ``SeedSequence(options.seed)`` spawned into named streams (weights,
        dropout and reparameterisation noise, minibatch order). The epoch loop (validation
        NDCG@100, best epoch, patience, time budget) is the base's.
        """
        if train.nnz == 0:
            raise ValueError(f"{self._label()}: the training matrix is empty (no interactions)")
        device = torch.device(options.resolve_device())
        self.n_items_ = int(train.shape[1])
        self.device_ = str(device)
        self._data = DeviceCSR(train, device)
        streams = seed_streams(options.seed, "init", "noise", "order")
        init_gen = torch.Generator().manual_seed(streams["init"])
        self._gen = torch.Generator(device=device).manual_seed(streams["noise"])
        self._rng = np.random.default_rng(streams["order"])
        net = _RecVAENet(self.n_items_, int(self.hidden_dim), int(self.latent_dim), init_gen).to(device)
        self.net_ = net
        self._opt_enc = _adam(list(net.encoder.parameters()), float(self.lr))
        self._opt_dec = _adam(net.decoder_parameters(), float(self.lr))
        self.update_count_ = 0

    def _passes(self, count: int, step) -> list[torch.Tensor]:
        data, n, bs = self._data, self._data.n_rows, int(self.batch_size)
        losses = []
        for _ in range(count):
            epoch_data = data.permuted(self._rng.permutation(n))  # run.py L49-52: reshuffled per pass
            for start in range(0, n, bs):
                losses.append(step(epoch_data.batch(start, min(start + bs, n))))
                self.update_count_ += 1
        return losses

    def _train_epoch(self, epoch: int) -> EpochReport:
        net, gen = self.net_, self._gen

        def enc_step(batch: SparseBatch) -> torch.Tensor:
            loss, kld = self._encoder_loss(net, batch, gen)
            self._update(self._opt_enc, loss)
            return torch.stack([loss.detach(), kld])

        def dec_step(batch: SparseBatch) -> torch.Tensor:
            loss = self._decoder_loss(net, batch, gen)
            self._update(self._opt_dec, loss)
            return loss.detach()

        net.train()
        net.decoder_parameters()[0].requires_grad_(False)
        net.decoder_parameters()[1].requires_grad_(False)
        try:
            enc = torch.stack(self._passes(int(self.n_enc_epochs), enc_step)).mean(dim=0)
        finally:
            for p in net.decoder_parameters():
                p.requires_grad_(True)
        net.update_prior()
        dec = self._passes(int(self.n_dec_epochs), dec_step)
        extra: dict[str, Any] = {"kl": float(enc[1].item()), "updates": self.update_count_}
        if dec:
            extra["decoder_nll"] = float(torch.stack(dec).mean().item())
        return EpochReport(loss=float(enc[0].item()), extra=extra)

    def _get_state(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().clone() for k, v in self.net_.state_dict().items()}

    def _set_state(self, state: dict[str, torch.Tensor]) -> None:
        self.net_.load_state_dict(state)

    def _end(self, options: FitOptions) -> None:
        del self._data, self._opt_enc, self._opt_dec, self._gen, self._rng

    # --- inference ---------------------------------------------------------------------------
    def _score(self, fold_in: sp.csr_matrix) -> np.ndarray:
        """Scores from fold-in rows alone: encoder mean without dropout, decoder logits.

        Args:
            fold_in: (n_rows, n_items) CSR of held-out users' fold-in items.

        Returns:
            (n_rows, n_items) float32 scores (higher is better).
        """
        net = self.net_
        return score_in_batches(fold_in, net, lambda b: net.decode(net.encoder(b, 0.0, None)[0]),
                                self._SCORE_BATCH)

    # --- results, tuning, plan ---------------------------------------------------------------
    def results_extra(self) -> dict[str, Any]:
        extra = super().results_extra()
        if hasattr(self, "training_"):
            extra["training"] = dict(self.training_, updates=self.update_count_, device=self.device_)
        return extra

    @classmethod
    def search_space(cls, trial: Any) -> dict[str, Any]:
        """Optuna space around the code's defaults (gamma 0.005, 600/200, lr 5e-4, dropout 0.5)."""
        return {
            "gamma": trial.suggest_float("gamma", 5e-4, 5e-2, log=True),
            "hidden_dim": trial.suggest_categorical("hidden_dim", [300, 600, 1200]),
            "latent_dim": trial.suggest_categorical("latent_dim", [100, 200, 400]),
            "lr": trial.suggest_float("lr", 1e-4, 3e-3, log=True),
            "dropout": trial.suggest_float("dropout", 0.1, 0.8),
        }

    @classmethod
    def estimate_cost(cls, shape: DataShape, params: dict[str, Any], options: FitOptions) -> Estimate:
        """Epochs x updates per epoch x one update, timed at full width on this device,
        + a validation pass per epoch.

        An epoch makes ceil(n / batch) x (n_enc_epochs encoder updates + n_dec_epochs
        decoder updates); both kinds are timed. Peak: the encoder's weights with gradients
        and Adam's two moments (4 copies) plus its frozen copy, the decoder's 4 copies, one
        best-epoch snapshot of everything, a minibatch's dense logits and their gradient
        buffers (4 x batch x items), the data.
        """
        model = cls(**params)
        model.check_params()
        device = torch.device(options.resolve_device())
        x = shape.train_matrix()
        bs = int(model.batch_size)
        batches = timing_batches(x, bs, device)
        net = _RecVAENet(x.shape[1], int(model.hidden_dim), int(model.latent_dim),
                         torch.Generator().manual_seed(0)).to(device)
        model.net_, model.n_items_ = net, x.shape[1]
        opt_enc = _adam(list(net.encoder.parameters()), float(model.lr))
        opt_dec = _adam(net.decoder_parameters(), float(model.lr))
        gen = torch.Generator(device=device).manual_seed(0)

        def sync() -> None:
            if device.type == "cuda":
                torch.cuda.synchronize()

        def enc_step() -> None:
            b = next(batches)
            for p in net.decoder_parameters():
                p.requires_grad_(False)
            model._update(opt_enc, model._encoder_loss(net, b, gen)[0])
            for p in net.decoder_parameters():
                p.requires_grad_(True)
            sync()

        def dec_step() -> None:
            model._update(opt_dec, model._decoder_loss(net, next(batches), gen))
            sync()

        t_enc, t_dec = timed(enc_step, repeats=3), timed(dec_step, repeats=3)
        epochs = resolve_epochs(model.epochs, options)
        n_batches = -(-x.shape[0] // bs)
        n_enc, n_dec = int(model.n_enc_epochs), int(model.n_dec_epochs)
        per_epoch = n_batches * (n_enc * t_enc + n_dec * t_dec)
        validate = validation_seconds(model, shape, users=2 * bs)
        n_enc_params = sum(p.numel() for p in net.encoder.parameters())
        n_dec_params = sum(p.numel() for p in net.decoder_parameters())
        peak = 4 * (5 * n_enc_params + 4 * n_dec_params + (2 * n_enc_params + n_dec_params))
        peak += 4 * bs * x.shape[1] * 4 + x.nnz * 20
        return Estimate(
            epochs * (per_epoch + validate),
            int(peak),
            f"{epochs} epochs x {n_batches} batches x ({n_enc} encoder updates of "
            f"{t_enc * 1000:.0f} ms + {n_dec} decoder of {t_dec * 1000:.0f} ms) + validation",
        )

