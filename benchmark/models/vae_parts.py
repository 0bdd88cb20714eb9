"""Parts of the autoencoder family (``vae``): the network, one training run, the plan's
cost, the variants.

- :class:`_Net`: encoder + decoder weights in the reference notebook's (in, out) layout.
- :func:`train_run`: one full training from a fresh initialisation (seed streams, the
  minibatch loop with beta annealing, through the one epoch loop ``run_epochs``).
- :func:`autoencoder_cost`: the run plan's estimate (timed minibatch updates at full width).
- :func:`make_variant`: a registered subclass differing only in default values.
- :func:`param_problems`: the ranges of the autoencoders' parameters.
"""

from __future__ import annotations

import inspect
import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..cost import DataShape, Estimate, timed, validation_seconds
from ..model import EpochReport, FitOptions, seed_streams
from ..protocol import HeldOut
from ..registry import register
from ..torch_parts import LIKELIHOODS, DeviceCSR, SparseBatch, _adam, beta_schedule, timing_batches
from ..training import TrainingOutcome, resolve_epochs, run_epochs

ACTIVATIONS = {"tanh": torch.tanh, "relu": torch.relu, "sigmoid": torch.sigmoid}


class _Net(torch.nn.Module):
    """Encoder + decoder weights in the notebook's (in, out) layout.

    The first encoder weight (n_items, h1) doubles as the embedding table of the
    sparse first layer.
    """

    def __init__(
        self,
        n_items: int,
        hidden_dims: tuple[int, ...],
        latent_dim: int,
        variational: bool,
        activation: str,
        generator: torch.Generator,
    ) -> None:
        super().__init__()
        enc = [n_items, *hidden_dims, latent_dim]
        dec = [latent_dim, *reversed(hidden_dims), n_items]
        enc_out = enc[1:-1] + [2 * latent_dim if variational else latent_dim]
        self.variational = variational
        self.latent_dim = latent_dim
        self.act = ACTIVATIONS[activation]
        self.enc_w = torch.nn.ParameterList()
        self.enc_b = torch.nn.ParameterList()
        self.dec_w = torch.nn.ParameterList()
        self.dec_b = torch.nn.ParameterList()
        for din, dout in zip(enc[:-1], enc_out, strict=True):
            self.enc_w.append(self._weight(din, dout, generator))
            self.enc_b.append(self._bias(dout, generator))
        for din, dout in zip(dec[:-1], dec[1:], strict=False):
            self.dec_w.append(self._weight(din, dout, generator))
            self.dec_b.append(self._bias(dout, generator))

    @staticmethod
    def _weight(din: int, dout: int, gen: torch.Generator) -> torch.nn.Parameter:
        w = torch.empty(din, dout)
        torch.nn.init.xavier_uniform_(w, generator=gen)  # the notebook's Glorot uniform
        return torch.nn.Parameter(w)

    @staticmethod
    def _bias(dout: int, gen: torch.Generator) -> torch.nn.Parameter:
        b = torch.empty(dout)
        torch.nn.init.trunc_normal_(b, std=0.001, a=-0.002, b=0.002, generator=gen)
        return torch.nn.Parameter(b)

    def weights(self) -> list[torch.Tensor]:
        return [*self.enc_w, *self.dec_w]

    def encode(
        self,
        batch: SparseBatch,
        dropout: float,
        generator: torch.Generator | None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Sparse rows -> (mu, logvar) for the VAE, (h, None) for the DAE; (b, d) each."""
        x = batch.values
        norm = batch.row_sum(x * x).sqrt_()
        vals = x / norm[batch.rows]
        if generator is not None and dropout > 0:
            keep = torch.rand(vals.shape, generator=generator, device=vals.device) >= dropout
            vals = vals * keep / (1.0 - dropout)
        h = F.embedding_bag(
            batch.items, self.enc_w[0], batch.offsets, mode="sum", per_sample_weights=vals
        )
        h = h + self.enc_b[0]
        n = len(self.enc_w)
        for i in range(1, n + 1):
            if i < n or not self.variational:
                h = self.act(h)
            if i < n:
                h = torch.addmm(self.enc_b[i], h, self.enc_w[i])
        if self.variational:
            return h[:, : self.latent_dim], h[:, self.latent_dim :]
        return h, None

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """(b, d) -> (b, n_items) logits f."""
        h = z
        n = len(self.dec_w)
        for i in range(n):
            h = torch.addmm(self.dec_b[i], h, self.dec_w[i])
            if i < n - 1:
                h = self.act(h)
        return h


def autoencoder_cost(cls: type, shape: DataShape, params: dict[str, Any], options: FitOptions) -> Estimate:
    """Epochs x (updates per epoch x one update, timed at full width on this device,
    + a validation pass per validated epoch); twice that with the beta search.

    Peak: the weights with their gradients and Adam's two moments (4 copies), a
    minibatch's dense logits and their gradient buffers (4 x batch x items), the data.

    One timing per network (layer shapes, VAE or DAE, batch size, device, threads): the
    likelihood variants of one network (Mult-, Gaussian and logistic VAE) share it, as
    EASE, EDLAE and DLAE share theirs; their loss differs by an elementwise pass over the
    batch's logits, within the timings' own spread, while each update is dominated by the
    same matrix products.
    """
    model = cls(**params)
    model.check_params()
    device = torch.device(options.resolve_device())
    x = shape.train_matrix()
    bs = int(model.batch_size)
    batches = timing_batches(x, bs, device)
    gen = torch.Generator().manual_seed(0)
    net = model._new_net(x.shape[1], gen).to(device)
    model.net_, model.n_items_ = net, x.shape[1]
    opt = _adam(net.parameters(), float(model.lr))
    dgen = torch.Generator(device=device).manual_seed(0)

    def step() -> None:
        model._step(net, opt, next(batches), 0.1 if model.variational else None, float(model.dropout),
                    dgen, float(model.weight_decay))
        if device.type == "cuda":
            torch.cuda.synchronize()

    key = ("autoencoder-update", bool(model.variational), tuple(tuple(p.shape) for p in net.parameters()),
           bs, str(device), options.threads)
    if key not in shape._cache:
        shape._cache[key] = (timed(step, repeats=3), validation_seconds(model, shape, users=2 * bs))
    per_update, validate = shape._cache[key]
    epochs = resolve_epochs(model.epochs, options)
    n_batches = -(-x.shape[0] // bs)
    validate = validate / max(1, int(model.validate_every))
    seconds = epochs * (n_batches * per_update + validate)
    runs = 2 if model.variational and model.anneal_cap == "auto" else 1
    n_params = sum(p.numel() for p in net.parameters())
    peak = 4 * n_params * 4 + 4 * bs * x.shape[1] * 4 + x.nnz * 20
    return Estimate(runs * seconds, int(peak),
                    f"{runs * epochs} epochs x {n_batches} updates ({per_update * 1000:.0f} ms each)"
                    f" + validation")


def train_run(
    model: Any,
    data: DeviceCSR,
    valid: HeldOut | None,
    options: FitOptions,
    cap: float,
    epochs: int,
    deadline: float | None,
    on_epoch,
    desc: str,
    *,
    anneal_steps: int,
    patience: int | None,
) -> TrainingOutcome:
    """One full training of the autoencoder ``model`` from a fresh initialisation, annealing
    beta up to ``cap`` (``AutoEncoder._train``); writes ``model.net_`` and
    ``model.update_count_``.

    beta = min(cap, update / anneal_steps) at each minibatch update. Random streams: one
    ``SeedSequence(options.seed)`` spawned into the weights' initialisation, the dropout
    and reparameterisation noise, and the minibatch order (:func:`seed_streams`).
    """
    device = data.device
    streams = seed_streams(options.seed, "init", "noise", "order")
    init_gen = torch.Generator().manual_seed(streams["init"])
    gen = torch.Generator(device=device).manual_seed(streams["noise"])
    rng = np.random.default_rng(streams["order"])
    net = model._new_net(data.shape[1], init_gen).to(device)
    if model.bias_init == "marginal":
        with torch.no_grad():
            net.dec_b[-1].copy_(model._marginal_bias(data))
    model.net_ = net
    opt = _adam(net.parameters(), float(model.lr))
    n, bs = data.n_rows, int(model.batch_size)
    model.update_count_ = 0
    wd = float(model.weight_decay)
    dropout = float(model.dropout)

    def train_epoch(epoch: int) -> EpochReport:
        net.train()
        epoch_data = data.permuted(rng.permutation(n))
        total = torch.zeros((), device=device)
        beta = None
        n_batches = 0
        for start in range(0, n, bs):
            batch = epoch_data.batch(start, min(start + bs, n))
            if model.variational:
                beta = beta_schedule(model.update_count_, cap, anneal_steps)
            total += model._step(net, opt, batch, beta, dropout, gen, wd)
            model.update_count_ += 1
            n_batches += 1
        return EpochReport(
            loss=float(total.item()) / n_batches,
            beta=beta,
            extra={"updates": model.update_count_},
        )

    def snapshot():
        return {k: v.detach().clone() for k, v in net.state_dict().items()}

    return run_epochs(
        name=model.name or type(model).__name__,
        params=model.get_params(),
        train_epoch=train_epoch,
        score=model.score,
        snapshot=snapshot,
        restore=net.load_state_dict,
        valid=valid,
        options=options,
        epochs=epochs,
        patience=patience,
        validate_every=int(model.validate_every),
        deadline=deadline,
        on_epoch=on_epoch,
        desc=desc,
    )


#: How reports name the variants: Liang et al. (2018) write Mult-VAE and Mult-DAE (Table 2)
#: and compare the Gaussian and logistic likelihoods in Table 3 (shared/reference/published.md).
DISPLAY_NAMES = {"multvae": "Mult-VAE", "multdae": "Mult-DAE", "gaussian-vae": "Gaussian-VAE",
                 "gaussian-dae": "Gaussian-DAE", "logistic-vae": "Logistic-VAE",
                 "logistic-dae": "Logistic-DAE"}


def make_variant(base: type, reg_name: str, cls_name: str, doc: str, **defaults: Any) -> type:
    """A registered subclass of :class:`AutoEncoder` differing only in default values.

    Its ``__init__`` signature carries the new defaults, so ``get_params`` and
    ``default_params`` see them (scikit-learn reads the signature the same way).
    """
    signature = inspect.signature(base.__init__)
    sig = signature.replace(
        parameters=[
            p.replace(default=defaults[p.name]) if p.name in defaults else p
            for p in signature.parameters.values()
        ]
    )

    def __init__(self, **params: Any) -> None:
        base.__init__(self, **{**defaults, **params})

    __init__.__signature__ = sig  # type: ignore[attr-defined]
    __init__.__qualname__ = f"{cls_name}.__init__"
    cls = type(cls_name, (base,), {"__init__": __init__, "__doc__": doc, "__module__": base.__module__})
    register(reg_name, display_name=DISPLAY_NAMES.get(reg_name, ""))(cls)
    return cls


def param_problems(self: Any) -> list[str]:
    problems = []
    if self.likelihood not in LIKELIHOODS:
        problems.append(f"likelihood={self.likelihood!r} (use one of {LIKELIHOODS})")
    if self.activation not in ACTIVATIONS:
        problems.append(f"activation={self.activation!r} (use one of {tuple(ACTIVATIONS)})")
    if not (isinstance(self.dropout, (int, float)) and 0.0 <= float(self.dropout) < 1.0):
        problems.append(f"dropout={self.dropout} (must be in [0, 1))")
    if int(self.batch_size) < 1 or int(self.latent_dim) < 1:
        problems.append("batch_size and latent_dim must be at least 1")
    if any(int(h) < 1 for h in self.hidden_dims):
        problems.append(f"hidden_dims={self.hidden_dims} (sizes must be at least 1)")
    if not (float(self.lr) > 0 and float(self.weight_decay) >= 0) or not all(
        math.isfinite(float(v)) for v in (self.lr, self.weight_decay)
    ):
        problems.append("lr must be > 0 and weight_decay >= 0")
    cap = self.anneal_cap
    if not (cap == "auto" or (isinstance(cap, (int, float)) and 0 <= cap < math.inf)):
        problems.append(f"anneal_cap={cap!r} (a number >= 0 or 'auto')")
    if self.bias_init not in ("paper", "marginal"):
        problems.append(f"bias_init={self.bias_init!r} (use 'paper' or 'marginal')")
    if self.likelihood == "gaussian" and not (self.c0 >= 0 and self.c1 > 0):
        problems.append("Gaussian confidences need c0 >= 0 and c1 > 0")
    if not (isinstance(self.epochs, int) and self.epochs >= 1):
        problems.append(f"epochs={self.epochs!r} (an integer >= 1)")
    if self.patience is not None and not (isinstance(self.patience, int) and self.patience >= 0):
        problems.append(f"patience={self.patience!r} (an integer >= 0, or None)")
    if not (isinstance(self.total_anneal_steps, int) and self.total_anneal_steps >= 0):
        problems.append(f"total_anneal_steps={self.total_anneal_steps!r} (an integer >= 0)")
    return problems
