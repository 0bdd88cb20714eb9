"""The MSD-shape table measured on this machine: each model's fit against the plan.

On ``synthetic:msd`` (571,355 users x 41,140 items, the paper's post-filter shape; see
``benchmark/data/rehearsal.py``), split by the paper's protocol: the plan for every model
(the same call ``run`` makes, from the data), then each chosen model fitted end to end in a
child process of its own (``spawn``), one after another, the iterative ones for
``--epochs`` epochs (default 1: the epoch time against the plan's). Per model: the
measured fit time, the child's peak resident memory, the plan's estimate (time and peak)
and the ratios. A model the plan refuses is not started (its estimate and reason are the
row). A fit that dies is named by its signal.

Each measured row is appended to ``--out`` (JSON lines) as it finishes; a rerun skips the
models already there, so the table can be built over several sessions.

    python benchmarks/msd_shape.py --data-dir /tmp/data --models popularity,ease,wmf,multvae
    python benchmarks/msd_shape.py --dataset synthetic:ml-20m --models slim
    python benchmarks/msd_shape.py --table          # print the table from --out
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _child(name: str, params: dict, dataset: str, data_dir: str, epochs: int | None, conn) -> None:
    from benchmark import registry
    from benchmark.data import load_split
    from benchmark.jobs import fit_and_evaluate
    from benchmark.model import FitOptions

    split = load_split(dataset, data_dir=data_dir)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    cls = registry.get(name)
    p = {**cls.default_params(dataset), **params}
    _, fit_s, evals = fit_and_evaluate(cls, p, split, FitOptions(epochs=epochs, progress=True,
                                                                dataset=dataset),
                                       parts=("test",))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    conn.send({"fit_seconds": fit_s, "peak_bytes": peak, "data_bytes": before,
               "test_ndcg@100": evals["test"].mean()["ndcg@100"]})
    conn.close()


def measure(name: str, params: dict, dataset: str, data_dir: str, epochs: int | None) -> dict:
    ctx = mp.get_context("spawn")
    receive, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(name, params, dataset, data_dir, epochs, send))
    t0 = time.perf_counter()
    proc.start()
    send.close()
    try:
        out = receive.recv()
    except EOFError:
        out = {"error": "no result"}
    proc.join()
    if proc.exitcode and proc.exitcode < 0:
        import signal

        out = {"error": f"killed by {signal.Signals(-proc.exitcode).name}"}
    out["wall_seconds"] = time.perf_counter() - t0
    return out


def table(path: Path) -> str:
    from benchmark.units import fmt_bytes, fmt_seconds

    rows = [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []
    lines = ["| dataset | model | epochs | fit (measured) | plan | plan / measured | peak memory "
             "(measured, process) | plan peak | test NDCG@100 |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if r.get("error") or r.get("refused"):
            lines.append(f"| {r['dataset']} | {r['model']} | {r.get('epochs') or '-'} | not run: "
                         f"{r.get('error') or r.get('refused')} | {fmt_seconds(r.get('plan_seconds'))} | - | - | "
                         f"{fmt_bytes(r.get('plan_peak'))} | - |")
            continue
        ratio = (r["plan_seconds"] / r["fit_seconds"]) if r.get("plan_seconds") else None
        lines.append(
            f"| {r['dataset']} | {r['model']} | {r.get('epochs') or '-'} | {fmt_seconds(r['fit_seconds'])} | "
            f"{fmt_seconds(r.get('plan_seconds'))} | {f'{ratio:.2f}' if ratio else '-'} | "
            f"{fmt_bytes(r['peak_bytes'])} | {fmt_bytes(r.get('plan_peak'))} | {r['test_ndcg@100']:.4f} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", default="synthetic:msd")
    ap.add_argument("--data-dir", default="datasets")
    ap.add_argument("--models", default="popularity,ease,wmf,multvae")
    ap.add_argument("--epochs", type=int, default=1, help="epochs of the --capped models")
    ap.add_argument("--capped", default="multvae,multdae,gaussian-vae,gaussian-dae,logistic-vae,"
                    "logistic-dae,recvae,lightfm",
                    help="models fitted for --epochs epochs only (the others end to end, WMF's "
                    "15 sweeps included)")
    ap.add_argument("--out", default="benchmarks/msd_shape.jsonl")
    ap.add_argument("--table", action="store_true", help="print the table from --out and exit")
    a = ap.parse_args()
    out = Path(a.out)
    if a.table:
        print(table(out))
        return
    from benchmark.cost import DataShape
    from benchmark.data import load_split
    from benchmark.model import FitOptions
    from benchmark.plan import plan_run

    t0 = time.perf_counter()
    split = load_split(a.dataset, data_dir=a.data_dir)
    print(f"{a.dataset}: {split.train.shape[0]:,} training users x {split.n_items:,} items, "
          f"{split.train.nnz:,} clicks ({time.perf_counter() - t0:.0f} s to load)", flush=True)
    names = [m.strip() for m in a.models.split(",") if m.strip()]
    done = {(r["dataset"], r["model"]) for r in map(json.loads, out.read_text().splitlines())} \
        if out.exists() else set()
    t0 = time.perf_counter()
    capped = {m.strip() for m in a.capped.split(",")}
    shape = DataShape.from_split(split)
    plans = [plan_run([m], {}, shape, {}, FitOptions(epochs=a.epochs if m in capped else None,
                                                     progress=False), basis="the data")
             for m in names]
    rows = [p.rows[0] for p in plans]
    print("\n".join(p.format() for p in plans), f"\n(plans made in {time.perf_counter() - t0:.0f} s)",
          flush=True)
    del split
    for row in rows:
        if (a.dataset, row.model) in done:
            continue
        e = row.estimate
        rec = {"dataset": a.dataset, "model": row.model,
               "epochs": a.epochs if row.model in capped else None,
               "plan_seconds": e.seconds if e else None, "plan_peak": e.peak_bytes if e else None}
        if row.problem:
            rec["refused"] = row.problem
        else:
            print(f"fitting {row.model} ...", flush=True)
            rec.update(measure(row.model, {}, a.dataset, a.data_dir,
                               a.epochs if row.model in capped else None))
        print(json.dumps(rec), flush=True)
        with out.open("a") as f:
            f.write(json.dumps(rec) + "\n")
    print(table(out))


if __name__ == "__main__":
    main()
