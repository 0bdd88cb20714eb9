"""RecVAE's network (Shenbin et al. 2020): the dense-connected encoder with layer norm and
swish, the composite prior, the per-user KL weight. Transcribed from the authors' code,
github.com/ilya-shenbin/RecVAE (``model.py``); the model is :mod:`benchmark.models.recvae`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..torch_parts import SparseBatch

#: Mixture weights of (standard normal, old posterior, wide normal): ``model.py`` L17.
MIXTURE_WEIGHTS = (3 / 20, 3 / 4, 1 / 10)
#: Log-variance of the wide ("uniform") component: ``model.py`` L29.
WIDE_LOGVAR = 10.0
#: Layer-norm epsilon of the encoder: ``model.py`` L50 (``eps=1e-1``).
LN_EPS = 0.1
#: Dense-connected hidden layers of the encoder: ``model.py`` L53-62 (fc1..fc5).
N_LAYERS = 5

_LOG_2PI = math.log(2.0 * math.pi)


def log_norm_pdf(x: torch.Tensor, mu: torch.Tensor | float, logvar: torch.Tensor | float) -> torch.Tensor:
    """Elementwise log N(x; mu, exp(logvar)) (broadcasting): ``model.py`` L12-13."""
    logvar = torch.as_tensor(logvar, dtype=x.dtype, device=x.device)
    return -0.5 * (logvar + _LOG_2PI + (x - mu).square() / logvar.exp())


def composite_prior_log_density(
    z: torch.Tensor,
    post_mu: torch.Tensor,
    post_logvar: torch.Tensor,
    mixture_weights: tuple[float, float, float] = MIXTURE_WEIGHTS,
    wide_logvar: float = WIDE_LOGVAR,
) -> torch.Tensor:
    """log p(z | x) of the composite prior, per latent coordinate.

    Args:
        z: (b, d) latent samples.
        post_mu, post_logvar: (b, d) the frozen old encoder's posterior for the same users.
        mixture_weights: weights of N(0, 1), N(post_mu, exp(post_logvar)), N(0, exp(wide_logvar)).
        wide_logvar: log-variance of the wide component.

    Returns:
        (b, d) log-densities: log sum_k w_k N_k(z_j), one mixture per coordinate j.
    """
    parts = [
        log_norm_pdf(z, 0.0, 0.0),
        log_norm_pdf(z, post_mu, post_logvar),
        log_norm_pdf(z, 0.0, float(wide_logvar)),
    ]
    logw = [math.log(w) if w > 0 else -math.inf for w in mixture_weights]
    return torch.logsumexp(torch.stack([p + lw for p, lw in zip(parts, logw, strict=True)], dim=-1), dim=-1)


def kl_weights(batch: SparseBatch, gamma: float) -> torch.Tensor:
    """Per-user KL weight beta_u = gamma * |I_u| (the row sum of x_u): (b,)."""
    return gamma * batch.row_sum(batch.values)


# --- the network -----------------------------------------------------------------------------


def _uniform(shape: tuple[int, ...], fan_in: int, gen: torch.Generator) -> torch.nn.Parameter:
    """torch.nn.Linear's default init, U(-1/sqrt(fan_in), 1/sqrt(fan_in)), seeded."""
    bound = 1.0 / math.sqrt(fan_in)
    t = torch.empty(shape)
    torch.nn.init.uniform_(t, -bound, bound, generator=gen)
    return torch.nn.Parameter(t)


class _Encoder(torch.nn.Module):
    """The dense-connected encoder of ``model.py`` L49-77, with a sparse first layer.

    Weights are kept in (in, out) layout; the first one (n_items, hidden) doubles as the
    embedding table of the sparse input layer.
    """

    def __init__(self, n_items: int, hidden: int, latent: int, gen: torch.Generator) -> None:
        super().__init__()
        self.w_in = _uniform((n_items, hidden), n_items, gen)
        self.b_in = _uniform((hidden,), n_items, gen)
        self.w = torch.nn.ParameterList(_uniform((hidden, hidden), hidden, gen) for _ in range(N_LAYERS - 1))
        self.b = torch.nn.ParameterList(_uniform((hidden,), hidden, gen) for _ in range(N_LAYERS - 1))
        self.ln_w = torch.nn.ParameterList(torch.nn.Parameter(torch.ones(hidden)) for _ in range(N_LAYERS))
        self.ln_b = torch.nn.ParameterList(torch.nn.Parameter(torch.zeros(hidden)) for _ in range(N_LAYERS))
        self.w_mu = _uniform((hidden, latent), hidden, gen)
        self.b_mu = _uniform((latent,), hidden, gen)
        self.w_lv = _uniform((hidden, latent), hidden, gen)
        self.b_lv = _uniform((latent,), hidden, gen)

    def _ln(self, h: torch.Tensor, k: int) -> torch.Tensor:
        return F.layer_norm(h, h.shape[-1:], self.ln_w[k], self.ln_b[k], LN_EPS)

    def forward(
        self, batch: SparseBatch, dropout: float, gen: torch.Generator | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Sparse rows -> (mu, logvar), (b, latent) each; dropout only with a generator."""
        x = batch.values
        norm = batch.row_sum(x * x).sqrt_()
        vals = x / norm[batch.rows]
        if gen is not None and dropout > 0:
            keep = torch.rand(vals.shape, generator=gen, device=vals.device) >= dropout
            vals = vals * keep / (1.0 - dropout)
        a = F.embedding_bag(batch.items, self.w_in, batch.offsets, mode="sum", per_sample_weights=vals)
        h = self._ln(F.silu(a + self.b_in), 0)
        dense = h  # h1 + ... + h(k-1)
        for k in range(1, N_LAYERS):
            h = self._ln(F.silu(torch.addmm(self.b[k - 1], h, self.w[k - 1]) + dense), k)
            if k < N_LAYERS - 1:
                dense = dense + h
        return torch.addmm(self.b_mu, h, self.w_mu), torch.addmm(self.b_lv, h, self.w_lv)


class _RecVAENet(torch.nn.Module):
    """Encoder, the prior's frozen old encoder, and the linear decoder (``model.py`` L80-118)."""

    def __init__(self, n_items: int, hidden: int, latent: int, gen: torch.Generator) -> None:
        super().__init__()
        # construction order as the reference VAE: encoder, prior's encoder, decoder
        self.encoder = _Encoder(n_items, hidden, latent, gen)
        self.old_encoder = _Encoder(n_items, hidden, latent, gen)
        self.old_encoder.requires_grad_(False)
        self.dec_w = _uniform((latent, n_items), latent, gen)
        self.dec_b = _uniform((n_items,), latent, gen)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """(b, latent) -> (b, n_items) logits."""
        return torch.addmm(self.dec_b, z, self.dec_w)

    def decoder_parameters(self) -> list[torch.nn.Parameter]:
        return [self.dec_w, self.dec_b]

    @torch.no_grad()
    def update_prior(self) -> None:
        """Copy the encoder's weights into the frozen old encoder (``model.py`` L117-118)."""
        for old, new in zip(self.old_encoder.parameters(), self.encoder.parameters(), strict=True):
            old.copy_(new)


# --- the model -------------------------------------------------------------------------------
