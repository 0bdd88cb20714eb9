"""Datasets: a registry of specs, and the cached strong-generalisation split of each.

``load_split("ml-100k")`` finds (or downloads) the raw files under
``<data-dir>/ml-100k/raw/``, preprocesses them as the paper does, splits them, and caches
the split under ``<data-dir>/ml-100k/processed/<key>/`` where the key hashes every
parameter and the raw files' names, sizes and modification times, so a changed parameter
or raw file gives a new entry, never a stale one.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd

from ..protocol import Split
from .preprocess import PREPROCESS_VERSION, REFERENCE_SEED, Protocol, make_split


class DatasetError(Exception):
    """A problem with a dataset a user can fix (message says how); CLI exit code 2."""


class MissingRawData(DatasetError):
    pass


class UnknownDataset(DatasetError):
    pass


@dataclass
class DatasetSpec:
    """One dataset: where it comes from and how to read it.

    Attributes:
        name: the ``--dataset`` name.
        description: one line for ``python -m benchmark datasets``.
        source: official URL (or how to obtain it).
        protocol: binarisation, filters and held-out users.
        read_raw: raw folder -> DataFrame(user, item[, rating]) in the file's row order;
            raises :class:`MissingRawData` naming the file, where to get it, where to put it.
        fetch: raw folder -> None, downloads what is missing (None: nothing to download).
        raw_files: raw folder -> the files read (for the cache key); empty when absent.
        generated: True for datasets made in memory (no raw folder).
        options: extra parameters recorded in the cache key (e.g. generator settings).
    """

    name: str
    description: str
    source: str
    protocol: Protocol
    read_raw: Callable[[Path], pd.DataFrame]
    fetch: Callable[[Path], None] | None = None
    raw_files: Callable[[Path], list[Path]] = lambda raw: []
    generated: bool = False
    options: dict[str, Any] = field(default_factory=dict)

    def raw_present(self, raw_dir: Path) -> bool:
        return self.generated or bool(self.raw_files(raw_dir))


_DATASETS: dict[str, Callable[[], DatasetSpec]] = {}


def register_dataset(name: str):
    """Decorator for a zero-argument function returning a :class:`DatasetSpec`."""

    def deco(fn: Callable[[], DatasetSpec]) -> Callable[[], DatasetSpec]:
        _DATASETS[name] = fn
        return fn

    return deco


def _import_builtin() -> None:
    from . import builtin  # noqa: F401  (registers the built-in datasets)


def dataset_names() -> list[str]:
    _import_builtin()
    return list(_DATASETS)


def get_dataset(name: str, **file_options: Any) -> DatasetSpec:
    """The spec for ``name``; ``file:PATH`` reads a user's own CSV/TSV/Parquet file."""
    _import_builtin()
    if name.startswith("file:"):
        from .files import file_dataset

        return file_dataset(name[len("file:") :], **file_options)
    if name not in _DATASETS:
        raise UnknownDataset(
            f"unknown dataset {name!r}; available: {', '.join(_DATASETS)}, "
            f"or file:PATH for your own CSV/TSV/Parquet file"
        )
    return _DATASETS[name]()


def default_data_dir() -> Path:
    return Path(os.environ.get("BENCHMARK_DATA_DIR", "datasets"))


def dataset_dir(spec: DatasetSpec, data_dir: str | os.PathLike | None) -> Path:
    root = Path(data_dir) if data_dir is not None else default_data_dir()
    safe = spec.name.replace("/", "_").replace(":", "_")
    return root / safe


def cache_key(spec: DatasetSpec, raw_dir: Path, seed: int) -> str:
    files = []
    for p in sorted(spec.raw_files(raw_dir)):
        st = p.stat()
        files.append([str(p.relative_to(raw_dir)) if p.is_relative_to(raw_dir) else str(p), st.st_size, st.st_mtime_ns])
    blob = json.dumps(
        {
            "name": spec.name,
            "protocol": spec.protocol.as_dict(),
            "options": spec.options,
            "seed": seed,
            "files": files,
            "version": PREPROCESS_VERSION,
        },
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def load_split(
    name: str,
    *,
    data_dir: str | os.PathLike | None = None,
    seed: int = REFERENCE_SEED,
    protocol_overrides: dict[str, Any] | None = None,
    download: bool = True,
    file_options: dict[str, Any] | None = None,
) -> Split:
    """The cached split of a dataset, made (and downloaded) on first use.

    Args:
        name: a registered dataset or ``file:PATH``.
        data_dir: the data root (default ``$BENCHMARK_DATA_DIR`` or ``./datasets``).
        seed: the split seed (the reference code's 98765 by default).
        protocol_overrides: e.g. ``{"n_heldout": 100, "min_user_items": 5}``.
        download: fetch missing raw files when the dataset can be downloaded (never when
            the environment variable ``BENCHMARK_OFFLINE`` is set, as in the tests).
    """
    spec = get_dataset(name, **(file_options or {}))
    if protocol_overrides:
        overrides = {k: v for k, v in protocol_overrides.items() if v is not None}
        spec = replace(spec, protocol=replace(spec.protocol, **overrides))
    root = dataset_dir(spec, data_dir)
    raw_dir = root / "raw"
    if not spec.generated and not spec.raw_present(raw_dir):
        if download and spec.fetch is not None and not os.environ.get("BENCHMARK_OFFLINE"):
            raw_dir.mkdir(parents=True, exist_ok=True)
            spec.fetch(raw_dir)
    key = cache_key(spec, raw_dir, seed)
    cached = root / "processed" / key
    if (cached / "meta.json").exists() and (cached / "split.npz").exists():
        try:
            return Split.load(cached)
        except Exception:  # a damaged cache entry is rebuilt, never trusted
            pass
    df = spec.read_raw(raw_dir)
    try:
        split = make_split(
            df,
            spec.protocol,
            seed=seed,
            dataset=spec.name,
            extra_meta={"source": spec.source, "options": spec.options, "cache_key": key},
        )
    except ValueError as exc:  # too few users for the filters / held-out users: user-fixable
        raise DatasetError(str(exc)) from exc
    split.save(cached)
    return split


__all__ = [
    "DatasetError",
    "DatasetSpec",
    "MissingRawData",
    "Protocol",
    "REFERENCE_SEED",
    "UnknownDataset",
    "dataset_dir",
    "dataset_names",
    "get_dataset",
    "load_split",
    "register_dataset",
]
