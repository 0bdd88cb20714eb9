"""The run from Python: :func:`run_experiment` is ``python -m benchmark run`` as a call."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .runner import RunConfig, run_all

__all__ = ["run_experiment"]


def run_experiment(
    models: str | Sequence[str],
    dataset: str | Sequence[str],
    *,
    data_dir: str | None = None,
    results_dir: str = "results",
    report_dir: str | None = "reports",
    report: bool = True,
    **options: Any,
) -> list[dict[str, Any]]:
    """``python -m benchmark run`` from Python: plan, fit, evaluate, record, report.

    Args:
        models: names (or "all").
        dataset: a dataset name or ``file:PATH`` (or several).
        data_dir: the data root (default ``$BENCHMARK_DATA_DIR`` or ``./datasets``).
        results_dir: where rows and arrays go.
        report_dir: where the report goes.
        report: False (or ``report_dir=None``): no report.
        options: further :class:`benchmark.runner.RunConfig` fields (``seeds``, ``epochs``,
            ``trials``, ``device``, ``params``, ``reference``, ``force``, ...).

    Returns:
        The result rows (written now or found done), every dataset's.

    Raises:
        RuntimeError: naming every model that failed (the others' rows are kept).
    """
    names = models if isinstance(models, str) else ",".join(models)
    datasets = [dataset] if isinstance(dataset, str) else list(dataset)
    cfg = RunConfig(models=names, datasets=datasets, data_dir=data_dir, results_dir=results_dir,
                    report=report and report_dir is not None, report_dir=str(report_dir or ""),
                    progress=options.pop("progress", False), **options)
    outcome = run_all(cfg)
    if outcome.failures:
        raise RuntimeError("; ".join(outcome.failures))
    return [r for rows in outcome.rows.values() for r in rows]
