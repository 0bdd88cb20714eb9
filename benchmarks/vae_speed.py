"""Speed and memory of our Mult-VAE against the same network fed dense batches.

(a) ``ours``: ``benchmark.models.vae.MultVAE`` as ``run`` trains it (sparse first layer,
    fused likelihood, fused Adam, CSR kept on the device), one or more full epochs, each
    followed by a validation pass through the suite's evaluator.
(c) ``gemm``: the five plain dense GEMMs of the first and last layers' shapes for one
    minibatch (forward and backward), timed alternately with (a) and (b): our step as a
    multiple of it says how close the epoch is to the matrix products it cannot avoid.
(b) ``dense``: the same [I-600-200-600-I] network as the reference code feeds it: each
    minibatch densified (``X[rows].toarray()``), L2-normalised and dropped out densely,
    dense first-layer matmul, ``log_softmax * X`` likelihood, torch's default Adam. Only
    ``--ref-batches`` minibatches are timed and the epoch time is extrapolated from their
    mean (printed as such); its validation pass densifies each batch of fold-in rows.

Each variant runs in its own subprocess so that its peak RSS (and peak GPU memory) is its
own; the data set is generated once (seeded) and shared through a temporary .npz file.

Usage::

    python benchmarks/vae_speed.py                     # ML-20M shape, CPU (about 10 min on 2 cores)
    python benchmarks/vae_speed.py --quick             # small smoke test (seconds)
    python benchmarks/vae_speed.py --device cuda --epochs 3
    python benchmarks/vae_speed.py --shape msd --device cuda
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SHAPES = {
    # training users, items, training interactions, validation users (the paper's Table 1)
    "ml20m": dict(users=116_677, items=20_108, nnz=8_500_000, valid_users=10_000),
    "msd": dict(users=471_355, items=41_140, nnz=29_000_000, valid_users=50_000),
    "quick": dict(users=6_000, items=3_000, nnz=300_000, valid_users=1_000),
}
GOALS = {"ml20m": 2.0, "msd": 15.0}  # GPU seconds per epoch (the goals)


# --- data --------------------------------------------------------------------------------------


def _rows(rng: np.random.Generator, n: int, items: int, mean: float, pop: np.ndarray) -> sp.csr_matrix:
    """n binary rows, lognormal row lengths with the given mean, Zipf-like item popularity."""
    sigma = 1.0
    lengths = rng.lognormal(np.log(mean) - sigma**2 / 2, sigma, n)
    lengths = np.clip(np.round(lengths), 5, items // 2).astype(np.int64)
    cols = rng.choice(items, size=int(lengths.sum()), p=pop)
    rows = np.repeat(np.arange(n), lengths)
    X = sp.csr_matrix((np.ones(len(cols), np.float32), (rows, cols)), shape=(n, items))
    X.sum_duplicates()
    X.data[:] = 1.0
    return X


def make_data(users: int, items: int, nnz: int, valid_users: int, seed: int = 0) -> dict:
    """Synthetic sparse data of a given shape (duplicates removed, so nnz is approximate)."""
    rng = np.random.default_rng(seed)
    pop = 1.0 / np.arange(1, items + 1) ** 0.8
    pop = rng.permutation(pop / pop.sum())
    mean = nnz / users
    train = _rows(rng, users, items, mean, pop)
    if train.nnz < 0.97 * nnz:  # make up for the duplicates once
        train = _rows(np.random.default_rng(seed), users, items, mean * nnz / train.nnz, pop)
    va = _rows(rng, valid_users, items, mean, pop).tocoo()
    hold = rng.random(va.nnz) < 0.2
    fold = sp.csr_matrix((va.data[~hold], (va.row[~hold], va.col[~hold])), shape=va.shape)
    held = sp.csr_matrix((va.data[hold], (va.row[hold], va.col[hold])), shape=va.shape)
    return {"train": train, "fold_in": fold, "holdout": held}


def save(data: dict, path: Path) -> None:
    arrays = {}
    for k, m in data.items():
        arrays[f"{k}_indptr"], arrays[f"{k}_indices"] = m.indptr, m.indices
        arrays[f"{k}_shape"] = np.asarray(m.shape)
    np.savez(path, **arrays)


def load(path: Path) -> dict:
    out = {}
    with np.load(path) as z:
        for k in ("train", "fold_in", "holdout"):
            idx = z[f"{k}_indices"]
            out[k] = sp.csr_matrix(
                (np.ones(len(idx), np.float32), idx, z[f"{k}_indptr"]),
                shape=tuple(z[f"{k}_shape"]),
            )
    return out


# --- workers -----------------------------------------------------------------------------------


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def _memory(device: str) -> dict:
    rss_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB
    out = {"peak_rss_gb": rss_gb}
    if device.startswith("cuda"):
        import torch

        out["peak_gpu_gb"] = torch.cuda.max_memory_allocated() / 2**30
    return out


def run_ours(data: dict, args) -> dict:
    from benchmark.model import FitOptions
    from benchmark.models.vae import MultVAE
    from benchmark.protocol import HeldOut

    valid = HeldOut(data["fold_in"], data["holdout"])
    model = MultVAE(epochs=args.epochs, patience=None)
    t0 = time.perf_counter()
    model.fit(
        data["train"],
        valid,
        options=FitOptions(seed=0, device=args.device, progress=False, threads=args.threads),
    )
    total = time.perf_counter() - t0
    epochs = [h.seconds for h in model.history_]
    valids = [h.extra["valid_seconds"] for h in model.history_]
    n_batches = -(-data["train"].shape[0] // model.batch_size)
    steady = epochs[1:] if len(epochs) > 1 else epochs
    return {
        "variant": "ours",
        "epoch_s": float(np.median(steady)),
        "epoch_s_all": epochs,
        "batch_s": float(np.median(steady)) / n_batches,
        "batches_timed": n_batches * len(epochs),
        "n_batches": n_batches,
        "valid_s": float(np.median(valids)),
        "valid_ndcg": model.history_[-1].ndcg100,
        "fit_total_s": total,
        "device": model.device_,
        "extrapolated": False,
        **_memory(model.device_),
    }


def _dense_trainer(X: sp.csr_matrix, device: str):
    """The reference-style trainer: returns step(rows) and score(fold_in)."""
    import torch
    import torch.nn.functional as F

    torch.manual_seed(0)
    items = X.shape[1]
    latent, hidden = 200, 600

    class Net(torch.nn.Module):  # the reference's [I-600-200-600-I], dense layers
        def __init__(self):
            super().__init__()
            self.q1 = torch.nn.Linear(items, hidden)
            self.q2 = torch.nn.Linear(hidden, 2 * latent)
            self.p1 = torch.nn.Linear(latent, hidden)
            self.p2 = torch.nn.Linear(hidden, items)

        def forward(self, x, training):
            h = F.normalize(x, dim=1)
            h = F.dropout(h, 0.5, training=training)
            h = self.q2(torch.tanh(self.q1(h)))
            mu, logvar = h[:, :latent], h[:, latent:]
            z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar) if training else mu
            return self.p2(torch.tanh(self.p1(z))), mu, logvar

    net = Net().to(device)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)  # torch's default Adam

    def step(rows: np.ndarray) -> None:
        x = torch.from_numpy(X[rows].toarray()).to(device)  # densify the batch
        logits, mu, logvar = net(x, True)
        neg_ll = -(F.log_softmax(logits, 1) * x).sum(1).mean()
        kl = (0.5 * (-logvar + logvar.exp() + mu**2 - 1).sum(1)).mean()
        loss = neg_ll + 0.2 * kl
        opt.zero_grad()
        loss.backward()
        opt.step()

    def score(fold: sp.csr_matrix) -> np.ndarray:
        with torch.no_grad():
            logits, _, _ = net(torch.from_numpy(fold.toarray()).to(device), False)
            return logits.cpu().numpy()

    return step, score


def _ours_trainer(X: sp.csr_matrix, device: str, perm: np.ndarray):
    """Our training step on minibatch k of the permuted CSR (the model's own internals)."""
    import torch

    from benchmark.models.vae import DeviceCSR, MultVAE, _adam, _Net

    model = MultVAE()
    gen = torch.Generator(device=device).manual_seed(1)
    net = _Net(X.shape[1], (600,), 200, True, "tanh", torch.Generator().manual_seed(0)).to(device)
    opt = _adam(net.parameters(), 1e-3)
    data = DeviceCSR(X, device).permuted(perm)
    bs = model.batch_size

    def step(k: int) -> None:
        batch = data.batch(k * bs, min((k + 1) * bs, X.shape[0]))
        model._step(net, opt, batch, 0.2, 0.5, gen, 0.0)

    return step


def _gemm_step(X: sp.csr_matrix, device: str, hidden: int = 600):
    """The five plain GEMMs of one dense minibatch through the first and last layers: the
    forward pass x @ W1 and h @ W_L, and the backward pass x^T @ g1, h^T @ g_L, g_L @ W_L^T
    (fp32, dense, minibatch 500). A floor for one training step of the [I-600-200-600-I]
    network: everything else (the 200-wide middle, the likelihood, Adam) is extra."""
    import torch

    g = torch.Generator().manual_seed(0)
    n_items, bs = X.shape[1], 500
    x = torch.rand(bs, n_items, generator=g).to(device)
    w1 = torch.rand(n_items, hidden, generator=g).to(device)
    wl = torch.rand(hidden, n_items, generator=g).to(device)
    h = torch.rand(bs, hidden, generator=g).to(device)
    g1 = torch.rand(bs, hidden, generator=g).to(device)
    gl = torch.rand(bs, n_items, generator=g).to(device)

    def step(_k: int) -> None:
        x @ w1
        h @ wl
        x.T @ g1
        h.T @ gl
        gl @ wl.T

    return step


def _setup(args) -> str:
    import torch

    from benchmark.model import FitOptions, available_cpus

    device = FitOptions(device=args.device).resolve_device()
    torch.set_num_threads(int(args.threads or available_cpus()))
    return device


def run_dense(data: dict, args) -> dict:
    from benchmark.evaluate import validation_ndcg
    from benchmark.protocol import HeldOut

    device = _setup(args)
    X = data["train"]
    n = X.shape[0]
    bs = 500
    n_batches = -(-n // bs)
    perm = np.random.default_rng(0).permutation(n)
    step, score = _dense_trainer(X, device)
    k = min(args.ref_batches, n_batches - 1)
    times = []
    for b in range(k + 1):  # batch 0 is a warm-up, not timed
        _sync(device)
        t0 = time.perf_counter()
        step(perm[b * bs : (b + 1) * bs])
        _sync(device)
        if b:
            times.append(time.perf_counter() - t0)
    valid = HeldOut(data["fold_in"], data["holdout"])
    _sync(device)
    t0 = time.perf_counter()
    ndcg = validation_ndcg(score, valid)
    valid_s = time.perf_counter() - t0
    mean_batch = float(np.mean(times))
    return {
        "variant": "dense",
        "epoch_s": mean_batch * n_batches,
        "batch_s": mean_batch,
        "batch_s_median": float(np.median(times)),
        "batches_timed": len(times),
        "n_batches": n_batches,
        "valid_s": valid_s,
        "valid_ndcg": ndcg,
        "device": device,
        "extrapolated": len(times) < n_batches,
        **_memory(device),
    }


def run_paired(data: dict, args) -> dict:
    """(a) and (b) steps alternated on the same minibatches in one process.

    Both see the same background load, so their ratio is robust on a shared machine.
    Excludes (a)'s once-per-epoch CSR permutation (in the full-epoch figure above).
    """
    device = _setup(args)
    X = data["train"]
    n, bs = X.shape[0], 500
    n_batches = -(-n // bs)
    perm = np.random.default_rng(0).permutation(n)
    ours = _ours_trainer(X, device, perm)
    dense, _ = _dense_trainer(X, device)
    gemm = _gemm_step(X, device)
    k = min(args.ref_batches, n_batches - 1)
    ta, tb, tg = [], [], []
    for b in range(k + 1):
        for fn, arg, out in ((ours, b, ta), (dense, perm[b * bs : (b + 1) * bs], tb), (gemm, b, tg)):
            _sync(device)
            t0 = time.perf_counter()
            fn(arg)
            _sync(device)
            if b:  # batch 0 warms both up
                out.append(time.perf_counter() - t0)
    return {
        "variant": "paired",
        "ours_batch_s": float(np.mean(ta)),
        "dense_batch_s": float(np.mean(tb)),
        "ours_batch_s_median": float(np.median(ta)),
        "dense_batch_s_median": float(np.median(tb)),
        "ratio_mean": float(np.mean(ta) / np.mean(tb)),
        "ratio_median": float(np.median(ta) / np.median(tb)),
        "gemm_batch_s": float(np.mean(tg)),
        "gemm_batch_s_median": float(np.median(tg)),
        "ours_over_gemm": float(np.median(ta) / np.median(tg)),
        "pairs": len(ta),
        "device": device,
    }


# --- driver ------------------------------------------------------------------------------------


def _table(results: list[dict], shape: str, args) -> str:
    head = (
        f"{'variant':<10} {'s/epoch':>9} {'s/batch':>9} {'batches timed':>15} "
        f"{'s/valid':>8} {'peak RSS GB':>12} {'peak GPU GB':>12} {'load':>9}  note"
    )
    lines = [head, "-" * len(head)]
    paired = [r for r in results if r["variant"] == "paired"]
    for r in results:
        if r["variant"] == "paired":
            continue
        note = (
            f"extrapolated: mean of {r['batches_timed']} batches x {r['n_batches']}"
            if r["extrapolated"]
            else "measured: one full epoch"
            if len(r.get("epoch_s_all", [])) < 2
            else f"measured: median of epochs 2..{len(r['epoch_s_all'])}"
        )
        gpu = f"{r['peak_gpu_gb']:.2f}" if "peak_gpu_gb" in r else "-"
        load = "{:.1f}->{:.1f}".format(*r.get("load_before_after", [0, 0]))
        lines.append(
            f"{r['variant']:<10} {r['epoch_s']:>9.2f} {r['batch_s']:>9.4f} "
            f"{r['batches_timed']:>6}/{r['n_batches']:<8} {r['valid_s']:>8.2f} "
            f"{r['peak_rss_gb']:>12.2f} {gpu:>12} {load:>9}  {note}"
        )
    by = {r["variant"]: r for r in results}
    if "ours" in by and "dense" in by:
        ratio = by["ours"]["epoch_s"] / by["dense"]["epoch_s"]
        lines.append(f"ratio (a) ours / (b) dense per epoch: {ratio:.3f}  (goal on CPU: <= 0.5)")
    for r in paired:
        lines.append(
            f"paired, same {r['pairs']} minibatches alternated: (a) {r['ours_batch_s']:.4f} s, "
            f"(b) {r['dense_batch_s']:.4f} s per batch (means); ratio {r['ratio_mean']:.3f} "
            f"(medians: {r['ratio_median']:.3f}); both under the same load, so this ratio is "
            f"the one to trust on a shared machine"
        )
        lines.append(
            f"plain GEMMs of the first and last layers (5 per batch, dense fp32): "
            f"{r['gemm_batch_s_median']:.4f} s per batch (median); our batch is "
            f"{r['ours_over_gemm']:.2f}x of it (medians; goal: at most 1.3x)"
        )
    if "ours" in by:
        o = by["ours"]
        lines.append(f"peak RSS of (a): {o['peak_rss_gb']:.2f} GB  (goal: < 3 GB)")
        if o["device"].startswith("cuda") and shape in GOALS:
            lines.append(f"GPU epoch of (a): {o['epoch_s']:.2f} s  (goal for {shape}: < {GOALS[shape]} s)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--shape", choices=sorted(SHAPES), default="ml20m", help="a preset size")
    p.add_argument("--quick", action="store_true", help="small data (same as --shape quick)")
    p.add_argument("--users", type=int, help="training users (overrides the preset)")
    p.add_argument("--items", type=int)
    p.add_argument("--nnz", type=int, help="training interactions (approximate)")
    p.add_argument("--valid-users", type=int)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--epochs", type=int, default=1, help="epochs of (a); >1 drops the first")
    p.add_argument("--ref-batches", type=int, default=20, help="timed minibatches of (b)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    p.add_argument("--variants", default="ours,dense,paired",
                   help="ours = (a) full epochs; dense = (b) timed batches; paired = both alternated")
    p.add_argument("--json", type=Path, help="also write the results here")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.worker:
        data = load(args.data)
        res = {"ours": run_ours, "dense": run_dense, "paired": run_paired}[args.worker](data, args)
        print("RESULT " + json.dumps(res))
        return 0

    shape = "quick" if args.quick else args.shape
    size = dict(SHAPES[shape])
    for k in ("users", "items", "nnz", "valid_users"):
        if getattr(args, k) is not None:
            size[k] = getattr(args, k)
            shape = "custom"
    t0 = time.perf_counter()
    data = make_data(**size)
    print(
        f"data ({shape}): {data['train'].shape[0]:,} training users x {data['train'].shape[1]:,} "
        f"items, {data['train'].nnz:,} interactions; {data['fold_in'].shape[0]:,} validation "
        f"users; generated in {time.perf_counter() - t0:.1f} s",
        flush=True,
    )
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "data.npz"
        save(data, path)
        del data
        for variant in [v.strip() for v in args.variants.split(",") if v.strip()]:
            cmd = [
                sys.executable, __file__, "--worker", variant, "--data", str(path),
                "--device", args.device, "--epochs", str(args.epochs),
                "--ref-batches", str(args.ref_batches),
            ]
            if args.threads:
                cmd += ["--threads", str(args.threads)]
            load0 = os.getloadavg()[0]
            print(f"running {variant} ... (1-min load average {load0:.1f})", flush=True)
            proc = subprocess.run(cmd, capture_output=True, text=True, env=os.environ.copy())
            line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
            if proc.returncode or not line:
                print(proc.stdout[-3000:], proc.stderr[-3000:], file=sys.stderr)
                return 1
            res = json.loads(line[-1][len("RESULT "):])
            res["load_before_after"] = [round(load0, 2), round(os.getloadavg()[0], 2)]
            results.append(res)
    table = _table(results, shape, args)
    print(table)
    if args.json:
        args.json.write_text(json.dumps({"shape": shape, "size": size, "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
