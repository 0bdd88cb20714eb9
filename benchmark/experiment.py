"""One experiment file: ``python -m benchmark run --config experiment.toml``.

Every option of ``run`` is a key of the file, spelt as on the command line without the
dashes (``results-dir`` or ``results_dir``); the command line overrides the file. Two keys
take more than the command line does::

    datasets = ["ml-100k", "lastfm"]     # or dataset = "ml-100k"
    seeds = [0, 1, 2]

    [models.multvae]                     # one table per model: its parameters
    anneal_cap = 0.2
    [models.ease]
    l2 = 250.0
    [models.popularity]                  # no parameters: the defaults

An unknown key, model or parameter is an error naming it and the nearest valid one; a
value of the wrong type is an error naming the key and the type. ``--dump-config`` prints
the effective configuration (file + command line) as TOML, and every result row records it
(``experiment``). Docs: docs/experiments.md.
"""

from __future__ import annotations

import argparse
import difflib
import json
import math
import sys
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

from .checks import UsageError

__all__ = ["apply_config", "effective_config", "dump_toml", "explicit_dests"]

#: Options that only make sense on the command line.
CLI_ONLY = {"config", "dump_config", "check", "plan", "help", "func", "command", "param",
            "quiet", "verbose", "version"}


def _nearest(word: str, choices: Any) -> str:
    near = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.5)
    return f"; did you mean {near[0]!r}?" if near else ""


