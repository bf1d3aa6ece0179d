"""Serve a run with ``ns-viewer`` and look at it in headless Chromium (a helper, not a test file)."""

from __future__ import annotations

import re
import socket
import subprocess
import time
from pathlib import Path

import numpy as np
from PIL import Image

from tests.browser import screenshot


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_port(port: int, process, timeout_s: float = 120) -> None:
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"ns-viewer exited: {process.stdout.read()[-2000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(1)
    raise TimeoutError(f"ns-viewer did not open port {port}")


def assert_viewer_shows_the_run(ns_viewer: list, config: Path, env: dict, out: Path) -> None:
    """Start ``ns_viewer`` (the command, as a list) on ``config`` and check the page: connected, a
    resolution shown, and a viewport filled by a render rather than the empty viewer's near-black."""
    port = _free_port()
    viewer = subprocess.Popen(
        [*ns_viewer, "--load-config", str(config), "--viewer.websocket-port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        _wait_for_port(port, viewer)
        text = screenshot(f"http://127.0.0.1:{port}", out, wait_s=20)
    finally:
        viewer.kill()
        viewer.wait()
    assert "Connected" in text
    resolution = re.search(r"Resolution: (\d+)\D(\d+)px", text)
    assert resolution and int(resolution.group(1)) > 0 and int(resolution.group(2)) > 0, text[:500]
    viewport = np.asarray(Image.open(out).convert("RGB"), dtype=np.float32)[60:, :660]
    # the empty viewer is near-black (about 17 of 255); a render fills the viewport with the scene
    assert viewport.mean() > 60, viewport.mean()


def input_labeled(label: str) -> str:
    """JavaScript for the input of the viewer's control labeled ``label`` (viser puts the label and its
    input in one flex row)."""
    return (
        f"[...document.querySelectorAll('label')].find(l => l.textContent.trim() === {label!r})"
        "?.closest('.mantine-Flex-root')?.querySelector('input:not([type=hidden])')"
    )


def serve_while(command: list, env: dict, port: int, log: Path):
    """Start ``command`` (an ns-train with the viewer on ``port``), its output to ``log``; wait for the
    port. Returns the process; the caller kills it."""
    process = subprocess.Popen(command, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 600
    while time.time() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"ns-train exited: {log.read_text()[-3000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return process
        except OSError:
            time.sleep(1)
    process.kill()
    raise TimeoutError(f"ns-train did not open port {port}: {log.read_text()[-3000:]}")


def wait_until(condition, timeout_s: float, what: str):
    """Poll ``condition()`` until it returns something truthy; returns it."""
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(1)
    raise TimeoutError(f"timed out waiting for {what}")
