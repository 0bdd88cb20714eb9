"""The downloader against a local HTTP server on 127.0.0.1 (no other network).

The server (a thread in this process) serves a zip built in the test, honours HTTP Range
requests, and can cut the connection halfway through a body or answer with an error.
"""

from __future__ import annotations

import hashlib
import io
import re
import threading
import zipfile
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
from conftest import shared_dataset

import benchmark.data as data
from benchmark.data import get_dataset, load_split
from benchmark.data.download import (
    ArchiveError,
    ChecksumError,
    DownloadError,
    check_zip,
    download,
    extract_zip,
    zip_fetcher,
)


def make_zip(files: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as zf:
        for name, content in files.items():
            zf.writestr(name, content)
    return buf.getvalue()


@pytest.fixture(scope="module")
def payload() -> bytes:
    rng = np.random.default_rng(0)
    # incompressible content, so the zip is ~300 KB and arrives in many chunks
    return make_zip({"demo/data.bin": rng.bytes(300_000), "demo/README": b"hello\n"})


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        srv = self.server
        rng = self.headers.get("Range")
        srv.requests.append((self.path, rng))
        if self.path in srv.errors:
            self.send_error(srv.errors[self.path])
            return
        body = srv.payload
        start = 0
        if rng and srv.honour_range:
            start = int(re.fullmatch(r"bytes=(\d+)-", rng).group(1))
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        self.send_header("Content-Type", "application/zip")
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        chunk = body[start:]
        if srv.cuts > 0:  # send half the body, then drop the connection
            srv.cuts -= 1
            chunk = chunk[: len(chunk) // 2]
            self.close_connection = True
        srv.sent.append(len(chunk))  # before writing: the client may return before we do
        self.wfile.write(chunk)
        self.wfile.flush()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def server(payload, monkeypatch):
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.payload, srv.requests, srv.sent = payload, [], []
    srv.errors, srv.cuts, srv.honour_range = {}, 0, True
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}"
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()
    thread.join(5)


def digests(b: bytes) -> dict[str, str]:
    return {"md5": hashlib.md5(b).hexdigest(), "sha256": hashlib.sha256(b).hexdigest()}


def test_full_download_checks_both_digests_and_renames(server, payload, tmp_path):
    dest = tmp_path / "raw" / "demo.zip"
    out = download(f"{server.url}/demo.zip", dest, **digests(payload), chunk_size=8192)
    assert out == dest and dest.read_bytes() == payload
    assert not (tmp_path / "raw" / "demo.zip.part").exists()
    assert server.requests == [("/demo.zip", None)]
    # already there and valid: no second request
    download(f"{server.url}/demo.zip", dest, **digests(payload))
    assert len(server.requests) == 1


def test_resume_after_a_cut_connection(server, payload, tmp_path):
    dest = tmp_path / "demo.zip"
    part = tmp_path / "demo.zip.part"
    server.cuts = 1
    with pytest.raises(DownloadError, match="rerun the same command to resume") as exc:
        download(f"{server.url}/demo.zip", dest, md5=digests(payload)["md5"], retries=0, progress=False)
    have = part.stat().st_size
    assert 0 < have < len(payload) and not dest.exists()
    assert f"{have:,} bytes are kept" in str(exc.value)
    assert part.read_bytes() == payload[:have]  # what arrived is kept as it came

    download(f"{server.url}/demo.zip", dest, md5=digests(payload)["md5"], retries=0, progress=True)
    assert server.requests[-1] == ("/demo.zip", f"bytes={have}-")
    assert server.sent[-1] == len(payload) - have  # only the rest was sent again
    assert dest.read_bytes() == payload and not part.exists()


def test_automatic_retry_resumes(server, payload, tmp_path):
    server.cuts = 2
    dest = download(f"{server.url}/demo.zip", tmp_path / "demo.zip", **digests(payload), retries=3, backoff=0, progress=False)
    assert dest.read_bytes() == payload
    assert [r for _, r in server.requests][0] is None
    assert all(r is not None and r.startswith("bytes=") for _, r in server.requests[1:])
    assert len(server.requests) == 3


def test_server_ignoring_range_restarts_cleanly(server, payload, tmp_path):
    server.honour_range = False
    (tmp_path / "demo.zip.part").write_bytes(b"stale bytes of something else")
    dest = download(f"{server.url}/demo.zip", tmp_path / "demo.zip", **digests(payload), progress=False)
    assert dest.read_bytes() == payload  # the 200 answer replaced the stale partial file


def test_complete_partial_file_416(server, payload, tmp_path):
    (tmp_path / "demo.zip.part").write_bytes(payload)
    dest = download(f"{server.url}/demo.zip", tmp_path / "demo.zip", **digests(payload), progress=False)
    assert dest.read_bytes() == payload and server.sent == []


def test_checksum_mismatch_deletes_the_bad_download(server, payload, tmp_path):
    dest = tmp_path / "demo.zip"
    with pytest.raises(ChecksumError, match="md5 [0-9a-f]{32}, expected 0{32}"):
        download(f"{server.url}/demo.zip", dest, md5="0" * 32, progress=False)
    assert not dest.exists() and not (tmp_path / "demo.zip.part").exists()
    with pytest.raises(ChecksumError, match="sha256"):
        download(f"{server.url}/demo.zip", dest, sha256="f" * 64, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_existing_file_with_wrong_checksum_is_kept_and_reported(server, tmp_path):
    dest = tmp_path / "demo.zip"
    dest.write_bytes(b"not the archive")
    with pytest.raises(ChecksumError, match="exists but has md5 .*Delete it"):
        download(f"{server.url}/demo.zip", dest, md5="0" * 32, progress=False)
    assert dest.read_bytes() == b"not the archive" and server.requests == []


@pytest.mark.parametrize("code,attempts", [(404, 1), (500, 3)])
def test_http_errors_are_named(server, tmp_path, code, attempts):
    server.errors["/gone.zip"] = code
    with pytest.raises(DownloadError, match=f"HTTP {code}") as exc:
        download(f"{server.url}/gone.zip", tmp_path / "gone.zip", retries=2, backoff=0, progress=False)
    assert f"{server.url}/gone.zip" in str(exc.value) and "put it at" in str(exc.value)
    assert len(server.requests) == attempts  # 5xx is retried, 4xx is not
    assert list(tmp_path.iterdir()) == []


def test_unreachable_server(tmp_path):
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens on this port now
    with pytest.raises(DownloadError, match="failed after 1 attempt"):
        download(f"http://127.0.0.1:{port}/x.zip", tmp_path / "x.zip", retries=0, progress=False)


def test_truncated_and_damaged_archives(payload, tmp_path):
    cut = tmp_path / "cut.zip"
    cut.write_bytes(payload[: len(payload) // 2])
    with pytest.raises(ArchiveError, match="truncated or damaged"):
        extract_zip(cut, tmp_path / "out")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*"))

    stored = bytearray(make_zip({"a.txt": b"x" * 1000}, zipfile.ZIP_STORED))
    stored[stored.index(b"x" * 1000) + 500] = ord("y")  # flip one byte of the member's data
    bad = tmp_path / "bad.zip"
    bad.write_bytes(bytes(stored))
    with pytest.raises(ArchiveError, match="CRC"):
        check_zip(bad)


def test_extract_zip_places_files_and_leaves_no_temp(payload, tmp_path):
    archive = tmp_path / "demo.zip"
    archive.write_bytes(payload)
    out = extract_zip(archive, tmp_path / "raw")
    assert sorted(p.relative_to(tmp_path / "raw").as_posix() for p in out) == ["demo/README", "demo/data.bin"]
    assert (tmp_path / "raw" / "demo" / "README").read_bytes() == b"hello\n"
    assert [p.name for p in (tmp_path / "raw").iterdir()] == ["demo"]


def _local_ml100k(server, monkeypatch, md5: str | None) -> str:
    """Register 'ml-100k-local': the real ml-100k spec whose fetch points at the server."""
    udata = (shared_dataset("ml-100k") / "u.data").read_bytes()
    server.payload = make_zip({"ml-100k/u.data": udata})
    spec = replace(
        get_dataset("ml-100k"),
        name="ml-100k-local",
        fetch=zip_fetcher(f"{server.url}/ml-100k.zip", "ml-100k.zip", md5=md5 or digests(server.payload)["md5"]),
    )
    monkeypatch.setitem(data._DATASETS, "ml-100k-local", lambda: spec)
    monkeypatch.delenv("BENCHMARK_OFFLINE", raising=False)
    return "ml-100k-local"


def test_prepare_downloads_verifies_and_extracts(server, monkeypatch, data_dir):
    name = _local_ml100k(server, monkeypatch, md5=None)
    split = load_split(name, data_dir=data_dir)
    raw = data_dir / name / "raw"
    assert (raw / "ml-100k.zip").is_file() and (raw / "ml-100k" / "u.data").is_file()
    s = split.stats()
    assert s["users"] == 938 and s["interactions"] == 55_361
    n = len(server.requests)
    load_split(name, data_dir=data_dir)  # raw and processed present: no request
    assert len(server.requests) == n


def test_prepare_with_a_bad_checksum_leaves_nothing(server, monkeypatch, data_dir):
    name = _local_ml100k(server, monkeypatch, md5="0" * 32)
    with pytest.raises(ChecksumError):
        load_split(name, data_dir=data_dir)
    assert not any(p.is_file() for p in (data_dir / name).rglob("*"))


def test_lastfm_fetch_has_no_checksum_but_checks_the_zip(server, monkeypatch, tmp_path):
    server.payload = make_zip({"user_artists.dat": b"userID\tartistID\tweight\r\n2\t51\t13883\r\n"})
    zip_fetcher(f"{server.url}/l.zip", "l.zip")(tmp_path)
    assert (tmp_path / "user_artists.dat").is_file()
    server.payload = server.payload[:-30]  # the server now sends a truncated archive
    with pytest.raises(ArchiveError):
        zip_fetcher(f"{server.url}/t.zip", "t.zip")(tmp_path / "t")
