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

from dataclasses import dataclass, field
from typing import Any

import benchmark.registry as registry

from .cost import TIMINGS, DataShape, Estimate, timing_spread
from .model import FitOptions
from .protocol import Split
from .resources import available_memory
from .units import fmt_bytes, fmt_seconds

__all__ = ["FORCE_HINT", "Plan", "PlanRow", "format_plan", "make_plan", "skipped_line"]


#: A fit the plan calls large, and ``run`` isolates in its own process by default: an
#: estimated peak above this fraction of the memory available, or a time above this many
#: seconds (a crash in native code shows at size; a long fit is worth its own process).
LARGE_MEMORY_FRACTION = 0.25
LARGE_SECONDS = 600.0


@dataclass
class PlanRow:
    """One model's line of the plan.

    Attributes:
        large: the estimate is over :data:`LARGE_MEMORY_FRACTION` of the memory available
            or :data:`LARGE_SECONDS` (``run`` fits it in a child process by default).
        over_memory: the problem is this machine's memory (a Ray cluster's nodes may have it).
    """

    model: str
    estimate: Estimate | None
    device: str
    problem: str | None = None
    large: bool = False
    skipped: str | None = None
    over_memory: bool = False

    def as_dict(self) -> dict[str, Any]:
        e = self.estimate
        return {"model": self.model, "device": self.device,
                "seconds": e.seconds if e else None, "peak_bytes": e.peak_bytes if e else None,
                "how": e.detail if e else "no estimate", "refused": self.problem,
                "skipped": self.skipped, "large": self.large}


@dataclass
class Plan:
    """The plan of one dataset: a row per model of the run, and the totals.

    Attributes:
        dataset: its name.
        basis: what the shape came from ("the data" or the published shape, unread).
        shape: the counts the estimates used.
        rows: one per model named by the run (skipped and refused ones included).
        download_bytes, disk_bytes: what getting the data costs (None: not known).
        timings, spread: how many kernel timings the plan took and their largest relative
            spread (slowest - fastest) / median.
    """

    dataset: str
    basis: str
    shape: DataShape
    rows: list[PlanRow] = field(default_factory=list)
    download_bytes: int | None = None
    disk_bytes: int | None = None
    timings: int = 0
    spread: float | None = None

    def totals(self) -> dict[str, Any]:
        """Over the models that will run (neither skipped nor refused)."""
        run = [r for r in self.rows if not (r.skipped or r.problem)]
        secs = [r.estimate.seconds for r in run if r.estimate and r.estimate.seconds is not None]
        peaks = [r.estimate.peak_bytes for r in run if r.estimate and r.estimate.peak_bytes]
        return {"models": len(run), "seconds": sum(secs), "without_estimate":
                sum(1 for r in run if not (r.estimate and r.estimate.seconds is not None)),
                "peak_bytes": max(peaks, default=None), "download_bytes": self.download_bytes,
                "disk_bytes": self.disk_bytes}

    def as_dict(self) -> dict[str, Any]:
        s = self.shape
        return {"dataset": self.dataset, "basis": self.basis,
                "shape": {"train_users": s.train_users, "items": s.items,
                          "train_clicks": s.train_clicks, "valid_users": s.valid_users,
                          "test_users": s.test_users},
                "models": [r.as_dict() for r in self.rows], "totals": self.totals(),
                "timings": self.timings, "timing_spread": self.spread}

    def format(self) -> str:
        s, t = self.shape, self.totals()
        head = (f"plan for {self.dataset}, from {self.basis}: {s.train_users:,} training users x "
                f"{s.items:,} items, {s.train_clicks:,} clicks; {s.valid_users:,} + "
                f"{s.test_users:,} held-out users")
        noise = (f"{self.timings} kernel timings, spread up to {self.spread:.0%} (slowest - "
                 f"fastest) / median" if self.spread is not None else "no kernel was timed")
        total = (f"total: {t['models']} models, about {fmt_seconds(t['seconds'])} of fits"
                 + (f" ({t['without_estimate']} without an estimate)" if t["without_estimate"] else "")
                 + f"; peak memory {fmt_bytes(t['peak_bytes'])}; download "
                 + (fmt_bytes(self.download_bytes) if self.download_bytes is not None else "none")
                 + f"; disk {fmt_bytes(self.disk_bytes)}")
        return "\n".join([head, format_plan(self.rows), total, f"({noise})"])


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
        large = over = False
        try:
            est = cls.estimate_cost(shape, p, options)
        except Exception as exc:  # an estimate must never stop a run
            est = Estimate(None, None, f"no estimate ({type(exc).__name__}: {exc})")
        if est is not None and est.seconds is not None:
            large = est.seconds > LARGE_SECONDS
        if est is not None and est.peak_bytes is not None:
            avail = available_memory(device, memory_limit)
            large = large or est.peak_bytes > LARGE_MEMORY_FRACTION * avail
            if est.peak_bytes > avail:
                over = True
                problem = (f"needs about {fmt_bytes(est.peak_bytes)} but {fmt_bytes(avail)} of "
                           f"{'GPU' if device == 'cuda' else 'host'} memory is available"
                           + (f"; {est.fits}" if est.fits else ""))
        if problem is None and est is not None and est.seconds is not None and time_budget is not None:
            if est.seconds > time_budget:
                problem = (f"would take about {fmt_seconds(est.seconds)}, over --time-budget "
                           f"{fmt_seconds(time_budget)}")
        rows.append(PlanRow(name, est, device, problem, large, over_memory=over))
    return rows


