"""Finding raw files and parsing delimited tables fast, with exact errors on bad lines.

The fast path is pandas' C parser with dtype hints. Only when it fails (or yields a missing
value) do we read the file again line by line, in Python, to name the first malformed line
and why: a message a user can act on ("ratings.csv, line 7: expected 4 fields ...").

A raw file is a :class:`Source`: a plain file under ``<data-dir>/<name>/raw/`` or a member of
an archive placed there (``ml-20m.zip`` works without unzipping).
"""

from __future__ import annotations

import bz2
import contextlib
import csv
import gzip
import io
import lzma
import math
import re
import zipfile
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np
import pandas as pd

from .errors import DatasetError, MissingRawData

# kind -> pandas dtype of the fast path; "empty" is a field that must be empty (the gaps of
# a "::" separator read as ":"), "any" is read but not checked (e.g. a date).
_DTYPES: dict[str, object] = {
    "int32": np.int32,
    "int64": np.int64,
    "float32": np.float32,
    "float64": np.float64,
    "str": str,
    "category": "category",
    "category-text": str,  # ids read as written ("07" is not 7), then categorical
}
CHUNK_ROWS = 4_000_000  # rows per chunk when ids are read as categories
_OPENERS = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}
_INT = re.compile(r"^\s*[+-]?\d+\s*$")


@dataclass(frozen=True)
class Source:
    """One raw file: a plain file, or ``member`` of the zip archive at ``path``.

    Attributes:
        path: the file on disk (the archive, for a member); its size and modification
            time go into the cache key.
        member: name inside the archive, or None for a plain file.
    """

    path: Path
    member: str | None = None

    @property
    def label(self) -> str:
        return f"{self.path}" if self.member is None else f"{self.path}!{self.member}"

    @contextlib.contextmanager
    def open(self) -> Iterator[IO[bytes]]:
        """The file's bytes as a binary stream (a damaged archive is a :class:`DatasetError`)."""
        if self.member is None:
            suffix = self.path.suffix.lower()
            opener = _OPENERS.get(suffix, open)
            try:
                with opener(self.path, "rb") as f:
                    yield f
            except (EOFError, lzma.LZMAError, zlib.error, OSError) as exc:
                if suffix not in _OPENERS or isinstance(exc, FileNotFoundError):
                    raise
                raise DatasetError(
                    f"{self.path}: not a readable {suffix} file ({type(exc).__name__}: {exc}); "
                    f"it is damaged, cut short, or not compressed at all: check it, or remove "
                    f"the {suffix} suffix if it is plain text"
                ) from exc
            return
        try:
            with zipfile.ZipFile(self.path) as zf, zf.open(self.member) as f:
                yield f
        except (zipfile.BadZipFile, EOFError) as exc:
            raise DatasetError(
                f"{self.path}: damaged or truncated zip archive ({exc}); delete it and "
                "download it again"
            ) from exc

    def read_bytes(self) -> bytes:
        with self.open() as f:
            try:
                return f.read()
            except (zipfile.BadZipFile, EOFError, OSError) as exc:
                raise DatasetError(
                    f"{self.label}: could not read ({exc}); the archive is damaged or "
                    "truncated: delete it and download it again"
                ) from exc


def find_files(raw_dir: Path, pattern: str) -> list[Path]:
    """Files matching ``pattern`` anywhere under ``raw_dir`` (sorted; hidden folders skipped)."""
    if not raw_dir.is_dir():
        return []
    hits = [
        p
        for p in raw_dir.rglob(pattern)
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(raw_dir).parts)
    ]
    return sorted(hits)


def find_file(raw_dir: Path, filename: str) -> Path | None:
    """The first file called ``filename`` anywhere under ``raw_dir`` (sorted walk)."""
    hits = find_files(raw_dir, filename)
    return hits[0] if hits else None


def zip_members(archive: Path, pattern: str) -> list[str]:
    """Members of ``archive`` whose base name matches the glob ``pattern`` (sorted)."""
    try:
        with zipfile.ZipFile(archive) as zf:
            names = zf.namelist()
    except (zipfile.BadZipFile, OSError):
        return []
    return sorted(n for n in names if not n.endswith("/") and Path(n).match(pattern))


def locate(raw_dir: Path, filename: str) -> Source | None:
    """``filename`` under ``raw_dir``: the extracted file, else a member of a zip there."""
    path = find_file(raw_dir, filename)
    if path is not None:
        return Source(path)
    for archive in find_files(raw_dir, "*.zip"):
        members = zip_members(archive, filename)
        if members:
            return Source(archive, members[0])
    return None


