"""The report's web page in a real browser: headless Chromium loads index.html from disk.

Chromium is driven through the DevTools protocol over ``--remote-debugging-pipe`` (JSON
messages separated by NUL bytes on file descriptors 3 and 4), so no Selenium or websocket
package is needed. The test checks that every table and figure listed in ``report.json`` is
shown (laid out with a size; images decoded), that nothing outside the file is requested,
that there are no console errors, and saves a full-page screenshot in the pytest tmp dir.

Skipped, with the reason, only when no Chromium binary is found (``.ci/run`` installs the
Debian ``chromium`` package; set ``CHROMIUM=/path/to/chrome`` to use another build).
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import queue
import shutil
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from test_report import make_results  # noqa: E402

from benchmark.report import build_report  # noqa: E402

pytestmark = pytest.mark.browser

CHROME_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--remote-debugging-pipe",
]


def find_chromium() -> str | None:
    env = os.environ.get("CHROMIUM")
    if env:
        return env if Path(env).exists() or shutil.which(env) else None
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


class Browser:
    """A headless Chromium and one page, driven over the DevTools pipe.

    Example::

        with Browser(binary, profile_dir) as b:
            b.load("file:///tmp/report/index.html")
            b.evaluate("document.title")
    """

    def __init__(self, binary: str, profile: Path, *, width: int = 1280, height: int = 900):
        self.binary, self.profile, self.size = binary, profile, (width, height)
        self.events: list[dict[str, Any]] = []
        self._queue: queue.Queue = queue.Queue()
        self._next_id = 0
        self.session: str | None = None

    # --- process and pipe --------------------------------------------------------------------
    def __enter__(self) -> Browser:
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()
        # Duplicates above 10 so that placing them on 3 and 4 in the child cannot clash.
        child_r = fcntl.fcntl(to_chrome_r, fcntl.F_DUPFD_CLOEXEC, 10)
        child_w = fcntl.fcntl(from_chrome_w, fcntl.F_DUPFD_CLOEXEC, 10)

        def place_fds() -> None:  # runs in the child before exec
            os.dup2(child_r, 3)
            os.dup2(child_w, 4)

        args = [self.binary, *CHROME_FLAGS, f"--user-data-dir={self.profile}",
                f"--window-size={self.size[0]},{self.size[1]}", "about:blank"]
        self.stderr_path = self.profile.parent / "chromium-stderr.txt"
        self._stderr = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=self._stderr, stderr=self._stderr,
            close_fds=False, preexec_fn=place_fds,
        )
        for fd in (to_chrome_r, from_chrome_w, child_r, child_w):
            os.close(fd)
        threading.Thread(target=self._reader, daemon=True).start()
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.call(f"{domain}.enable")
        self.call("Emulation.setDeviceMetricsOverride", width=self.size[0], height=self.size[1],
                  deviceScaleFactor=1, mobile=False)
        return self

    def __exit__(self, *exc) -> None:
        try:
            self.call("Browser.close", session=False, timeout=10)
        except Exception:
            pass
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()  # only the process this test started
            self.proc.wait(timeout=15)
        os.close(self._to_chrome)
        self._stderr.close()

    def _reader(self) -> None:
        buf = b""
        while True:
            try:
                chunk = os.read(self._from_chrome, 1 << 16)
            except OSError:
                chunk = b""
            if not chunk:
                self._queue.put(None)
                return
            buf += chunk
            while b"\0" in buf:
                msg, buf = buf.split(b"\0", 1)
                self._queue.put(json.loads(msg))

    def call(self, method: str, *, session: bool = True, timeout: float = 30, **params: Any) -> dict:
        """Send one DevTools command and wait for its result (events are kept in ``events``)."""
        self._next_id += 1
        msg: dict[str, Any] = {"id": self._next_id, "method": method, "params": params}
        if session and self.session:
            msg["sessionId"] = self.session
        os.write(self._to_chrome, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self._get(deadline, f"reply to {method}")
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def _get(self, deadline: float, what: str) -> dict:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"Chromium gave no {what}; see {self.stderr_path}")
        try:
            item = self._queue.get(timeout=left)
        except queue.Empty:
            raise TimeoutError(f"Chromium gave no {what}; see {self.stderr_path}") from None
        if item is None:
            raise RuntimeError(f"Chromium closed the pipe; see {self.stderr_path}")
        return item

    # --- page -------------------------------------------------------------------------------
    def load(self, url: str, timeout: float = 60) -> None:
        """Navigate and wait for the load event."""
        self.call("Page.navigate", url=url)
        deadline = time.monotonic() + timeout
        while not any(e.get("method") == "Page.loadEventFired" for e in self.events):
            self.events.append(self._get(deadline, "load event"))

    def evaluate(self, expression: str) -> Any:
        res = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in res:
            raise RuntimeError(f"page script failed: {res['exceptionDetails']}")
        return res["result"].get("value")

    def screenshot(self, path: Path, *, full_page: bool = True, max_height: int = 12000) -> Path:
        params: dict[str, Any] = {"format": "png"}
        if full_page:
            h = min(max_height, int(self.evaluate("document.documentElement.scrollHeight")))
            params.update(captureBeyondViewport=True,
                          clip={"x": 0, "y": 0, "width": self.size[0], "height": h, "scale": 1})
        data = self.call("Page.captureScreenshot", timeout=60, **params)["data"]
        path.write_bytes(base64.b64decode(data))
        return path

    def console_errors(self) -> list[str]:
        out = []
        for e in self.events:
            m, p = e.get("method"), e.get("params", {})
            if m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                out.append("console: " + " ".join(str(a.get("value", a.get("description"))) for a in p.get("args", [])))
            elif m == "Runtime.exceptionThrown":
                out.append("exception: " + str(p.get("exceptionDetails", {}).get("text")))
            elif m == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
                out.append("log: " + str(p["entry"].get("text")) + " " + str(p["entry"].get("url", "")))
            elif m == "Network.loadingFailed":
                out.append("network: " + str(p.get("errorText")))
        return out

    def requested_urls(self) -> list[str]:
        return [e["params"]["request"]["url"] for e in self.events if e.get("method") == "Network.requestWillBeSent"]


CHECK_JS = """
(() => {
  const manifest = %s;
  const visible = el => { if (!el) return false; const r = el.getBoundingClientRect();
    const s = getComputedStyle(el); return r.width > 0 && r.height > 0 && s.visibility !== 'hidden' && s.display !== 'none'; };
  const tables = manifest.tables.map(t => { const el = document.getElementById(t.key);
    const tab = el && el.querySelector('table');
    return {key: t.key, shown: visible(el) && visible(tab), rows: tab ? tab.tBodies[0].rows.length : 0}; });
  const figures = manifest.figures.map(f => { const el = document.getElementById(f.key);
    const img = el && el.querySelector('img');
    return {key: f.key, shown: visible(img), decoded: !!(img && img.complete && img.naturalWidth > 0)}; });
  return {tables, figures, nTables: document.querySelectorAll('table').length,
          nImages: document.images.length, title: document.title};
})()
"""


@pytest.fixture(scope="module")
def chromium() -> str:
    binary = find_chromium()
    if binary is None:
        pytest.skip(
            "no Chromium found (tried $CHROMIUM, chromium, chromium-browser, google-chrome): "
            "install the Debian package with `apt-get install -y chromium` (.ci/run does)"
        )
    return binary


def test_report_page_in_headless_chromium(chromium, tmp_path):
    results = make_results(tmp_path / "results")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        index = build_report(results, tmp_path / "report")
    manifest = json.loads((index.parent / "report.json").read_text())
    assert manifest["tables"] and manifest["figures"]
    with Browser(chromium, tmp_path / "profile") as b:
        b.load(index.resolve().as_uri())
        state = b.evaluate(CHECK_JS % json.dumps(manifest))
        shot = b.screenshot(tmp_path / "report-screenshot.png")
        errors = b.console_errors()
        urls = b.requested_urls()
    assert state["title"] == "Benchmark report"
    for t in state["tables"]:
        assert t["shown"] and t["rows"] > 0, f"table {t['key']} not shown: {t}"
    for f in state["figures"]:
        assert f["shown"] and f["decoded"], f"figure {f['key']} not shown: {f}"
    assert state["nTables"] == len(manifest["tables"])
    assert state["nImages"] == len(manifest["figures"])
    assert errors == [], f"console errors: {errors}"
    assert all(u.startswith(("file://", "data:", "about:")) for u in urls), f"external requests: {urls}"
    assert shot.stat().st_size > 10_000 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_console_errors_are_caught(chromium, tmp_path):
    """The checker itself: a page with a script error and a missing image is reported."""
    page = tmp_path / "bad.html"
    page.write_text(
        "<!DOCTYPE html><html><head><link rel='icon' href='data:,'></head><body>"
        "<img src='missing.png'><script>console.error('boom'); undefinedFunction();</script>"
        "</body></html>"
    )
    with Browser(chromium, tmp_path / "profile") as b:
        b.load(page.as_uri())
        errors = b.console_errors()
    text = " ".join(errors)
    assert "boom" in text and "undefinedFunction" in text or "exception" in text
    assert any(e.startswith(("log:", "network:")) for e in errors), errors
