"""The built-in datasets (registered on import)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from . import DatasetSpec, MissingRawData, register_dataset
from .preprocess import Protocol
from .synthetic import DEFAULTS as SYNTH_DEFAULTS
from .synthetic import generate


def find_file(raw_dir: Path, filename: str) -> Path | None:
    """The first file called ``filename`` anywhere under ``raw_dir`` (sorted walk)."""
    if not raw_dir.is_dir():
        return None
    hits = sorted(raw_dir.rglob(filename))
    return hits[0] if hits else None


@register_dataset("synthetic")
def synthetic() -> DatasetSpec:
    return DatasetSpec(
        name="synthetic",
        description="generated from the Mult-VAE generative model, 5,000 users x 2,000 items (no download)",
        source="generated (benchmark.data.synthetic)",
        protocol=Protocol(min_rating=None, min_item_users=0, min_user_items=5, n_heldout=500),
        read_raw=lambda raw: generate(**SYNTH_DEFAULTS),
        generated=True,
        options=dict(SYNTH_DEFAULTS),
    )


def _read_ml100k(raw: Path) -> pd.DataFrame:
    path = find_file(raw, "u.data")
    if path is None:
        raise MissingRawData(
            f"ml-100k: u.data not found under {raw}/. Download "
            "https://files.grouplens.org/datasets/movielens/ml-100k.zip and unzip it there "
            f"(unzip ml-100k.zip -d {raw}), or run `python -m benchmark prepare --dataset ml-100k`"
        )
    return pd.read_csv(path, sep="\t", header=None, names=["user", "item", "rating", "timestamp"])


@register_dataset("ml-100k")
def ml_100k() -> DatasetSpec:
    return DatasetSpec(
        name="ml-100k",
        description="MovieLens 100K: 943 users, 1,682 movies; positives are ratings > 3.5",
        source="https://files.grouplens.org/datasets/movielens/ml-100k.zip",
        protocol=Protocol(min_rating=3.5, min_item_users=0, min_user_items=5, n_heldout=100),
        read_raw=_read_ml100k,
        raw_files=lambda raw: [p for p in [find_file(raw, "u.data")] if p],
    )
