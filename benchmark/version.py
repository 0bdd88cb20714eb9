"""The suite's version (the installed distribution's), importable from any layer.

Modules record it in result rows, saved models and study names; they import it from here,
never from the package ``__init__`` (a submodule importing its own package's ``__init__``
is an import circle).
"""

from __future__ import annotations


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("cf-benchmark")
    except PackageNotFoundError:  # a source checkout that was never installed
        return "0+unknown"


__version__ = _version()
