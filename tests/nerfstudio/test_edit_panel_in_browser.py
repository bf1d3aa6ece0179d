"""Steer a running ns-train ids-edit from the nerfstudio viewer in headless Chromium, as a person would:
type a new target prompt and CFG scale into the edit's panel, then read the run's logs and config."""

import json

import pytest
import yaml

from tests.browser import open_page, wait_for_text
from tests.nerfstudio.conftest import edit_command
from tests.nerfstudio.viewer_check import _free_port, input_labeled, serve_while, wait_until

pytestmark = pytest.mark.slow
NEW_PROMPT = "a green ball and a green box"


def _changes(run_dir):
    log = run_dir / "steering.jsonl"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.is_file() else []


def _change(run_dir, setting):
    return next((c for c in _changes(run_dir) if c["setting"] == setting), None)


def _guidance_scales(run_dir) -> dict:
    """Step -> ``ids/guidance_scale`` as the run's tensorboard events hold it."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    events.Reload()
    tag = "Train Metrics Dict/ids/guidance_scale"
    return {e.step: e.value for e in events.Scalars(tag)} if tag in events.Tags()["scalars"] else {}


def test_the_panel_steers_a_running_edit(chromium, workspace, source_run, ns_env, tiny_sd_dir, tmp_path):
    port = _free_port()
    command = edit_command(
        workspace,
        timestamp="steered",
        load_dir=source_run / "nerfstudio_models",
        model=tiny_sd_dir,
        extra=["--viewer.websocket-port", str(port), "--logging.steps-per-log", "1", "--steps-per-save", "100000"],
    )
    command[command.index("--vis") + 1] = "viewer+tensorboard"
    command[command.index("--max-num-iterations") + 1] = "100000"  # runs until the test ends it
    run_dir = workspace / "out" / "scene" / "ids-edit" / "steered"
    process = serve_while(command, ns_env, port, tmp_path / "ns-train.log")
    try:
        with open_page(f"http://127.0.0.1:{port}") as page:
            # the viewer renders the viewport holding the training lock: on a CPU, a small one lets the edit run
            wait_for_text(page, "Max res", timeout_s=300)
            page.type_into(input_labeled("Max res"), "64")
            wait_for_text(page, "IDS edit, step", timeout_s=600)  # the panel shows a running edit
            page.type_into(input_labeled("Target prompt"), NEW_PROMPT)
            prompt = wait_until(lambda: _change(run_dir, "target_prompt"), 300, "the prompt change")
            page.type_into(input_labeled("CFG scale"), "3")
            cfg = wait_until(lambda: _change(run_dir, "guidance_scale"), 300, "the CFG change")
            wait_until(lambda: max(_guidance_scales(run_dir), default=-1) >= cfg["step"] + 3, 300, "later steps")
            wait_for_text(page, f"target: {NEW_PROMPT}", timeout_s=120)
            page.show_whole("edit_panel", height=1300)
            page.screenshot(tmp_path / "panel.png")  # docs/assets/edit-panel.png is one of these
    finally:
        process.kill()
        process.wait()

    assert prompt["old"] == "a blue ball and a green box" and prompt["new"] == NEW_PROMPT
    assert cfg["old"] == 7.5 and cfg["new"] == 3.0
    scales = _guidance_scales(run_dir)
    assert scales and all(v == 7.5 for s, v in scales.items() if s < cfg["step"]), scales
    assert all(v == 3.0 for s, v in scales.items() if s >= cfg["step"]), scales
    saved = yaml.load((run_dir / "config.yml").read_text(), Loader=yaml.Loader)
    assert saved.pipeline.target_prompt == NEW_PROMPT and saved.pipeline.guidance_scale == 3.0