def _actions(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {a.dest: a for a in parser._actions if a.dest not in CLI_ONLY and a.dest != argparse.SUPPRESS}


def explicit_dests(parser: argparse.ArgumentParser, argv: list[str]) -> set[str]:
    """The options given on the command line ``argv`` (of the ``run`` subcommand)."""
    saved = {a: a.default for a in parser._actions}
    try:
        for a in parser._actions:
            a.default = argparse.SUPPRESS
        ns, _ = parser.parse_known_args(argv)
    finally:
        for a, d in saved.items():
            a.default = d
    return set(vars(ns))


def _check_value(key: str, value: Any, action: argparse.Action, where: str) -> str | None:
    """A problem line when ``value`` does not fit the option, else None."""
    if action.nargs == 0:  # a flag
        return None if isinstance(value, bool) else f"{where}: {key} = {value!r}: expects true or false"
    if value is None:
        return None
    kind = action.type
    if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
        hint = f"; did you mean seeds = {value!r}?" if key == "seed" and isinstance(value, list) else ""
        return f"{where}: {key} = {value!r}: expects a whole number{hint}"
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            return f"{where}: {key} = {value!r}: expects a finite number"
    if kind in (None, str) and not isinstance(value, str):
        return f"{where}: {key} = {value!r}: expects text (in quotes)"
    if action.choices and value not in action.choices:
        return f"{where}: {key} = {value!r}: expects one of {', '.join(map(str, action.choices))}"
    return None


def _models_table(value: Any, where: str, problems: list[str]) -> tuple[str, list[str]]:
    """``models`` as a table (name -> params), a list or a string -> ("a,b", --param items)."""
    import benchmark.registry as registry

    if isinstance(value, str):
        return value, []
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return ",".join(value), []
    if not isinstance(value, dict):
        problems.append(f"{where}: models must be a table of [models.NAME] sections, a list of "
                        f"names or a comma-separated string, not {value!r}")
        return "", []
    available = registry.available()
    items: list[str] = []
    for name, params in value.items():
        if name not in available:
            problems.append(f"{where}: [models.{name}]: no such model{_nearest(name, available)} "
                            f"(list them with `python -m benchmark models`)")
            continue
        if not isinstance(params, dict):
            problems.append(f"{where}: models.{name} must be a table of parameters, not {params!r}")
            continue
        names = registry.get(name)._param_names()
        for k, v in params.items():
            if k not in names:
                problems.append(f"{where}: [models.{name}] {k}: {name} has no parameter {k!r}"
                                f"{_nearest(k, names)} (see `python -m benchmark models --params {name}`)")
                continue
            raw = v if isinstance(v, str) else json.dumps(v)
            items.append(f"{name}.{k}={raw}")
    return ",".join(value), items


def apply_config(args: argparse.Namespace, parser: argparse.ArgumentParser, argv: list[str]) -> None:
    """Fill ``args`` from ``args.config`` where the command line did not set an option.

    Raises:
        UsageError: naming every unknown key, model or parameter and every badly typed value.
    """
    path = Path(args.config)
    where = str(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError([f"--config {path}: no such file"]) from None
    except IsADirectoryError:
        raise UsageError([f"--config {path}: a folder, not an experiment file (.toml)"]) from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UsageError([f"--config {path}: not valid TOML: {exc}"]) from None
    actions = _actions(parser)
    given = explicit_dests(parser, argv)
    valid_keys = sorted({*actions, "datasets", "models", "protocols"})
    problems: list[str] = []
    file_params: list[str] = []
    folder = next((data[k] for k in ("models_dir", "models-dir") if k in data), None)
    if isinstance(folder, str) and "models_dir" not in given:  # before [models.NAME] is read
        folder = (path.parent / Path(folder).expanduser()).resolve()
        if not folder.is_dir():
            raise UsageError([f"{where}: models_dir = {str(folder)!r}: no such folder (a "
                              "relative path is read from the file's folder)"])
        import benchmark.registry as registry

        registry.use_models_dir(folder)
        data = {k: v for k, v in data.items() if k not in ("models_dir", "models-dir")}
        args.models_dir = str(folder)
    if {"dataset", "datasets"} <= set(data):
        problems.append(f"{where}: both dataset and datasets: keep one (datasets = [...] for "
                        "several)")
    for raw_key, value in data.items():
        key = raw_key.replace("-", "_")
        if key == "models":
            models, file_params = _models_table(value, where, problems)
            if "models" not in given:
                args.models = models
            continue
        if key == "datasets":
            if not (isinstance(value, list) and value and all(isinstance(v, str) for v in value)):
                problems.append(f"{where}: datasets = {value!r}: expects a list of dataset names")
            elif "dataset" not in given:
                args.datasets = list(value)
            continue
        if key == "protocols":  # each dataset under each protocol (--protocol: one)
            from .data.preprocess import PROTOCOLS

            if not (isinstance(value, list) and value and all(v in PROTOCOLS for v in value)):
                problems.append(f"{where}: protocols = {value!r}: expects a list of {', '.join(PROTOCOLS)}")
            elif "protocol" not in given:
                args.protocols = list(value)
            continue
        if key == "seeds" and isinstance(value, list):
            if not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
                problems.append(f"{where}: seeds = {value!r}: expects a list of whole numbers")
                continue
            value = ",".join(str(v) for v in value)
        if key not in actions:
            problems.append(f"{where}: unknown key {raw_key!r}{_nearest(key, valid_keys)} "
                            f"(valid keys: the options of `python -m benchmark run --help`, "
                            f"without dashes, plus datasets and [models.NAME])")
            continue
        problem = _check_value(raw_key, value, actions[key], where)
        if problem:
            problems.append(problem)
        elif key not in given:
            setattr(args, key, str(value) if key == "seeds" else value)
    if problems:
        raise UsageError(problems)
    # an experiment's rows and report go to folders of their own, named after the file, unless
    # the file or the command line names them: two experiments never mix in one report
    for key, root in (("results_dir", "results"), ("report_dir", "reports")):
        if key not in given and key not in {k.replace("-", "_") for k in data}:
            setattr(args, key, str(Path(root) / path.stem))
    args.param = file_params + list(args.param or [])  # the command line's come last and win


def effective_config(args: argparse.Namespace, parser: argparse.ArgumentParser,
                     params: dict[str, dict[str, Any]], seeds: list[int]) -> dict[str, Any]:
    """What this run does, as an experiment file would say it (for --dump-config and rows)."""
    out: dict[str, Any] = {}
    datasets = getattr(args, "datasets", None) or [args.dataset]
    out["datasets"] = list(datasets)
    if getattr(args, "protocols", None) and not args.protocol:
        out["protocols"] = list(args.protocols)
    for dest in sorted(_actions(parser)):
        if dest in ("models", "dataset", "seed", "seeds"):
            continue
        value = getattr(args, dest, None)
        if dest == "models_dir" and value is not None:  # absolute: the dump may move
            value = str(Path(value).resolve())
        if value is None or (value is False and dest != "force"):
            continue
        out[dest] = value
    out["seeds"] = list(seeds)
    names = [n.strip() for n in str(args.models).split(",") if n.strip()]
    out["models"] = {n: dict(params.get(n, {})) for n in names}
    for n, p in params.items():
        out["models"].setdefault(n, dict(p))
    return out


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if v is None:
        raise ValueError("TOML has no null")
    return json.dumps(str(v))  # a basic string: JSON's escapes are TOML's


def dump_toml(config: dict[str, Any]) -> str:
    """``config`` (scalars, lists, and ``models`` as tables of scalars) as TOML."""
    lines = ["# cf-benchmark experiment (python -m benchmark run --config FILE)"]
    for k, v in config.items():
        if k != "models" and v is not None:
            lines.append(f"{k} = {_toml_value(v)}")
    for name, params in config.get("models", {}).items():
        lines.append("")
        lines.append(f"[models.{json.dumps(name) if not name.replace('-', '').replace('_', '').isalnum() else name}]")
        for k, v in params.items():
            if v is not None:
                lines.append(f"{k} = {_toml_value(v)}")
    return "\n".join(lines) + "\n"
