"""Several models tuned one after another (what ``python -m benchmark tune`` runs)."""

from __future__ import annotations

from typing import Any

from ..protocol import Split
from .policy import log
from .workers import tune_model

__all__ = ["tune_models"]


def tune_models(names: list[str], split: Split, *, study: str | None = None,
                fixed_params: dict[str, dict[str, Any]] | None = None, **options: Any,
                ) -> tuple[list[tuple[str, dict[str, Any], dict[str, Any]]], list[str]]:
    """Tune each model (:func:`benchmark.tuning.tune_model` with ``options``); a model that
    fails is a line in the failures and the others go on.

    Args:
        study: the study name for one model; with several, ``<study>-<model>`` each.

    Returns:
        ([(model, best parameters, tuning info)], failures)
    """
    results: list[tuple[str, dict[str, Any], dict[str, Any]]] = []
    failures: list[str] = []
    for name in names:
        one = (study if len(names) == 1 else f"{study}-{name}") if study else None
        try:
            best, info = tune_model(name, split, study_name=one,
                                 fixed_params=(fixed_params or {}).get(name, {}), **options)
        except KeyboardInterrupt:
            raise
        except Exception as exc:
            failures.append(f"{name}: {exc}")
            log(f"[{name}] FAILED: {type(exc).__name__}: {exc}")
            continue
        results.append((name, best, info))
    return results, failures
