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


__all__ = ["DatasetSpec", "register_dataset"]
