"""Million Song Dataset, Echo Nest Taste Profile subset (the paper's MSD).

Every (user, song) triplet is a positive; songs listened to by >= 200 users are kept, THEN
users with >= 20 of those songs; 50,000 validation and 50,000 test users.

Raw file: ``train_triplets.txt`` (``user \\t song \\t play count``, no header; 48,373,586
lines, 2.9 GB), or the official ``train_triplets.txt.zip`` read in place (not extracted).
User and song ids are read as pandas categoricals (sorted categories, so the sorted-user
order of the reference code is kept) to hold 48M rows in about 0.6 GB.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .download import zip_fetcher
from .preprocess import SplitConfig
from .readers import Field, locate, located_files, read_delimited, require
from .spec import DatasetSpec, PublishedShape, register_dataset

URL = "http://millionsongdataset.com/sites/default/files/challenge/train_triplets.txt.zip"
PAGE = "http://millionsongdataset.com/tasteprofile/"
FIELDS: list[Field] = [("user", "category"), ("item", "category"), ("count", "int32")]


def _missing(raw: Path) -> str:
    return (
        f"msd: train_triplets.txt not found under {raw}/. Run `python -m benchmark prepare "
        f"--dataset msd` to download {URL} (about 0.5 GB) there, or download it yourself (see "
        f"{PAGE}) and put train_triplets.txt.zip, or the unzipped train_triplets.txt, in {raw}/"
    )


def read_msd(raw: Path) -> pd.DataFrame:
    """The triplets as DataFrame(user category, item category, count int32), file order."""
    source = require(locate(raw, "train_triplets.txt"), _missing(raw), raw)
    return read_delimited(source, FIELDS, sep="\t", header=False)


@register_dataset("msd")
def msd() -> DatasetSpec:
    return DatasetSpec(
        name="msd",
        description="Million Song Dataset / Echo Nest Taste Profile: 48.4M (user, song, plays) "
        "triplets; every triplet a positive; songs >= 200 users, then users >= 20 songs; "
        "50,000 / 50,000 held-out users",
        source=f"{URL} (Echo Nest Taste Profile, {PAGE}; no published checksum: the zip's CRCs "
        "are checked)",
        protocol=SplitConfig(min_rating=None, min_item_users=200, min_user_items=20, n_heldout=50_000),
        read_raw=read_msd,
        fetch=zip_fetcher(URL, "train_triplets.txt.zip", extract=False),
        raw_files=located_files("train_triplets.txt"),
        # Liang et al. (2018) Table 1; 33,633,450 interactions, 471,355 training users
        published=PublishedShape(
            users=571_355, items=41_140, clicks=33_633_450, heldout=50_000,
            source="Liang et al. (2018), Table 1, and the reference code's printout",
            download_bytes=500 * 10**6, unpacked_bytes=0,
            sizes_from="about: train_triplets.txt.zip is about 0.5 GB; read inside the zip"),
    )
