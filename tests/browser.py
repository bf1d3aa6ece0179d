"""Screenshots of a page in headless Chromium after a real-time wait, over the DevTools protocol.

Chromium's own ``--screenshot`` fires as soon as the page loads (or in virtual time), before the
nerfstudio viewer has received a rendered frame over its websocket; this waits in wall-clock time.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

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


def screenshot(url: str, out: Path, wait_s: float = 20.0) -> str:
    """Open ``url``, wait ``wait_s`` seconds, save a PNG of the window to ``out``; return the page's text."""
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
        page = next(t for t in targets if t["type"] == "page")
        with connect(page["webSocketDebuggerUrl"], max_size=2**26) as ws:
            ws.send(json.dumps({"id": 1, "method": "Page.navigate", "params": {"url": url}}))
            time.sleep(wait_s)
            shot = _call(ws, 2, "Page.captureScreenshot", {"format": "png"})
            text = _call(ws, 3, "Runtime.evaluate", {"expression": "document.body.innerText"})
        out.write_bytes(base64.b64decode(shot["data"]))
        return text["result"]["value"]
    finally:
        browser.kill()
        browser.wait()
        shutil.rmtree(profile, ignore_errors=True)


def _call(ws, call_id: int, method: str, params: dict) -> dict:
    ws.send(json.dumps({"id": call_id, "method": method, "params": params}))
    while True:
        reply = json.loads(ws.recv())
        if reply.get("id") == call_id:
            return reply["result"]
