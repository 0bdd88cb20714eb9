"""Append-only result rows (JSONL) and per-user metric arrays (.npz) beside them.

Layout of a results folder::

    results/
      results.jsonl            one JSON object per line (one model x dataset x part)
      arrays/<row id>.npz      per-user metrics of that row (for paired tests, quintiles)
      optuna.db                tuning studies (see benchmark.tuning)

Appends are a single ``write`` of one line to a file opened in append mode, flushed and
fsynced; arrays are written to a temporary name and renamed. A half-written last line (a
killed process) is skipped with a warning when reading, never fatal.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import subprocess
import tempfile
import warnings
from dataclasses import dataclass, fields
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from .fsutil import follow_umask

RESULTS_FILE = "results.jsonl"
ARRAYS_DIR = "arrays"
#: Version of :class:`ResultRow`; the report reads rows of this version or older.
SCHEMA_VERSION = 2


@dataclass
class ResultRow:
    """One line of ``results.jsonl``: one fitted model (dataset, model, seed) on one part.

    Written by ``run`` (:func:`benchmark.runner.write_result`), read by ``report``; the
    per-user metric values are in ``arrays`` (an ``.npz`` beside the rows). Every field that
    changes a number is in ``run_key`` / ``config_key``.
    """

    # identity
    id: str
    run_key: str
    config_key: str
    dataset: str
    model: str
    part: str  # "valid" or "test"
    seed: int
    # what was fitted
    params: dict[str, Any]
    overrides: dict[str, Any]
    epochs: dict[str, Any] | None  # {param, model, cap, effective, capped}, see runner.epoch_budget
    epochs_cap: int | None
    split_hash: str
    split_seed: int | None
    # the numbers
    metrics: dict[str, float]
    sem: dict[str, float]
    n_users: int
    n_excluded: int
    fit_seconds: float
    score_seconds: float
    arrays: str
    # where and how
    device: str
    suite_version: str
    source_hash: str
    versions: dict[str, Any]
    git_commit: str | None
    git_dirty: bool | None
    hardware: dict[str, Any]
    timestamp: str
    experiment: dict[str, Any] | None = None
    tuning: dict[str, Any] | None = None  # the study's summary and its trial history
    extra: dict[str, Any] | None = None  # per-epoch history, beta curve, model facts
    model_path: str | None = None  # --save-models
    display_name: str | None = None  # how tables name the model ("Mult-VAE"), fixed at the fit
    plugin_file: str | None = None  # the model's plugin file (None: a built-in or entry point)
    replaces: str | None = None  # the file of the class this plugin replaced (replace=True)
    same_fit_as: str | None = None  # run key of the fit these rows reuse (fit_uses_seed False)
    protocol: str | None = None  # weak, temporal, leave-last-out (absent: the paper's strong)
    k_clipped: dict[str, int] | None = None  # metric -> the K used (its K > the catalogue)
    worker: dict[str, Any] | None = None  # where it ran: executor; under Ray the node, resources, versions
    schema_version: int = SCHEMA_VERSION

    def as_dict(self) -> dict[str, Any]:
        """The JSON object of ``results.jsonl`` (optional fields left out when unset)."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        return {k: v for k, v in out.items()
                if v is not None or k not in ("experiment", "tuning", "extra", "model_path", "k_clipped", "protocol")}


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (np.floating, float)):
        f = float(x)
        return None if math.isnan(f) or math.isinf(f) else f
    if isinstance(x, np.ndarray):
        return _jsonable(x.tolist())
    if isinstance(x, (str, int, bool)) or x is None:
        return x
    return str(x)


