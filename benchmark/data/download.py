"""Downloading raw archives: progress bar, resume, checksum, atomic rename; zip extraction.

``download(url, dest, md5=...)`` writes ``dest.part`` and renames it to ``dest`` only once
the whole file is there and its checksum matches, so ``dest`` is either complete or absent.
A cut connection leaves the ``.part`` file; the next attempt (automatic, or a rerun of the
same command) asks the server for the rest with an HTTP ``Range`` request.

Only the standard library's ``urllib`` is used.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import shutil
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from tqdm.auto import tqdm

from ..fsutil import follow_umask
from .errors import DatasetError

USER_AGENT = "cf-benchmark/0.1 (python urllib)"


class DownloadError(DatasetError):
    """The download failed (HTTP error, network error, cut connection)."""


class ChecksumError(DownloadError):
    """The file's checksum differs from the published one."""


class ArchiveError(DatasetError):
    """A zip archive is truncated or damaged."""


class _Incomplete(Exception):
    """The connection ended before the whole body arrived (resumable)."""


def file_digest(path: Path, algorithm: str, chunk_size: int = 1 << 22) -> str:
    """Hex digest of a file (``md5`` or ``sha256``), read in chunks."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while chunk := f.read(chunk_size):
            h.update(chunk)
    return h.hexdigest()


def _checksum_problem(path: Path, md5: str | None, sha256: str | None) -> str | None:
    for algorithm, expected in (("md5", md5), ("sha256", sha256)):
        if expected:
            got = file_digest(path, algorithm)
            if got.lower() != expected.lower():
                return f"{algorithm} {got}, expected {expected.lower()}"
    return None


def download(
    url: str,
    dest: str | os.PathLike,
    *,
    md5: str | None = None,
    sha256: str | None = None,
    progress: bool = True,
    retries: int = 3,
    backoff: float = 1.0,
    timeout: float = 60.0,
    chunk_size: int = 1 << 20,
) -> Path:
    """Download ``url`` to ``dest`` (resumable, verified, atomic).

    Args:
        url: http(s) URL.
        dest: the final path; ``dest + ".part"`` holds a partial download.
        md5: expected md5 hex digest (None: not checked).
        sha256: expected sha256 hex digest (None: not checked).
        progress: show a tqdm progress bar (on stderr).
        retries: further attempts after a cut connection, a network error or an HTTP 5xx;
            each resumes from the partial file.
        backoff: seconds before the first retry, doubled each time (at most 30).
        timeout: socket timeout in seconds.
        chunk_size: bytes per read.

    Returns:
        ``dest``. An existing ``dest`` with a good checksum is kept as it is (no request).

    Raises:
        ChecksumError: the downloaded (or an existing) file has the wrong checksum; a bad
            download is deleted, an existing file is left for the user to remove.
        DownloadError: an HTTP error (the status is named), a network error, or a connection
            that kept breaking; the ``.part`` file is kept so a rerun resumes.
    """
    dest = Path(dest)
    if dest.exists():
        problem = _checksum_problem(dest, md5, sha256)
        if problem:
            raise ChecksumError(
                f"{dest} exists but has {problem}: it is damaged or another version. "
                f"Delete it and rerun to download it again from {url}"
            )
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    for attempt in range(retries + 1):
        last = attempt == retries
        try:
            _attempt(url, part, timeout=timeout, chunk_size=chunk_size, progress=progress)
            break
        except urllib.error.HTTPError as exc:
            if 500 <= exc.code < 600 and not last:
                _sleep(backoff, attempt)
                continue
            raise DownloadError(
                f"download of {url} failed: HTTP {exc.code} {exc.reason}. "
                + (
                    "The server has a problem; try again later, "
                    if exc.code >= 500
                    else "The file is not at this address; "
                )
                + f"or download it yourself and put it at {dest}"
            ) from exc
        except (_Incomplete, urllib.error.URLError, http.client.HTTPException, OSError) as exc:
            if not last:
                _sleep(backoff, attempt)
                continue
            have = part.stat().st_size if part.exists() else 0
            reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
            raise DownloadError(
                f"download of {url} failed after {retries + 1} attempt(s): {reason}. "
                f"{have:,} bytes are kept in {part}; rerun the same command to resume, "
                f"or download the file yourself and put it at {dest}"
            ) from exc
    problem = _checksum_problem(part, md5, sha256)
    if problem:
        part.unlink()
        raise ChecksumError(
            f"download of {url} is corrupt: the file has {problem}. The bad file was "
            f"deleted; rerun to download it again, or put a good copy at {dest}"
        )
    os.replace(part, dest)
    return dest


def _sleep(backoff: float, attempt: int) -> None:
    if backoff > 0:
        time.sleep(min(30.0, backoff * 2**attempt))


_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")


def _attempt(url: str, part: Path, *, timeout: float, chunk_size: int, progress: bool) -> None:
    """One request: resume ``part`` if it has bytes, else start it; raise if cut short."""
    have = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    if have:
        headers["Range"] = f"bytes={have}-"
    request = urllib.request.Request(url, headers=headers)
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:
            m = re.search(r"/(\d+)", exc.headers.get("Content-Range", "") or "")
            exc.close()
            if m and int(m.group(1)) == have:
                return  # the partial file is already complete
            part.unlink()  # the partial file does not fit this file: start again
            raise _Incomplete("the partial file did not match the server's file") from exc
        raise
    with response:
        total: int | None = None
        mode = "wb"
        if response.status == 206 and have:
            m = _CONTENT_RANGE.match(response.headers.get("Content-Range", ""))
            if not m or int(m.group(1)) != have:
                raise _Incomplete(f"unexpected Content-Range {response.headers.get('Content-Range')!r}")
            mode = "ab"
            total = int(m.group(3)) if m.group(3) != "*" else None
        else:
            have = 0  # the server ignored the Range header: start from scratch
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
        with (
            open(part, mode) as f,
            tqdm(
                total=total,
                initial=have,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=part.name[: -len(".part")],
                disable=not progress,
                leave=False,
            ) as bar,
        ):
            while chunk := response.read(chunk_size):
                f.write(chunk)
                bar.update(len(chunk))
    size = part.stat().st_size
    if total is not None and size < total:
        raise _Incomplete(f"connection closed after {size:,} of {total:,} bytes")
    if total is not None and size > total:
        part.unlink()
        raise _Incomplete(f"received {size:,} bytes, more than the announced {total:,}")


# --- archives -----------------------------------------------------------------------------
def check_zip(archive: str | os.PathLike) -> None:
    """Raise :class:`ArchiveError` unless ``archive`` is a complete zip whose CRCs all match.

    The integrity check for archives with no published checksum.
    """
    archive = Path(archive)
    try:
        with zipfile.ZipFile(archive) as zf:
            bad = zf.testzip()
    except (zipfile.BadZipFile, EOFError, OSError) as exc:
        raise ArchiveError(
            f"{archive}: truncated or damaged zip archive ({exc}). Delete it and rerun to "
            "download it again"
        ) from exc
    if bad is not None:
        raise ArchiveError(
            f"{archive}: member {bad!r} fails its CRC check, the archive is damaged. Delete "
            "it and rerun to download it again"
        )


def extract_zip(archive: str | os.PathLike, dest_dir: str | os.PathLike) -> list[Path]:
    """Check ``archive`` and extract it into ``dest_dir`` (as ``unzip archive -d dest_dir``).

    Members are extracted into a hidden temporary folder first and moved into place only
    when all are out, so an interrupted extraction leaves no half-written file behind.

    Returns:
        The extracted files.

    Raises:
        ArchiveError: the archive is truncated or damaged.
    """
    archive, dest_dir = Path(archive), Path(dest_dir)
    check_zip(archive)
    dest_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".extract-", dir=dest_dir))
    follow_umask(tmp, directory=True)
    try:
        try:
            with zipfile.ZipFile(archive) as zf:
                zf.extractall(tmp)  # extractall drops absolute paths and ".." parts
        except (zipfile.BadZipFile, EOFError) as exc:
            raise ArchiveError(f"{archive}: damaged zip archive ({exc}); delete it and rerun") from exc
        out = []
        for src in sorted(p for p in tmp.rglob("*") if p.is_file()):
            target = dest_dir / src.relative_to(tmp)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(src, target)
            out.append(target)
        return out
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def zip_fetcher(
    url: str,
    archive: str,
    *,
    md5: str | None = None,
    sha256: str | None = None,
    extract: bool = True,
):
    """A ``DatasetSpec.fetch``: download ``url`` to ``raw/archive``, verify, extract.

    Without a published checksum the zip's own CRCs are the integrity check. With
    ``extract=False`` the archive is only checked (loaders read members in place).
    """

    def fetch(raw_dir: Path) -> None:
        path = download(url, Path(raw_dir) / archive, md5=md5, sha256=sha256)
        if extract:
            extract_zip(path, raw_dir)
        else:
            check_zip(path)

    fetch.url = url  # type: ignore[attr-defined]
    return fetch