def format_plan(rows: list[PlanRow]) -> str:
    header = ["model", "device", "est. fit (at most)", "est. peak memory", "how", ""]
    lines = []
    for r in rows:
        e = r.estimate
        lines.append([
            r.model, r.device, fmt_seconds(e.seconds if e else None),
            fmt_bytes(e.peak_bytes if e else None), (e.detail if e else "no estimate"),
            f"REFUSED: {r.problem}" if r.problem else f"SKIPPED: {r.skipped}" if r.skipped
            else ("large: own process" if r.large else ""),
        ])
    widths = [max(len(str(x)) for x in col) for col in zip(header, *lines)]
    out = ["plan: " + "  ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip()]
    out += ["      " + "  ".join(str(c).ljust(w) for c, w in zip(cells, widths)).rstrip() for cells in lines]
    return "\n".join(out)


def plan_run(names: list[str], skipped: dict[str, str], shape: DataShape,
             params: dict[str, dict[str, Any]], options: FitOptions, *, basis: str,
             time_budget: float | None = None, download_bytes: int | None = None,
             disk_bytes: int | None = None) -> Plan:
    """The :class:`Plan` of one dataset: ``names`` estimated (:func:`make_plan`), each of
    ``skipped`` a line with its reason, in the order of ``names`` then ``skipped``."""
    since = len(TIMINGS)
    rows = make_plan(names, shape, params, options, time_budget=time_budget)
    rows += [PlanRow(name, None, options.resolve_device(), skipped=why) for name, why in skipped.items()]
    count, spread = timing_spread(since)
    return Plan(shape.dataset or "", basis, shape, rows, download_bytes, disk_bytes, count, spread)


def skipped_line(name: str, reason: str, stats: dict[str, Any], explicit: bool) -> str:
    """The log line of a model the plan leaves out, with the way to run it anyway."""
    if explicit:
        return f"[{name}] not run: {reason} ({FORCE_HINT})"
    named_runs = registry.get(name).skip_reason(stats, explicit=True) is None
    hint = ("" if "by name" in reason else " (name it in --models to run it anyway)") if named_runs \
        else f" ({FORCE_HINT})"
    return f"[{name}] skipped: {reason}{hint}"


FORCE_HINT = ("--ignore-plan runs it anyway; or raise BENCHMARK_MEMORY_LIMIT / --time-budget, "
              "or leave it out")
