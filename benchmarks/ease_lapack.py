"""Which LAPACK path for EASE's Cholesky inverse on the CPU: time, peak memory, agreement.

The in-place inverse P = (X^T X + lambda I)^-1 through the Cholesky factor, two ways:

- ``scipy``: SciPy's ``spotrf`` + ``spotri`` (its bundled OpenBLAS), the path EASE took
  until it segfaulted at MSD's 41,140 items (``--items 41140 --paths scipy`` shows the
  crash, named by its signal);
- ``torch``: ``torch.linalg.cholesky_ex`` + ``torch.cholesky_inverse`` in place on the
  matrix's column-major view (torch's bundled LAPACK), the path EASE takes now.

Each path runs in its own process (a crash is named by its signal, and peak memory is that
process's own). The matrix is the Gram of a synthetic training matrix of the given shape
(``benchmark.cost.DataShape``: lognormal activity, Zipf-like popularity).

    python benchmarks/ease_lapack.py --users 116677 --items 20108 --clicks 8500000
    python benchmarks/ease_lapack.py --users 471355 --items 41140 --clicks 28900000 --paths torch
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import signal
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def gram(users: int, items: int, clicks: int, l2: float) -> np.ndarray:
    from benchmark.cost import DataShape
    from benchmark.models.linalg import gram_dense

    x = DataShape(dataset=None, train_users=users, items=items, train_clicks=clicks).train_matrix()
    g = gram_dense(x, "float32", threads=2)
    g[np.diag_indices_from(g)] += l2
    return g


def run_path(path: str, args: argparse.Namespace, out: str) -> None:
    g = gram(args.users, args.items, args.clicks, args.l2)
    t = time.perf_counter()
    if path == "scipy":
        from scipy.linalg import lapack

        c, info = lapack.spotrf(g.T, lower=0, clean=0, overwrite_a=1)
        p, info = lapack.spotri(c, lower=0, overwrite_c=1)
        p = p.T  # the C-ordered view; spotri wrote its lower triangle
        k = args.compare
        if k:  # the first k rows of the symmetric P, without a second n x n array
            lower = np.arange(p.shape[1])[None, :] <= np.arange(k)[:, None]
            p = np.where(lower, p[:k], p[:, :k].T)
    else:
        from benchmark.models.linalg import cholesky_inverse_inplace

        cholesky_inverse_inplace(g)
        p = g
    seconds = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    np.save(out + ".npy", p[: args.compare].copy() if args.compare else np.zeros(0))
    Path(out + ".json").write_text(json.dumps({"seconds": seconds, "peak_bytes": peak}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--users", type=int, default=116_677)
    ap.add_argument("--items", type=int, default=20_108)
    ap.add_argument("--clicks", type=int, default=8_500_000)
    ap.add_argument("--l2", type=float, default=500.0)
    ap.add_argument("--paths", default="scipy,torch")
    ap.add_argument("--compare", type=int, default=2000, help="rows of P compared between paths")
    args = ap.parse_args()
    ctx = mp.get_context("spawn")
    tmp = tempfile.mkdtemp()
    results = {}
    for path in args.paths.split(","):
        out = f"{tmp}/{path}"
        proc = ctx.Process(target=run_path, args=(path, args, out))
        proc.start()
        proc.join()
        if proc.exitcode != 0:
            sig = signal.Signals(-proc.exitcode).name if proc.exitcode < 0 else proc.exitcode
            results[path] = {"crashed": str(sig)}
        else:
            results[path] = json.loads(Path(out + ".json").read_text())
            results[path]["p"] = np.load(out + ".npy")
    print(f"Cholesky inverse of X^T X + {args.l2:g} I, {args.users:,} x {args.items:,} "
          f"({args.clicks:,} clicks), float32, 2 threads")
    print("path  | seconds | peak RSS GiB | note")
    for path, r in results.items():
        if "crashed" in r:
            print(f"{path:5s} | -       | -            | crashed: {r['crashed']}")
        else:
            print(f"{path:5s} | {r['seconds']:7.1f} | {r['peak_bytes'] / 2**30:12.2f} |")
    ok = [r for r in results.values() if "p" in r]
    if len(ok) == 2 and args.compare:
        a, b = ok[0]["p"], ok[1]["p"]
        print(f"max |P_scipy - P_torch| / max |P_scipy| over {len(a):,} rows: "
              f"{float(np.abs(a - b).max() / np.abs(a).max()):.2e}")
        if len(results) == 2:
            s, t = (results[k]["seconds"] for k in ("scipy", "torch"))
            print(f"torch / scipy time: {t / s:.2f}")


if __name__ == "__main__":
    main()
