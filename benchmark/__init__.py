"""cf-benchmark: Mult-VAE (Liang et al. 2018) against tuned baselines under strong generalisation.

The names a notebook needs, imported on first use (``import benchmark`` stays light)::

    from benchmark import load_split, get_model, list_models, evaluate, FitOptions
    split = load_split("ml-100k", data_dir="datasets")
    model = get_model("ease")(l2=200.0).fit(split.train, split.valid, options=FitOptions(seed=0))
    print(evaluate(model.score, split.test).mean())
"""

from __future__ import annotations

from typing import Any

from .version import __version__

_EXPORTS = {
    "load_split": ("benchmark.data", "load_split"),
    "get_model": ("benchmark.registry", "get"),
    "list_models": ("benchmark.registry", "available"),
    "FitOptions": ("benchmark.model", "FitOptions"),
    "Split": ("benchmark.protocol", "Split"),
    "HeldOut": ("benchmark.protocol", "HeldOut"),
    "Recommender": ("benchmark.model", "Recommender"),
    "register": ("benchmark.registry", "register"),
    "run_experiment": ("benchmark.api", "run_experiment"),
    "build_report": ("benchmark.report", "build_report"),
}
__all__ = ["__version__", "evaluate", *_EXPORTS]

# Bound now, not lazily: the submodule ``benchmark.evaluate`` would otherwise shadow the
# function of the same name once anything imports it (numpy and scipy only, no torch).
from .evaluate import evaluate  # noqa: E402


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        import importlib

        module, attr = _EXPORTS[name]
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'benchmark' has no attribute {name!r}")
