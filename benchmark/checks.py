"""Checks of what a user asked for, before anything is fitted or written.

Everything that can be known before the first fit is checked first, and every problem is
reported at once (the CLI exits with code 2): model names, ``--param`` names *and values*
(typed from the constructor's defaults and annotations, then each model's own
``param_problems``), seeds, epochs, trials, held-out users and filters, the device, and
whether the results and report folders can be written. A bad value then never costs a fit,
never reaches a tuning trial, and never leaves a row.
"""

from __future__ import annotations

import inspect
import json
import math
from typing import Any

import numpy as np

import benchmark.registry as registry

from .evaluate import DEFAULT_METRICS, parse_metric
from .fsutil import check_writable_dir
from .logs import logger

SEED_MAX = 2**32  # numpy's SeedSequence / default_rng accept [0, 2**32) here


class UsageError(ValueError):
    """Values on the command line that cannot work (exit 2, before anything runs)."""

    def __init__(self, problems: list[str] | str) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__(self.problems[0] if len(self.problems) == 1 else
                         "\n  - " + "\n  - ".join(self.problems))


# --- model parameters ---------------------------------------------------------------------------
def _annotation(cls: type, name: str) -> str:
    p = inspect.signature(cls.__init__).parameters.get(name)
    if p is None or p.annotation is inspect.Parameter.empty:
        return ""
    a = p.annotation
    return a if isinstance(a, str) else getattr(a, "__name__", str(a))


def coerce_param(cls: type, name: str, raw: str) -> Any:
    """The value of ``--param MODEL.NAME=RAW`` typed like the parameter.

    The type comes from the default value and the annotation of ``cls.__init__``: booleans
    take true/false; integers take whole numbers; floats take finite numbers (never NaN or
    infinity); tuples and lists take JSON lists; strings take the text as written;
    ``None`` is accepted where the annotation allows it.

    Raises:
        ValueError: naming the option, what it expects and an example.
    """
    option = f"--param {cls.name}.{name}={raw}"
    default = cls.default_params().get(name)
    ann = _annotation(cls, name)
    allows_none = "None" in ann or default is None
    allows_str = "str" in ann
    try:
        value = json.loads(raw)
    except ValueError:
        value = raw
    if value is None and allows_none:
        return None
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{option}: {raw} is not a finite number; give a number such as "
                         f"{_example(default)}")
    if isinstance(default, bool) or ann == "bool":
        if isinstance(value, bool):
            return value
        raise ValueError(f"{option}: expects true or false")
    if isinstance(default, int) or ann.startswith("int"):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str) and allows_str:
            return value
        raise ValueError(f"{option}: expects a whole number, e.g. {_example(default)}"
                         + (" or null" if allows_none else ""))
    if isinstance(default, float) or "float" in ann:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str) and allows_str:
            return value
        raise ValueError(f"{option}: expects a number, e.g. {_example(default)}"
                         + (" or null" if allows_none else ""))
    if isinstance(default, (tuple, list)):
        if isinstance(value, list):
            return tuple(value) if isinstance(default, tuple) else value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return (value,) if isinstance(default, tuple) else [value]
        raise ValueError(f"{option}: expects a JSON list, e.g. {json.dumps(list(default))}")
    if isinstance(default, str):
        return raw if not isinstance(value, str) else value
    return value


def _example(default: Any) -> str:
    return json.dumps(default) if isinstance(default, (int, float)) and not isinstance(default, bool) else "1"


def parse_params(items: list[str], names: list[str]) -> tuple[dict[str, dict[str, Any]], list[str], list[str]]:
    """``["multvae.anneal_cap=auto", "ease.l2=250"]`` -> ({model: {param: value}}, problems,
    warnings). Names, values, and each model's own ranges are checked."""
    out: dict[str, dict[str, Any]] = {}
    problems: list[str] = []
    notes: list[str] = []
    for item in items:
        target, eq, raw = item.partition("=")
        model, dot, param = target.partition(".")
        if not (eq and dot and model and param):
            problems.append(f"--param {item!r}: expected MODEL.NAME=VALUE, e.g. multvae.anneal_cap=0.3")
            continue
        try:
            cls = registry.get(model)
        except registry.UnknownModelError as exc:
            problems.append(f"--param {item!r}: {exc}")
            continue
        if param not in cls._param_names():
            problems.append(
                f"--param {item!r}: {model} has no parameter {param!r}; it has "
                f"{', '.join(cls._param_names()) or 'none'} (see `python -m benchmark models`)"
            )
            continue
        if model not in names:
            notes.append(f"--param {item} names {model}, which is not in --models")
        try:
            out.setdefault(model, {})[param] = coerce_param(cls, param, raw)
        except ValueError as exc:
            problems.append(str(exc))
    for model, params in out.items():
        cls = registry.get(model)
        try:
            found = cls(**{**cls.default_params(), **params}).param_problems()
        except Exception as exc:  # a constructor that checks its own arguments
            found = [f"{type(exc).__name__}: {exc}"]
        given = ", ".join(f"{model}.{k}" for k in params)
        problems += [f"--param {given}: {model}: {p}" for p in found]
    return out, problems, notes


# --- numbers, device, folders -------------------------------------------------------------------
def check_int(value: Any, option: str, *, minimum: int, maximum: int | None = None) -> str | None:
    """A problem line when ``value`` (not None) is not an integer in [minimum, maximum)."""
    if value is None:
        return None
    ok = isinstance(value, int) and value >= minimum and (maximum is None or value < maximum)
    if ok:
        return None
    rng = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum:,})"
    return f"{option} {value}: must be an integer {rng}"


