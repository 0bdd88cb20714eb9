"""The argument parser: every subcommand, its options and its help."""

from __future__ import annotations

import argparse
import os
from typing import Any

from ..data.preprocess import PROTOCOLS, REFERENCE_SEED
from .commands import (
    cmd_datasets,
    cmd_models,
    cmd_prepare,
    cmd_recommend,
    cmd_report,
    cmd_run,
    cmd_tune,
)

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
    g.add_argument("--dataset", required=bool(dataset_required),
                   default="synthetic" if dataset_required is False else None,
                   help="dataset name (see `python -m benchmark datasets`) or file:PATH for your "
                   "own CSV/TSV/Parquet file of (user, item[, rating[, timestamp]])")
    g.add_argument("--data-dir", default=os.environ.get("BENCHMARK_DATA_DIR", "datasets"),
                   help="data root holding <name>/raw and <name>/processed (env "
                   "BENCHMARK_DATA_DIR; default ./datasets)")
    g.add_argument("--split-seed", type=int, default=REFERENCE_SEED,
                   help="seed of the user permutation and held-out items (default "
                   f"{REFERENCE_SEED}, the paper's)")
    g.add_argument("--min-rating", type=float, default=None, help="keep ratings > this (override)")
    g.add_argument("--min-user-items", type=int, default=None, help="drop users with fewer items")
    g.add_argument("--min-item-users", type=int, default=None, help="drop items with fewer users (applied first)")
    g.add_argument("--heldout-users", type=int, default=None, help="validation users = test users = N")
    g.add_argument("--protocol", choices=PROTOCOLS, default=None, help="strong (the paper's, default), weak, temporal or leave-last-out (docs/protocols.md); experiment files: protocols = [...]")
    g.add_argument("--user-col", default=None, help="file: user column name (default: first column)")
    g.add_argument("--item-col", default=None, help="file: item column name (default: second column)")
    g.add_argument("--rating-col", default=None, help="file: rating column name (default: third, if any)")
    g.add_argument("--sep", default=None, help="file: the separator (default: detected; e.g. ',' or '\\t')")
    g.add_argument("--extra-fields", choices=["error", "ignore"], default=None,
                   help="file: a line with more fields than the first line is an error "
                   "(default) or ignored beyond the first ones")


def _names(value: str) -> dict[str, str]:
    pairs = [p.split("=", 1) for p in value.split(",") if p.strip()]
    if not pairs or any(len(p) != 2 or not p[0].strip() or not p[1].strip() for p in pairs):
        raise argparse.ArgumentTypeError(f"{value!r}: expected ID=NAME pairs, e.g. multvae=Mult-VAE")
    return {k.strip(): v.strip() for k, v in pairs}


def _add_models_dir(p: argparse.ArgumentParser) -> None:
    p.add_argument("--models-dir", default=None, help="folder of model plugins (*.py); default: "
                   "$BENCHMARK_MODELS_DIR, else ./models of the current directory")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m benchmark",
        description="Mult-VAE (Liang et al. 2018) against tuned baselines under the paper's "
        "strong-generalisation protocol: datasets, models, tuning, evaluation, reports.",
    )
    from ..version import __version__

    p.add_argument("--version", action="version", version=f"cf-benchmark {__version__}")
    p.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    p.add_argument("-v", "--verbose", action="store_true", help="debug messages too")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (_add_listing_commands, _add_run_command, _add_tune_command, _add_report_command,
                _add_recommend_command):
        add(sub)
    return p


def _add_listing_commands(sub: Any) -> None:
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


def _add_run_opts(s: argparse.ArgumentParser, *, models_required: bool = True) -> None:
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
                   "ndcg@100: precision@K, map@K, mrr@K, hitrate@K, coverage@K, recall@K, ndcg@K; "
                   "popularity bias: arp@K, aplt@K, gini@K, novelty@K (definitions: docs/metrics.md)")
    s.add_argument("--threads", type=int, default=None, metavar="N",
                   help="CPU threads per fit (default: every core; under --ray 1, asked of Ray)")
    s.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                   help="run each fit (tune: each trial) as a Ray task: on the cluster at "
                   "ADDRESS (ray://host:10001 included), or without one on $RAY_ADDRESS, the "
                   "cluster running here, else a new local one; needs pip install "
                   "'cf-benchmark[ray]' (docs/cluster.md)")
    s.add_argument("--check", action="store_true",
                   help="check every option (models, --param values, seeds, device, "
                   "folders) and exit without loading data or fitting")
    _add_models_dir(s)


