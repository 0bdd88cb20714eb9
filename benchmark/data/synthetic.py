"""A synthetic dataset drawn from the paper's own generative model (no download).

For each user u: z_u ~ N(0, I_K); pi_u = softmax(f(z_u) + b), with f a random two-layer
tanh MLP and b a Zipf log-popularity bias over items; N_u ~ LogNormal (clicks drawn);
x_u ~ Mult(N_u, pi_u), binarised. The latent structure is what a good model can recover
and popularity cannot, so every model should beat popularity here.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

DEFAULTS = {
    "n_users": 5000,
    "n_items": 2000,
    "latent_dim": 8,
    "hidden": 64,
    "zipf": 1.0,
    "mean_clicks": 40.0,
    "sigma_clicks": 0.6,
    "temperature": 2.5,
    "generator_seed": 0,
}


def generate(
    n_users: int = 5000,
    n_items: int = 2000,
    latent_dim: int = 8,
    hidden: int = 64,
    zipf: float = 1.0,
    mean_clicks: float = 40.0,
    sigma_clicks: float = 0.6,
    temperature: float = 2.5,
    generator_seed: int = 0,
) -> pd.DataFrame:
    """Draw a (user, item, rating) table from the Mult-VAE generative model.

    Returns:
        DataFrame with columns user (int), item (int), rating (the click count, float).
    """
    rng = np.random.default_rng(generator_seed)
    w1 = rng.normal(0, 1 / np.sqrt(latent_dim), (latent_dim, hidden))
    w2 = rng.normal(0, temperature / np.sqrt(hidden), (hidden, n_items))
    ranks = rng.permutation(n_items) + 1
    bias = -zipf * np.log(ranks)
    mu = np.log(mean_clicks) - sigma_clicks**2 / 2
    rows, cols, vals = [], [], []
    chunk = 1000
    for start in range(0, n_users, chunk):
        n = min(chunk, n_users - start)
        z = rng.standard_normal((n, latent_dim))
        logits = np.tanh(z @ w1) @ w2 + bias
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        p /= p.sum(axis=1, keepdims=True)
        clicks = np.maximum(1, np.round(rng.lognormal(mu, sigma_clicks, n))).astype(np.int64)
        counts = rng.multinomial(clicks, p)
        r, c = np.nonzero(counts)
        rows.append(r + start)
        cols.append(c)
        vals.append(counts[r, c].astype(np.float64))
    return pd.DataFrame(
        {"user": np.concatenate(rows), "item": np.concatenate(cols), "rating": np.concatenate(vals)}
    )
