"""The suite's memory and CPU budget: what this process may use, and the check before a
large allocation.

- :func:`available_memory`: bytes free on the host (``MemAvailable``, capped by a cgroup v2
  or v1 limit) or on the CUDA device, capped by ``BENCHMARK_MEMORY_LIMIT`` (e.g. ``8G``)
  when set and by an explicit limit.
- :func:`check_memory`: the estimate of a dense (n_items, n_items) closed form, raising
  :class:`InsufficientMemoryError` (a ``MemoryError``) that names the estimate and the
  memory available *before* anything is allocated, instead of the operating system killing
  the process half-way.
- :func:`dense_weights_skip_reason`: why a model with dense (n_items, n_items) weights
  cannot run on a data set at all (neither the host nor a CUDA device would hold them).
- :func:`available_cpus`: the CPUs this process may run on (its affinity mask).

A foundation module: the standard library, NumPy and :mod:`benchmark.units` only (torch is
imported inside the functions that ask a CUDA device).
"""

from __future__ import annotations

import os
import warnings
from typing import Any

import numpy as np

from .units import fmt_bytes, parse_bytes

__all__ = [
    "DENSE_COPIES",
    "MEMORY_ENV",
    "InsufficientMemoryError",
    "available_cpus",
    "available_memory",
    "check_memory",
    "dense_weights_skip_reason",
]

#: The environment variable that caps the memory every check and plan sees (e.g. ``8G``).
MEMORY_ENV = "BENCHMARK_MEMORY_LIMIT"
IGNORE_PLAN_ENV = "BENCHMARK_IGNORE_PLAN"  # set by run --ignore-plan: check_memory warns only

#: n x n matrices alive at the peak of a dense closed form (EASE, EDLAE, DLAE): the CPU
#: builds G in place and inverts it in place (plus block temporaries, counted as a quarter
#: copy); CUDA holds G and its factor, then the factor and the inverse (2), and the host
#: keeps nothing of that size.
DENSE_COPIES = {"cpu": 1.25, "cuda": 2.0}


class InsufficientMemoryError(MemoryError):
    """A model's estimated memory need exceeds what is available (raised before allocating)."""


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask; the CPU count where there is none)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def _host_available() -> int:
    """MemAvailable from /proc/meminfo, capped by a cgroup (v2 or v1) limit."""
    avail = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    avail = int(line.split()[1]) * 1024
                    break
    except OSError:  # pragma: no cover - not Linux
        pass
    if avail is None:  # pragma: no cover
        try:
            avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            avail = 1 << 62
    for limit_f, used_f in (
        ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
        ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes"),
    ):
        try:
            with open(limit_f) as f:
                raw = f.read().strip()
            if raw == "max":
                continue
            with open(used_f) as f:
                used = int(f.read().strip())
            avail = min(avail, max(0, int(raw) - used))
        except (OSError, ValueError):
            continue
    return int(avail)


def available_memory(device: str, limit: int | None = None) -> int:
    """Bytes available on ``device`` ("cpu" or "cuda"), capped by ``limit`` and by the
    environment variable ``BENCHMARK_MEMORY_LIMIT`` (e.g. ``8G``) when set.

    Raises:
        ValueError: ``BENCHMARK_MEMORY_LIMIT`` is not a size (naming what is accepted).
    """
    if device == "cuda":
        import torch

        free, _total = torch.cuda.mem_get_info()
        avail = int(free + torch.cuda.memory_reserved() - torch.cuda.memory_allocated())
    else:
        avail = _host_available()
    env = os.environ.get(MEMORY_ENV)
    if env:
        avail = min(avail, parse_bytes(env))
    if limit is not None:
        avail = min(avail, int(limit))
    return avail


def check_memory(
    n_items: int,
    dtype: str,
    device: str,
    *,
    limit: int | None = None,
    model: str = "EASE",
    copies: float | None = None,
) -> int:
    """Estimate the peak of an n_items x n_items closed form; raise if it cannot fit.

    Args:
        n_items: the matrices' side.
        dtype: their NumPy dtype name ("float32", "float64").
        device: "cpu" or "cuda".
        limit: a cap in bytes (the model's ``memory_limit``), besides the environment's.
        model: the name the message gives.
        copies: n x n matrices alive at the peak (default :data:`DENSE_COPIES` of the device).

    Returns:
        The estimate in bytes.

    Raises:
        InsufficientMemoryError: estimate > available memory on ``device``.
    """
    itemsize = np.dtype(dtype).itemsize
    if copies is None:
        copies = DENSE_COPIES["cuda" if device == "cuda" else "cpu"]
    need = int(n_items * n_items * itemsize * copies)
    avail = available_memory(device, limit)
    if need > avail and os.environ.get(IGNORE_PLAN_ENV):
        warnings.warn(f"{model} needs about {fmt_bytes(need)} but only {fmt_bytes(avail)} is "
                      f"available on {device}; fitting anyway (--ignore-plan)", stacklevel=2)
    elif need > avail:
        where = "GPU" if device == "cuda" else "host"
        hint = (
            "use dtype='float32'" if itemsize == 8 else "use a machine (or GPU) with more memory"
        )
        raise InsufficientMemoryError(
            f"{model} needs about {fmt_bytes(need)} ({n_items:,} items^2 x {itemsize} bytes x "
            f"{copies:g} copies) but only {fmt_bytes(avail)} of {where} memory is available on "
            f"{device}; {hint}, try --device {'cpu' if device == 'cuda' else 'cuda'}, or skip "
            f"{model} on this data set (limit from {MEMORY_ENV} or {model}.memory_limit when set)"
        )
    return need


def dense_weights_skip_reason(stats: dict[str, Any], limit: Any, model: str) -> str | None:
    """Why a model with dense (n_items, n_items) float32 weights cannot run on a data set of
    ``stats`` (``stats["items"]``): neither host memory nor a CUDA device would hold them
    (None: one would)."""
    n = int(stats.get("items", 0))
    devices = ["cpu"]
    try:
        import torch

        if torch.cuda.is_available():
            devices.append("cuda")
    except ImportError:  # pragma: no cover
        pass
    errors = []
    for device in devices:
        try:
            check_memory(n, "float32", device, limit=limit, model=model)
            return None
        except InsufficientMemoryError as exc:
            errors.append(str(exc))
    return " / ".join(errors)
