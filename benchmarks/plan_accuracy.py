"""How close the plan's estimates are to the measured fit times, at ML-20M shape.

    python benchmarks/plan_accuracy.py              # 116,677 training users x 20,108 items
    python benchmarks/plan_accuracy.py --quick      # 30,000 x 5,000

For EASE (lambda 500), Mult-VAE (``--vae-epochs`` epochs, default 2, validated each epoch
on 10,000 users) and WMF (its 15 sweeps): the plan's estimate (``benchmark.plan``, the same
call ``run`` makes) and the measured ``fit`` wall time on the same synthetic data of the
paper's shape (lognormal activity, Zipf popularity), in this process, back to back.
Goal (issue: a plan before a long run): every ratio within [1/1.5, 1.5].
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from baselines_speed import ml20m_shaped  # noqa: E402

from benchmark.model import FitOptions  # noqa: E402
from benchmark.plan import make_plan  # noqa: E402
from benchmark.protocol import HeldOut, Split  # noqa: E402


def heldout(x: sp.csr_matrix, seed: int) -> HeldOut:
    """Each row's items: 20% at random to the holdout, the rest fold-in."""
    rng = np.random.default_rng(seed)
    hold = rng.random(x.nnz) < 0.2
    rows = np.repeat(np.arange(x.shape[0]), np.diff(x.indptr))
    def part(mask):
        return sp.csr_matrix((np.ones(mask.sum(), np.float32), (rows[mask], x.indices[mask])), shape=x.shape)
    return HeldOut(part(~hold), part(hold))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--vae-epochs", type=int, default=2)
    ap.add_argument("--models", default="ease,multvae,wmf")
    args = ap.parse_args()
    users, items, nnz = (30_000, 5_000, 1_500_000) if args.quick else (116_677, 20_108, 8_500_000)
    t = time.perf_counter()
    train = ml20m_shaped(users, items, nnz, seed=0)
    held = ml20m_shaped(10_000, items, nnz * 10_000 // users, seed=1)
    split = Split(train=train, valid=heldout(held, 2), test=heldout(held, 3),
                  items=np.arange(items), meta={"dataset": "ml-20m-shape"})
    print(f"{train.shape[0]:,} x {train.shape[1]:,}, {train.nnz:,} clicks ({time.perf_counter() - t:.0f} s to make)",
          flush=True)
    from benchmark import registry

    rows = []
    for name in args.models.split(","):
        cls = registry.get(name)
        params = {"ease": {"l2": 500.0}}.get(name, {})
        opts = FitOptions(device="cpu", progress=False, seed=0,
                          epochs=args.vae_epochs if name == "multvae" else None)
        t = time.perf_counter()
        (row,) = make_plan([name], split, {name: params}, opts)
        plan_s = time.perf_counter() - t
        est = row.estimate.seconds
        model = cls(**{**cls.default_params(), **params})
        t = time.perf_counter()
        model.fit(split.train, split.valid, options=opts)
        fit = time.perf_counter() - t
        rows.append((name, est, fit, est / fit, plan_s, row.estimate.detail))
        print(f"{name}: estimate {est:.1f} s, measured {fit:.1f} s, ratio {est / fit:.2f} "
              f"(the estimate took {plan_s:.1f} s: {row.estimate.detail})", flush=True)
    print("\n| model | estimate s | measured s | estimate / measured | time to estimate s |")
    print("|---|---|---|---|---|")
    for name, est, fit, ratio, plan_s, _ in rows:
        print(f"| {name} | {est:.1f} | {fit:.1f} | {ratio:.2f} | {plan_s:.1f} |")


if __name__ == "__main__":
    main()
