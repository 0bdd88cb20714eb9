"""Command-line front door: ``python -m benchmark <command> ...``.

The front door parses, builds a configuration, calls the module that does the work
(:mod:`benchmark.runner`, :mod:`benchmark.tuning`, :mod:`benchmark.report`) and prints:
``parser`` (the options and their help), ``options`` (command line -> split or
:class:`benchmark.runner.RunConfig`), ``commands`` (the subcommands). Exit codes: 0 success, 1 a model or step
failed (the rest is kept), 2 bad input (unknown name, missing or malformed data).
"""

from __future__ import annotations

import sys
from pathlib import Path

from .. import registry
from ..checks import UsageError
from ..data import DatasetError
from .options import _split_from_args
from .parser import EPILOG_RUN, build_parser

__all__ = ["EPILOG_RUN", "build_parser", "main", "_split_from_args"]


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv  # debug messages, a failed fit's traceback among them
    argv = [a for a in argv if a != "--debug"]
    args = build_parser().parse_args(argv)
    args.argv = argv
    from ..logs import configure_cli

    configure_cli(-1 if getattr(args, "quiet", False) else 1 if debug or getattr(args, "verbose", False) else 0)
    try:
        if getattr(args, "models_dir", None):
            if not Path(args.models_dir).is_dir():
                raise UsageError(f"--models-dir {args.models_dir}: no such folder")
            registry.use_models_dir(args.models_dir)
        return int(args.func(args) or 0)
    except UsageError as exc:
        p = exc.problems
        msg = p[0] if len(p) == 1 else f"{len(p)} problems, nothing was run:\n  - " + "\n  - ".join(p)
        print(f"error: {msg}", file=sys.stderr)
        return 2
    except (DatasetError, registry.UnknownModelError, registry.DuplicateModelError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: completed results are kept; rerun the same command to resume",
              file=sys.stderr)
        return 130

