"""The nerfstudio viewer serves an edited run and shows its render, checked in headless Chromium."""

import re
import socket
import subprocess
import time

import numpy as np
import pytest
from PIL import Image

from tests.browser import chromium_path, screenshot
from tests.nerfstudio.conftest import BIN

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(chromium_path() is None, reason="Chromium is not installed (apt-get install chromium)"),
]


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


def test_viewer_shows_the_edited_scene(edit_run, ns_env, tmp_path):
    port = _free_port()
    viewer = subprocess.Popen(
        [str(BIN / "ns-viewer"), "--load-config", str(edit_run / "config.yml"), "--viewer.websocket-port", str(port)],
        env=ns_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        _wait_for_port(port, viewer)
        text = screenshot(f"http://127.0.0.1:{port}", tmp_path / "viewer.png", wait_s=20)
    finally:
        viewer.kill()
        viewer.wait()
    assert "Connected" in text
    resolution = re.search(r"Resolution: (\d+)\D(\d+)px", text)
    assert resolution and int(resolution.group(1)) > 0 and int(resolution.group(2)) > 0, text[:500]
    viewport = np.asarray(Image.open(tmp_path / "viewer.png").convert("RGB"), dtype=np.float32)[60:, :660]
    # the empty viewer is near-black (about 17 of 255); a render fills the viewport with the scene
    assert viewport.mean() > 60, viewport.mean()
