"""The subcommands: datasets, prepare, models, run, tune, report."""

from __future__ import annotations

import argparse
import json
import sys

from .. import registry
from ..checks import (
    UsageError,
    check_writable_dir,
)
from ..logs import logger
from .options import _split_from_args, preflight, run_config


def cmd_datasets(args: argparse.Namespace) -> int:
    from ..summary import format_datasets

    print(format_datasets(args.data_dir))
    return 0


def cmd_prepare(args: argparse.Namespace) -> int:
    from ..summary import format_split

    split = _split_from_args(args)
    print(format_split(split))
    if args.json:
        print(json.dumps(split.stats(), sort_keys=True))
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from ..summary import format_models, format_params

    print(format_params(registry.get(args.params)) if args.params else format_models())
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from ..experiment import dump_toml
    from ..runner import run_all
    from ..summary import format_table

    cfg, experiment = run_config(args)
    if args.dump_config:
        print(dump_toml(experiment), end="")
        return 0
    if args.check:
        print(f"ok: {len(registry.resolve(cfg.models))} models x {len(cfg.seeds)} seeds x "
              f"{len(cfg.datasets)} datasets; options checked, nothing run", file=sys.stderr)
        return 0
    outcome = run_all(cfg)
    if cfg.plan_only:  # the plan is the output: stdout, as text or one JSON document
        print(json.dumps({"plans": [p.as_dict() for p in outcome.plans]}, indent=1) if args.json
              else "\n\n".join(p.format() for p in outcome.plans))
    for rows in outcome.rows.values():
        if rows:
            print(format_table(rows, metrics=cfg.metrics))
    if outcome.failures:
        logger.warning("failed: " + "; ".join(outcome.failures))
        return 1
    return 0


def cmd_tune(args: argparse.Namespace) -> int:
    from ..summary import format_tuning
    from ..tuning.batch import tune_models

    fixed = preflight(args, tune=True)["params"]
    if args.check:
        print("ok: options checked, nothing run", file=sys.stderr)
        return 0
    split = _split_from_args(args)
    names, skipped = registry.select(args.models, split.stats())
    for name, reason in skipped.items():
        logger.info(f"[{name}] skipped: {reason} (ask for it by name to tune it anyway)")
    results, failures = tune_models(
        names, split, study=args.study, fixed_params=fixed, trials=args.trials,
        timeout=args.timeout, storage=args.storage, results_dir=args.results_dir, seed=args.seed,
        device=args.device, epochs=args.epochs, progress=not args.no_progress,
        workers=args.workers, pruner=args.pruner, ray=args.ray, threads=args.threads)
    if results:
        print(format_tuning([(name, info) for name, _, info in results]), flush=True)
        logger.info(f"storage: {results[0][2]['storage']}  (rerun the same command to resume or "
                    "extend with a larger --trials; `run --trials N` trains the best and tests once)")
    if failures:
        logger.warning("failed: " + "; ".join(failures))
        return 1
    return 0


def cmd_recommend(args: argparse.Namespace) -> int:
    from ..predict import recommend_command

    text = recommend_command(args.model_dir, user=args.user, input_path=args.input, k=args.k,
                             fmt=args.format, out=args.out)
    print(text if text is not None else f"written to {args.out}", end="" if text else "\n")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from ..report import build_report

    problem = check_writable_dir(args.out, "--out")
    if problem:
        raise UsageError(problem)

    try:
        out = build_report(args.results_dir, args.out, reference=args.reference, names=args.names,
                           models=args.models, datasets=args.datasets, exclude=args.exclude,
                           figure_models=args.figure_models)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    print(f"report written to {out}")
    return 0
