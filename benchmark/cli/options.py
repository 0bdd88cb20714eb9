"""Options checked before anything runs: seeds, data options, ``preflight``, the experiment file."""

from __future__ import annotations

import argparse
import math
import sys

from .. import registry
from ..checks import (
    SEED_MAX,
    UsageError,
    check_device,
    check_int,
    check_positive,
    check_writable_dir,
    parse_params,
)
from ..data import load_split
from ..evaluate import DEFAULT_METRICS, parse_metric
from ..logs import logger


def _split_from_args(args: argparse.Namespace):
    problems = _data_problems(args)
    if problems:
        raise UsageError(problems)
    overrides = {
        "min_rating": args.min_rating,
        "min_user_items": args.min_user_items,
        "min_item_users": args.min_item_users,
        "n_heldout": args.heldout_users,
    }
    file_options = {
        k: v
        for k, v in (
            ("user_col", args.user_col),
            ("item_col", args.item_col),
            ("rating_col", args.rating_col),
            ("sep", args.sep.encode().decode("unicode_escape") if args.sep else None),
            ("extra_fields", args.extra_fields),
        )
        if v is not None
    }
    return load_split(
        args.dataset,
        data_dir=args.data_dir,
        seed=args.split_seed,
        protocol_overrides=overrides,
        file_options=file_options if args.dataset.startswith("file:") else None,
    )


# --- subcommands ----------------------------------------------------------------------------


def parse_seeds(args: argparse.Namespace) -> tuple[list[int], list[str]]:
    """``--seeds 0,1,2`` (or ``--seed N``) -> ([0, 1, 2], problems)."""
    if getattr(args, "seeds", None) is None:
        seeds, option = [args.seed], "--seed"
    else:
        seeds, option = [], "--seeds"
        for part in str(args.seeds).split(","):
            try:
                seeds.append(int(part.strip()))
            except ValueError:
                return [], [f"--seeds {args.seeds}: {part.strip()!r} is not an integer; give a "
                            f"comma-separated list such as --seeds 0,1,2"]
    problems = [p for s in seeds if (p := check_int(s, option, minimum=0, maximum=SEED_MAX))]
    if len(set(seeds)) != len(seeds):
        problems.append(f"--seeds {args.seeds}: repeats a seed; give each seed once")
    return seeds, problems


def _data_problems(args: argparse.Namespace) -> list[str]:
    checks = [
        check_int(args.heldout_users, "--heldout-users", minimum=1),
        check_int(args.min_user_items, "--min-user-items", minimum=0),
        check_int(args.min_item_users, "--min-item-users", minimum=0),
        check_int(args.split_seed, "--split-seed", minimum=0, maximum=SEED_MAX),
    ]
    if args.min_rating is not None and not math.isfinite(args.min_rating):
        checks.append(f"--min-rating {args.min_rating}: must be a finite number")
    return [c for c in checks if c]


def preflight(args: argparse.Namespace, *, tune: bool = False) -> dict:
    """Check every option of ``run`` / ``tune`` before anything is loaded or fitted.

    Returns:
        {"names", "seeds", "params"}.

    Raises:
        UsageError: with every problem found (the CLI prints them all and exits 2).
    """
    problems: list[str] = []
    try:
        names = registry.resolve(args.models)
    except registry.UnknownModelError as exc:
        names, problems = [], [f"--models {args.models}: {exc}"]
    seeds, found = parse_seeds(args)
    problems += found
    params, found, notes = parse_params(args.param, names)
    problems += found
    problems += [p for p in (
        check_int(args.epochs, "--epochs", minimum=1),
        check_int(args.trials, "--trials", minimum=1 if tune else 0),
        check_int(getattr(args, "workers", None), "--workers", minimum=1),
        check_positive(args.timeout, "--timeout"),
        check_positive(getattr(args, "time_budget", None), "--time-budget"),
        check_device(args.device),
    ) if p]
    problems += _data_problems(args)
    metrics = list(DEFAULT_METRICS)
    for m in (getattr(args, "metrics", None) or "").split(","):
        if m.strip():
            try:
                parse_metric(m)
            except ValueError as exc:
                problems.append(f"--metrics: {exc}")
                continue
            if m.strip().lower() not in metrics:
                metrics.append(m.strip().lower())
    reference = getattr(args, "reference", None)
    if reference is not None and reference not in registry.available():
        problems.append(f"--reference {reference}: no such model; available: "
                        f"{', '.join(registry.available())}")
    problems += [p for p in (check_writable_dir(args.results_dir, "--results-dir"),) if p]
    if not tune and not args.no_report:
        problems += [p for p in (check_writable_dir(args.report_dir, "--report-dir"),) if p]
    if getattr(args, "mlflow", None) is not None:
        from ..tracking import mlflow_problems

        problems += mlflow_problems(args.mlflow)
    if problems:
        raise UsageError(problems)
    for n in notes:
        logger.warning(f"warning: {n}")
    return {"names": names, "seeds": seeds, "params": params, "metrics": metrics}


def _run_setup(args: argparse.Namespace) -> tuple[dict, list[str], dict]:
    """The experiment file (if any) under the command line, then every check: returns
    (checked options, datasets, effective configuration)."""
    from ..experiment import apply_config, effective_config

    parser = args.run_parser
    if args.config:
        argv = list(getattr(args, "argv", None) or [])
        apply_config(args, parser, argv[argv.index("run") + 1:] if "run" in argv else argv)
    datasets = [args.dataset] if args.dataset else list(getattr(args, "datasets", None) or [])
    missing = [m for m, ok in (("--models MODELS (or [models.NAME] in --config)", args.models),
                               ("--dataset NAME (or datasets in --config)", datasets)) if not ok]
    if missing:
        raise UsageError([f"{m} is required" for m in missing])
    args.dataset = datasets[0]
    checked = preflight(args)  # every problem at once, before any data or fit
    args.datasets = datasets
    return checked, datasets, effective_config(args, parser, checked["params"], checked["seeds"])


def show_progress(args: argparse.Namespace) -> bool:
    """Bars on a terminal only (a log file gets none), unless --progress / --no-progress."""
    if getattr(args, "no_progress", False):
        return False
    return bool(getattr(args, "progress", False)) or sys.stderr.isatty()
