"""Fitted models that last: ``save``/``load`` without pickled code.

A saved model is a folder::

    model.json     format, registered name, class, hyperparameters (JSON), suite version,
                   the JSON-able fitted attributes, and what is stored where
    arrays.npz     NumPy arrays and sparse matrices (read with ``allow_pickle=False``)
    tensors.pt     torch tensors and module ``state_dict``s (read with ``weights_only=True``)

What is saved is the model's fitted state: every attribute whose name ends in ``_`` (the
scikit-learn convention all models follow). A ``torch.nn.Module`` is saved as its
``state_dict`` and rebuilt on load by the model's ``_empty_module(name)``; anything that is
neither an array, a tensor, a module nor JSON (a cache, a solver object) is left out, listed
in ``model.json`` under ``skipped``, and rebuilt by the model's ``_after_load()``. Loading
never imports or runs code named by the file: the caller names the class
(:meth:`benchmark.model.Recommender.load` finds it in the model registry by the saved name).
"""

from __future__ import annotations

import inspect
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp

from .fsutil import follow_umask

if TYPE_CHECKING:  # pragma: no cover
    from .model import Recommender

__all__ = ["FORMAT", "ModelFileError", "save_model", "load_model", "saved_model_name"]


class ModelFileError(ValueError):
    """A saved model folder that cannot be read: names the folder and the damaged part."""

    def __init__(self, path: Path, part: str, problem: str) -> None:
        super().__init__(f"{path}: {part} {problem}; save the model again (model.save(path), or "
                         "run --save-models)")

#: Version of the folder layout above.
FORMAT = 1


def _fitted(model: Any) -> dict[str, Any]:
    return {k: v for k, v in vars(model).items() if k.endswith("_") and not k.startswith("_")}


