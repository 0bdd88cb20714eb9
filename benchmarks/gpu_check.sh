#!/usr/bin/env bash
# The GPU checks of the suite in one go (run on a machine with a CUDA device):
#   the VAE speed script at ML-20M and MSD shape, EASE at ML-20M shape, and the CUDA tests.
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
$py -m pytest -q -p no:cacheprovider tests/test_vae.py tests/test_baselines.py -k cuda 2>&1 | tail -5 | tee "$out/cuda_tests.log"
