"""A plan before a long run: each model's estimated fit time and peak memory, up front.

Every estimate is a cost formula in the data's shape, calibrated by timing the model's own
inner kernel on this machine and device for a moment (a few minibatch updates of the
autoencoder at full width, a Cholesky inverse and a Gram block for EASE, one ALS sweep or
one LightFM epoch on a sample of users, a block of SLIM's regressions), so the numbers move
with the hardware, the threads and the parameters. A model whose estimate exceeds the
memory available (``BENCHMARK_MEMORY_LIMIT`` caps it) or ``--time-budget`` is named with
its estimate before anything is fitted.

Models implement ``estimate_cost(split, params, options) -> Estimate`` (a classmethod);
those without one are listed as "no estimate".
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from . import registry
from .model import FitOptions
from .protocol import Split


@dataclass
class Estimate:
    """A model's estimated fit time (seconds, validation passes included) and peak memory
    (bytes on its device, the data included), with the formula that gave them."""

    seconds: float | None
    peak_bytes: int | None
    detail: str = ""


@dataclass
class PlanRow:
    model: str
    estimate: Estimate | None
    device: str
    problem: str | None = None


def timed(fn: Callable[[], Any], repeats: int = 3) -> float:
    """Median wall time of ``fn`` over ``repeats`` calls, after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def user_sample(x: sp.csr_matrix, fraction: float, minimum: int, seed: int = 0) -> sp.csr_matrix:
    """A random sample of the rows of ``x`` (at least ``minimum`` rows, at most all)."""
    n = x.shape[0]
    k = int(min(n, max(minimum, round(fraction * n))))
    rows = np.sort(np.random.default_rng(seed).choice(n, size=k, replace=False))
    return sp.csr_matrix(x[rows])


def validation_seconds(model: Any, split: Split, users: int = 1000) -> float:
    """Seconds of one validation NDCG@100 pass, timed on up to ``users`` validation users."""
    from .evaluate import validation_ndcg

    n = split.valid.n_users
    if n == 0:
        return 0.0
    k = min(n, users)
    sub = split.valid.subset(np.arange(k))
    t = time.perf_counter()
    validation_ndcg(model.score, sub)
    return (time.perf_counter() - t) * n / k


def fmt_bytes(n: float | None) -> str:
    if n is None:
        return "-"
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)} B"


def fmt_seconds(s: float | None) -> str:
    if s is None:
        return "-"
    if s < 120:
        return f"{s:.1f} s"
    if s < 7200:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.1f} h"


def make_plan(
    names: list[str],
    split: Split,
    params: dict[str, dict[str, Any]],
    options: FitOptions,
    *,
    time_budget: float | None = None,
    memory_limit: int | None = None,
) -> list[PlanRow]:
    """Estimate every model; mark those over the memory available or the time budget."""
    from .models.ease import available_memory

    device = options.resolve_device()
    rows = []
    for name in names:
        cls = registry.get(name)
        p = {**cls.default_params(split.meta.get("dataset")), **params.get(name, {})}
        est = None
        problem = None
        fn = getattr(cls, "estimate_cost", None)
        if fn is not None:
            try:
                est = fn(split, p, options)
            except Exception as exc:  # an estimate must never stop a run
                est = Estimate(None, None, f"no estimate ({type(exc).__name__}: {exc})")
        if est is not None and est.peak_bytes is not None:
            avail = available_memory(device, memory_limit)
            if est.peak_bytes > avail:
                problem = (f"needs about {fmt_bytes(est.peak_bytes)} but {fmt_bytes(avail)} of "
                           f"{'GPU' if device == 'cuda' else 'host'} memory is available")
        if problem is None and est is not None and est.seconds is not None and time_budget is not None:
            if est.seconds > time_budget:
                problem = (f"would take about {fmt_seconds(est.seconds)}, over --time-budget "
                           f"{fmt_seconds(time_budget)}")
        rows.append(PlanRow(name, est, device, problem))
    return rows


def format_plan(rows: list[PlanRow]) -> str:
    header = ["model", "device", "est. fit (at most)", "est. peak memory", "how", ""]
    lines = []
    for r in rows:
        e = r.estimate
        lines.append([
            r.model, r.device, fmt_seconds(e.seconds if e else None),
            fmt_bytes(e.peak_bytes if e else None), (e.detail if e else "no estimate"),
            f"REFUSED: {r.problem}" if r.problem else "",
        ])
    widths = [max(len(str(x)) for x in col) for col in zip(header, *lines)]
    out = ["plan: " + "  ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip()]
    out += ["      " + "  ".join(str(c).ljust(w) for c, w in zip(cells, widths)).rstrip() for cells in lines]
    return "\n".join(out)
