"""Speed of the evaluator's top-k: torch.topk candidates + exact tie repair, against the
reference notebook's NumPy approach (argpartition, then sort the k; ties arbitrary) and our
pure-NumPy exact version.

Usage: python benchmarks/eval_speed.py [--users 1000] [--items 41140] [--repeats 5]
Prints medians of several repeats, both in this process, and their ratio.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmark.evaluate import _topk_exact, compute_metrics, topk_indices  # noqa: E402


def notebook_topk(scores: np.ndarray, k: int) -> np.ndarray:
    """The reference notebook's way: argpartition, then sort the k candidates."""
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    vals = np.take_along_axis(scores, part, axis=1)
    return np.take_along_axis(part, np.argsort(-vals, axis=1), axis=1)


def median_time(fn, repeats: int) -> float:
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return float(np.median(ts))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--users", type=int, default=1000, help="users per batch (the evaluator's default)")
    p.add_argument("--items", type=int, default=41_140, help="catalogue size (MSD's by default)")
    p.add_argument("--repeats", type=int, default=5)
    a = p.parse_args()
    rng = np.random.default_rng(0)
    s = rng.standard_normal((a.users, a.items)).astype(np.float32)
    counts = rng.integers(0, 50, (a.users, a.items)).astype(np.float32)  # tie-heavy scores
    fold = sp.random(a.users, a.items, density=0.001, format="csr", random_state=1, dtype=np.float32)
    hold = sp.random(a.users, a.items, density=0.0003, format="csr", random_state=2, dtype=np.float32)
    fold.data[:] = 1
    hold.data[:] = 1
    rows = []
    for label, scores in (("continuous scores", s), ("integer scores (ties)", counts)):
        ref = median_time(lambda sc=scores: notebook_topk(sc, 100), a.repeats)
        exact = median_time(lambda sc=scores: _topk_exact(sc, 100), a.repeats)
        new = median_time(lambda sc=scores: topk_indices(sc, 100), a.repeats)
        rows.append((f"top-100, {label}", ref, exact, new))
    full = median_time(lambda: compute_metrics(s, fold, hold), a.repeats)
    print(f"{a.users} users x {a.items} items, medians of {a.repeats}")
    print(f"{'step':36s} {'notebook s':>10s} {'exact np s':>10s} {'ours s':>9s} {'ours/notebook':>14s}")
    for label, ref, exact, new in rows:
        print(f"{label:36s} {ref:10.3f} {exact:10.3f} {new:9.3f} {new / ref:14.2f}")
    print(f"{'compute_metrics (mask, top-k, 3 metrics)':36s} {'':>10s} {'':>10s} {full:9.3f}")


if __name__ == "__main__":
    main()
