"""HetRec 2011 Last.fm 2K (GroupLens): every (user, artist) pair is a positive.

Raw file ``user_artists.dat``: header ``userID\\tartistID\\tweight``, then ``user \\t artist
\\t listening count``, CRLF; 92,834 pairs, 1,892 users, 17,632 artists. Users >= 5 artists;
200 validation and 200 test users.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .download import zip_fetcher
from .preprocess import SplitConfig
from .readers import Field, locate, located_files, read_delimited, require
from .spec import DatasetSpec, register_dataset

URL = "https://files.grouplens.org/datasets/hetrec2011/hetrec2011-lastfm-2k.zip"
FIELDS: list[Field] = [("user", "int32"), ("item", "int32"), ("count", "int64")]


def _missing(raw: Path) -> str:
    return (
        f"lastfm: user_artists.dat not found under {raw}/. Run `python -m benchmark prepare "
        f"--dataset lastfm` to download {URL} there, or download it yourself and put the zip "
        f"in {raw}/ (or unzip it there: unzip hetrec2011-lastfm-2k.zip -d {raw})"
    )


def read_lastfm(raw: Path) -> pd.DataFrame:
    """The pairs as DataFrame(user int32, item int32, count int64), file order."""
    source = require(locate(raw, "user_artists.dat"), _missing(raw), raw)
    return read_delimited(source, FIELDS, sep="\t", header=True)


@register_dataset("lastfm")
def lastfm() -> DatasetSpec:
    return DatasetSpec(
        name="lastfm",
        description="HetRec 2011 Last.fm 2K: 92,834 (user, artist) pairs, 1,892 users x 17,632 "
        "artists; every pair a positive; 200 / 200 held-out users",
        source=f"{URL} (GroupLens; no published checksum: the zip's CRCs are checked)",
        protocol=SplitConfig(min_rating=None, min_item_users=0, min_user_items=5, n_heldout=200),
        read_raw=read_lastfm,
        fetch=zip_fetcher(URL, "hetrec2011-lastfm-2k.zip"),
        raw_files=located_files("user_artists.dat"),
    )
