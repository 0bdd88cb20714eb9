"""Netflix Prize training set, positives = ratings > 3.5, users >= 5 items, 40,000 held-out.

Netflix no longer distributes the data; the Kaggle copy ``netflix-prize-data`` holds the
same ratings as ``combined_data_1.txt`` ... ``combined_data_4.txt``. Both layouts are read:

- ``combined_data_*.txt`` (Kaggle), extracted or inside the Kaggle zip, or
- ``training_set/mv_0000001.txt`` ... (the original ``training_set.tar``, extracted),

each a run of blocks ``MovieID:`` followed by ``CustomerID,Rating,Date`` lines.

Parsing has no Python loop per line: the C parser reads every line with ``:`` as the comment
character, so a ``MovieID:`` line becomes a row with a movie id and no rating; the movie id
is then carried forward to the rating rows below it (a running maximum of header positions).
A cheap consistency check (one header row per ``:`` in the bytes, a header first) catches a
damaged line, and only then is the file read line by line to name it.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import DatasetError
from .preprocess import SplitConfig
from .readers import Source, find_files, missing, zip_members
from .spec import DatasetSpec, PublishedShape, register_dataset

KAGGLE = "https://www.kaggle.com/datasets/netflix-inc/netflix-prize-data"
BATCH_BYTES = 64 << 20  # mv_*.txt files are parsed in batches of about this many bytes

_HEAD = re.compile(r"^\s*\d+\s*:\s*$")
_ROW = re.compile(r"^\s*\d+\s*,\s*\d+(\.\d*)?\s*(,.*)?$")


def sources(raw: Path) -> list[Source]:
    """The rating files under ``raw``, in movie order (combined files preferred)."""
    combined = find_files(raw, "combined_data_*.txt")
    if combined:
        return [Source(p) for p in combined]
    per_movie = find_files(raw, "mv_*.txt")
    if per_movie:
        return [Source(p) for p in per_movie]
    for archive in find_files(raw, "*.zip"):
        members = zip_members(archive, "combined_data_*.txt") or zip_members(archive, "mv_*.txt")
        if members:
            return [Source(archive, m) for m in members]
    return []


def missing_message(raw: Path) -> str:
    return (
        f"netflix: no Netflix Prize rating files found under {raw}/. Netflix no longer "
        f"distributes the data; use the Kaggle copy 'netflix-prize-data': sign in at {KAGGLE} "
        "and click Download (or, with the Kaggle command-line tool and an API token, "
        f"`kaggle datasets download -d netflix-inc/netflix-prize-data -p {raw}`). Put the zip "
        f"in {raw}/ as it is (netflix-prize-data.zip or archive.zip, read in place), or unzip "
        f"it there (`unzip netflix-prize-data.zip -d {raw}`, giving {raw}/combined_data_1.txt "
        "... combined_data_4.txt). The original training_set.tar works too: `tar xf "
        f"training_set.tar -C {raw}` (giving {raw}/training_set/mv_0000001.txt ...)."
    )


def read_netflix(raw: Path) -> pd.DataFrame:
    """All ratings under ``raw`` as DataFrame(user int32, item int32, rating int8).

    Raises:
        MissingRawData: no rating file (the message says how to get the Kaggle archive).
        DatasetError: a malformed line, with its file and line number.
    """
    found = sources(raw)
    if not found:
        raise missing(missing_message(raw), raw)
    frames: list[pd.DataFrame] = []
    batch: list[tuple[Source, bytes]] = []
    size = 0
    for source in found:
        data = source.read_bytes()
        if not _starts_with_header(data):
            _raise_malformed([(source, data)])
        batch.append((source, data))
        size += len(data)
        if size >= BATCH_BYTES:
            frames.append(_parse_batch(batch))
            batch, size = [], 0
    if batch:
        frames.append(_parse_batch(batch))
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]


def _starts_with_header(data: bytes) -> bool:
    for line in data[: 1 << 16].splitlines():
        if line.strip():
            return bool(_HEAD.match(line.decode("latin-1")))
    return True  # an empty file has no rows to misattribute


def _parse_batch(batch: list[tuple[Source, bytes]]) -> pd.DataFrame:
    parts = [d if d.endswith(b"\n") or not d else d + b"\n" for _, d in batch]
    data = b"".join(parts) if len(parts) > 1 else parts[0]
    try:
        return _read_ratings(data)
    except (ValueError, OverflowError, pd.errors.ParserError) as exc:
        _raise_malformed(batch, cause=exc)
        raise  # not reached


def _read_ratings(data: bytes) -> pd.DataFrame:
    """The (user, item, rating) rows of concatenated Netflix rating-file bytes (one C-parser
    pass; ValueError / ParserError when the bytes are malformed)."""
    df = pd.read_csv(
        io.BytesIO(data),
        sep=",",
        comment=":",
        header=None,
        names=["a", "rating", "date"],
        usecols=["a", "rating"],
        index_col=False,
        dtype={"a": np.int64, "rating": np.float32},
        keep_default_na=False,
        na_values=[""],
        engine="c",
    )
    a = df["a"].to_numpy()
    rating = df["rating"].to_numpy()
    head = np.isnan(rating)
    if len(a) and (int(head.sum()) != data.count(b":") or not head[0]):
        raise ValueError("movie header lines do not match the ':' in the file")
    if len(a) and (a.min() < 0 or a.max() >= 2**31):
        raise ValueError("an id is out of range")
    last_head = np.maximum.accumulate(np.where(head, np.arange(len(a)), 0))
    rows = ~head
    return pd.DataFrame(
        {
            "user": a[rows].astype(np.int32),
            "item": a[last_head[rows]].astype(np.int32),
            "rating": rating[rows].astype(np.int8),
        }
    )


def find_malformed(source: Source, data: bytes) -> tuple[int, str, str] | None:
    """The first malformed line of one rating file as (line number, line, reason)."""
    seen_header = False
    for lineno, raw_line in enumerate(io.BytesIO(data), 1):
        line = raw_line.decode("utf-8", "replace").rstrip("\r\n")
        if not line.strip():
            continue
        if _HEAD.match(line):
            seen_header = True
        elif not _ROW.match(line):
            return lineno, line, "expected 'MovieID:' or 'CustomerID,Rating,Date'"
        elif not seen_header:
            return lineno, line, "a rating line before the first 'MovieID:' line"
    return None


def _raise_malformed(batch: list[tuple[Source, bytes]], cause: BaseException | None = None) -> None:
    for source, data in batch:
        hit = find_malformed(source, data)
        if hit is not None:
            lineno, line, why = hit
            raise DatasetError(
                f"{source.label}, line {lineno}: malformed line {line[:120]!r}: {why}; fix or "
                "remove the line, or get the file again"
            ) from cause
    labels = ", ".join(s.label for s, _ in batch[:3])
    raise DatasetError(f"{labels}: could not parse the Netflix rating files: {cause}") from cause


@register_dataset("netflix")
def netflix() -> DatasetSpec:
    return DatasetSpec(
        name="netflix",
        description="Netflix Prize training set: 100,480,507 ratings, 480,189 users x 17,770 "
        "movies; positives = ratings > 3.5; 40,000 / 40,000 held-out users (manual download)",
        source=f"Kaggle 'netflix-prize-data' ({KAGGLE}); not downloadable automatically: put "
        "the zip, combined_data_*.txt or training_set/ in the raw folder",
        protocol=SplitConfig(min_rating=3.5, min_item_users=0, min_user_items=5, n_heldout=40_000),
        read_raw=read_netflix,
        fetch=None,
        raw_files=lambda raw: sorted({s.path for s in sources(raw)}),
        # Liang et al. (2018) Table 1; 56,880,037 interactions
        published=PublishedShape(
            users=463_435, items=17_769, clicks=56_880_037, heldout=40_000,
            source="Liang et al. (2018), Table 1, and the reference code's printout",
            download_bytes=None, unpacked_bytes=2_000 * 10**6,
            sizes_from="no download (the Netflix Prize data is not distributed any more); "
            "training_set/ is about 2 GB"),
    )
