"""Speed and memory of the baselines against the plain way of doing the same job.

    python benchmarks/baselines_speed.py            # ML-20M shape: 136,677 x 20,108, ~10M clicks
    python benchmarks/baselines_speed.py --quick    # 30,000 x 5,000 (a few minutes on 2 cores)
    python benchmarks/baselines_speed.py --parts ease,wmf --repeats 3
    python benchmarks/baselines_speed.py --parts slim-scale     # SLIM's full fit at ML-20M shape

What it measures (medians over ``--repeats``; every ratio against a baseline in the same run):

- EASE fit (Gram matrix + Cholesky inverse, float32 and float64, CPU and CUDA when there)
  next to ``numpy.linalg.inv`` of the same Gram matrix (float64 and float32, the Gram matrix
  built before the clock starts); peak memory above the loaded data (each in a fresh
  process: VmHWM - VmRSS; CUDA: ``torch.cuda.max_memory_allocated``). Goal: EASE fit at most
  0.6 of the float64 inverse's time.
- WMF: our fit + the exact fold-in of 10,000 held-out users, next to ``implicit``'s ALS fit
  alone with the same parameters. Goal: the fold-in adds at most 20%.
- SLIM at scale (``slim-scale``): the gram solver's full fit at the chosen shape, and both
  solvers per column on the same random columns (the sparse solver's total extrapolated).
- SLIM and LightFM fit times on ml-100k (``--ml100k PATH/u.data``, default
  ``../shared/datasets/ml-100k/u.data``) and on a 20,000 x 5,000 set drawn from the
  Mult-VAE generative model (``benchmark.data.synthetic``).

The synthetic ML-20M-shaped matrix has lognormal user activity (mean ~73 items) and Zipf
item popularity; only its shape and sparsity matter for these timings.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

FULL = {"users": 136_677, "items": 20_108, "nnz": 10_000_000, "heldout": 10_000}
QUICK = {"users": 30_000, "items": 5_000, "nnz": 1_500_000, "heldout": 10_000}


# --- data -------------------------------------------------------------------------------------


def ml20m_shaped(users: int, items: int, nnz: int, seed: int = 0) -> sp.csr_matrix:
    """Binary (users, items) CSR with lognormal activity and Zipf popularity, ~nnz clicks."""
    rng = np.random.default_rng(seed)
    mean = nnz / users
    sigma = 1.0
    counts = rng.lognormal(np.log(mean) - sigma**2 / 2, sigma, users)
    counts = np.clip(np.round(counts * 1.2), 5, items // 2).astype(np.int64)  # +20%: duplicates dropped below
    pop = 1.0 / np.arange(1, items + 1) ** 0.9
    pop = rng.permutation(pop / pop.sum())
    rows = np.repeat(np.arange(users, dtype=np.int64), counts)
    cols = rng.choice(items, size=int(counts.sum()), p=pop)
    keys = np.unique(rows * items + cols)
    x = sp.csr_matrix(
        (np.ones(len(keys), np.float32), (keys // items, keys % items)), shape=(users, items)
    )
    return x


def save_csr(path: Path, x: sp.csr_matrix) -> None:
    np.savez(path, indptr=x.indptr, indices=x.indices, shape=np.asarray(x.shape))


def load_csr(path: Path) -> sp.csr_matrix:
    z = np.load(path)
    return sp.csr_matrix(
        (np.ones(len(z["indices"]), np.float32), z["indices"], z["indptr"]), shape=tuple(z["shape"])
    )


def _rss(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return 0


# --- EASE (each measurement in a fresh process, for its peak memory) --------------------------


def ease_child(method: str, data: Path, lam: float) -> dict:
    x = load_csr(data)
    base = _rss("VmRSS")
    if method.startswith("numpy-inv"):
        from benchmark.models.linalg import gram_dense

        dtype = "float64" if method.endswith("f64") else "float32"
        from benchmark.model import available_cpus

        g = gram_dense(x, dtype, threads=available_cpus())
        g[np.diag_indices_from(g)] += lam
        t = time.perf_counter()
        p = np.linalg.inv(g)
        seconds = time.perf_counter() - t
        del p
        return {"seconds": seconds, "peak_bytes": _rss("VmHWM") - base}
    from benchmark.model import FitOptions
    from benchmark.models.ease import EASE

    _, device, prec = method.split("-")
    dtype = {"f32": "float32", "f64": "float64"}[prec]
    if device == "cuda":
        import torch

        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t = time.perf_counter()
    model = EASE(l2=lam, dtype=dtype).fit(x, options=FitOptions(device=device, progress=False))
    if device == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t
    out = {"seconds": seconds, "peak_bytes": _rss("VmHWM") - base, "estimate_bytes": model.memory_estimate_}
    if device == "cuda":
        out["gpu_peak_bytes"] = int(torch.cuda.max_memory_allocated())
    return out


def run_child(args: list[str]) -> dict:
    res = subprocess.run(
        [sys.executable, __file__, "--child", *args], capture_output=True, text=True, check=False
    )
    if res.returncode != 0:
        return {"error": (res.stderr or res.stdout).strip().splitlines()[-1:]}
    return json.loads(res.stdout.strip().splitlines()[-1])


EASE_METHODS = ["numpy-inv-f64", "numpy-inv-f32", "ease-cpu-f32", "ease-cpu-f64", "ease-cuda-f32", "ease-cuda-f64"]


def bench_ease(data: Path, repeats: int, lam: float, methods: list[str]) -> list[dict]:
    try:
        import torch

        cuda = torch.cuda.is_available()
    except ImportError:
        cuda = False
    methods = [m for m in methods if cuda or "cuda" not in m]
    runs: dict[str, list[dict]] = {m: [] for m in methods}
    for _ in range(repeats):  # interleaved, so drift hits every method alike
        for m in methods:
            runs[m].append(run_child(["ease", m, str(data), str(lam)]))
            print(f"  {m}: {runs[m][-1]}", file=sys.stderr, flush=True)
    base = _median(runs.get("numpy-inv-f64", []), "seconds")
    base32 = _median(runs.get("numpy-inv-f32", []), "seconds")
    rows = []
    for m in methods:
        sec = _median(runs[m], "seconds")
        rows.append(
            {
                "method": m,
                "seconds": sec,
                "vs_inv_f64": sec / base if base else None,
                "vs_inv_f32": sec / base32 if base32 else None,
                "peak_host_GiB": _median(runs[m], "peak_bytes") / 2**30,
                "gpu_peak_GiB": (_median(runs[m], "gpu_peak_bytes") or 0) / 2**30,
                "estimate_GiB": (_median(runs[m], "estimate_bytes") or 0) / 2**30,
            }
        )
    return rows


# --- WMF ------------------------------------------------------------------------------------


def bench_wmf(x: sp.csr_matrix, heldout: sp.csr_matrix, repeats: int, threads: int) -> list[dict]:
    from implicit.cpu.als import AlternatingLeastSquares
    from threadpoolctl import threadpool_limits

    from benchmark.model import FitOptions
    from benchmark.models.wmf import WMF

    model = WMF()
    implicit_s, fit_s, fold_s, score_s = [], [], [], []
    for _ in range(repeats):
        cui = x.copy()
        cui.data = 1.0 + model.alpha * cui.data
        with threadpool_limits(1, "blas"):
            als = AlternatingLeastSquares(
                factors=model.factors, regularization=model.regularization, alpha=1.0,
                iterations=model.iterations, num_threads=threads, random_state=0,
            )
            t = time.perf_counter()
            als.fit(cui, show_progress=False)
            implicit_s.append(time.perf_counter() - t)
        t = time.perf_counter()
        m = WMF().fit(x, options=FitOptions(seed=0, progress=False, threads=threads))
        fit_s.append(time.perf_counter() - t)
        t = time.perf_counter()
        m.user_factors(heldout)
        fold_s.append(time.perf_counter() - t)
        t = time.perf_counter()
        for start in range(0, heldout.shape[0], 1000):  # as the evaluator does: 1,000 a batch
            m.score(heldout[start : start + 1000])
        score_s.append(time.perf_counter() - t)
        print(f"  wmf: implicit {implicit_s[-1]:.2f}s ours {fit_s[-1]:.2f}s fold-in {fold_s[-1]:.2f}s", file=sys.stderr)
    imp = statistics.median(implicit_s)
    fit = statistics.median(fit_s)
    fold = statistics.median(fold_s)
    return [
        {"step": "implicit ALS fit alone", "seconds": imp, "vs_implicit": 1.0},
        {"step": "WMF.fit (ours, implicit inside)", "seconds": fit, "vs_implicit": fit / imp},
        {"step": f"fold-in of {heldout.shape[0]:,} users (exact)", "seconds": fold, "vs_implicit": fold / imp},
        {"step": "WMF.fit + fold-in", "seconds": fit + fold, "vs_implicit": (fit + fold) / imp},
        {"step": f"scores of {heldout.shape[0]:,} users (fold-in + u V^T)", "seconds": statistics.median(score_s),
         "vs_implicit": statistics.median(score_s) / imp},
    ]


# --- SLIM and LightFM -----------------------------------------------------------------------


def _blas_unlimited():
    """SLIM as before the BLAS limit: threadpoolctl's limit made a no-op in this process."""
    import contextlib

    import threadpoolctl

    saved = threadpoolctl.threadpool_limits

    @contextlib.contextmanager
    def ctx():
        threadpoolctl.threadpool_limits = lambda *a, **k: contextlib.nullcontext()
        try:
            yield
        finally:
            threadpoolctl.threadpool_limits = saved

    return ctx()


