"""SLIM's plan checked on structured and unstructured data of the ML-20M shape.

SLIM's cost depends on the data far beyond the shape: its coordinate descent converges in a
few sweeps on a column with a few strong neighbours and needs many on a column of a uniformly
random matrix, whose co-occurrences are all alike. The plan (``SLIM.estimate_cost``) times 64
random columns on the data itself; this script checks it on two matrices of ML-20M's
post-filter shape (116,677 x 20,108, 8.5M clicks):

- ``synthetic:ml-20m``'s training matrix (the Mult-VAE generative model: structured), whose
  full fit ``benchmarks/msd_shape.py --dataset synthetic:ml-20m --models slim`` measures;
- a uniformly-active random matrix of the same shape (every user and item equally likely),
  whose full fit (hours) is measured here on ``--columns`` other random columns (a different
  seed from the plan's) and extrapolated: the columns' regressions are independent, so the
  fit's time is the set-up plus the columns' times.

Per matrix: the plan's estimate, the measured (or extrapolated) fit and their ratio.

    python benchmarks/slim_plan.py --data-dir /tmp/data --columns 256
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def uniform_matrix(users: int, items: int, nnz: int, seed: int = 0) -> sp.csr_matrix:
    """Binary users x items with ``nnz`` distinct cells drawn uniformly."""
    rng = np.random.default_rng(seed)
    cells = np.unique(rng.integers(0, users * items, size=int(nnz * 1.01), dtype=np.int64))[:nnz]
    rng.shuffle(cells)
    cells = np.sort(cells[:nnz])
    return sp.csr_matrix((np.ones(len(cells), dtype=np.float32), (cells // items, cells % items)),
                         shape=(users, items))


def measure(x: sp.csr_matrix, name: str, columns: int, threads: int) -> dict:
    from benchmark.cost import DataShape
    from benchmark.model import FitOptions
    from benchmark.models.slim import SLIM

    shape = DataShape(dataset=None, train_users=x.shape[0], items=x.shape[1], train_clicks=x.nnz,
                      train=x)
    params = SLIM.default_params(None)
    t = time.perf_counter()
    est = SLIM.estimate_cost(shape, params, FitOptions(progress=False, threads=threads))
    plan_s = time.perf_counter() - t
    model = SLIM(**params)
    t = time.perf_counter()
    kind, make, _ = model._solvers(x, threads)
    setup = time.perf_counter() - t
    n_items = x.shape[1]
    per_col = model.seconds_per_column(make, n_items, threads, columns=columns, seed=1)  # not the plan's columns
    fit = setup + per_col * n_items
    return {"matrix": name, "users": x.shape[0], "items": n_items, "clicks": int(x.nnz),
            "solver": kind, "threads": threads, "plan_seconds": est.seconds, "plan_how": est.detail,
            "plan_took_seconds": plan_s, "setup_seconds": setup, "columns_timed": min(columns, n_items),
            "ms_per_column": per_col * 1e3, "fit_seconds_extrapolated": fit,
            "plan_over_measured": est.seconds / fit}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-dir", default="datasets")
    ap.add_argument("--columns", type=int, default=256, help="columns timed for the extrapolation")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="benchmarks/slim_plan.jsonl")
    a = ap.parse_args()
    from benchmark.data import load_split

    split = load_split("synthetic:ml-20m", data_dir=a.data_dir)
    x = split.train
    rows = [measure(x, "synthetic:ml-20m (structured)", a.columns, a.threads)]
    print(json.dumps(rows[-1]), flush=True)
    u = uniform_matrix(*x.shape, x.nnz)
    del split
    rows.append(measure(u, "uniform random, same shape", a.columns, a.threads))
    print(json.dumps(rows[-1]), flush=True)
    with Path(a.out).open("a") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")


if __name__ == "__main__":
    main()