def _key_form(x: Any) -> Any:
    """Like :func:`_jsonable`, but NaN and infinities stay distinct from None (a key must
    tell ``shrink=NaN`` from ``shrink=None``)."""
    if isinstance(x, dict):
        return {str(k): _key_form(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_key_form(v) for v in x]
    if isinstance(x, (np.floating, float)) and not math.isfinite(float(x)):
        return {"__float__": repr(float(x))}
    return _jsonable(x)


def run_key(**parts: Any) -> str:
    """Stable hash of what identifies a run (dataset, split, model, params, seed, ...)."""
    blob = json.dumps(_key_form(parts), sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def how_set(row: dict[str, Any]) -> str:
    """"tuned (N trials)" or "defaults" (with "+ overrides" when --param set some)."""
    tuning = row.get("tuning") or {}
    if tuning:
        n = tuning.get("trials_run") or tuning.get("trials_budget")
        return f"tuned ({n} trials)" if n else "tuned"
    return "defaults" + (" + overrides" if row.get("overrides") else "")


def row_label(row: dict[str, Any], names: dict[str, str] | None = None, *, display: bool = True) -> str:
    """How tables name a row's model: ``names`` (``report --names id=Name``), else the
    display name recorded at the fit ("Mult-VAE"), else (or with ``display=False``, as the
    command line's own table does) the registry id; with ``[capped at N epochs]`` when
    ``--epochs`` cut its own count."""
    cap = capped_epochs(row)
    name = (names or {}).get(row["model"]) or (display and row.get("display_name")) or row["model"]
    return str(name) + (f" [capped at {cap} epochs]" if cap is not None else "")


def inside(results_dir: str | Path, relative: Any, what: str = "path") -> Path:
    """``relative`` (a row's ``arrays`` or ``model_path``) resolved against the results
    folder; it must lie inside it.

    Raises:
        ValueError: absolute, or outside the results folder once resolved ("../../etc").
    """
    root = Path(results_dir).resolve()
    if not isinstance(relative, str) or not relative:
        raise ValueError(f"{what} {relative!r} is not a path relative to the results folder")
    if Path(relative).is_absolute():  # rows are written with relative paths only
        raise ValueError(f"{what} {relative!r} is absolute: outside the results folder {root}")
    target = (root / relative).resolve()
    if target != root and root not in target.parents:
        raise ValueError(f"{what} {relative!r} lies outside the results folder {root}")
    return target


def load_result_model(results_dir: str | Path, row: dict[str, Any], *, device: str | None = None):
    """The fitted model a result row names (``run --save-models``), found in the results
    folder: ``model_path`` is relative to it and must stay inside it.

    Raises:
        ValueError: the row has no saved model, or its path leaves the results folder.
    """
    from .model import Recommender

    if not row.get("model_path"):
        raise ValueError(f"row {row.get('id')!r} has no saved model: rerun the same command with "
                         "--save-models (the other rows are kept; only the models are fitted)")
    return Recommender.load(inside(results_dir, row["model_path"], "model_path"), device=device)


def capped_epochs(row: dict[str, Any]) -> int | None:
    """The effective epochs of a row fitted below the model's own count, else None.

    Rows written before the ``epochs`` record are judged from ``epochs_cap`` and the
    ``epochs`` parameter, so they are labelled too.
    """
    e = row.get("epochs")
    if isinstance(e, dict):
        eff = e.get("effective")
        return int(eff) if e.get("capped") and isinstance(eff, int) else None
    cap = row.get("epochs_cap")
    params = row.get("params")
    own = params.get("epochs") if isinstance(params, dict) else None
    if isinstance(cap, int) and isinstance(own, int) and not isinstance(own, bool) and cap < own:
        return cap
    return None


class ResultStore:
    """A results folder: append rows, save arrays, read both back."""

    def __init__(self, directory: str | os.PathLike):
        self.dir = Path(directory)

    @property
    def path(self) -> Path:
        return self.dir / RESULTS_FILE

    def append(self, row: dict[str, Any] | list[dict[str, Any]]) -> None:
        """Append one row, or several rows in one write (all or, if killed, a torn tail)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        rows = row if isinstance(row, list) else [row]
        line = "".join(json.dumps(_jsonable(r), sort_keys=True) + "\n" for r in rows)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            # A previous writer killed mid-line leaves no newline: start on a fresh line.
            size = os.fstat(fd).st_size
            if size:
                with open(self.path, "rb") as f:
                    f.seek(size - 1)
                    if f.read(1) != b"\n":
                        line = "\n" + line
            os.write(fd, line.encode())
            os.fsync(fd)
        finally:
            os.close(fd)

    def rows(self, *, warn: bool = True) -> list[dict[str, Any]]:
        """All readable rows; corrupt or truncated lines are skipped with a warning."""
        if not self.path.exists():
            return []
        out = []
        with open(self.path, encoding="utf-8", errors="replace") as f:
            for lineno, line in enumerate(f, 1):
                line = line.strip()
                if not line:
                    continue
                try:
                    row = json.loads(line)
                    if not isinstance(row, dict):
                        raise ValueError("not a JSON object")
                    out.append(row)
                except ValueError as exc:
                    if warn:
                        warnings.warn(
                            f"{self.path}:{lineno}: skipped an unreadable result line ({exc})",
                            stacklevel=2,
                        )
        return out

    def completed_keys(self) -> set[tuple[str, str]]:
        return {(r.get("run_key"), r.get("part")) for r in self.rows(warn=False)}

    def save_arrays(self, row_id: str, arrays: dict[str, np.ndarray]) -> Path:
        d = self.dir / ARRAYS_DIR
        d.mkdir(parents=True, exist_ok=True)
        target = d / f"{row_id}.npz"
        fd, tmp = tempfile.mkstemp(prefix=f".{row_id}.", suffix=".npz", dir=d)
        os.close(fd)
        try:
            np.savez_compressed(tmp, **arrays)
            follow_umask(tmp)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return target

    def load_arrays(self, row_id: str) -> dict[str, np.ndarray] | None:
        p = self.dir / ARRAYS_DIR / f"{row_id}.npz"
        if not p.exists():
            return None
        try:
            with np.load(p) as z:
                return {k: z[k] for k in z.files}
        except Exception as exc:
            warnings.warn(f"could not read per-user arrays {p}: {exc}", stacklevel=2)
            return None


@lru_cache(maxsize=1)
def versions() -> dict[str, str]:
    """Versions of Python and the libraries that shape the numbers."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for pkg in ("cf-benchmark", "numpy", "scipy", "torch", "implicit", "lightfm-next", "optuna"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


@lru_cache(maxsize=1)
def git_commit() -> str | None:
    try:
        here = Path(__file__).resolve().parent
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5
        )
        return out.stdout.strip() or None
    except Exception:
        return None


@lru_cache(maxsize=1)
def git_dirty() -> bool | None:
    """True when the checkout the code runs from has uncommitted changes (None: no git)."""
    try:
        here = Path(__file__).resolve().parent
        out = subprocess.run(
            ["git", "status", "--porcelain"],
            cwd=here, capture_output=True, text=True, timeout=10,
        )
        if out.returncode != 0:
            return None
        return bool(out.stdout.strip())
    except Exception:
        return None


@lru_cache(maxsize=1)
def hardware() -> dict[str, Any]:
    info: dict[str, Any] = {
        "machine": platform.machine(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "system": platform.system(),
    }
    try:
        import torch

        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
    except Exception:
        pass
    return info