def bench_fit_times(sets: dict[str, sp.csr_matrix], repeats: int, threads: int, lightfm_epochs: int | None) -> list[dict]:
    """SLIM (the gram solver, today's default; the sparse solver, the default before it,
    with one BLAS thread per regression and with BLAS threads unlimited, the default before
    that) and LightFM (1 thread vs all), back to back on the same data, with ratios."""
    import contextlib

    from benchmark.model import FitOptions
    from benchmark.models.lightfm import LightFMRecommender
    from benchmark.models.slim import SLIM

    # Warm-up: the first fit of a process pays for imports and the first BLAS calls.
    tiny = sp.random(200, 50, density=0.1, format="csr", random_state=0, dtype=np.float32)
    tiny.data[:] = 1.0
    for kind in ("gram", "sparse"):
        SLIM(solver=kind).fit(tiny, options=FitOptions(progress=False, threads=threads))
    LightFMRecommender().fit(tiny, options=FitOptions(progress=False, epochs=1))
    rows = []
    for name, x in sets.items():
        for label, make, opts, ctx in (
            ("slim (gram)", lambda: SLIM(solver="gram"), FitOptions(progress=False, threads=threads), contextlib.nullcontext),
            ("slim (sparse, 1 BLAS thread)", lambda: SLIM(solver="sparse"), FitOptions(progress=False, threads=threads), contextlib.nullcontext),
            ("slim (sparse, BLAS unlimited)", lambda: SLIM(solver="sparse"), FitOptions(progress=False, threads=threads), _blas_unlimited),
            ("lightfm (1 thread)", lambda: LightFMRecommender(deterministic=True), FitOptions(progress=False, epochs=lightfm_epochs), contextlib.nullcontext),
            (f"lightfm ({threads} threads)", lambda: LightFMRecommender(), FitOptions(progress=False, threads=threads, epochs=lightfm_epochs), contextlib.nullcontext),
        ):
            if label.startswith("lightfm (") and threads == 1 and label != "lightfm (1 thread)":
                continue
            secs = []
            for _ in range(repeats):
                with ctx():
                    t = time.perf_counter()
                    m = make().fit(x, options=opts)
                    secs.append(time.perf_counter() - t)
            ep = len(getattr(m, "history_", None) or []) or None
            row = {"data": name, "model": label, "seconds": statistics.median(secs),
                   "shape": f"{x.shape[0]:,} x {x.shape[1]:,}", "nnz": int(x.nnz)}
            if ep:
                row["epochs"] = ep
                row["s_per_epoch"] = row["seconds"] / ep
            if label.startswith("slim"):
                row["nnz_weights"] = int(m.weights_.nnz)
            rows.append(row)
            print(f"  {row}", file=sys.stderr, flush=True)
        by = {r["model"]: r["seconds"] for r in rows if r["data"] == name}
        if "slim (gram)" in by:
            print(f"  {name}: SLIM gram / sparse = {by['slim (gram)'] / by['slim (sparse, 1 BLAS thread)']:.3f}; "
                  f"sparse with 1 BLAS thread / unlimited = "
                  f"{by['slim (sparse, 1 BLAS thread)'] / by['slim (sparse, BLAS unlimited)']:.3f}",
                  file=sys.stderr, flush=True)
        if f"lightfm ({threads} threads)" in by:
            print(f"  {name}: LightFM {threads} threads / 1 thread = "
                  f"{by[f'lightfm ({threads} threads)'] / by['lightfm (1 thread)']:.3f} (goal <= 0.6)",
                  file=sys.stderr, flush=True)
    return rows


