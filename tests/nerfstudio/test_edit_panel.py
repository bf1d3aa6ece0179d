"""The viewer's edit panel without a browser: what it refuses, and changes applied between steps."""

import json

import pytest
import yaml

from ids_nerf.nerfstudio.compare import open_run
from ids_nerf.nerfstudio.edit_panel import refusal
from tests.nerfstudio.conftest import edit_trainer


@pytest.mark.parametrize(
    "name, value, refused",
    [
        ("target_prompt", "a green ball", False),
        ("target_prompt", "   ", True),
        ("guidance_scale", 0.0, False),
        ("guidance_scale", -1.0, True),
        ("guidance_scale", float("nan"), True),
        ("fpr_scale", 0.1, False),
        ("fpr_scale", -0.1, True),
        ("fpr_steps", 0, False),
        ("fpr_steps", 2.5, True),
        ("fpr_steps", 21, True),
    ],
)
def test_refusals(name, value, refused):
    assert (refusal(name, value) is not None) == refused


def test_changes_apply_at_the_next_step_and_are_logged_and_saved(workspace, source_run, tiny_sd_dir, tmp_path):
    trainer = edit_trainer("ids-edit", workspace, tiny_sd_dir, source_run / "nerfstudio_models", tmp_path)
    pipeline, panel = trainer.pipeline, trainer.pipeline.edit_panel
    pipeline.load_diffusion(keep_text_encoder=True)  # as with the viewer on
    assert panel.request("guidance_scale", -2.0) is not None  # refused: nothing queued
    assert "Refused" in panel.verdict
    assert panel.request("guidance_scale", 3.0) is None
    assert panel.request("target_prompt", "a green ball") is None
    assert panel.request("fpr_steps", 1.0) is None  # the viewer's number field gives floats
    assert pipeline.config.guidance_scale == 7.5  # not before the next step

    _, _, metrics = trainer.train_iteration(1)
    assert metrics["ids/guidance_scale"] == 3.0 and metrics["ids/fpr_steps"] == 1
    assert pipeline.guidance.guidance_scale == 3.0 and pipeline.config.target_prompt == "a green ball"
    lines = [json.loads(line) for line in (trainer.base_dir / "steering.jsonl").read_text().splitlines()]
    assert {(c["step"], c["setting"], c["new"]) for c in lines} == {
        (1, "guidance_scale", 3.0),
        (1, "target_prompt", "a green ball"),
        (1, "fpr_steps", 1),
    }
    saved = yaml.load((trainer.base_dir / "config.yml").read_text(), Loader=yaml.Loader)
    assert saved.pipeline.target_prompt == "a green ball" and saved.pipeline.guidance_scale == 3.0


def test_a_prompt_the_model_refuses_leaves_the_old_one(workspace, source_run, tiny_sd_dir, tmp_path):
    trainer = edit_trainer("ids-edit", workspace, tiny_sd_dir, source_run / "nerfstudio_models", tmp_path)
    panel = trainer.pipeline.edit_panel
    assert panel.request("target_prompt", "a green ball") is None  # text encoder released: the model refuses
    trainer.train_iteration(1)
    assert trainer.pipeline.config.target_prompt == "a blue ball"
    assert "Refused" in panel.verdict
    assert not (trainer.base_dir / "steering.jsonl").exists()


def test_no_panel_where_a_finished_run_is_opened(edit_run):
    assert open_run(edit_run / "config.yml").edit_panel is None  # ns-viewer, ns-render, ns-eval: test mode


def test_the_panel_buttons_pause_save_show_the_source_and_write_compare(
    workspace, source_run, tiny_sd_dir, tmp_path, ns_env
):
    import time

    trainer = edit_trainer("ids-edit", workspace, tiny_sd_dir, source_run / "nerfstudio_models", tmp_path)
    panel = trainer.pipeline.edit_panel
    panel.hooks.set_paused(True)
    assert trainer.training_state == "paused"  # nerfstudio's loop waits between steps while paused
    panel.hooks.set_paused(False)
    assert trainer.training_state == "training"

    trainer.step = 1
    trainer.train_iteration(1)
    panel._save_now()
    assert (trainer.checkpoint_dir / "step-000000001.ckpt").is_file() and "Saved a checkpoint" in panel.verdict

    panel._show_source()
    assert "stored source render of view" in panel.see.strip.content and "data:image/png;base64," in (
        panel.see.strip.content
    )

    panel._write_compare()  # a checkpoint, then ids-nerf compare in its own process
    out = trainer.base_dir / "compare-step-000001"
    deadline = time.time() + 600
    while not (out.is_dir() and list(out.glob("*.png"))) and time.time() < deadline:
        time.sleep(2)
    log = (trainer.base_dir / "compare-step-000001.log").read_text()
    assert sorted(p.name for p in out.glob("*.png")) == ["test_000.png"], log[-2000:]  # the one test view
