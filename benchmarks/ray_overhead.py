"""What the Ray path costs: per-fit overhead, and the every-model table through ``--ray``.

Three measurements, each end to end through the CLI (``python -m benchmark run``), on real
local Ray clusters started and stopped here (``ray start``; token auth off, no dashboard):

1. **Per-fit overhead**: ``--models multvae --epochs 1 --seeds 0..N-1`` (N short fits) at
   one thread through ``--ray`` on a one-CPU, one-node cluster (so Ray, too, runs them one
   after another) against the same command run sequentially; (ray wall - sequential wall)
   / N per fit, plus the one-off costs measured in the driver: joining the cluster,
   ``ray.put`` of the split, the first task.
2. **One node**: every model on ml-100k through ``--ray`` on a one-node cluster of all cores
   (one thread per fit, fits side by side) against the sequential run (all cores per fit);
   goal: wall ratio <= 1.3.
3. **Two nodes**: the same table on a two-node local cluster (one CPU each) against a
   sequential run at ``--threads 1``; goal: wall ratio <= 0.8 (ideal 0.5; the daemons share
   the cores).

Each timing is the median of ``--repeats`` (tables: ``--table-repeats``) runs into fresh
results folders.

    python benchmarks/ray_overhead.py --data-dir /tmp/data --repeats 3
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
RAY = str(Path(sys.executable).with_name("ray"))
ENV = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}


def start_cluster(nodes: int, cpus: int) -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    common = ["--num-cpus", str(cpus), "--node-ip-address", "127.0.0.1", "--disable-usage-stats"]
    subprocess.run([RAY, "start", "--head", "--port", str(port), "--include-dashboard=false",
                    *common], env=ENV, check=True, capture_output=True)
    for _ in range(nodes - 1):
        subprocess.run([RAY, "start", "--address", f"127.0.0.1:{port}", *common], env=ENV,
                       check=True, capture_output=True)
    return f"127.0.0.1:{port}"


def stop_cluster() -> None:
    subprocess.run([RAY, "stop", "--force"], env=ENV, capture_output=True)


def wall(args: list[str], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        out = Path(tempfile.mkdtemp(prefix="ray-bench-"))
        t0 = time.perf_counter()
        p = subprocess.run([sys.executable, "-m", "benchmark", "run", *args, "--results-dir",
                            str(out / "r"), "--no-report", "--no-progress", "-q"],
                           cwd=out, env=ENV, capture_output=True, text=True)
        times.append(time.perf_counter() - t0)
        shutil.rmtree(out, ignore_errors=True)
        if p.returncode != 0:
            raise SystemExit(f"failed: {' '.join(args)}\n{p.stderr[-3000:]}")
    return statistics.median(times)


def one_off_costs(address: str, data_dir: str) -> dict[str, float]:
    import ray

    from benchmark.data import load_split

    split = load_split("ml-100k", data_dir=data_dir)
    t0 = time.perf_counter()
    ray.init(address=address, log_to_driver=False, configure_logging=False)
    t1 = time.perf_counter()
    ref = ray.put(split)
    t2 = time.perf_counter()
    ray.get(ray.remote(lambda s: s.n_items).remote(ref))
    t3 = time.perf_counter()
    ray.get(ray.remote(lambda s: s.n_items).remote(ref))
    t4 = time.perf_counter()
    ray.shutdown()
    return {"join": t1 - t0, "put split": t2 - t1, "first task": t3 - t2, "next task": t4 - t3}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-dir", required=True, help="holds ml-100k/raw (or its cached split)")
    ap.add_argument("--repeats", type=int, default=3, help="runs per overhead timing")
    ap.add_argument("--table-repeats", type=int, default=1, help="runs per every-model table")
    ap.add_argument("--fits", type=int, default=8, help="short fits for the overhead")
    ap.add_argument("--models", default="all")
    ap.add_argument("--parts", default="overhead,one,two", help="which measurements")
    a = ap.parse_args()
    data = ["--dataset", "ml-100k", "--data-dir", a.data_dir]
    cpus = os.cpu_count() or 2
    seeds = ",".join(str(i) for i in range(a.fits))
    parts = set(a.parts.split(","))
    table = ["--models", a.models, *data]
    lines = []
    stop_cluster()
    try:
        if "overhead" in parts:  # one CPU: Ray runs the fits one after another, as sequential
            address = start_cluster(1, 1)
            costs = one_off_costs(address, a.data_dir)
            fits = ["--models", "multvae", "--epochs", "1", "--seeds", seeds, "--threads", "1", *data]
            seq = wall(fits, a.repeats)
            ray = wall([*fits, "--ray", address], a.repeats)
            stop_cluster()
            lines += ["one-off: " + ", ".join(f"{k} {v:.2f} s" for k, v in costs.items()),
                      f"per-fit overhead: {(ray - seq) / a.fits:.2f} s ({a.fits} one-epoch Mult-VAE "
                      f"fits on one CPU: sequential {seq:.1f} s, ray {ray:.1f} s)"]
        if "one" in parts:
            address = start_cluster(1, cpus)
            seq, ray = wall(table, a.table_repeats), wall([*table, "--ray", address], a.table_repeats)
            stop_cluster()
            lines.append(f"one node ({cpus} CPUs): sequential {seq:.1f} s, ray {ray:.1f} s, "
                         f"ratio {ray / seq:.2f} (goal <= 1.3)")
        if "two" in parts:
            address = start_cluster(2, 1)
            seq = wall([*table, "--threads", "1"], a.table_repeats)
            ray = wall([*table, "--ray", address], a.table_repeats)
            lines.append(f"two nodes (1 CPU each): sequential at 1 thread {seq:.1f} s, ray "
                         f"{ray:.1f} s, ratio {ray / seq:.2f} (goal <= 0.8)")
    finally:
        stop_cluster()
    print("\n".join(lines))

if __name__ == "__main__":
    main()
