"""Command-line front door: ``python -m benchmark <command> ...``.

Every subcommand is a thin call into a module. Exit codes: 0 success, 1 a model or step
failed (the rest is kept), 2 bad input (unknown name, missing or malformed data).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path

from . import registry
from .checks import (
    SEED_MAX,
    UsageError,
    check_device,
    check_int,
    check_positive,
    check_writable_dir,
    parse_params,
)
from .data import DatasetError, dataset_dir, dataset_names, get_dataset, load_split
from .data.preprocess import REFERENCE_SEED
from .evaluate import DEFAULT_METRICS, parse_metric
from .logs import logger

EPILOG_RUN = """examples:
  python -m benchmark run --models popularity,multvae --dataset ml-100k
  python -m benchmark run --models all --dataset msd --trials 50 --device cuda
  python -m benchmark run --models ease --dataset file:my_clicks.csv --heldout-users 1000
  python -m benchmark run --models multvae,multdae,ease --dataset ml-100k --seeds 0,1,2
  python -m benchmark run --models ease,wmf --dataset ml-100k --reference ease --param ease.l2=250
"""


def _add_data_args(p: argparse.ArgumentParser, *, dataset_required: bool | None = True) -> None:
    """``dataset_required``: True, False (default synthetic), or None (checked later: run
    may take its datasets from --config)."""
    g = p.add_argument_group("data")
    g.add_argument(
        "--dataset",
        required=bool(dataset_required),
        default="synthetic" if dataset_required is False else None,
        help="dataset name (see `python -m benchmark datasets`) or file:PATH for your own "
        "CSV/TSV/Parquet file of (user, item[, rating[, timestamp]])",
    )
    g.add_argument(
        "--data-dir",
        default=os.environ.get("BENCHMARK_DATA_DIR", "datasets"),
        help="data root holding <name>/raw and <name>/processed (env BENCHMARK_DATA_DIR; "
        "default ./datasets)",
    )
    g.add_argument(
        "--split-seed",
        type=int,
        default=REFERENCE_SEED,
        help=f"seed of the user permutation and held-out items (default {REFERENCE_SEED}, the paper's)",
    )
    g.add_argument("--min-rating", type=float, default=None, help="keep ratings > this (override)")
    g.add_argument("--min-user-items", type=int, default=None, help="drop users with fewer items")
    g.add_argument("--min-item-users", type=int, default=None, help="drop items with fewer users (applied first)")
    g.add_argument("--heldout-users", type=int, default=None, help="validation users = test users = N")
    g.add_argument("--user-col", default=None, help="file: user column name (default: first column)")
    g.add_argument("--item-col", default=None, help="file: item column name (default: second column)")
    g.add_argument("--rating-col", default=None, help="file: rating column name (default: third, if any)")
    g.add_argument("--sep", default=None, help="file: the separator (default: detected; e.g. ',' or '\\t')")
    g.add_argument("--extra-fields", choices=["error", "ignore"], default=None,
                   help="file: a line with more fields than the first line is an error "
                   "(default) or ignored beyond the first ones")


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
def cmd_datasets(args: argparse.Namespace) -> int:
    rows = []
    for name in dataset_names():
        spec = get_dataset(name)
        root = dataset_dir(spec, args.data_dir)
        raw = "generated" if spec.generated else ("yes" if spec.raw_present(root / "raw") else "no")
        processed = "yes" if any((root / "processed").glob("*/meta.json")) else "no"
        rows.append((name, raw, processed, spec.description, spec.source))
    w = max(len(r[0]) for r in rows)
    print(f"{'name'.ljust(w)}  raw        processed  description / source")
    for name, raw, processed, desc, src in rows:
        print(f"{name.ljust(w)}  {raw.ljust(9)}  {processed.ljust(9)}  {desc}")
        print(f"{''.ljust(w)}  {''.ljust(9)}  {''.ljust(9)}  source: {src}")
    print(f"\ndata root: {Path(args.data_dir).resolve()}  (raw files go in <root>/<name>/raw/)")
    return 0


def cmd_prepare(args: argparse.Namespace) -> int:
    split = _split_from_args(args)
    s = split.stats()
    c = split.meta.get("counts", {})
    print(f"dataset            {s['dataset']}")
    print(f"users              {s['users']:,}")
    print(f"items              {s['items']:,}  (items of training users; {s['items_after_filter']:,} after the filters)")
    print(f"interactions       {s['interactions']:,}  (after the filters; {s['interactions_in_split']:,} kept by the split)")
    print(f"density            {s['density']:.4%}")
    print(f"train users        {s['train_users']:,}  ({s['train_interactions']:,} interactions)")
    print(f"valid users        {s['valid_users']:,}  ({s['valid_heldout_interactions']:,} held-out interactions)")
    print(f"test users         {s['test_users']:,}  ({s['test_heldout_interactions']:,} held-out interactions)")
    print(f"split hash         {s['split_hash']}  (seed {split.meta.get('seed')})")
    if c:
        print(f"raw rows           {c.get('raw_rows', 0):,}  -> positives {c.get('positives', 0):,}")
    if args.json:
        print(json.dumps(s, sort_keys=True))
    return 0


def _print_params(name: str) -> int:
    """``models --params NAME``: each parameter, its default, its type and its search range."""
    import inspect

    from .tuning import probe_distributions

    cls = registry.get(name)
    sig = inspect.signature(cls.__init__)
    space = probe_distributions(cls)
    print(f"{name}: {cls.description}")
    rows = [("parameter", "default", "type", "search space (tune)")]
    for p in sig.parameters.values():
        if p.name == "self" or p.kind not in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY):
            continue
        ann = p.annotation if p.annotation is not inspect.Parameter.empty else ""
        default = cls.default_params().get(p.name, "(required)")
        rows.append((p.name, repr(default), str(ann), space.get(p.name, "")))
    w = [max(len(r[i]) for r in rows) for i in range(4)]
    for r in rows:
        print("  " + "  ".join(c.ljust(w[i]) for i, c in enumerate(r)).rstrip())
    print(f"  (set one with --param {name}.NAME=VALUE)")
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    if args.params:
        return _print_params(args.params)
    reg = registry.discover()
    w = max(len(n) for n in reg)
    for name in sorted(reg):
        cls = reg[name]
        tag = " [iterative]" if cls.iterative else ""
        print(f"{name.ljust(w)}  {cls.description}{tag}")
    return 0


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
        from .tracking import mlflow_problems

        problems += mlflow_problems(args.mlflow)
    if problems:
        raise UsageError(problems)
    for n in notes:
        logger.warning(f"warning: {n}")
    return {"names": names, "seeds": seeds, "params": params, "metrics": metrics}


def _run_setup(args: argparse.Namespace) -> tuple[dict, list[str], dict]:
    """The experiment file (if any) under the command line, then every check: returns
    (checked options, datasets, effective configuration)."""
    from .experiment import apply_config, effective_config

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


def cmd_run(args: argparse.Namespace) -> int:
    from .experiment import dump_toml
    from .runner import RunConfig, format_table, maybe_report, run

    checked, datasets, experiment = _run_setup(args)
    names, seeds, params = checked["names"], checked["seeds"], checked["params"]
    if args.dump_config:
        print(dump_toml(experiment), end="")
        return 0
    if args.check:
        print(f"ok: {len(names)} models x {len(seeds)} seeds x {len(datasets)} datasets; options "
              "checked, nothing run", file=sys.stderr)
        return 0
    if args.mlflow and not args.plan:
        _connect_mlflow(args.mlflow)
    failures: list[str] = []
    for dataset in datasets:
        args.dataset = dataset
        failures += _run_dataset(args, names, seeds, params, checked["metrics"], experiment,
                                 RunConfig, format_table, run)
    if args.plan:
        return 0
    logger.info(f"results: {Path(args.results_dir) / 'results.jsonl'}")
    if not args.no_report:
        out = maybe_report(args.results_dir, args.report_dir, reference=args.reference)
        if out:
            logger.info(f"report: {out}")
    if args.mlflow:
        failures += _log_mlflow(args)
    if failures:
        logger.warning("failed: " + "; ".join(failures))
        return 1
    return 0


def _connect_mlflow(uri: str) -> None:
    """Reach the tracking store before anything is fitted (exit 2 if it cannot be)."""
    from .tracking import TrackingError, connect

    try:
        connect(uri)
    except TrackingError as exc:
        raise UsageError(f"--mlflow: {exc}") from exc


def _log_mlflow(args: argparse.Namespace) -> list[str]:
    """Log this run's result rows (and the report) to MLflow; returns the failure, if any."""
    from .tracking import TrackingError, log_rows

    report = Path(args.report_dir)
    report = report if not args.no_report and (report / "index.html").is_file() else None
    try:
        ids = log_rows(args.mlflow, getattr(args, "result_rows", []), report_dir=report)
    except TrackingError as exc:
        return [f"mlflow: {exc} (results are kept; rerun the same command to log them)"]
    logger.info(f"mlflow: {len(ids)} run(s) logged to {args.mlflow}")
    return []