def bench_slim_scale(x: sp.csr_matrix, threads: int, columns: int) -> list[dict]:
    """SLIM's full fit at this shape with the gram solver (time, peak memory above the data,
    measured first so no earlier allocation sets the high-water mark), then both solvers
    timed on the same ``columns`` random columns (one thread each): the sparse solver's full
    fit at ML-20M shape is about an hour, so its total is extrapolated from those columns
    and labelled so."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from threadpoolctl import threadpool_limits

    from benchmark.model import FitOptions
    from benchmark.models.slim import SLIM

    base = _rss("VmRSS")
    t = time.perf_counter()
    m = SLIM(solver="gram").fit(x, options=FitOptions(progress=False, threads=threads))
    full = time.perf_counter() - t
    peak = (_rss("VmHWM") - base) / 2**30
    nnz_weights = int(m.weights_.nnz)
    del m
    n_items = x.shape[1]
    cols = np.sort(np.random.default_rng(0).choice(n_items, size=min(columns, n_items), replace=False))
    per_col = {}
    for kind in ("gram", "sparse"):
        _, make, _ = SLIM(solver=kind)._solvers(x, threads)
        solver = make()
        with warnings.catch_warnings(), threadpool_limits(1, "blas"):
            warnings.simplefilter("ignore", ConvergenceWarning)
            t = time.perf_counter()
            solver.solve(cols, None)
            per_col[kind] = (time.perf_counter() - t) / len(cols)
        del solver, make
    rows = [
        {"solver": "gram", "ms_per_column": per_col["gram"] * 1e3, "full_fit_s": full,
         "measured": "full fit", "peak_above_data_GiB": peak, "nnz_weights": nnz_weights},
        {"solver": "sparse", "ms_per_column": per_col["sparse"] * 1e3,
         "full_fit_s": full * per_col["sparse"] / per_col["gram"],
         "measured": f"extrapolated from {len(cols)} columns"},
    ]
    print(f"  SLIM gram / sparse per column: {per_col['gram'] / per_col['sparse']:.3f}", file=sys.stderr)
    return rows


# --- helpers ----------------------------------------------------------------------------------


def _median(runs: list[dict], key: str):
    vals = [r[key] for r in runs if key in r]
    return statistics.median(vals) if vals else None


def _table(rows: list[dict]) -> str:
    if not rows:
        return ""
    cols = list(dict.fromkeys(k for r in rows for k in r))

    def fmt(v):
        if isinstance(v, float):
            return f"{v:.3f}"
        return "" if v is None else str(v)

    widths = {c: max(len(c), *(len(fmt(r.get(c))) for r in rows)) for c in cols}
    lines = [" | ".join(c.ljust(widths[c]) for c in cols), "-+-".join("-" * widths[c] for c in cols)]
    lines += [" | ".join(fmt(r.get(c)).ljust(widths[c]) for c in cols) for r in rows]
    return "\n".join(lines)


def _ml100k(path: Path) -> sp.csr_matrix | None:
    if not path.exists():
        return None
    import pandas as pd

    from benchmark.data.preprocess import SplitConfig, make_split

    df = pd.read_csv(path, sep="\t", header=None, names=["user", "item", "rating", "timestamp"])
    split = make_split(df, SplitConfig(min_rating=3.5, min_user_items=5, n_heldout=100), dataset="ml-100k")
    return split.train


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="30,000 x 5,000 instead of the ML-20M shape")
    ap.add_argument("--parts", default="ease,wmf,slim-lightfm")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--slim-columns", type=int, default=64,
                    help="columns both SLIM solvers are timed on (slim-scale part)")
    ap.add_argument("--fit-repeats", type=int, default=1, help="repeats of the SLIM / LightFM fits")
    ap.add_argument("--threads", type=int, default=None, help="CPU threads (default: all)")
    ap.add_argument("--lightfm-epochs", type=int, default=None, help="cap LightFM epochs (default: its 30)")
    ap.add_argument("--ml100k", type=Path, default=REPO.parent / "shared" / "datasets" / "ml-100k" / "u.data")
    ap.add_argument("--ease-methods", default=",".join(EASE_METHODS), help="comma-separated subset")
    ap.add_argument("--lam", type=float, default=500.0, help="EASE lambda")
    ap.add_argument("--json", type=Path, default=None, help="also write the tables here")
    ap.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.child:
        _, method, data, lam = args.child
        print(json.dumps(ease_child(method, Path(data), float(lam))))
        return

    from benchmark.model import available_cpus

    threads = args.threads or available_cpus()
    shape = QUICK if args.quick else FULL
    parts = set(args.parts.split(","))
    out: dict[str, list[dict]] = {}
    print(f"machine: {available_cpus()} CPUs; threads {threads}; shape {shape}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        if parts & {"ease", "wmf", "slim-scale"}:
            t = time.perf_counter()
            x = ml20m_shaped(shape["users"], shape["items"], shape["nnz"], seed=0)
            held = ml20m_shaped(shape["heldout"], shape["items"], shape["nnz"] * shape["heldout"] // shape["users"], seed=1)
            print(f"synthetic {x.shape[0]:,} x {x.shape[1]:,}, {x.nnz:,} clicks ({time.perf_counter() - t:.1f}s)", flush=True)
            data = Path(tmp) / "x.npz"
            save_csr(data, x)
        if "ease" in parts:
            out["ease"] = bench_ease(data, args.repeats, args.lam, args.ease_methods.split(","))
            print(f"\nEASE (lambda {args.lam:g}) vs numpy.linalg.inv of the same Gram matrix")
            print(_table(out["ease"]), flush=True)
        if "wmf" in parts:
            out["wmf"] = bench_wmf(x, held, args.repeats, threads)
            print("\nWMF: our fit + exact fold-in vs implicit's fit alone")
            print(_table(out["wmf"]), flush=True)
        if "slim-lightfm" in parts:
            from benchmark.data.synthetic import generate

            sets = {}
            ml = _ml100k(args.ml100k)
            if ml is not None:
                sets["ml-100k"] = ml
            else:
                print(f"(ml-100k not found at {args.ml100k}; skipped)")
            df = generate(n_users=20_000, n_items=5_000)
            sets["synthetic 20k x 5k"] = sp.csr_matrix(
                (np.ones(len(df), np.float32), (df["user"], df["item"])), shape=(20_000, 5_000)
            )
            out["fit_times"] = bench_fit_times(sets, args.fit_repeats, threads, args.lightfm_epochs)
            print("\nSLIM and LightFM fit times (defaults)")
            print(_table(out["fit_times"]), flush=True)
        if "slim-scale" in parts:
            out["slim_scale"] = bench_slim_scale(x, threads, args.slim_columns)
            print(f"\nSLIM at {x.shape[0]:,} x {x.shape[1]:,} ({x.nnz:,} clicks), {threads} threads")
            print(_table(out["slim_scale"]), flush=True)
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
