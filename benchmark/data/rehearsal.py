"""Rehearsal data at a paper dataset's full shape: ``synthetic:ml-20m``, ``synthetic:netflix``,
``synthetic:msd``.

The flagship run can be rehearsed before the real data is downloaded: the same users and
items as the paper's filtered data (Table 1), clicks within 2%, drawn from the Mult-VAE
generative model of :mod:`benchmark.data.synthetic` so that models beat popularity. How:

1. a floor: every item gets ``max(min_item_users, 10)`` distinct users drawn uniformly (so
   no item falls below the dataset's item filter, and every item is all but certainly
   clicked by a training user, so the catalogue is exactly the paper's);
2. each user's total N_u is lognormal (ASSUMED dispersion :data:`SIGMA`, mean the published
   clicks per user), at least the dataset's user filter;
3. the rest of each user's clicks, N_u minus their floor clicks, are drawn WITHOUT
   replacement from pi_u = softmax(f(z_u) + b) (z_u ~ N(0, I), f the generator's random
   tanh MLP, b a Zipf log-popularity bias) by the exponential race (argmax of log pi - log
   E, E ~ Exp(1), repeated k times, is a draw of k distinct items in proportion to pi).
   The paper's model draws N_u clicks with replacement and binarises; drawing distinct
   items is what makes the user counts exact.

So the filters remove nothing. Users are drawn in chunks with one seeded stream each
(``SeedSequence.spawn``), on all cores; the result does not depend on the thread count.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd

from .synthetic import DEFAULTS

__all__ = ["SHAPES", "SIGMA", "generate_at_shape"]

#: name -> (users, items, clicks, min_user_items, min_item_users, held-out users): Liang et
#: al. (2018) Table 1 and the reference code's printed counts (shared/reference/published.md).
SHAPES: dict[str, tuple[int, int, int, int, int, int]] = {
    "ml-20m": (136_677, 20_108, 9_990_682, 5, 0, 10_000),
    "netflix": (463_435, 17_769, 56_880_037, 5, 0, 40_000),
    "msd": (571_355, 41_140, 33_633_450, 20, 200, 50_000),
}
#: ASSUMED sigma of log(clicks per user) (not fitted to the real data).
SIGMA = 1.0
#: Every item's floor of uniformly drawn users is at least this (a catalogue of exactly the
#: published items: an item needs a training user).
MIN_FLOOR = 10
_CHUNK = 2048


def _totals(n: int, clicks: int, low: int, high: int, rng: np.random.Generator) -> np.ndarray:
    """Lognormal user totals in [low, high] adding up to ``clicks`` (mu by bisection)."""
    base = rng.standard_normal(n) * SIGMA

    def draw(mu: float) -> np.ndarray:
        return np.clip(np.round(np.exp(mu + base)), low, high).astype(np.int64)

    lo, hi = -5.0, float(np.log(high)) + 5.0
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if draw(mid).sum() < clicks else (lo, mid)
    return draw(hi)


def _floor(users: int, items: int, per_item: int, rng: np.random.Generator) -> np.ndarray:
    """(per_item x items, 2) distinct (user, item) pairs: per_item users for every item."""
    extra = 16
    draws = np.sort(rng.integers(0, users, size=(items, per_item + extra)), axis=1)
    fresh = np.ones_like(draws, dtype=bool)
    fresh[:, 1:] = draws[:, 1:] != draws[:, :-1]
    rank = np.cumsum(fresh, axis=1)
    keep = fresh & (rank <= per_item)
    if (keep.sum(axis=1) < per_item).any():  # pragma: no cover - 16 spare draws per item
        raise RuntimeError("the floor ran out of spare draws; use another seed")
    item = np.broadcast_to(np.arange(items)[:, None], draws.shape)
    return np.column_stack([draws[keep], item[keep]])


def generate_at_shape(users: int, items: int, clicks: int, *, min_user_items: int,
                      min_item_users: int, seed: int = 0, threads: int | None = None,
                      ) -> pd.DataFrame:
    """A (user, item, rating = 1) table of exactly ``users`` x ``items`` and about
    ``clicks`` distinct pairs, every user with >= ``min_user_items`` items and every item
    with >= ``min_item_users`` users (see the module docstring for how).
    """
    d = DEFAULTS
    root = np.random.SeedSequence(seed)
    net, totals_seq, floor_seq, chunks_seq = root.spawn(4)
    rng = np.random.default_rng(net)
    w1 = rng.normal(0, 1 / np.sqrt(d["latent_dim"]), (d["latent_dim"], d["hidden"])).astype(np.float32)
    w2 = rng.normal(0, d["temperature"] / np.sqrt(d["hidden"]), (d["hidden"], items)).astype(np.float32)
    bias = (-d["zipf"] * np.log(rng.permutation(items) + 1.0)).astype(np.float32)
    floor = _floor(users, items, max(min_item_users, MIN_FLOOR), np.random.default_rng(floor_seq))
    floor = floor[np.lexsort((floor[:, 1], floor[:, 0]))]
    have = np.bincount(floor[:, 0], minlength=users)
    total = _totals(users, clicks, min_user_items, items, np.random.default_rng(totals_seq))
    want = np.maximum(total, have) - have  # structured clicks on top of the floor
    starts = range(0, users, _CHUNK)
    seqs = chunks_seq.spawn(len(starts))
    fstart = np.searchsorted(floor[:, 0], np.arange(0, users + 1))

    def chunk(i: int) -> np.ndarray:
        lo, hi = starts[i], min(users, starts[i] + _CHUNK)
        g = np.random.default_rng(seqs[i])
        z = g.standard_normal((hi - lo, d["latent_dim"]), dtype=np.float32)
        keys = np.tanh(z @ w1) @ w2 + bias
        with np.errstate(divide="ignore"):  # E = 0: an arrival at time 0, drawn first
            keys -= np.log(g.standard_exponential(keys.shape, dtype=np.float32))
        f = floor[fstart[lo]:fstart[hi]]
        keys[f[:, 0] - lo, f[:, 1]] = -np.inf  # never drawn twice
        k = want[lo:hi]
        kmax = int(k.max(initial=0))
        if kmax == 0:
            return np.empty((0, 2), dtype=np.int64)
        top = np.argpartition(-keys, kmax - 1, axis=1)[:, :kmax]
        order = np.argsort(-np.take_along_axis(keys, top, axis=1), axis=1)
        top = np.take_along_axis(top, order, axis=1)
        keep = np.arange(kmax)[None, :] < k[:, None]
        rows = np.broadcast_to(np.arange(lo, hi)[:, None], top.shape)
        return np.column_stack([rows[keep], top[keep]])

    workers = threads or max(1, len(os.sched_getaffinity(0)))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        parts = list(pool.map(chunk, range(len(starts))))
    pairs = np.concatenate([floor, *parts])
    return pd.DataFrame({"user": pairs[:, 0], "item": pairs[:, 1],
                         "rating": np.ones(len(pairs), dtype=np.float32)})