def _run_dataset(args, names, seeds, params, metrics, experiment, RunConfig, format_table, run) -> list[str]:
    """Plan, then fit and evaluate every model on ``args.dataset``; returns the failures."""
    split = _split_from_args(args)
    cfg = RunConfig(
        models=args.models,
        dataset=args.dataset,
        data_dir=args.data_dir,
        results_dir=args.results_dir,
        seeds=seeds,
        device=args.device,
        epochs=args.epochs,
        trials=args.trials,
        timeout=args.timeout,
        storage=args.storage,
        force=args.force,
        progress=show_progress(args),
        params=params,
        reference=args.reference,
        time_budget=args.time_budget,
        metrics=metrics,
        save_models=bool(args.save_models),
        experiment=experiment,
    )
    s = split.stats()
    logger.info(
        f"{s['dataset']}: {s['users']:,} users x {s['items']:,} items, "
        f"{s['train_users']:,} train / {s['valid_users']:,} valid / {s['test_users']:,} test users; "
        f"models: {', '.join(names)}"
    )
    from .plan import format_plan, make_plan
    from .protocol import FitOptions

    runnable = [n for n in names if not registry.get(n).skip_reason(s, explicit=args.models.strip() != "all")]
    plan = make_plan(runnable, split, params,
                     FitOptions(device=args.device, epochs=args.epochs, progress=False),
                     time_budget=args.time_budget)
    logger.info(format_plan(plan))
    if args.plan:
        return []
    cfg.refused = {r.model: r.problem for r in plan if r.problem}
    rows, failures = run(cfg, split)
    args.result_rows = [*getattr(args, "result_rows", []), *rows]  # for --mlflow
    if rows:
        print(format_table([r for r in rows if r["dataset"] == split.meta.get("dataset")],
                           metrics=cfg.metrics))
    return failures


