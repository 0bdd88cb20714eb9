"""Speed and peak memory (above the interpreter + imports) of the raw-file loaders against plain baselines (same run).

Writes synthetic files in the real formats (ML-20M ``ratings.csv``, Netflix
``combined_data_*.txt``, MSD ``train_triplets.txt``) to a temporary folder, then times each
loader and a baseline in fresh subprocesses (so peak RSS is per case), median of repeats:

- ml-20m: ``read_delimited`` (C parser, dtype hints) vs ``pd.read_csv`` with no hints;
- netflix: the comment-trick parser vs a plain Python loop over lines;
- msd: categorical ids vs ``pd.read_csv`` with no hints (string ids).

Usage: ``python benchmarks/bench_loaders.py [--rows 5000000] [--repeats 3]``
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def write_files(folder: Path, rows: int, cases: list[str]) -> None:
    rng = np.random.default_rng(0)
    users = rng.integers(1, 138_000, rows)
    items = rng.integers(1, 27_000, rows)
    ratings = rng.integers(1, 11, rows) / 2
    ts = rng.integers(800_000_000, 1_400_000_000, rows)
    if "ml20m" in cases:
        _write_ml20m(folder, rows, users, items, ratings, ts)
    if "netflix" in cases:
        _write_netflix(folder, rows, users, ratings)
    if "msd" in cases:
        _write_msd(folder, rows, rng)


def _write_ml20m(folder, rows, users, items, ratings, ts) -> None:
    with open(folder / "ratings.csv", "w") as f:
        f.write("userId,movieId,rating,timestamp\r\n")
        for lo in range(0, rows, 1_000_000):
            hi = min(rows, lo + 1_000_000)
            f.write("".join(f"{u},{i},{r:.1f},{t}\r\n" for u, i, r, t in zip(users[lo:hi], items[lo:hi], ratings[lo:hi], ts[lo:hi], strict=False)))


def _write_netflix(folder, rows, users, ratings) -> None:
    per_movie = 5_000
    nf = folder / "netflix"
    nf.mkdir()
    with open(nf / "combined_data_1.txt", "w") as f:
        for lo in range(0, rows, per_movie):
            block = [f"{lo // per_movie + 1}:"]
            block += [f"{u * 19},{int(r * 2) // 2 or 1},2005-09-06" for u, r in zip(users[lo : lo + per_movie], ratings[lo : lo + per_movie], strict=False)]
            f.write("\n".join(block) + "\n")


def _write_msd(folder, rows, rng) -> None:
    hexes = np.array([f"{x:040x}" for x in rng.integers(0, 2**62, 200_000)])
    songs = np.array([f"SO{x:016X}" for x in rng.integers(0, 2**62, 50_000)])
    with open(folder / "train_triplets.txt", "w") as f:
        for lo in range(0, rows, 1_000_000):
            hi = min(rows, lo + 1_000_000)
            u = hexes[np.sort(rng.integers(0, len(hexes), hi - lo))]
            s = songs[rng.integers(0, len(songs), hi - lo)]
            c = rng.integers(1, 20, hi - lo)
            f.write("".join(f"{a}\t{b}\t{n}\n" for a, b, n in zip(u, s, c, strict=False)))


def _rss_mb(field: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def child(case: str, folder: Path) -> None:
    import pandas as pd

    from benchmark.data.movielens import ml_20m
    from benchmark.data.msd import read_msd
    from benchmark.data.netflix import read_netflix

    before_mb = _rss_mb("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:  # reset the peak (VmHWM) after the imports
        f.write("5")
    t = time.perf_counter()
    if case == "ml20m_loader":
        n = len(ml_20m().read_raw(folder))
    elif case == "ml20m_baseline":
        n = len(pd.read_csv(folder / "ratings.csv"))
    elif case == "netflix_loader":
        n = len(read_netflix(folder / "netflix"))
    elif case == "netflix_baseline":
        rows, movie = [], 0
        with open(folder / "netflix" / "combined_data_1.txt") as f:
            for line in f:
                if line.endswith(":\n"):
                    movie = int(line[:-2])
                else:
                    c, r, _ = line.split(",")
                    rows.append((int(c), movie, int(r)))
        n = len(pd.DataFrame(rows, columns=["user", "item", "rating"]))
    elif case == "msd_loader":
        n = len(read_msd(folder))
    elif case == "msd_baseline":
        n = len(pd.read_csv(folder / "train_triplets.txt", sep="\t", header=None, names=["user", "item", "count"]))
    else:
        raise SystemExit(f"unknown case {case}")
    seconds = time.perf_counter() - t
    peak_mb = _rss_mb("VmHWM") - before_mb
    print(json.dumps({"seconds": seconds, "peak_mb": peak_mb, "rows": n}))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=5_000_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--cases", default="ml20m,netflix,msd", help="comma-separated subset")
    ap.add_argument("--child", nargs=2, metavar=("CASE", "FOLDER"))
    args = ap.parse_args()
    if args.child:
        child(args.child[0], Path(args.child[1]))
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        t = time.perf_counter()
        cases = args.cases.split(",")
        write_files(folder, args.rows, cases)
        print(f"wrote {args.rows:,} rows per format in {time.perf_counter() - t:.1f} s")
        print(f"{'case':<18}{'loader s':>10}{'baseline s':>12}{'speed-up':>10}{'loader +MB':>11}{'baseline +MB':>13}")
        for name in cases:
            res = {}
            for kind in ("loader", "baseline"):
                runs = []
                for _ in range(args.repeats):
                    out = subprocess.run(
                        [sys.executable, __file__, "--child", f"{name}_{kind}", str(folder)],
                        capture_output=True, text=True, check=True,
                    )
                    runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
                res[kind] = (statistics.median(r["seconds"] for r in runs), statistics.median(r["peak_mb"] for r in runs))
            (ls, lm), (bs, bm) = res["loader"], res["baseline"]
            print(f"{name:<18}{ls:>10.2f}{bs:>12.2f}{bs / ls:>9.1f}x{lm:>11.0f}{bm:>13.0f}")


if __name__ == "__main__":
    main()