def check_positive(value: Any, option: str) -> str | None:
    if value is None or (isinstance(value, (int, float)) and 0 < value < math.inf):
        return None
    return f"{option} {value}: must be a finite number > 0"


def check_device(device: str) -> str | None:
    """Whether ``--device`` can be used here (CUDA asked for without a CUDA device, ...)."""
    from .model import FitOptions

    try:
        FitOptions(device=device).resolve_device()
    except (RuntimeError, ValueError) as exc:
        return f"--device {device}: {exc}"
    return None


# --- the options of run and tune (a parsed command line) --------------------------------
def parse_seeds(args: Any) -> tuple[list[int], list[str]]:
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


def data_problems(args: Any) -> list[str]:
    checks = [
        check_int(args.heldout_users, "--heldout-users", minimum=1),
        check_int(args.min_user_items, "--min-user-items", minimum=0),
        check_int(args.min_item_users, "--min-item-users", minimum=0),
        check_int(args.split_seed, "--split-seed", minimum=0, maximum=SEED_MAX),
    ]
    if args.min_rating is not None and not math.isfinite(args.min_rating):
        checks.append(f"--min-rating {args.min_rating}: must be a finite number")
    return [c for c in checks if c]


def evaluable_problem(split: Any, dataset: str) -> str | None:
    """Why nothing of ``split`` could be evaluated (no validation or no test user has a
    held-out item), or None: a run refuses it before any fit (never 'nan ± nan')."""
    def scored(part: Any) -> int:
        return int((np.diff(part.holdout.indptr) > 0).sum())

    valid, test = scored(split.valid), scored(split.test)
    if valid and test:
        return None
    return (f"{dataset}: {valid} of {split.valid.n_users} validation and {test} of "
            f"{split.test.n_users} test users have held-out items, so nothing can be evaluated: "
            "a held-out user gives floor(20%) of its items to evaluation, so it needs at least 5; "
            "use --min-user-items 5 (or more), or more users per held-out set (--heldout-users)")


def dataset_problems(datasets: list[str], data_dir: Any, *, plan_only: bool = False,
                     protocols: Any = ()) -> list[str]:
    """Every dataset of a run resolved before the first fit (row 4 of the third bad-input
    round): its spec known, a ``file:`` present, and raw files present, a split cached, or a
    download source known (a plan needs none of these for a published shape). Nothing is
    probed over the network and nothing is downloaded here."""
    from pathlib import Path

    from .data import DatasetError, dataset_dir, get_dataset
    from .data.preprocess import TIMED_PROTOCOLS

    problems = []
    for name in datasets:
        if name.startswith("file:"):
            path = Path(name[len("file:"):]).expanduser()
            if not path.is_file():
                problems.append(f"dataset {name}: no such file ({path.resolve()}); give the path "
                                "of a CSV, TSV or Parquet file")
            continue
        try:
            spec = get_dataset(name)
        except DatasetError as exc:
            problems.append(f"dataset {name}: {exc}")
            continue
        timed = [p for p in protocols if p in TIMED_PROTOCOLS]
        if timed and not spec.timestamps:
            problems.append(f"dataset {name}: --protocol {timed[0]} needs timestamps and {name} has "
                            "none; use --protocol strong or weak")
        if spec.generated or (plan_only and spec.published is not None):
            continue
        root = dataset_dir(spec, data_dir)
        if spec.raw_present(root / "raw") or any((root / "processed").glob("*/meta.json")):
            continue
        if spec.fetch is None:
            problems.append(f"dataset {name}: no raw files in {root / 'raw'} and no download "
                            f"source; {spec.source} (python -m benchmark datasets lists them)")
    return problems


def memory_limit_problem() -> str | None:
    """``BENCHMARK_MEMORY_LIMIT``, when set, must be a size (checked before anything runs)."""
    import os

    from .resources import MEMORY_ENV
    from .units import parse_bytes

    value = os.environ.get(MEMORY_ENV)
    if value is None:
        return None
    try:
        parse_bytes(value)
    except ValueError as exc:
        return f"{MEMORY_ENV}={value!r}: {str(exc).split(': ', 1)[-1]}; or unset it"
    return None


def _ray_problem(address: str | None) -> str | None:
    """--ray needs Ray installed (checked here: joining the cluster waits for the run)."""
    if address is None:
        return None
    import importlib.util

    if importlib.util.find_spec("ray") is None:
        return "--ray: Ray is not installed; pip install 'cf-benchmark[ray]' (docs/cluster.md)"
    return None


def preflight(args: Any, *, tune: bool = False) -> dict:
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
        check_int(getattr(args, "threads", None), "--threads", minimum=1),
        check_int(getattr(args, "ray_retries", None), "--ray-retries", minimum=0),
        _ray_problem(getattr(args, "ray", None)),
        memory_limit_problem(),
        check_positive(args.timeout, "--timeout"),
        check_positive(getattr(args, "time_budget", None), "--time-budget"),
        check_device(args.device),
    ) if p]
    problems += data_problems(args)
    datasets = [args.dataset] if getattr(args, "dataset", None) else list(getattr(args, "datasets", None) or [])
    protocols = [args.protocol] if getattr(args, "protocol", None) else list(getattr(args, "protocols", None) or [])
    if not getattr(args, "dump_config", False):  # a dump needs no data
        problems += dataset_problems(datasets, args.data_dir, plan_only=bool(getattr(args, "plan", False)),
                                     protocols=protocols)
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
    elif reference is not None and names and reference not in names:
        logger.warning(f"--reference {reference} is not among --models {args.models}: the report "
                       "tests against it only if its rows are already in the results folder")
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