def show_progress(args: argparse.Namespace) -> bool:
    """Bars on a terminal only (a log file gets none), unless --progress / --no-progress."""
    if getattr(args, "no_progress", False):
        return False
    return bool(getattr(args, "progress", False)) or sys.stderr.isatty()


def cmd_tune(args: argparse.Namespace) -> int:
    from .tuning import tune_command

    args.fixed_params = preflight(args, tune=True)["params"]
    if args.check:
        print("ok: options checked, nothing run", file=sys.stderr)
        return 0
    return tune_command(args, _split_from_args)


def cmd_report(args: argparse.Namespace) -> int:
    from .report import build_report

    problem = check_writable_dir(args.out, "--out")
    if problem:
        raise UsageError(problem)

    out = build_report(args.results_dir, args.out, reference=args.reference)
    print(f"report written to {out}")
    return 0


# --- parser ---------------------------------------------------------------------------------
def _add_models_dir(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--models-dir",
        default=None,
        help="folder of model plugins (*.py); default: $BENCHMARK_MODELS_DIR, else ./models of "
        "the current directory",
    )


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m benchmark",
        description="Mult-VAE (Liang et al. 2018) against tuned baselines under the paper's "
        "strong-generalisation protocol: datasets, models, tuning, evaluation, reports.",
    )
    from . import __version__

    p.add_argument("--version", action="version", version=f"cf-benchmark {__version__}")
    p.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    p.add_argument("-v", "--verbose", action="store_true", help="debug messages too")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("datasets", help="list datasets, their sources, and what is on disk")
    s.add_argument("--data-dir", default=os.environ.get("BENCHMARK_DATA_DIR", "datasets"))
    s.set_defaults(func=cmd_datasets)

    s = sub.add_parser(
        "prepare",
        help="download if needed, preprocess and split a dataset; print its statistics",
        description="Download (if needed), binarise, filter and split a dataset as the paper "
        "does, cache the split, and print users, items, interactions and held-out sizes.",
    )
    _add_data_args(s)
    s.add_argument("--json", action="store_true", help="also print the statistics as one JSON line")
    s.set_defaults(func=cmd_prepare)

    s = sub.add_parser("models", help="list the registered models (built-ins and plugins)")
    s.add_argument("--params", metavar="MODEL", default=None,
                   help="list MODEL's parameters: defaults, types and search space")
    _add_models_dir(s)
    s.set_defaults(func=cmd_models)

    def add_run_opts(s: argparse.ArgumentParser, *, models_required: bool = True) -> None:
        s.add_argument("--models", required=models_required, default=None,
                       help="comma-separated model names, or all")
        s.add_argument("--results-dir", default="results", help="where rows and arrays go (default ./results)")
        s.add_argument("--seed", type=int, default=0, help="model seed (default 0)")
        s.add_argument("--seeds", default=None, metavar="S1,S2,...",
                       help="several model seeds, e.g. 0,1,2: every model is fitted once per "
                       "seed and the report averages over them (overrides --seed)")
        s.add_argument(
            "--param",
            action="append",
            default=[],
            metavar="MODEL.NAME=VALUE",
            help="override a hyperparameter (repeatable), e.g. --param multvae.anneal_cap=auto "
            "--param ease.l2=250; values are JSON (numbers, true/false, lists) or strings; "
            "tuning keeps it fixed in every trial",
        )
        s.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
        s.add_argument("--epochs", type=int, default=None, help="cap epochs of iterative models (quick looks)")
        s.add_argument("--timeout", type=float, default=None, help="tuning time budget per model, seconds")
        s.add_argument("--storage", default=None, help="Optuna storage URL (default: SQLite under --results-dir)")
        s.add_argument("--no-progress", action="store_true", help="no progress bars")
        s.add_argument("--progress", action="store_true",
                       help="progress bars even when standard error is not a terminal (by "
                       "default they show on a terminal only)")
        s.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS,
                       help="warnings and errors only")
        s.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                       help="debug messages too")
        s.add_argument("--metrics", default=None, metavar="M1,M2,...",
                       help="metrics to record besides the paper's recall@20, recall@50 and "
                       "ndcg@100: precision@K, map@K, mrr@K, hitrate@K, coverage@K, recall@K, "
                       "ndcg@K (definitions: docs/metrics.md)")
        s.add_argument("--check", action="store_true",
                       help="check every option (models, --param values, seeds, device, "
                       "folders) and exit without loading data or fitting")
        _add_models_dir(s)

    s = sub.add_parser(
        "run",
        help="fit, select on validation, evaluate on test; append results; print a table",
        description="Fit each model on the training users, select on validation NDCG@100, "
        "evaluate once on the test users, append rows to results.jsonl and print a table. "
        "Rerunning skips what is done (use --force).",
        epilog=EPILOG_RUN,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_run_opts(s, models_required=False)
    _add_data_args(s, dataset_required=None)
    s.add_argument("--config", default=None, metavar="FILE.toml",
                   help="an experiment file: datasets, [models.NAME] tables with parameters, "
                   "seeds and any option below (without dashes); the command line overrides "
                   "it (docs/experiments.md)")
    s.add_argument("--dump-config", action="store_true",
                   help="print the effective configuration (file + command line) as TOML and exit")
    s.add_argument("--save-models", action="store_true",
                   help="keep each fitted model under RESULTS_DIR/models/<run_key>/ (load it "
                   "with benchmark.Recommender.load; the row names it in model_path)")
    s.add_argument("--trials", type=int, default=0, help="tune each model with N Optuna trials first")
    s.add_argument("--reference", default=None, metavar="MODEL",
                   help="the model the report tests every other model against (default: "
                   "multvae when present, else the best by validation NDCG@100)")
    s.add_argument("--plan", action="store_true",
                   help="print each model's estimated fit time and peak memory on this machine "
                   "(every run prints it first) and exit without fitting")
    s.add_argument("--time-budget", type=float, default=None, metavar="SECONDS",
                   help="most seconds one model's fit may take: a model estimated above it is "
                   "not started, an iterative one stops after the epoch that crosses it")
    s.add_argument("--force", action="store_true", help="rerun models whose results exist")
    s.add_argument("--no-report", action="store_true", help="do not render the report at the end")
    s.add_argument("--report-dir", default="reports", help="where the report goes (default ./reports)")
    s.add_argument("--mlflow", default=None, metavar="URI",
                   help="also log each fit (parameters, metrics, fit time, its rows and the "
                   "report) as one MLflow run to this tracking URI, e.g. file:///tmp/mlruns or "
                   "http://localhost:5000; experiment $MLFLOW_EXPERIMENT_NAME, else "
                   "cf-benchmark/<dataset>; needs pip install 'cf-benchmark[mlflow]'")
    s.set_defaults(func=cmd_run, run_parser=s)

    s = sub.add_parser(
        "tune",
        help="tune models with Optuna on validation NDCG@100 (resumable, multi-worker)",
        description="Tune each model's hyperparameters with Optuna (TPE, seeded; paper defaults "
        "as the first trial) on validation NDCG@100. Test users are never read.",
    )
    add_run_opts(s)
    _add_data_args(s)
    s.add_argument("--trials", type=int, required=True, help="trials per model (in total, across workers)")
    s.add_argument("--study", default=None, help="study name (default: <dataset>-<model>-<split hash>-<config hash>; the config hash covers --param, --epochs, --seed, the suite version and the model source)")
    s.add_argument("--workers", type=int, default=1, help="local worker processes sharing the study")
    s.add_argument("--pruner", choices=["median", "hyperband", "none"], default="median",
                   help="prune iterative models' poor trials by epoch (default median)")
    s.set_defaults(func=cmd_tune)

    s = sub.add_parser("report", help="render tables and figures from a results folder")
    s.add_argument("--results-dir", default="results")
    s.add_argument("--out", default="reports", help="output folder (default ./reports)")
    s.add_argument("--reference", default=None, metavar="MODEL",
                   help="test every model against this one (default: multvae when present, "
                   "else the best model by validation NDCG@100, per dataset)")
    s.set_defaults(func=cmd_report)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--debug" in argv:
        argv.remove("--debug")
    args = build_parser().parse_args(argv)
    args.argv = argv
    from .logs import configure_cli

    configure_cli(-1 if getattr(args, "quiet", False) else (1 if getattr(args, "verbose", False) else 0))
    if getattr(args, "models_dir", None):
        models_dir = Path(args.models_dir)
        if not models_dir.is_dir():
            print(f"error: --models-dir {models_dir}: no such folder", file=sys.stderr)
            return 2
        os.environ["BENCHMARK_MODELS_DIR"] = str(models_dir)
        registry.discover(force=True)
    try:
        return int(args.func(args) or 0)
    except UsageError as exc:
        lines = exc.problems
        print("error: " + lines[0] if len(lines) == 1 else
              f"error: {len(lines)} problems, nothing was run:\n  - " + "\n  - ".join(lines),
              file=sys.stderr)
        return 2
    except (DatasetError, registry.UnknownModelError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: completed results are kept; rerun the same command to resume",
              file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
