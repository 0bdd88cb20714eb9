#!/usr/bin/env bash
# The GPU checks of the suite in one go (run on a machine with a CUDA device):
#   the VAE speed script at ML-20M and MSD shape, EASE at ML-20M shape, RecVAE and iALS
#   epoch times at ML-20M shape, and the CUDA tests.
# Usage: bash benchmarks/gpu_check.sh [OUT_DIR]
set -u
out=${1:-${OUT:-/tmp/gpu_check}}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 PYTHONPATH="$(pwd)${PYTHONPATH:+:$PYTHONPATH}"
py=${PYTHON:-python3}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
$py -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name(0))" | tee -a "$out/gpu.txt"
$py benchmarks/vae_speed.py --device cuda --epochs 3 --json "$out/vae_ml20m.json" 2>&1 | tee "$out/vae_ml20m.log"
$py benchmarks/vae_speed.py --device cuda --shape msd --epochs 2 --json "$out/vae_msd.json" 2>&1 | tee "$out/vae_msd.log"
$py - <<'PY' 2>&1 | tee "$out/ease.log"
import time, numpy as np, scipy.sparse as sp, torch
from benchmark.models.ease import EASE
from benchmark.protocol import FitOptions
rng = np.random.default_rng(0)
n_users, n_items, nnz = 116_677, 20_108, 8_500_000
pop = 1.0 / np.arange(1, n_items + 1) ** 0.8
pop /= pop.sum()
rows = rng.integers(0, n_users, nnz)
cols = rng.choice(n_items, nnz, p=pop)
X = sp.csr_matrix((np.ones(nnz, np.float32), (rows, cols)), shape=(n_users, n_items))
X.data[:] = 1
for dev in ("cuda", "cuda", "cpu"):
    torch.cuda.reset_peak_memory_stats()
    t = time.perf_counter()
    m = EASE(l2=500.0).fit(X, options=FitOptions(device=dev))
    torch.cuda.synchronize()
    s = m.score(X[:10_000])
    print(f"EASE ml20m-shape fit+score10k on {dev}: {time.perf_counter() - t:.2f} s, "
          f"peak GPU {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB, scores {s.shape}")
PY
$py - <<'PY' 2>&1 | tee "$out/later_models.log"
# RecVAE and iALS (the paper's ML-20M settings) epoch times at ML-20M shape, 2 epochs each.
import time, numpy as np, scipy.sparse as sp, torch
from benchmark import registry
from benchmark.protocol import FitOptions, HeldOut
rng = np.random.default_rng(0)
n_users, n_items, nnz = 116_677, 20_108, 8_500_000
pop = 1.0 / np.arange(1, n_items + 1) ** 0.8
pop /= pop.sum()
X = sp.csr_matrix((np.ones(nnz, np.float32), (rng.integers(0, n_users, nnz), rng.choice(n_items, nnz, p=pop))),
                  shape=(n_users, n_items))
X.data[:] = 1
valid = HeldOut(X[:10_000], X[10_000:20_000])
for name in ("recvae", "ials"):
    cls = registry.get(name)
    torch.cuda.reset_peak_memory_stats()
    t = time.perf_counter()
    m = cls(**cls.default_params("ml-20m")).fit(X, valid, options=FitOptions(device="cuda", epochs=2, progress=False))
    torch.cuda.synchronize()
    print(f"{name} ml20m-shape: epochs {[round(h.seconds, 2) for h in m.history_]} s, validation "
          f"{[round(h.extra.get('valid_seconds', 0), 2) for h in m.history_]} s, total "
          f"{time.perf_counter() - t:.1f} s, peak GPU {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB")
PY
$py -m pytest -q -p no:cacheprovider tests/test_vae.py tests/test_baselines.py tests/test_edlae_ials.py -k cuda 2>&1 | tail -5 | tee "$out/cuda_tests.log"
