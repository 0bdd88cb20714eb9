"""A user's own interactions: ``--dataset file:PATH`` (CSV, TSV or Parquet).

One row per interaction: (user, item[, rating[, timestamp]]), or any columns named with
``user_col`` / ``item_col`` / ``rating_col``. The same binarisation (``min_rating``: keep
rating > min_rating; None keeps every row), filters, split and cache as the built-in
datasets apply; the cache key includes the file's size and modification time, so an edited
file gives a new split.

Format detection: ``.parquet`` / ``.pq`` is Parquet; otherwise the file is delimited
(``.gz``, ``.bz2``, ``.xz`` compression allowed) with the separator given, or ``\\t`` for
``.tsv`` / ``.tab``, or else sniffed from the first lines (``::``, tab, comma, semicolon,
``|``, space). A header row is detected when the first line names columns and the next
does not (or when a column is given by name).
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import DatasetError, MissingRawData
from .preprocess import SplitConfig
from .readers import Field, Source, read_delimited
from .spec import DatasetSpec

PARQUET = {".parquet", ".pq"}
COMPRESSED = {".gz", ".bz2", ".xz"}
USER_NAMES = ("user", "userid", "user_id", "uid", "customerid", "customer_id", "visitorid")
ITEM_NAMES = ("item", "itemid", "item_id", "iid", "movieid", "movie_id", "songid", "song", "artistid", "product_id", "productid")
RATING_NAMES = ("rating", "score", "weight", "count", "value", "plays", "playcount", "play_count")
TIME_NAMES = ("timestamp", "ts", "time", "date", "datetime")
_NUMBER = re.compile(r"^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$")


def file_dataset(
    path: str,
    *,
    user_col: str | int | None = None,
    item_col: str | int | None = None,
    rating_col: str | int | None = None,
    sep: str | None = None,
    header: bool | None = None,
    extra_fields: str = "error",
    min_rating: float | None = None,
    min_user_items: int = 5,
    min_item_users: int = 0,
    n_heldout: int | None = None,
) -> DatasetSpec:
    """The :class:`DatasetSpec` of a user's CSV / TSV / Parquet file.

    Args:
        path: the file.
        user_col: user column, by name or 0-based position (default: a column named like
            ``user`` / ``userId``, else the first).
        item_col: item column (default: named like ``item`` / ``movieId``, else the second).
        rating_col: rating column (default: named like ``rating``, else the third, if any).
        sep: separator of a delimited file (default: detected; ``--sep``).
        header: whether the first line is a header (default: detected).
        extra_fields: a line with more fields than the first line: "error" (default,
            naming the line) or "ignore" (read the first fields only; ``--extra-fields``).
        min_rating: keep rows with rating > min_rating (None: every row is a positive).
        min_user_items: drop users with fewer items (after the item filter).
        min_item_users: drop items with fewer users (applied first).
        n_heldout: validation users = test users (None: 10% of the users each).

    Returns:
        A spec whose ``read_raw`` gives DataFrame(user, item[, rating]) in file order.
    """
    file = Path(path).expanduser()
    if extra_fields not in ("error", "ignore"):
        raise DatasetError(f"extra_fields={extra_fields!r}: use 'error' or 'ignore'")
    options = {"user_col": user_col, "item_col": item_col, "rating_col": rating_col, "sep": sep,
               "header": header, "extra_fields": None if extra_fields == "error" else extra_fields}

    def read(_raw: Path) -> pd.DataFrame:
        if file.is_dir():
            raise MissingRawData(
                f"file:{path}: {file.resolve()} is a folder, not a file; give the path of the "
                "CSV, TSV or Parquet file in it, e.g. --dataset file:data/clicks.csv"
            )
        if not file.is_file():
            raise MissingRawData(
                f"file:{path}: no such file ({file.resolve()}). Give the path of a CSV, TSV or "
                "Parquet file with one (user, item[, rating[, timestamp]]) row per interaction, "
                "e.g. --dataset file:data/clicks.csv"
            )
        if _base_suffix(file) in PARQUET:
            return _read_parquet(file, user_col, item_col, rating_col)
        return _read_delimited(file, user_col, item_col, rating_col, sep, header,
                               strict=extra_fields == "error")

    def files(_raw: Path) -> list[Path]:
        return [file.resolve()] if file.is_file() else []

    return DatasetSpec(
        name=f"file:{path}",
        description=f"your interactions in {path}",
        source=f"local file {file.resolve()}",
        protocol=SplitConfig(
            min_rating=min_rating,
            min_item_users=min_item_users,
            min_user_items=min_user_items,
            n_heldout=n_heldout,
        ),
        read_raw=read,
        fetch=None,
        raw_files=files,
        options={k: v for k, v in options.items() if v is not None},
    )


def _base_suffix(file: Path) -> str:
    suffixes = [s.lower() for s in file.suffixes]
    if suffixes and suffixes[-1] in COMPRESSED:
        suffixes = suffixes[:-1]
    return suffixes[-1] if suffixes else ""


# --- detection ----------------------------------------------------------------------------
def _sample_lines(source: Source, n: int = 50) -> list[str]:
    with source.open() as f:
        data = f.read(1 << 16)
    if b"\x00" in data or (data and data.decode("utf-8", "replace").count("\ufffd") > len(data) // 20):
        raise DatasetError(
            f"file:{source.label}: does not look like a text table (binary content); give a "
            "CSV/TSV file, a Parquet file named *.parquet, or a compressed file named *.gz, "
            "*.bz2 or *.xz"
        )
    lines = data.decode("utf-8-sig", "replace").splitlines()  # a UTF-8 BOM is not a name
    if len(data) == 1 << 16 and len(lines) > 1:
        lines = lines[:-1]  # the last line may be cut
    return [ln for ln in lines if ln.strip()][:n]


def sniff_separator(lines: list[str], suffix: str = "") -> str:
    """The separator that splits every sample line into the same number (>= 2) of fields."""
    if suffix in (".tsv", ".tab"):
        return "\t"
    if lines and "::" in lines[0]:
        return "::"
    body = lines[1:] if len(lines) > 1 else lines
    order = [",", "\t", ";", "|", " "] if suffix == ".csv" else ["\t", ",", ";", "|", " "]
    for cand in order:
        counts = {len(ln.split(cand)) for ln in body}
        if len(counts) == 1 and counts.pop() >= 2 and len(lines[0].split(cand)) >= 2:
            return cand
    raise DatasetError(
        f"cannot tell the separator of the file from its first lines ({lines[:2]!r}); use a "
        ".csv (comma), .tsv (tab) or .parquet file, or give the separator with --sep (e.g. "
        "--sep ';')"
    )


def _looks_like_header(first: list[str], second: list[str] | None) -> bool:
    names = {n.strip().strip('"').lower() for n in first}
    if names & set(USER_NAMES + ITEM_NAMES + RATING_NAMES):
        return True
    if second is None:
        return False
    return any(not _NUMBER.match(a) and _NUMBER.match(b) for a, b in zip(first, second, strict=False))


def _resolve(col: str | int | None, columns: list[str], aliases: tuple[str, ...], default: int | None, what: str) -> int | None:
    """The 0-based position of a column given by name, position, alias or default position."""
    if col is not None:
        if isinstance(col, str) and col in columns:
            return columns.index(col)
        if isinstance(col, int) or (isinstance(col, str) and col.isdigit()):
            pos = int(col)
            if 0 <= pos < len(columns):
                return pos
        raise DatasetError(
            f"{what} column {col!r} not found; the file's columns are {columns} (give a name or "
            "a 0-based position)"
        )
    lower = [c.lower() for c in columns]
    for alias in aliases:
        if alias in lower:
            return lower.index(alias)
    return default if default is not None and default < len(columns) else None


def _pick(columns: list[str], user_col, item_col, rating_col) -> tuple[int, int, int | None]:
    u = _resolve(user_col, columns, USER_NAMES, 0, "user")
    i = _resolve(item_col, columns, ITEM_NAMES, 1, "item")
    r = _resolve(rating_col, columns, RATING_NAMES, 2, "rating")
    if u is None or i is None:
        raise DatasetError(f"need at least a user and an item column; the file has {columns}")
    if rating_col is None and (r in (u, i) or (r is not None and columns[r].lower() in TIME_NAMES)):
        r = None
    if len({u, i} | ({r} if r is not None else set())) < (3 if r is not None else 2):
        raise DatasetError(f"user, item and rating columns must differ (got positions {u}, {i}, {r})")
    return u, i, r


# --- reading ------------------------------------------------------------------------------
def _read_delimited(file: Path, user_col, item_col, rating_col, sep, header, *, strict: bool = True) -> pd.DataFrame:
    source = Source(file)
    lines = _sample_lines(source)
    if not lines:
        raise DatasetError(f"file:{file}: the file is empty")
    sep = sep or sniff_separator(lines, _base_suffix(file))
    rows = [ln.split(sep) for ln in lines[:2]] if len(sep) > 1 else list(csv.reader(lines[:2], delimiter=sep))
    first = rows[0]
    second = rows[1] if len(rows) > 1 else None
    if header is None:
        by_name = any(isinstance(c, str) and not c.isdigit() for c in (user_col, item_col, rating_col) if c is not None)
        header = by_name or _looks_like_header(first, second)
    columns = [c.strip() for c in first] if header else [str(k) for k in range(len(first))]
    u, i, r = _pick(columns, user_col, item_col, rating_col)
    ids = "category-text" if _ids_written_oddly(source) else "category"
    kinds = {u: ("user", ids), i: ("item", ids)}
    if r is not None:
        kinds[r] = ("rating", "float64")
    t = next((k for k, c in enumerate(columns) if c.lower() in TIME_NAMES and k not in kinds), None)
    if t is not None:  # kept for the timed protocols (--protocol temporal, leave-last-out)
        kinds[t] = ("timestamp", "any")
    fields: list[Field] = [kinds.get(k, (f"_{k}", "any")) for k in range(len(columns))]
    keep = ["user", "item"] + (["rating"] if r is not None else []) + (["timestamp"] if t is not None else [])
    if len(sep) > 1:  # "::" read with the C parser as ":" with empty fields in between
        if sep != "::":
            raise DatasetError(f"separator {sep!r}: only one character, or '::', is supported")
        fields = [f for k, fld in enumerate(fields) for f in ([fld] if k == 0 else [(f"_e{k}", "empty"), fld])]
        sep = ":"
    df = read_delimited(source, fields, sep=sep, header=header, keep=keep, strict=strict)
    if "timestamp" in df.columns and not pd.api.types.is_numeric_dtype(df["timestamp"]):
        try:  # dates as written ("2019-01-05 10:00") -> nanoseconds
            df["timestamp"] = pd.to_datetime(df["timestamp"]).astype("int64")
        except (ValueError, TypeError):
            df = df.drop(columns="timestamp")  # not times: the timed protocols refuse the data
    return _numeric_ids(df)


def _read_parquet(file: Path, user_col, item_col, rating_col) -> pd.DataFrame:
    try:
        import pyarrow.parquet as pq

        columns = list(pq.read_schema(file).names)
        u, i, r = _pick(columns, user_col, item_col, rating_col)
        chosen = [columns[u], columns[i]] + ([columns[r]] if r is not None else [])
        df = pd.read_parquet(file, columns=chosen)
    except DatasetError:
        raise
    except Exception as exc:  # pyarrow raises several types for a damaged file
        raise DatasetError(f"file:{file}: not a readable Parquet file ({exc})") from exc
    df.columns = ["user", "item"] + (["rating"] if r is not None else [])
    for name in df.columns:
        if df[name].isna().any():
            row = int(np.flatnonzero(df[name].isna().to_numpy())[0])
            raise DatasetError(f"file:{file}: row {row} has no {name} (a missing value); fix or drop it")
    if "rating" in df.columns and not pd.api.types.is_numeric_dtype(df["rating"]):
        raise DatasetError(f"file:{file}: the rating column {columns[r]!r} is not numeric")
    return df


_ODD_ID = re.compile(rb"(?<=[\n\t,;| :])(?:\+|0\d)")


def _ids_written_oddly(source: Source) -> bool:
    """Whether a field anywhere starts with "+" or a leading zero ("07", "+7"): the fast
    reader would read those as 7; such a file's ids are read as text (row 1). One pass over
    the bytes (about a second per 500 MB)."""
    tail = b"\n"  # the file's start is a field's start
    with source.open() as f:
        while block := f.read(1 << 24):
            if _ODD_ID.search(tail + block):
                return True
            tail = block[-2:]
    return False


def _numeric_ids(df: pd.DataFrame) -> pd.DataFrame:
    """Integer ids for a column whose ids are all canonical integers (read as categories).

    Canonical: no leading zero, no sign but a minus, at most 18 digits ("7", "-3", "0"). One
    id that is not ("07", "+7", "7.0", "a7") keeps the whole column as text, so "07" and "7"
    stay two users (issue 21, row 1); ``prepare`` says how the ids were read.
    """
    for name in ("user", "item"):
        col = df[name]
        cats = pd.Index(col.cat.categories.astype(str))
        if len(cats) and cats.str.fullmatch(r"0|-?[1-9]\d{0,17}").all():
            values = cats.astype(np.int64).to_numpy()
            df[name] = values[col.cat.codes.to_numpy()]
    return df


__all__ = ["file_dataset", "sniff_separator"]
