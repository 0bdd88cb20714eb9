"""Command-line front door: ``python -m benchmark <command> ...``.

Every subcommand is a thin call into a module. Exit codes: 0 success, 1 a model or step
failed (the rest is kept), 2 bad input (unknown name, missing or malformed data).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from . import registry
from .data import DatasetError, dataset_dir, dataset_names, get_dataset, load_split
from .data.preprocess import REFERENCE_SEED

EPILOG_RUN = """examples:
  python -m benchmark run --models popularity,multvae --dataset ml-100k
  python -m benchmark run --models all --dataset msd --trials 50 --device cuda
  python -m benchmark run --models ease --dataset file:my_clicks.csv --heldout-users 1000
  python -m benchmark run --models multvae,multdae,ease --dataset ml-100k --seeds 0,1,2
  python -m benchmark run --models ease,wmf --dataset ml-100k --reference ease --param ease.l2=250
"""


def _add_data_args(p: argparse.ArgumentParser, *, dataset_required: bool = True) -> None:
    g = p.add_argument_group("data")
    g.add_argument(
        "--dataset",
        required=dataset_required,
        default=None if dataset_required else "synthetic",
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


def _split_from_args(args: argparse.Namespace):
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


def cmd_models(args: argparse.Namespace) -> int:
    reg = registry.discover()
    w = max(len(n) for n in reg)
    for name in sorted(reg):
        cls = reg[name]
        tag = " [iterative]" if cls.iterative else ""
        print(f"{name.ljust(w)}  {cls.description}{tag}")
    return 0


def parse_params(items: list[str], names: list[str]) -> dict[str, dict]:
    """``["multvae.anneal_cap=auto", "ease.l2=250"]`` -> {model: {param: value}}."""
    out: dict[str, dict] = {}
    for item in items:
        target, eq, raw = item.partition("=")
        model, dot, param = target.partition(".")
        if not (eq and dot and model and param):
            raise registry.UnknownModelError(
                f"--param {item!r}: expected MODEL.NAME=VALUE, e.g. multvae.anneal_cap=0.3"
            )
        cls = registry.get(model)
        if param not in cls._param_names():
            raise registry.UnknownModelError(
                f"--param {item!r}: {model} has no parameter {param!r}; it has "
                f"{', '.join(cls._param_names()) or 'none'}"
            )
        if model not in names:
            print(f"warning: --param {item} names {model}, which is not in --models", file=sys.stderr)
        try:
            value = json.loads(raw)
        except ValueError:
            value = raw
        out.setdefault(model, {})[param] = value
    return out


class UsageError(ValueError):
    """A command-line value that cannot work (exit 2, before anything is fitted)."""


def parse_seeds(args: argparse.Namespace) -> list[int]:
    """``--seeds 0,1,2`` (or ``--seed N``) -> [0, 1, 2]: distinct integers >= 0."""
    if getattr(args, "seeds", None) is None:
        seeds = [args.seed]
    else:
        seeds = []
        for part in str(args.seeds).split(","):
            part = part.strip()
            try:
                seeds.append(int(part))
            except ValueError:
                raise UsageError(
                    f"--seeds {args.seeds!r}: {part!r} is not an integer; give a comma-separated "
                    f"list such as --seeds 0,1,2"
                ) from None
    bad = [s for s in seeds if s < 0 or s >= 2**32]
    if bad or not seeds:
        raise UsageError(f"seeds must be integers in [0, 2**32), got {bad or seeds}")
    if len(set(seeds)) != len(seeds):
        raise UsageError(f"--seeds {args.seeds!r} repeats a seed; give each seed once")
    return seeds


def cmd_run(args: argparse.Namespace) -> int:
    from .runner import RunConfig, format_table, maybe_report, run

    names = registry.resolve(args.models)  # fail fast on unknown names
    seeds = parse_seeds(args)
    params = parse_params(args.param, names)
    if args.reference is not None:
        registry.get(args.reference)
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
        progress=not args.no_progress,
        params=params,
        reference=args.reference,
    )
    s = split.stats()
    print(
        f"{s['dataset']}: {s['users']:,} users x {s['items']:,} items, "
        f"{s['train_users']:,} train / {s['valid_users']:,} valid / {s['test_users']:,} test users; "
        f"models: {', '.join(names)}",
        file=sys.stderr,
    )
    rows, failures = run(cfg, split)
    if rows:
        print(format_table([r for r in rows if r["dataset"] == split.meta.get("dataset")]))
    print(f"results: {Path(args.results_dir) / 'results.jsonl'}", file=sys.stderr)
    if not args.no_report:
        out = maybe_report(args.results_dir, args.report_dir, reference=args.reference)
        if out:
            print(f"report: {out}", file=sys.stderr)
    if failures:
        print("failed: " + "; ".join(failures), file=sys.stderr)
        return 1
    return 0


def cmd_tune(args: argparse.Namespace) -> int:
    from .tuning import tune_command

    args.fixed_params = parse_params(args.param, registry.resolve(args.models))
    return tune_command(args, _split_from_args)


def cmd_report(args: argparse.Namespace) -> int:
    from .report import build_report

    out = build_report(args.results_dir, args.out, reference=args.reference)
    print(f"report written to {out}")
    return 0


# --- parser ---------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m benchmark",
        description="Mult-VAE (Liang et al. 2018) against tuned baselines under the paper's "
        "strong-generalisation protocol: datasets, models, tuning, evaluation, reports.",
    )
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
    s.set_defaults(func=cmd_models)

    def add_run_opts(s: argparse.ArgumentParser) -> None:
        s.add_argument("--models", required=True, help="comma-separated model names, or all")
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

    s = sub.add_parser(
        "run",
        help="fit, select on validation, evaluate on test; append results; print a table",
        description="Fit each model on the training users, select on validation NDCG@100, "
        "evaluate once on the test users, append rows to results.jsonl and print a table. "
        "Rerunning skips what is done (use --force).",
        epilog=EPILOG_RUN,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_run_opts(s)
    _add_data_args(s)
    s.add_argument("--trials", type=int, default=0, help="tune each model with N Optuna trials first")
    s.add_argument("--reference", default=None, metavar="MODEL",
                   help="the model the report tests every other model against (default: "
                   "multvae when present, else the best by validation NDCG@100)")
    s.add_argument("--force", action="store_true", help="rerun models whose results exist")
    s.add_argument("--no-report", action="store_true", help="do not render the report at the end")
    s.add_argument("--report-dir", default="reports", help="where the report goes (default ./reports)")
    s.set_defaults(func=cmd_run)

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
    try:
        return int(args.func(args) or 0)
    except (DatasetError, registry.UnknownModelError, UsageError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: completed results are kept; rerun the same command to resume",
              file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
