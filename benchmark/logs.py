"""Diagnostics go through the ``benchmark`` logger (``logging``), not ``print``.

The command line shows them on standard error (``-q``: warnings only, ``-v``: debug too);
in a notebook they follow the application's logging set-up (by default only warnings and
errors show, through Python's last-resort handler), so a notebook can silence or keep them.
"""

from __future__ import annotations

import logging
import sys

logger = logging.getLogger("benchmark")


class _StderrHandler(logging.Handler):
    """Writes to the *current* ``sys.stderr`` (which tests and notebooks may swap)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
            sys.stderr.flush()
        except Exception:  # pragma: no cover
            self.handleError(record)


def configure_cli(verbosity: int = 0) -> None:
    """Show the suite's diagnostics on stderr: -1 warnings only, 0 info, 1 debug."""
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel({-1: logging.WARNING, 0: logging.INFO}.get(verbosity, logging.DEBUG))
