"""The autoencoder family of Liang et al. 2018: Mult-VAE, Mult-DAE and their likelihoods.

One implementation, two switches:

- ``variational``: True is the VAE (encoder gives mu and log sigma^2, z = mu + eps * sigma
  in training, z = mu at scoring, KL weight beta annealed); False is the DAE (no KL).
- ``likelihood`` (per user u, x_u the binary click row, f_u the decoder output):
  ``multinomial``  log p(x|z) = sum_i x_ui log softmax(f_u)_i
  ``gaussian``     log p(x|z) = -sum_i c_ui / 2 (x_ui - f_ui)^2, c_ui = c1 if x_ui else c0
  ``logistic``     log p(x|z) = sum_i x_ui log s(f_ui) + (1 - x_ui) log(1 - s(f_ui))

Architecture (the paper's notation: VAE [I-600-200-600-I], DAE [I-200-I])::

    x (sparse) -> L2-normalise row -> dropout on the non-zeros
      -> [I x h1] tanh -> ... -> [hk x 2d] (mu, logvar)  (VAE; DAE: [hk x d] then tanh)
      -> z -> [d x hk] tanh -> ... -> [h1 x I] -> f (dense logits, the only dense tensor)

Loss per minibatch, as the reference notebook computes it::

    mean_u(-log p(x_u|z_u)) + beta * mean_u KL(q(z|x_u) || N(0, I)) + weight_decay * sum ||W||^2

where the sum runs over the weight matrices (not the biases): the notebook adds
``2 * l2_regularizer(lam)`` = lam * sum W^2 to the loss, which is what ``weight_decay``
means here (not Adam's decoupled or gradient-added decay, which would halve it).
beta = min(anneal_cap, updates / total_anneal_steps), counted over minibatches across
epochs and never reset.

``anneal_cap="auto"`` is the paper's search (section 2.2.2, Figure 1): "we start training
with beta = 0, and gradually increase beta to 1 ... and record the best beta when its
performance reaches the peak. We then retrain the model with the same annealing schedule,
but stop increasing beta after reaching that value." The search run anneals linearly so
that beta REACHES 1 at ``BETA_SEARCH_REACH`` (80%) of its own updates, whatever the data
size (the notebook's 200,000 updates would only reach 0.23 on ML-20M and 0.002 on
ml-100k), runs every epoch (no early stop, so the whole beta range is seen) and records
validation NDCG@100 against beta; beta* is the beta of its best validation epoch; a fresh
model is then trained with the same schedule capped at beta* (``anneal_cap = beta*``).

Choices the paper and notebook leave open (documented, each a constructor parameter):
Gaussian confidences c0 = 0.1, c1 = 1; the Gaussian and logistic variants start their
output bias at each item's marginal (``bias_init="marginal"``), the multinomial ones at the
notebook's near-zero init; ``epochs`` 200 (the paper's ML-20M count) with ``patience`` 30
epochs of early stopping; torch's Adam, which differs from TensorFlow's only in where the
1e-8 epsilon enters.

Speed: the training matrix stays sparse (on the chosen device); each minibatch is a
contiguous slice of a row-permuted CSR (no per-user Python loop); the first layer is an
``embedding_bag`` whose per-sample weights carry the L2 normalisation and the dropout; the
likelihood and its gradient are one fused autograd function that never densifies x.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from ..cost import DataShape, Estimate
from ..model import FitOptions, Recommender
from ..protocol import HeldOut
from ..torch_parts import (  # noqa: F401  (re-exported: plugins import them from here)
    LIKELIHOODS,
    DeviceCSR,
    SparseBatch,
    _adam,
    beta_schedule,
    kl_divergence,
    log_likelihood,
    score_in_batches,
)
from ..training import resolve_epochs
from .vae_parts import (  # noqa: F401
    ACTIVATIONS,
    _Net,
    autoencoder_cost,
    make_variant,
    param_problems,
    train_run,
)

__all__ = [
    "AutoEncoder",
    "MultVAE",
    "MultDAE",
    "GaussianVAE",
    "LogisticVAE",
    "GaussianDAE",
    "LogisticDAE",
    "beta_schedule",
    "log_likelihood",
    "kl_divergence",
]

#: Fraction of the beta-search run's updates after which beta has reached 1 (see above).
BETA_SEARCH_REACH = 0.8


class AutoEncoder(Recommender):
    """Autoencoder for implicit feedback (Liang et al. 2018); registered as six variants.

    Args:
        variational: True: VAE (KL term, reparameterisation, z = mu at scoring);
            False: denoising autoencoder.
        likelihood: "multinomial", "gaussian" or "logistic".
        hidden_dims: encoder hidden sizes (the decoder mirrors them); () for [I-d-I].
        latent_dim: size d of z.
        activation: "tanh" (paper), "relu" or "sigmoid" between layers.
        dropout: dropout rate on the L2-normalised input in training (paper 0.5).
        lr: Adam learning rate (paper 1e-3).
        batch_size: training users per minibatch (paper 500).
        weight_decay: lam in ``loss = mean_u(-log p(x_u|z_u)) + lam * sum ||W||^2``,
            the sum over the weight matrices only (not the biases), added to the
            per-user-mean minibatch loss (not Adam's decay). The notebook's Mult-DAE is
            ``MultiDAE(p_dims, lam=0.01 / batch_size)`` minimising ``neg_ll + 2 * reg_var``
            with TF's ``l2_regularizer(lam)`` = lam * sum(W^2) / 2, so with batch 500:
            2 * (0.01 / 500) / 2 = 2e-5, the DAE default here; the notebook's Mult-VAE
            uses lam = 0.0 (the VAE default).
        anneal_cap: the largest KL weight beta, or "auto" for the paper's search
            (VAE only; ignored by the DAE).
        total_anneal_steps: updates over which beta grows linearly from 0 (paper 200,000).
        c0: Gaussian confidence on unclicked items (our choice; the paper gives none).
        c1: Gaussian confidence on clicked items.
        bias_init: output-layer bias at the start: "paper" (the notebook's truncated
            normal, sd 0.001) or "marginal" (each item's best constant prediction under
            the likelihood, from the training clicks: log frequency, log-odds, or
            c1 p / (c1 p + c0 (1 - p)) for the Gaussian). The Gaussian and logistic
            variants default to "marginal" (our choice; the paper gives no init for them:
            from 0, Adam's ~lr-sized steps need thousands of updates to bring the
            log-odds of a 1%-dense item to -4.6, so on small data they learn only
            popularity in the time the multinomial needs to beat it).
        epochs: most training epochs (paper 200 on ML-20M); ``--epochs`` caps it.
        patience: stop after this many epochs without a better validation NDCG@100
            (None: run all epochs).
        validate_every: validate every n-th epoch.

    Attributes:
        net_: the trained torch module (best validation epoch).
        history_: list of EpochReport (loss, beta, validation NDCG@100, seconds).
        beta_curve_: with ``anneal_cap="auto"``: the search's (epoch, beta, NDCG@100).
        beta_: the KL cap used by the final training.
        update_count_: minibatch updates of the final training.
    """

    iterative = True
    _SCORE_BATCH = 2048

    def __init__(
        self,
        *,
        variational: bool = True,
        likelihood: str = "multinomial",
        hidden_dims: tuple[int, ...] = (600,),
        latent_dim: int = 200,
        activation: str = "tanh",
        dropout: float = 0.5,
        lr: float = 1e-3,
        batch_size: int = 500,
        weight_decay: float = 0.0,
        anneal_cap: float | str = 0.2,
        total_anneal_steps: int = 200_000,
        c0: float = 0.1,
        c1: float = 1.0,
        bias_init: str = "paper",
        epochs: int = 200,
        patience: int | None = 30,
        validate_every: int = 1,
    ) -> None:
        self.variational = variational
        self.likelihood = likelihood
        self.hidden_dims = hidden_dims
        self.latent_dim = latent_dim
        self.activation = activation
        self.dropout = dropout
        self.lr = lr
        self.batch_size = batch_size
        self.weight_decay = weight_decay
        self.anneal_cap = anneal_cap
        self.total_anneal_steps = total_anneal_steps
        self.c0 = c0
        self.c1 = c1
        self.bias_init = bias_init
        self.epochs = epochs
        self.patience = patience
        self.validate_every = validate_every

    # --- checks ------------------------------------------------------------------------------
    def param_problems(self) -> list[str]:
        """The parameters' ranges (:func:`benchmark.models.vae_parts.param_problems`)."""
        return param_problems(self)

    def _new_net(self, n_items: int, generator: torch.Generator) -> _Net:
        hidden = tuple(int(h) for h in self.hidden_dims)
        return _Net(n_items, hidden, int(self.latent_dim), bool(self.variational), self.activation,
                    generator)

    def _empty_module(self, name: str) -> torch.nn.Module:
        if name != "net_":
            return super()._empty_module(name)
        return self._new_net(int(self.n_items_), torch.Generator().manual_seed(0))

    # --- training ----------------------------------------------------------------------------
    def _fit(self, train: sp.csr_matrix, valid: HeldOut | None, options: FitOptions) -> None:
        """Train on the training users; select the epoch by validation NDCG@100.

        Args:
            train: (n_users, n_items) binary CSR of the training users.
            valid: held-out validation users (fold-in -> holdout) for epoch selection.
            options: seed, device, epoch cap, time budget, on_epoch callback, threads (torch's
                thread count for this fit only, then restored; None leaves torch's own).
        """
        if train.nnz == 0:
            raise ValueError(f"{self._label()}: the training matrix is empty (no interactions)")
        previous = torch.get_num_threads()
        if options.threads is not None:
            torch.set_num_threads(int(options.threads))
        try:
            self._fit_on(train, valid, options)
        finally:
            torch.set_num_threads(previous)

    def _fit_on(self, train: sp.csr_matrix, valid: HeldOut | None, options: FitOptions) -> None:
        name = self._label()
        device = torch.device(options.resolve_device())
        self.n_items_ = int(train.shape[1])
        self.device_ = str(device)
        data = DeviceCSR(train, device)
        epochs = resolve_epochs(self.epochs, options)
        deadline = None
        if options.time_budget is not None:
            deadline = time.perf_counter() + float(options.time_budget)
        self.beta_curve_ = None
        if self.variational and self.anneal_cap == "auto":
            if valid is None or valid.holdout.nnz == 0:
                raise ValueError(
                    f"{name}: anneal_cap='auto' picks beta by validation NDCG@100 and needs "
                    f"validation users; pass valid= or set a number, e.g. anneal_cap=0.2"
                )
            steps = self.beta_search_steps(data.n_rows, epochs)
            search = self._train(data, valid, options, 1.0, epochs, deadline, None,
                                 "beta search", anneal_steps=steps, patience=None)
            best = next(h for h in search.history if h.epoch == search.best_epoch)
            self.beta_curve_ = [
                {"epoch": h.epoch, "beta": h.beta, "ndcg@100": h.ndcg100}
                for h in search.history
                if h.ndcg100 is not None
            ]
            self.beta_search_ = dict(search.as_dict(), total_anneal_steps=steps,
                                     reach=BETA_SEARCH_REACH, beta_star=float(best.beta))
            cap = float(best.beta)
        else:
            steps = int(self.total_anneal_steps)
            cap = float(self.anneal_cap) if self.variational else 0.0
        outcome = self._train(data, valid, options, cap, epochs, deadline, options.on_epoch, name,
                              anneal_steps=steps, patience=self.patience)
        self.anneal_steps_ = steps if self.variational else None
        self.beta_ = cap if self.variational else None
        self.history_ = outcome.history
        self.training_ = outcome.as_dict()

    #: One full training from a fresh initialisation, annealing beta up to ``cap``
    #: (:func:`benchmark.models.vae_parts.train_run`).
    _train = train_run

    @classmethod
    def estimate_cost(cls, shape: DataShape, params: dict[str, Any], options: FitOptions) -> Estimate:
        """Epochs x (updates per epoch x one update, timed at full width on this device,
        + a validation pass per validated epoch); twice that with the beta search
        (:func:`benchmark.models.vae_parts.autoencoder_cost`)."""
        return autoencoder_cost(cls, shape, params, options)

    def beta_search_steps(self, n_train_users: int, epochs: int) -> int:
        """Updates over which the beta search anneals 0 -> 1 (``anneal_cap="auto"``).

        The search run makes ``epochs * ceil(n / batch_size)`` updates; beta reaches 1 at
        ``BETA_SEARCH_REACH`` of them (update index counted from 0), so the last 20% of
        the run is at beta = 1.
        """
        updates = int(epochs) * -(-int(n_train_users) // int(self.batch_size))
        return max(1, int(BETA_SEARCH_REACH * (updates - 1)))

    def _marginal_bias(self, data: DeviceCSR) -> torch.Tensor:
        """(n_items,) best constant logit per item under the likelihood (``bias_init``)."""
        counts = torch.bincount(data.indices, minlength=data.shape[1]).cpu().numpy()
        p = (counts + 0.5) / (data.n_rows + 1.0)  # smoothed: no item at 0 or 1
        if self.likelihood == "multinomial":
            b = np.log(p)
        elif self.likelihood == "logistic":
            b = np.log(p / (1.0 - p))
        else:
            c0, c1 = float(self.c0), float(self.c1)
            b = c1 * p / (c1 * p + c0 * (1.0 - p))
        return torch.from_numpy(b.astype(np.float32)).to(data.device)

    def _step(
        self,
        net: _Net,
        opt: torch.optim.Optimizer,
        batch: SparseBatch,
        beta: float | None,
        dropout: float,
        gen: torch.Generator,
        wd: float,
    ) -> torch.Tensor:
        """One Adam update on one minibatch; returns the (detached) loss."""
        loss = self._loss(net, batch, beta, dropout, gen, wd)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.detach()

    def _loss(
        self,
        net: _Net,
        batch: SparseBatch,
        beta: float | None,
        dropout: float,
        gen: torch.Generator,
        wd: float,
    ) -> torch.Tensor:
        """The notebook's minibatch loss: -ELBO (VAE) or -log-likelihood (DAE) + L2."""
        mu, logvar = net.encode(batch, dropout, gen)
        if self.variational:
            std = torch.exp(0.5 * logvar)
            eps = torch.randn(std.shape, generator=gen, device=std.device)
            z = mu + eps * std
        else:
            z = mu
        logits = net.decode(z)
        ll = log_likelihood(logits, batch, self.likelihood, float(self.c0), float(self.c1))
        loss = -ll.mean()
        if self.variational and beta:
            loss = loss + beta * kl_divergence(mu, logvar).mean()
        if wd > 0:
            loss = loss + wd * sum(w.square().sum() for w in net.weights())
        return loss

    # --- inference ---------------------------------------------------------------------------
    def _score(self, fold_in: sp.csr_matrix) -> np.ndarray:
        """Scores from fold-in rows alone: dropout off, z = mu; the decoder's logits.

        Args:
            fold_in: (n_rows, n_items) CSR of held-out users' fold-in items.

        Returns:
            (n_rows, n_items) float32 scores (higher is better).
        """
        net = self.net_
        return score_in_batches(fold_in, net, lambda b: net.decode(net.encode(b, 0.0, None)[0]),
                                self._SCORE_BATCH)

    # --- results and tuning ------------------------------------------------------------------
    def results_extra(self) -> dict[str, Any]:
        extra = super().results_extra()
        if hasattr(self, "training_"):
            extra["training"] = dict(self.training_, updates=self.update_count_, device=self.device_)
        if getattr(self, "beta_", None) is not None:
            extra["beta"] = self.beta_
            extra["anneal_steps"] = self.anneal_steps_
        if getattr(self, "beta_curve_", None):
            extra["beta_curve"] = self.beta_curve_
            extra["beta_search"] = self.beta_search_
        return extra

    @classmethod
    def search_space(cls, trial: Any) -> dict[str, Any]:
        """Optuna space around the paper's values (names are constructor parameters)."""
        d = cls.default_params()
        space = {
            "latent_dim": trial.suggest_categorical("latent_dim", [50, 100, 200, 400]),
            "dropout": trial.suggest_float("dropout", 0.1, 0.8),
            "lr": trial.suggest_float("lr", 1e-4, 1e-2, log=True),
        }
        if d["variational"]:
            space["anneal_cap"] = trial.suggest_float("anneal_cap", 0.0, 1.0)
        else:
            # around the notebook's 2e-5 (two decades each way)
            space["weight_decay"] = trial.suggest_float("weight_decay", 2e-7, 2e-3, log=True)
        if d["likelihood"] == "gaussian":
            space["c0"] = trial.suggest_float("c0", 0.01, 1.0, log=True)
        return space


#: The notebook's DAE penalty: lam = 0.01 / batch_size through ``l2_regularizer`` (halved) and
#: added twice, so 2 * (0.01 / 500) / 2 * sum(W^2) = 2e-5 * sum(W^2) on the per-user mean
#: loss (``VAE_ML20M_WWW2018.ipynb``, ``MultiDAE.build_graph`` and ``dae = MultiDAE(...)``).
DAE_WEIGHT_DECAY = 2 * (0.01 / 500) / 2

_DAE = {"variational": False, "hidden_dims": (), "latent_dim": 200, "weight_decay": DAE_WEIGHT_DECAY}

MultVAE = make_variant(
    AutoEncoder, "multvae", "MultVAE",
    "Mult-VAE^PR (Liang et al. 2018): [I-600-200-600-I], multinomial likelihood, beta to 0.2.",
    likelihood="multinomial",
)
MultDAE = make_variant(
    AutoEncoder, "multdae", "MultDAE",
    "Mult-DAE (Liang et al. 2018): [I-200-I], multinomial likelihood, weight penalty 2e-5 * sum(W^2).",
    likelihood="multinomial", **_DAE,
)
GaussianVAE = make_variant(
    AutoEncoder, "gaussian-vae", "GaussianVAE",
    "Gaussian-VAE (Liang et al. 2018, Table 3): Mult-VAE with a confidence-weighted Gaussian likelihood.",
    likelihood="gaussian", bias_init="marginal",
)
LogisticVAE = make_variant(
    AutoEncoder, "logistic-vae", "LogisticVAE",
    "Logistic-VAE (Liang et al. 2018, Table 3): Mult-VAE with per-item Bernoulli likelihood.",
    likelihood="logistic", bias_init="marginal",
)
GaussianDAE = make_variant(
    AutoEncoder, "gaussian-dae", "GaussianDAE",
    "Gaussian-DAE (Liang et al. 2018, Table 3): Mult-DAE with a confidence-weighted Gaussian likelihood.",
    likelihood="gaussian", bias_init="marginal", **_DAE,
)
LogisticDAE = make_variant(
    AutoEncoder, "logistic-dae", "LogisticDAE",
    "Logistic-DAE (Liang et al. 2018, Table 3): Mult-DAE with per-item Bernoulli likelihood.",
    likelihood="logistic", bias_init="marginal", **_DAE,
)
