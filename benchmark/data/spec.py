"""What a dataset is (:class:`DatasetSpec`) and the table of registered datasets.

A dataset module registers a zero-argument function returning its spec with
``@register_dataset(name)``; :mod:`benchmark.data.catalog` looks names up in the table.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from .preprocess import SplitConfig


@dataclass(frozen=True)
class PublishedShape:
    """A dataset's size after the paper's filters, as published, and what it costs on disk,
    so that a run can be planned before anything is downloaded.

    Attributes:
        users: all users after the filters (training and held-out).
        items: the catalogue (the items of the training users).
        clicks: interactions after the filters.
        heldout: validation users (and as many test users).
        source: where the counts are from.
        download_bytes: the archive's size (about; None: no download).
        unpacked_bytes: what unpacking adds on disk (about; 0: read in place).
        sizes_from: where the sizes are from.
    """

    users: int
    items: int
    clicks: int
    heldout: int
    source: str
    download_bytes: int | None = None
    unpacked_bytes: int | None = None
    sizes_from: str = ""

    @property
    def train_users(self) -> int:
        return self.users - 2 * self.heldout

    @property
    def train_clicks(self) -> int:
        """Training users' clicks, ASSUMING held-out users are as active as the others."""
        return round(self.clicks * self.train_users / self.users)

    @property
    def cache_bytes(self) -> int:
        """The cached split: about 4 bytes per click (int32 column indices, compressed npz
        not counted) plus the row pointers."""
        return 4 * self.clicks + 8 * (self.users + 2 * self.heldout)

    def stats(self, name: str) -> dict[str, Any]:
        """What ``Split.stats()`` would say, for the model registry's skip rules."""
        return {"dataset": name, "users": self.users, "items": self.items,
                "interactions": self.clicks, "train_users": self.train_users,
                "train_interactions": self.train_clicks, "valid_users": self.heldout,
                "test_users": self.heldout}


@dataclass
class DatasetSpec:
    """One dataset: where it comes from and how to read it.

    Attributes:
        name: the ``--dataset`` name.
        description: one line for ``python -m benchmark datasets``.
        source: official URL (or how to obtain it).
        protocol: binarisation, filters and held-out users.
        read_raw: raw folder -> DataFrame(user, item[, rating]) in the file's row order;
            raises :class:`~benchmark.data.errors.MissingRawData` naming the file, where to
            get it, where to put it.
        fetch: raw folder -> None, downloads what is missing (None: nothing to download).
        raw_files: raw folder -> the files read (for the cache key); empty when absent.
        generated: True for datasets made in memory (no raw folder).
        options: extra parameters recorded in the cache key (e.g. generator settings).
        published: the post-filter shape from the paper (a plan before any download).
    """

    name: str
    description: str
    source: str
    protocol: SplitConfig
    read_raw: Callable[[Path], pd.DataFrame]
    fetch: Callable[[Path], None] | None = None
    raw_files: Callable[[Path], list[Path]] = lambda raw: []
    generated: bool = False
    options: dict[str, Any] = field(default_factory=dict)
    published: PublishedShape | None = None
    timestamps: bool = False  # read_raw gives a timestamp column (the timed protocols need it)

    def raw_present(self, raw_dir: Path) -> bool:
        return self.generated or bool(self.raw_files(raw_dir))


#: name -> the function making its spec, in registration order.
_DATASETS: dict[str, Callable[[], DatasetSpec]] = {}


def register_dataset(name: str):
    """Decorator for a zero-argument function returning a :class:`DatasetSpec`."""

    def deco(fn: Callable[[], DatasetSpec]) -> Callable[[], DatasetSpec]:
        _DATASETS[name] = fn
        return fn

    return deco


__all__ = ["DatasetSpec", "PublishedShape", "register_dataset"]
