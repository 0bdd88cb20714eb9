"""MovieLens 100K, 1M and 20M (GroupLens), positives = ratings > 3.5, users >= 5 items.

Raw files, found anywhere under ``<data-dir>/<name>/raw/`` (extracted, or inside the zip):

- ``ml-100k/u.data``: ``user \\t item \\t rating \\t timestamp``, no header.
- ``ml-1m/ratings.dat``: ``UserID::MovieID::Rating::Timestamp``, no header. Read with the C
  parser by splitting on ``:`` and keeping every other field (``::`` would need the slow
  Python engine).
- ``ml-20m/ratings.csv``: header ``userId,movieId,rating,timestamp``, CRLF.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .download import zip_fetcher
from .preprocess import SplitConfig
from .readers import Field, locate, located_files, read_delimited, require
from .spec import DatasetSpec, PublishedShape, register_dataset

BASE = "https://files.grouplens.org/datasets/movielens"

_TSV: list[Field] = [("user", "int32"), ("item", "int32"), ("rating", "float32"), ("timestamp", "int64")]
_DAT: list[Field] = [
    ("user", "int32"),
    ("_1", "empty"),
    ("item", "int32"),
    ("_2", "empty"),
    ("rating", "float32"),
    ("_3", "empty"),
    ("timestamp", "int64"),
]


def _missing(name: str, filename: str, raw: Path) -> str:
    archive = f"{name}.zip"
    return (
        f"{name}: {filename} not found under {raw}/. Run `python -m benchmark prepare --dataset "
        f"{name}` to download {BASE}/{archive} there, or download it yourself and put the zip "
        f"in {raw}/ (or unzip it there: unzip {archive} -d {raw})"
    )


def _reader(name: str, filename: str, fields: list[Field], *, sep: str, header: bool):
    def read(raw: Path) -> pd.DataFrame:
        source = require(locate(raw, filename), _missing(name, filename, raw), raw)
        return read_delimited(source, fields, sep=sep, header=header, keep=["user", "item", "rating", "timestamp"])

    return read, located_files(filename)


def _spec(
    name: str,
    description: str,
    filename: str,
    fields: list[Field],
    *,
    sep: str,
    header: bool,
    md5: str,
    n_heldout: int,
    published: PublishedShape | None = None,
) -> DatasetSpec:
    read, files = _reader(name, filename, fields, sep=sep, header=header)
    return DatasetSpec(
        name=name,
        description=description,
        source=f"{BASE}/{name}.zip (GroupLens, md5 {md5})",
        protocol=SplitConfig(min_rating=3.5, min_item_users=0, min_user_items=5, n_heldout=n_heldout),
        read_raw=read,
        fetch=zip_fetcher(f"{BASE}/{name}.zip", f"{name}.zip", md5=md5),
        raw_files=files,
        published=published,
        timestamps=True,
    )


@register_dataset("ml-100k")
def ml_100k() -> DatasetSpec:
    return _spec(
        "ml-100k",
        "MovieLens 100K: 100,000 ratings, 943 users x 1,682 movies; positives = ratings > 3.5; "
        "100 / 100 held-out users",
        "u.data",
        _TSV,
        sep="\t",
        header=False,
        md5="0e33842e24a9c977be4e0107933c0723",
        n_heldout=100,
    )


@register_dataset("ml-1m")
def ml_1m() -> DatasetSpec:
    return _spec(
        "ml-1m",
        "MovieLens 1M: 1,000,209 ratings, 6,040 users x 3,706 movies; positives = ratings > 3.5; "
        "600 / 600 held-out users",
        "ratings.dat",
        _DAT,
        sep=":",
        header=False,
        md5="c4d9eecfca2ab87c1945afe126590906",
        n_heldout=600,
    )


@register_dataset("ml-20m")
def ml_20m() -> DatasetSpec:
    return _spec(
        "ml-20m",
        "MovieLens 20M (the paper's ML-20M): 20,000,263 ratings, 138,493 users x 26,744 movies; "
        "positives = ratings > 3.5; 10,000 / 10,000 held-out users",
        "ratings.csv",
        _TSV,
        sep=",",
        header=True,
        md5="cd245b17a1ae2cc31bb14903e1204af3",
        n_heldout=10_000,
        # Liang et al. (2018) Table 1; the reference code prints 9,990,682 interactions
        published=PublishedShape(
            users=136_677, items=20_108, clicks=9_990_682, heldout=10_000,
            source="Liang et al. (2018), Table 1, and the reference code's printout",
            download_bytes=190 * 10**6, unpacked_bytes=None,
            sizes_from="about: GroupLens' page gives ml-20m.zip as 190 MB; the unpacked size is "
            "not stated"),
    )