def _add_run_command(sub: Any) -> None:
    s = sub.add_parser(
        "run",
        help="fit, select on validation, evaluate on test; append results; print a table",
        description="Fit each model on the training users, select on validation NDCG@100, "
        "evaluate once on the test users, append rows to results.jsonl and print a table. "
        "Rerunning skips what is done (use --force).",
        epilog=EPILOG_RUN,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_run_opts(s, models_required=False)
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
    s.add_argument("--plan", action="store_true", help="print each model's estimated fit time and peak memory on this machine (every run prints it first) and exit without fitting; with no data on disk, ml-20m, netflix and msd are planned from their published shape")
    s.add_argument("--json", action="store_true", help="with --plan: the plan as one JSON document")
    s.add_argument("--ignore-plan", action="store_true", help="fit the models the plan refuses or skips for memory or time anyway (a fit that then runs out of memory fails)")
    s.add_argument("--time-budget", type=float, default=None, metavar="SECONDS", help="most seconds one model's fit may take: a model estimated above it is not started, an iterative one stops after the epoch that crosses it")
    s.add_argument("--isolate", choices=["auto", "all", "none"], default="auto", help="fit in a child process of its own, so that a crash in native code fails that model only: auto (the fits the plan marks as large), all, none")
    s.add_argument("--ray-retries", type=int, default=2, metavar="N",
                   help="with --ray: how often a fit whose worker or node died is rerun (default 2)")
    s.add_argument("--force", action="store_true", help="rerun models whose results exist")
    s.add_argument("--no-report", action="store_true", help="do not render the report at the end")
    s.add_argument("--report-dir", default="reports", help="where the report goes (default ./reports)")
    s.add_argument("--mlflow", default=None, metavar="URI",
                   help="also log each fit (parameters, metrics, fit time, its rows and the "
                   "report) as one MLflow run to this tracking URI, e.g. file:///tmp/mlruns or "
                   "http://localhost:5000; experiment $MLFLOW_EXPERIMENT_NAME, else "
                   "cf-benchmark/<dataset>; needs pip install 'cf-benchmark[mlflow]'")
    s.set_defaults(func=cmd_run, run_parser=s)


def _add_tune_command(sub: Any) -> None:
    s = sub.add_parser(
        "tune",
        help="tune models with Optuna on validation NDCG@100 (resumable, multi-worker)",
        description="Tune each model's hyperparameters with Optuna (TPE, seeded; paper defaults "
        "as the first trial) on validation NDCG@100. Test users are never read.",
    )
    _add_run_opts(s)
    _add_data_args(s)
    s.add_argument("--trials", type=int, required=True, help="trials per model (in total, across workers)")
    s.add_argument("--study", default=None, help="study name (default: <dataset>-<model>-<split hash>-<config hash>; the config hash covers --param, --epochs, --seed, the suite version and the model source)")
    s.add_argument("--workers", type=int, default=1, help="local worker processes sharing the study")
    s.add_argument("--pruner", choices=["median", "hyperband", "none"], default="median",
                   help="prune iterative models' poor trials by epoch (default median)")
    s.set_defaults(func=cmd_tune)


FIGURE_MODELS = "the activity-quintile figure's models beside the reference (default: the best of each family)"


def _csv(value: str) -> list[str] | None:
    return [x.strip() for x in value.split(",") if x.strip()] or None


def _add_report_command(sub: Any) -> None:
    s = sub.add_parser("report", help="render tables and figures from a results folder")
    s.add_argument("--results-dir", default="results")
    s.add_argument("--out", default="reports", help="output folder (default ./reports)")
    s.add_argument("--reference", default=None, metavar="MODEL",
                   help="test every model against this one (default: multvae when present, "
                   "else the best model by validation NDCG@100, per dataset)")
    for opt, what in (("--models", "only these models"), ("--datasets", "only these datasets"),
                      ("--exclude", "not these models"), ("--figure-models", FIGURE_MODELS)):
        s.add_argument(opt, default=None, metavar="A,B", type=_csv,
                       help=what if opt == "--figure-models" else f"{what} (tables, figures and tests)")
    s.add_argument("--names", default=None, metavar="ID=NAME,...", type=_names,
                   help="how tables name models, over the names recorded at the fit (e.g. ease=EASE-tuned)")
    s.set_defaults(func=cmd_report)


def _add_recommend_command(sub: Any) -> None:
    s = sub.add_parser("recommend", help="top-k items from a saved model for histories given as item ids",
                       description="Recommend from a model saved by run --save-models (RESULTS_DIR/"
                       "models/<run_key>): item ids in, item ids out, the history's items excluded.")
    s.add_argument("model_dir", help="the saved model's folder (a row's model_path, under --results-dir)")
    s.add_argument("--user", default=None, metavar="ID,ID,...", help="one user's items (the data's ids)")
    s.add_argument("--input", default=None, metavar="FILE", help="user,item lines (CSV or TSV)")
    s.add_argument("--k", type=int, default=10, help="items per user (default 10)")
    s.add_argument("--format", choices=["csv", "json"], default="csv",
                   help="csv: user,rank,item,score lines (default); json: a list of objects")
    s.add_argument("--out", default=None, help="write here (default: stdout)")
    _add_models_dir(s)
    s.set_defaults(func=cmd_recommend)
