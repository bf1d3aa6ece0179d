"""The nerfstudio viewer serves an edited run and shows its render, checked in headless Chromium."""

import pytest

from tests.nerfstudio.conftest import BIN
from tests.nerfstudio.viewer_check import assert_viewer_shows_the_run

pytestmark = pytest.mark.slow


def test_viewer_shows_the_edited_scene(chromium, edit_run, ns_env, tmp_path):
    assert_viewer_shows_the_run([str(BIN / "ns-viewer")], edit_run / "config.yml", ns_env, tmp_path / "viewer.png")
