"""A plan before a long run: each model's estimated fit time and peak memory, up front.

Every estimate is a cost formula in the data's shape, calibrated by timing the model's own
inner kernel on this machine and device for a moment (a few minibatch updates of the
autoencoder at full width, a Cholesky inverse and a Gram block for EASE, one ALS sweep or
one LightFM epoch on a sample of users, a block of SLIM's regressions), so the numbers move
with the hardware, the threads and the parameters. A model whose estimate exceeds the
memory available (``BENCHMARK_MEMORY_LIMIT`` caps it) or ``--time-budget`` is named with
its estimate before anything is fitted.

Models implement ``estimate_cost(shape, params, options) -> Estimate | None`` (a classmethod
of :class:`benchmark.model.Recommender`; ``shape`` a :class:`benchmark.cost.DataShape`);
those returning None are listed as "no estimate". A plan is made from a split or from a
shape alone (counts, no matrices: the models then time synthetic matrices of that shape).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from . import registry
from .cost import DataShape, Estimate
from .model import FitOptions
from .protocol import Split
from .resources import available_memory
from .units import fmt_bytes, fmt_seconds

__all__ = ["PlanRow", "format_plan", "make_plan"]


@dataclass
class PlanRow:
    model: str
    estimate: Estimate | None
    device: str
    problem: str | None = None


def make_plan(
    names: list[str],
    shape: DataShape | Split,
    params: dict[str, dict[str, Any]],
    options: FitOptions,
    *,
    time_budget: float | None = None,
    memory_limit: int | None = None,
) -> list[PlanRow]:
    """Estimate every model; mark those over the memory available or the time budget.

    Args:
        names: registered model names.
        shape: the data's :class:`DataShape`, or a ``Split`` (its shape is taken).
        params: per model, parameters over its defaults for ``shape.dataset``.
        options: the run's options (device, threads, epochs cap).
        time_budget: seconds; a model estimated above it is marked.
        memory_limit: bytes; caps the memory available (as ``BENCHMARK_MEMORY_LIMIT``).
    """
    if isinstance(shape, Split):
        shape = DataShape.from_split(shape)
    device = options.resolve_device()
    rows = []
    for name in names:
        cls = registry.get(name)
        p = {**cls.default_params(shape.dataset), **params.get(name, {})}
        problem = None
        try:
            est = cls.estimate_cost(shape, p, options)
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
