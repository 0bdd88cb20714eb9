"""From a parsed command line to what runs: the split of ``prepare``/``tune`` and the
:class:`benchmark.runner.RunConfig` of ``run`` (experiment file first, every check before
anything is loaded; the checks themselves are :mod:`benchmark.checks`)."""

from __future__ import annotations

import argparse
import sys

from ..checks import UsageError, data_problems, preflight
from ..data import load_split


def _protocol_overrides(args: argparse.Namespace) -> dict:
    return {"min_rating": args.min_rating, "min_user_items": args.min_user_items,
            "min_item_users": args.min_item_users, "n_heldout": args.heldout_users, "protocol": args.protocol}


def _file_options(args: argparse.Namespace) -> dict:
    sep = args.sep.encode().decode("unicode_escape") if args.sep else None
    pairs = (("user_col", args.user_col), ("item_col", args.item_col),
             ("rating_col", args.rating_col), ("sep", sep), ("extra_fields", args.extra_fields))
    return {k: v for k, v in pairs if v is not None}


def _split_from_args(args: argparse.Namespace):
    problems = data_problems(args)
    if problems:
        raise UsageError(problems)
    return load_split(args.dataset, data_dir=args.data_dir, seed=args.split_seed,
                      protocol_overrides=_protocol_overrides(args),
                      file_options=_file_options(args) if args.dataset.startswith("file:") else None)


def run_config(args: argparse.Namespace):
    """The experiment file (if any) under the command line, then every check: returns
    (:class:`benchmark.runner.RunConfig`, the effective configuration for ``--dump-config``)."""
    from ..experiment import apply_config, effective_config
    from ..runner import RunConfig

    if args.config:
        argv = list(getattr(args, "argv", None) or [])
        apply_config(args, args.run_parser, argv[argv.index("run") + 1:] if "run" in argv else argv)
    datasets = [args.dataset] if args.dataset else list(getattr(args, "datasets", None) or [])
    missing = [m for m, ok in (("--models MODELS (or [models.NAME] in --config)", args.models),
                               ("--dataset NAME (or datasets in --config)", datasets)) if not ok]
    if missing:
        raise UsageError([f"{m} is required" for m in missing])
    checked = preflight(args)  # every problem at once, before any data or fit
    experiment = effective_config(args, args.run_parser, checked["params"], checked["seeds"])
    cfg = RunConfig(
        models=args.models, datasets=datasets, data_dir=args.data_dir, split_seed=args.split_seed,
        protocol_overrides=_protocol_overrides(args), file_options=_file_options(args),
        results_dir=args.results_dir, seeds=checked["seeds"], device=args.device,
        epochs=args.epochs, trials=args.trials, timeout=args.timeout, storage=args.storage,
        force=args.force, progress=show_progress(args), report=not args.no_report,
        report_dir=args.report_dir, metrics=checked["metrics"], params=checked["params"],
        reference=args.reference, time_budget=args.time_budget,
        save_models=bool(args.save_models), plan_only=bool(args.plan), isolate=args.isolate,
        mlflow=args.mlflow, ray=args.ray, threads=args.threads, ray_retries=args.ray_retries,
        ignore_plan=args.ignore_plan, protocols=list(getattr(args, "protocols", None) or [None]),
        experiment=experiment)
    return cfg, experiment


def show_progress(args: argparse.Namespace) -> bool:
    """Bars on a terminal only (a log file gets none), unless --progress / --no-progress."""
    if getattr(args, "no_progress", False):
        return False
    return bool(getattr(args, "progress", False)) or sys.stderr.isatty()
