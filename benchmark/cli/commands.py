"""The subcommands: datasets, prepare, models, run, tune, report."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .. import registry
from ..checks import (
    UsageError,
    check_writable_dir,
)
from ..data import dataset_dir, dataset_names, get_dataset
from ..logs import logger
from .options import _run_setup, _split_from_args, preflight, show_progress


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

    from ..tuning import probe_distributions

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


def cmd_run(args: argparse.Namespace) -> int:
    from ..experiment import dump_toml
    from ..runner import maybe_report

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
        failures += _run_dataset(args, names, seeds, params, checked["metrics"], experiment)
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
    from ..tracking import TrackingError, connect

    try:
        connect(uri)
    except TrackingError as exc:
        raise UsageError(f"--mlflow: {exc}") from exc


def _log_mlflow(args: argparse.Namespace) -> list[str]:
    """Log this run's result rows (and the report) to MLflow; returns the failure, if any."""
    from ..tracking import TrackingError, log_rows

    report = Path(args.report_dir)
    report = report if not args.no_report and (report / "index.html").is_file() else None
    try:
        ids = log_rows(args.mlflow, getattr(args, "result_rows", []), report_dir=report)
    except TrackingError as exc:
        return [f"mlflow: {exc} (results are kept; rerun the same command to log them)"]
    logger.info(f"mlflow: {len(ids)} run(s) logged to {args.mlflow}")
    return []


def _run_dataset(args: argparse.Namespace, names: list[str], seeds: list[int], params: dict,
                 metrics: list[str], experiment: dict) -> list[str]:
    """Plan, then fit and evaluate every model on ``args.dataset``; returns the failures."""
    from ..runner import RunConfig, format_table, run

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
    from ..model import FitOptions
    from ..plan import format_plan, make_plan

    runnable, _ = registry.select(args.models, s)
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


def cmd_tune(args: argparse.Namespace) -> int:
    from .tune import tune_command

    args.fixed_params = preflight(args, tune=True)["params"]
    if args.check:
        print("ok: options checked, nothing run", file=sys.stderr)
        return 0
    return tune_command(args, _split_from_args)


def cmd_report(args: argparse.Namespace) -> int:
    from ..report import build_report

    problem = check_writable_dir(args.out, "--out")
    if problem:
        raise UsageError(problem)

    out = build_report(args.results_dir, args.out, reference=args.reference)
    print(f"report written to {out}")
    return 0


# --- parser ---------------------------------------------------------------------------------
