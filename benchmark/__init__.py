"""cf-benchmark: Mult-VAE (Liang et al. 2018) against tuned baselines under strong generalisation."""

from __future__ import annotations


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("cf-benchmark")
    except PackageNotFoundError:  # a source checkout that was never installed
        return "0+unknown"


__version__ = _version()