def damaged_archives(raw_dir: Path) -> list[Path]:
    """Zip files under ``raw_dir`` that cannot be opened (truncated downloads, say)."""
    bad = []
    for archive in find_files(raw_dir, "*.zip"):
        try:
            zipfile.ZipFile(archive).close()
        except (zipfile.BadZipFile, OSError):
            bad.append(archive)
    return bad


def missing(message: str, raw_dir: Path) -> MissingRawData:
    """:class:`MissingRawData` with ``message``, naming any unreadable archive in ``raw_dir``."""
    bad = damaged_archives(raw_dir)
    if bad:
        message += (
            f". Note: {', '.join(map(str, bad))} is not a readable zip archive (truncated or "
            "damaged): delete it and download it again"
        )
    return MissingRawData(message)


def require(source: Source | None, message: str, raw_dir: Path | None = None) -> Source:
    """``source``, or :class:`MissingRawData` with ``message`` (what, where from, where to)."""
    if source is None:
        raise missing(message, raw_dir) if raw_dir is not None else MissingRawData(message)
    return source


# --- delimited tables ---------------------------------------------------------------------
Field = tuple[str, str]  # (column name, kind)


def read_delimited(
    source: Source,
    fields: Sequence[Field],
    *,
    sep: str,
    header: bool = False,
    keep: Sequence[str] | None = None,
    strict: bool = True,
) -> pd.DataFrame:
    """Parse a delimited file with the C parser; a bad line raises :class:`DatasetError`.

    Args:
        source: the file.
        fields: every field of a line, in order, as (name, kind); kinds are ``int32``,
            ``int64``, ``float32``, ``float64``, ``str``, ``category``, ``empty`` (must be
            empty) and ``any`` (not checked).
        sep: one-character separator.
        header: the first line is a header (skipped).
        keep: the columns to return (default: every non-empty field).
        strict: a line must have exactly ``len(fields)`` fields; when False, further
            fields are ignored.

    Returns:
        DataFrame with the ``keep`` columns, in the file's row order.

    Raises:
        DatasetError: naming the file, the first malformed line's number and the reason.
    """
    names = [n for n, _ in fields]
    keep = list(keep) if keep is not None else [n for n, k in fields if k != "empty"]
    read = set(names) if strict else set(keep)
    # Category columns are left to type inference (pandas' fast string path; an explicit
    # str dtype is several times slower) and made categorical chunk by chunk.
    cat_cols = [n for n, k in fields if k in ("category", "category-text") and n in read]
    dtype = {n: _DTYPES[k] for n, k in fields if k in _DTYPES and k != "category" and n in read}
    try:
        with source.open() as f:
            parsed = pd.read_csv(
                f,
                sep=sep,
                header=0 if header else None,
                names=names,
                usecols=None if strict else keep,
                index_col=False,
                dtype=dtype,
                keep_default_na=False,
                na_values=[""],
                engine="c",
                on_bad_lines="error",
                chunksize=CHUNK_ROWS if cat_cols else None,
            )
            df = _categorical_chunks(parsed, cat_cols) if cat_cols else parsed
    except DatasetError:
        raise
    except (ValueError, OverflowError, TypeError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        _raise_malformed(source, fields, sep=sep, header=header, strict=strict, cause=exc)
    except (zipfile.BadZipFile, EOFError) as exc:
        raise DatasetError(
            f"{source.label}: damaged or truncated archive ({exc}); delete it and download it again"
        ) from exc
    for name, kind in fields:
        if name not in df.columns:
            continue
        col = df[name]
        bad = col.notna().any() if kind == "empty" else (kind != "any" and col.isna().any())
        if bad:
            _raise_malformed(source, fields, sep=sep, header=header, strict=strict, cause=None)
    return df[keep]


def _categorical_chunks(chunks: Iterator[pd.DataFrame], cat_cols: list[str]) -> pd.DataFrame:
    """Concatenate chunks, with ``cat_cols`` as categoricals with sorted string categories.

    Each chunk's ids are factorized (codes + that chunk's uniques); at the end the uniques of
    all chunks are factorized once more, sorted, and each chunk's codes are mapped through.
    """
    frames: list[pd.DataFrame] = []
    parts: dict[str, list[tuple[np.ndarray, pd.Index]]] = {c: [] for c in cat_cols}
    for chunk in chunks:
        for c in cat_cols:
            col = chunk[c]
            if col.isna().any():
                raise ValueError(f"missing value in column {c!r}")
            if not pd.api.types.is_string_dtype(col) or col.dtype == object:
                col = col.astype(str)
            codes, uniques = pd.factorize(col)
            parts[c].append((codes.astype(np.int32), pd.Index(uniques)))
        frames.append(chunk.drop(columns=cat_cols))
    if not frames:
        raise ValueError("no rows")
    df = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    for c in cat_cols:
        uniques = [u for _, u in parts[c]]
        merged = uniques[0].append(uniques[1:]) if len(uniques) > 1 else uniques[0]
        global_codes, categories = pd.factorize(merged, sort=True)
        offsets = np.cumsum([0] + [len(u) for u in uniques])
        codes = np.concatenate(
            [global_codes[offsets[k] : offsets[k + 1]][codes_k] for k, (codes_k, _) in enumerate(parts[c])]
        )
        df[c] = pd.Categorical.from_codes(codes.astype(np.int32, copy=False), categories=pd.Index(categories))
    return df


def _valid(kind: str, value: str) -> str | None:
    """None when ``value`` is a valid ``kind``, else what is wrong."""
    if kind == "any":
        return None
    if kind == "empty":
        return None if value == "" else "should be empty"
    if kind in ("int32", "int64"):
        if not _INT.match(value):
            return "is not an integer"
        limit = 2**31 if kind == "int32" else 2**63
        return None if -limit <= int(value) < limit else "is out of range"
    if kind in ("float32", "float64"):
        try:
            x = float(value)
        except ValueError:
            return "is not a number"
        return "is not a number" if math.isnan(x) else None
    return None if value != "" else "is empty"


def _display_sep(fields: Sequence[Field], sep: str) -> tuple[str, int]:
    """The separator and field count a user sees (``::`` is read as ``:`` + empty fields)."""
    n_real = sum(k != "empty" for _, k in fields)
    return (sep * 2 if n_real < len(fields) else sep), n_real


def find_malformed(
    source: Source,
    fields: Sequence[Field],
    *,
    sep: str,
    header: bool = False,
    strict: bool = True,
) -> tuple[int, str, str] | None:
    """The first malformed line as (1-based line number, line, reason), or None."""
    with source.open() as f:
        text = io.TextIOWrapper(f, encoding="utf-8", errors="replace", newline="")
        reader = csv.reader(text, delimiter=sep)
        prev = 0
        for parts in reader:
            lineno = prev + 1
            prev = reader.line_num
            if header and lineno == 1:
                continue
            if not parts or (len(parts) == 1 and parts[0] == ""):
                continue  # blank lines are skipped, as pandas does
            shown = sep.join(parts)
            if len(parts) < len(fields) or (strict and len(parts) > len(fields)):
                shown_sep, n_fields = _display_sep(fields, sep)
                n_real = len(parts) - (len(fields) - n_fields) if shown_sep != sep else len(parts)
                quoted = any(sep in p for p in parts)
                return (
                    lineno,
                    shown,
                    f"expected {n_fields} fields separated by {shown_sep!r}, found {n_real}"
                    + (" (a quoted field counts as one)" if quoted else "")
                    + (" (more fields than the first line has: pass --extra-fields ignore "
                       "to read only the first ones)" if n_real > n_fields else ""),
                )
            for (name, kind), value in zip(fields, parts, strict=False):
                why = _valid(kind, value)
                if why:
                    return lineno, shown, f"field {name!r} = {value!r} {why}"
    return None


def _raise_malformed(
    source: Source,
    fields: Sequence[Field],
    *,
    sep: str,
    header: bool,
    strict: bool,
    cause: BaseException | None,
) -> None:
    hit = find_malformed(source, fields, sep=sep, header=header, strict=strict)
    shown_sep, _ = _display_sep(fields, sep)
    layout = shown_sep.join(n for n, k in fields if k != "empty")
    if hit is not None:
        lineno, line, why = hit
        raise DatasetError(
            f"{source.label}, line {lineno}: malformed line {line[:120]!r}: {why} "
            f"(expected lines like {layout!r}); fix or remove the line, or download the file again"
        ) from cause
    raise DatasetError(f"{source.label}: could not parse the file: {cause}") from cause


def located_files(filename: str):
    """A ``DatasetSpec.raw_files`` function: the file ``locate`` finds (plain or in a zip)."""

    def files(raw: Path) -> list[Path]:
        source = locate(raw, filename)
        return [source.path] if source else []

    return files