def _to_json(value: Any) -> Any:
    """``value`` as plain JSON types, or raise ``TypeError``."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple)):
        return [_to_json(v) for v in value]
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {k: _to_json(v) for k, v in value.items()}
    if hasattr(value, "as_dict") and callable(value.as_dict):  # EpochReport, outcomes
        return _to_json(value.as_dict())
    raise TypeError(type(value).__name__)


def save_model(model: Recommender, path: str | os.PathLike) -> Path:
    """Write a fitted ``model`` to the folder ``path`` (replaced atomically if present)."""
    import torch

    state = _fitted(model)
    if not state:
        raise ValueError(f"{type(model).__name__} is not fitted: there is nothing to save (fit it first)")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "model": model.name or type(model).__name__,
        "class": f"{type(model).__module__}:{type(model).__qualname__}",
        "params": _to_json(model.get_params()),
        "json": {}, "arrays": [], "sparse": {}, "tensors": [], "modules": [], "skipped": [],
    }
    from .version import __version__

    manifest["suite_version"] = __version__
    arrays: dict[str, np.ndarray] = {}
    tensors: dict[str, Any] = {}
    for name, value in state.items():
        if isinstance(value, torch.nn.Module):
            tensors[name] = {k: v.detach().cpu() for k, v in value.state_dict().items()}
            manifest["modules"].append(name)
        elif isinstance(value, torch.Tensor):
            tensors[name] = value.detach().cpu()
            manifest["tensors"].append(name)
        elif sp.issparse(value):
            m = sp.csr_matrix(value) if value.format != "csc" else value
            for part in ("data", "indices", "indptr"):
                arrays[f"{name}.{part}"] = getattr(m, part)
            arrays[f"{name}.shape"] = np.asarray(m.shape, dtype=np.int64)
            manifest["sparse"][name] = m.format
        elif isinstance(value, np.ndarray) and value.dtype != object:
            arrays[name] = value
            manifest["arrays"].append(name)
        elif isinstance(value, np.ndarray):  # object ids (strings): stored as text
            arrays[name] = value.astype(str)
            manifest["arrays"].append(name)
        else:
            try:
                manifest["json"][name] = _to_json(value)
            except TypeError:
                manifest["skipped"].append(name)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        np.savez(tmp / "arrays.npz", **arrays)
        torch.save(tensors, tmp / "tensors.pt")
        (tmp / "model.json").write_text(json.dumps(manifest, indent=2, sort_keys=True))
        for f in tmp.iterdir():
            follow_umask(f)
        follow_umask(tmp, directory=True)
        if path.exists():
            aside = Path(tempfile.mkdtemp(prefix=f".{path.name}.old.", dir=path.parent))
            os.replace(path, aside / "x")
            shutil.rmtree(aside, ignore_errors=True)
        os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return path


def _restore_param(cls: type, name: str, value: Any) -> Any:
    """JSON turned tuples into lists: give a tuple back where the default is a tuple."""
    p = inspect.signature(cls.__init__).parameters.get(name)
    if p is not None and isinstance(p.default, tuple) and isinstance(value, list):
        return tuple(value)
    return value


_MANIFEST_KEYS = ("model", "params", "json", "arrays", "sparse", "tensors", "modules")


def _manifest(path: Path) -> dict[str, Any]:
    manifest_file = path / "model.json"
    if not manifest_file.is_file():
        raise FileNotFoundError(f"{path} is not a saved model (no model.json); save one with model.save(path)")
    try:
        manifest = json.loads(manifest_file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelFileError(path, "model.json", f"is damaged (not JSON: {exc})") from None
    if not isinstance(manifest, dict):
        raise ModelFileError(path, "model.json", "is damaged (not a JSON object)")
    if manifest.get("format") != FORMAT:
        newer = isinstance(manifest.get("format"), int) and manifest["format"] > FORMAT
        raise ValueError(
            f"{path}: saved model format {manifest.get('format')!r}; this suite reads format "
            f"{FORMAT}" + (f" (the model was saved by cf-benchmark {manifest.get('suite_version')}, "
                           "newer than this one: upgrade the suite to load it)" if newer else ""))
    missing = [k for k in _MANIFEST_KEYS if k not in manifest]
    if missing:
        raise ModelFileError(path, "model.json", f"is damaged (no {', '.join(repr(k) for k in missing)})")
    return manifest


def saved_model_name(path: str | os.PathLike) -> str:
    """The registry name a saved model was fitted under (``model.json``'s ``model``)."""
    return str(_manifest(Path(path))["model"])


def load_model(path: str | os.PathLike, cls: type, *, device: str | None = None) -> Recommender:
    """Read a model written by :func:`save_model` into an instance of ``cls``.

    Args:
        path: the folder.
        cls: the class to build (checked against the saved name when it has one).
        device: where tensors go ("cpu", "cuda"); None: CUDA if the model was on CUDA and
            CUDA is available here, else CPU.
    """
    import torch

    path = Path(path)
    manifest = _manifest(path)
    name = manifest["model"]
    if getattr(cls, "name", "") and cls.name != name:
        raise ValueError(f"{path} holds a {name!r} model, not {cls.name!r}: load it with {name}'s class "
                         "or with benchmark.Recommender.load")
    if not isinstance(manifest["params"], dict):
        raise ModelFileError(path, "model.json", "is damaged (params is not an object)")
    known = set(inspect.signature(cls.__init__).parameters) - {"self"}
    unknown = sorted(set(manifest["params"]) - known)
    if unknown:
        raise ModelFileError(path, "model.json", f"names parameters {name} does not have: "
                             f"{', '.join(unknown)}")
    params = {k: _restore_param(cls, k, v) for k, v in manifest["params"].items()}
    try:
        model = cls(**params)
        problems = model.param_problems()
    except (TypeError, ValueError) as exc:
        raise ModelFileError(path, "model.json", f"has parameters {name} refuses ({exc})") from None
    if problems:
        raise ModelFileError(path, "model.json", f"has parameters out of {name}'s range: "
                             f"{'; '.join(problems)}")
    saved_device = manifest["json"].get("device_")
    if device is None:
        device = "cuda" if saved_device == "cuda" and torch.cuda.is_available() else "cpu"
    for k, v in manifest["json"].items():
        setattr(model, k, v)
    if "device_" in manifest["json"] and isinstance(saved_device, str):
        model.device_ = device
    try:
        with np.load(path / "arrays.npz", allow_pickle=False) as z:
            for k in manifest["arrays"]:
                setattr(model, k, z[k])
            for k, fmt in manifest["sparse"].items():
                kind = sp.csc_matrix if fmt == "csc" else sp.csr_matrix
                shape = tuple(int(s) for s in z[f"{k}.shape"])
                setattr(model, k, kind((z[f"{k}.data"], z[f"{k}.indices"], z[f"{k}.indptr"]), shape=shape))
    except Exception as exc:  # truncated zip, missing member, a pickled array refused, ...
        raise ModelFileError(path, "arrays.npz", f"is damaged or incomplete ({type(exc).__name__}: "
                             f"{exc})") from None
    try:
        tensors = torch.load(path / "tensors.pt", map_location=device, weights_only=True)
        for k in manifest["tensors"]:
            setattr(model, k, tensors[k])
        for k in manifest["modules"]:
            module = model._empty_module(k)
            module.load_state_dict(tensors[k])
            setattr(model, k, module.to(device))
    except Exception as exc:  # truncated file, missing tensor, shapes that do not match, ...
        raise ModelFileError(path, "tensors.pt", f"is damaged or incomplete ({type(exc).__name__}: "
                             f"{str(exc)[:300]})") from None
    model._after_load()
    return model
