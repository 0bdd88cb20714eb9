"""The cached strong-generalisation split of each dataset.

``load_split("ml-100k")`` finds (or downloads) the raw files under
``<data-dir>/ml-100k/raw/``, preprocesses them as the paper does, splits them, and caches
the split under ``<data-dir>/ml-100k/processed/<key>/`` where the key hashes every
parameter and the raw files' names and CONTENTS (sha256), so a changed parameter or raw
file gives a new entry, never a stale one, even when an edit keeps the file's size and
time (``cp -p``, ``touch -r``). Each file is hashed once: the hash is kept in
``<data-dir>/<name>/.content-hashes.json`` beside the file's size, modification and change times
and inode (the change time cannot be set back by a user), and reused while all four hold.

A cache entry is checked before it is used: its ``meta.json`` must have the keys a split
records and its ``split_hash`` must equal the hash recomputed from its matrices; otherwise
it is rebuilt, with a warning.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..protocol import Split
from .catalog import get_dataset
from .errors import DatasetError
from .preprocess import PREPROCESS_VERSION, REFERENCE_SEED, make_split
from .spec import DatasetSpec


def default_data_dir() -> Path:
    return Path(os.environ.get("BENCHMARK_DATA_DIR", "datasets"))


def dataset_dir(spec: DatasetSpec, data_dir: str | os.PathLike | None) -> Path:
    root = Path(data_dir) if data_dir is not None else default_data_dir()
    safe = spec.name.replace("/", "_").replace(":", "_")
    return root / safe


HASHES_FILE = ".content-hashes.json"


def content_hash(path: Path, memo_file: Path | None = None) -> str:
    """sha256 of a file's bytes, memoised in ``memo_file`` under its size, mtime, ctime and
    inode (so a same-size edit with the time put back is still seen: its ctime moved)."""
    st = path.stat()
    stamp = [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]
    memo: dict[str, Any] = {}
    if memo_file is not None and memo_file.is_file():
        try:
            memo = json.loads(memo_file.read_text())
        except (OSError, ValueError):
            memo = {}
    key = str(path.resolve())
    hit = memo.get(key)
    if isinstance(hit, dict) and hit.get("stamp") == stamp and isinstance(hit.get("sha256"), str):
        return hit["sha256"]
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    digest = h.hexdigest()
    if memo_file is not None:
        memo[key] = {"stamp": stamp, "sha256": digest}
        try:
            memo_file.parent.mkdir(parents=True, exist_ok=True)
            tmp = memo_file.with_name(f"{memo_file.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(memo, indent=1, sort_keys=True))
            os.replace(tmp, memo_file)
        except OSError:  # a read-only data folder: hash again next time
            pass
    return digest


def cache_key(spec: DatasetSpec, raw_dir: Path, seed: int, memo_file: Path | None = None) -> str:
    files = []
    for p in sorted(spec.raw_files(raw_dir)):
        files.append([str(p.relative_to(raw_dir)) if p.is_relative_to(raw_dir) else str(p),
                      content_hash(p, memo_file)])
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


#: Keys every cached ``meta.json`` must have (``make_split`` writes them).
META_KEYS = ("dataset", "seed", "protocol", "preprocess_version", "counts", "split_hash")


def cache_problem(split: Split, dataset: str, seed: int) -> str | None:
    """What is wrong with a loaded cache entry, or None when it can be trusted."""
    missing = [k for k in META_KEYS if k not in split.meta]
    if missing:
        return f"missing {', '.join(missing)} in its meta.json"
    if split.meta.get("dataset") != dataset or split.meta.get("seed") != seed:
        return (f"for {split.meta.get('dataset')!r} seed {split.meta.get('seed')!r}, not "
                f"{dataset!r} seed {seed}")
    if split.meta.get("preprocess_version") != PREPROCESS_VERSION:
        return f"from preprocessing version {split.meta.get('preprocess_version')!r}"
    actual = split.compute_hash()
    if split.meta["split_hash"] != actual:
        return f"inconsistent (meta.json says split_hash {split.meta['split_hash']}, the matrices hash to {actual})"
    return None


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
        try:
            spec = replace(spec, protocol=replace(spec.protocol, **overrides))
        except ValueError as exc:  # e.g. a negative filter: the user can fix it
            raise DatasetError(f"{name}: {exc}") from exc
    root = dataset_dir(spec, data_dir)
    raw_dir = root / "raw"
    if not spec.generated and not spec.raw_present(raw_dir):
        if download and spec.fetch is not None and not os.environ.get("BENCHMARK_OFFLINE"):
            raw_dir.mkdir(parents=True, exist_ok=True)
            spec.fetch(raw_dir)
    key = cache_key(spec, raw_dir, seed, root / HASHES_FILE)
    cached = root / "processed" / key
    problem = None
    if (cached / "meta.json").exists() and (cached / "split.npz").exists():
        try:
            split = Split.load(cached)
            problem = cache_problem(split, spec.name, seed)
        except Exception as exc:  # a damaged cache entry is rebuilt, never trusted
            problem = f"unreadable ({type(exc).__name__}: {exc})"
        if problem is None:
            return split
        warnings.warn(f"cached split {cached} is {problem}; rebuilding it from the raw data",
                      stacklevel=2)
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
    try:
        split.save(cached, overwrite=problem is not None)
    except OSError as exc:  # a read-only data folder: the split is made, use it uncached
        warnings.warn(
            f"could not cache the split in {cached} ({exc.strerror or exc}); it is used "
            f"without a cache and made again next time: pass a --data-dir you can write to",
            stacklevel=2,
        )
    return split


__all__ = [
    "HASHES_FILE",
    "META_KEYS",
    "cache_key",
    "cache_problem",
    "content_hash",
    "dataset_dir",
    "default_data_dir",
    "load_split",
]
