"""Screenshots of a page in headless Chromium after a real-time wait, over the DevTools protocol.

Chromium's own ``--screenshot`` fires as soon as the page loads (or in virtual time), before the
nerfstudio viewer has received a rendered frame over its websocket; this waits in wall-clock time.
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Iterator

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1000,700",
    "--remote-debugging-port=0",
]


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


class Page:
    """A page of headless Chromium, driven over the DevTools protocol as a person would use it."""

    def __init__(self, ws) -> None:
        self.ws = ws
        self.calls = 0

    def call(self, method: str, params: dict | None = None) -> dict:
        self.calls += 1
        return _call(self.ws, self.calls, method, params or {})

    def evaluate(self, expression: str):
        """The value of a JavaScript expression in the page."""
        reply = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        return reply["result"].get("value")

    def text(self) -> str:
        return self.evaluate("document.body.innerText")

    def type_into(self, element_js: str, text: str) -> None:
        """Focus the element ``element_js`` evaluates to, select what it holds, type ``text`` over it
        (DevTools input events, as typing does) and press Enter."""
        if not self.evaluate(
            f"(() => {{ const e = {element_js}; if (!e) return false; e.focus(); e.select(); return true; }})()"
        ):
            raise LookupError(f"no element for {element_js}")
        self.call("Input.insertText", {"text": text})
        for kind in ("keyDown", "keyUp"):
            self.call(
                "Input.dispatchKeyEvent", {"type": kind, "key": "Enter", "code": "Enter", "windowsVirtualKeyCode": 13}
            )

    def show_whole(self, text: str, height: int) -> None:
        """Make the window ``height`` pixels high and scroll the element showing ``text`` to its top."""
        metrics = {"width": 1000, "height": height, "deviceScaleFactor": 1, "mobile": False}
        self.call("Emulation.setDeviceMetricsOverride", metrics)
        self.evaluate(
            "[...document.querySelectorAll('*')]"
            f".find(e => e.childElementCount === 0 && e.textContent.trim() === {text!r})?.scrollIntoView()"
        )
        time.sleep(2)

    def screenshot(self, out: Path) -> None:
        out.write_bytes(base64.b64decode(self.call("Page.captureScreenshot", {"format": "png"})["data"]))


@contextlib.contextmanager
def open_page(url: str) -> Iterator[Page]:
    """Headless Chromium on ``url``; the page starts loading (wait for what it should show)."""
    from websockets.sync.client import connect

    profile = tempfile.mkdtemp()
    browser = subprocess.Popen(
        [chromium_path(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank"],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        port = None
        deadline = time.time() + 30
        while port is None and time.time() < deadline:
            match = re.search(r"DevTools listening on ws://[^:]+:(\d+)/", browser.stderr.readline())
            port = match and int(match.group(1))
        if port is None:
            raise RuntimeError("chromium did not open its DevTools port")
        targets = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list"))
        target = next(t for t in targets if t["type"] == "page")
        # no keepalive pings: a Chromium starved of CPU may answer late, which is not an error here
        with connect(target["webSocketDebuggerUrl"], max_size=2**26, ping_interval=None) as ws:
            page = Page(ws)
            page.call("Page.navigate", {"url": url})
            yield page
    finally:
        browser.kill()
        browser.wait()
        shutil.rmtree(profile, ignore_errors=True)


def wait_for_text(page: Page, needle: str, timeout_s: float = 90.0) -> str:
    """Poll the page's text until it contains ``needle``; returns the text."""
    deadline = time.time() + timeout_s
    text = ""
    while time.time() < deadline:
        text = page.text() or ""
        if needle in text:
            return text
        time.sleep(1)
    raise TimeoutError(f"the page never showed {needle!r}; it shows: {text[:1500]}")


def screenshot(url: str, out: Path, wait_s: float = 20.0) -> str:
    """Open ``url``, wait ``wait_s`` seconds, save a PNG of the window to ``out``; return the page's text."""
    with open_page(url) as page:
        time.sleep(wait_s)
        page.screenshot(out)
        return page.text()


def _call(ws, call_id: int, method: str, params: dict) -> dict:
    ws.send(json.dumps({"id": call_id, "method": method, "params": params}))
    while True:
        reply = json.loads(ws.recv())
        if reply.get("id") == call_id:
            return reply["result"]
