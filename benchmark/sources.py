"""A model's source hash: the code that produces its numbers, hashed by content.

Every run key and study name carries it, so editing a model's file (a plugin's too), one of
its base classes' files, or the suite's model code its module imports refits the model
instead of reusing a stale result.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import os
import sys
from pathlib import Path

__all__ = ["model_source_files", "model_source_hash"]


#: Modules outside a model's class hierarchy whose code shapes every number it gets.
_SHARED_SOURCES = ("benchmark.evaluate", "benchmark.training")


def model_source_files(cls: type) -> list[str]:
    """Source files that define ``cls``: every class of its MRO (plugin files included)
    plus the shared epoch loop and evaluator, sorted and without duplicates."""
    files: set[str] = set()
    for k in cls.__mro__:
        if k is object:
            continue
        try:
            f = inspect.getsourcefile(k)
        except (TypeError, OSError):
            f = None
        if f:
            files.add(os.path.abspath(f))
        # the suite's model code the class's module imports (e.g. vae -> vae_parts, torch_parts)
        module = sys.modules.get(k.__module__)
        for v in vars(module).values() if module is not None else ():
            name = v.__name__ if inspect.ismodule(v) else getattr(v, "__module__", None)
            if isinstance(name, str) and name.startswith(_MODEL_CODE):
                f = getattr(sys.modules.get(name), "__file__", None)
                if f:
                    files.add(os.path.abspath(f))
    for mod in _SHARED_SOURCES:
        f = getattr(importlib.import_module(mod), "__file__", None)
        if f:
            files.add(os.path.abspath(f))
    return sorted(files)


#: Modules whose code counts as a model's when its module imports from them.
_MODEL_CODE = ("benchmark.models.", "benchmark.torch_parts", "benchmark.model")


_SOURCE_HASHES: dict[type, str] = {}


def model_source_hash(cls: type) -> str:
    """sha256 (16 hex digits) of the code of a model: edit its file and the hash changes.

    Part of every run key and study name, so a result is never reused after the code that
    produced it changed. Hashed by content (not time), file names excluded, so the same
    code in another checkout gives the same hash. Computed once per process, when the
    model is first looked up (the code the process runs, not a later edit of the file).
    """
    if cls not in _SOURCE_HASHES:
        _SOURCE_HASHES[cls] = _hash_files(model_source_files(cls))
    return _SOURCE_HASHES[cls]


def _hash_files(files: list[str]) -> str:
    h = hashlib.sha256()
    for f in files:
        try:
            data = Path(f).read_bytes()
        except OSError:
            data = b"<unreadable>"
        h.update(hashlib.sha256(data).digest())
    return h.hexdigest()[:16]
