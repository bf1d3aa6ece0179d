"""End to end through the real ns-train / ns-eval / ns-render / ids-nerf entry points."""

import glob
import json

import numpy as np
import pytest
import torch
from PIL import Image

from ids_nerf.nerfstudio.checkpoints import load_checkpoint
from tests.nerfstudio.conftest import BIN, checked, edit_command, run

pytestmark = pytest.mark.slow


def _checkpoints(run_dir):
    return sorted(p.name for p in (run_dir / "nerfstudio_models").glob("*.ckpt"))


def test_edit_counts_its_own_steps_and_saves_no_diffusion_weights(edit_run):
    assert _checkpoints(edit_run) == ["step-000000002.ckpt"]  # 3 edit steps: 0, 1, 2
    state = load_checkpoint(edit_run / "nerfstudio_models" / "step-000000002.ckpt")
    keys = list(state["pipeline"])
    assert "source_latents" in keys and state["pipeline"]["source_latents"].shape == (6, 4, 16, 16)
    assert all(k.startswith("_model.") or k in ("source_latents", "source_model_step", "edit_masks") for k in keys)
    assert state["pipeline"]["edit_masks"].numel() == 0  # no --pipeline.identity-mask: no masks
    assert not any(word in k for k in keys for word in ("unet", "vae", "text_encoder"))
    assert set(state["optimizers"]) == {"proposal_networks", "fields"}  # camera poses stay frozen


def test_edit_changes_the_rendered_views(edit_run, ns_env, tmp_path):
    out = tmp_path / "compare"
    checked(
        run(
            [
                str(BIN / "ids-nerf"),
                "compare",
                "--edited",
                str(edit_run / "config.yml"),
                "--out",
                str(out),
                "--split",
                "train",
            ],
            ns_env,
        )
    )
    pairs = sorted(out.glob("train_*.png"))
    assert len(pairs) == 6
    for pair in pairs:
        image = np.asarray(Image.open(pair), dtype=np.float32)
        source, edited = np.split(image, 2, axis=1)
        assert np.abs(source - edited).mean() > 1.0, pair  # grey levels of 255


def test_edited_run_opens_in_ns_eval_render_export_without_diffusion(edit_run, ns_env, tmp_path):
    checked(
        run(
            [
                str(BIN / "ns-eval"),
                "--load-config",
                str(edit_run / "config.yml"),
                "--output-path",
                str(tmp_path / "eval.json"),
            ],
            ns_env,
        )
    )
    results = json.loads((tmp_path / "eval.json").read_text())["results"]
    assert 0 < results["psnr"] < 100
    checked(
        run(
            [
                str(BIN / "ns-render"),
                "dataset",
                "--load-config",
                str(edit_run / "config.yml"),
                "--output-path",
                str(tmp_path / "renders"),
                "--split",
                "test",
                "--rendered-output-names",
                "rgb",
            ],
            ns_env,
        )
    )
    assert len(list((tmp_path / "renders").rglob("*.jpg"))) == 1
    checked(
        run(
            [
                str(BIN / "ns-export"),
                "pointcloud",
                "--load-config",
                str(edit_run / "config.yml"),
                "--output-dir",
                str(tmp_path / "export"),
                "--num-points",
                "500",
                "--normal-method",
                "open3d",
            ],
            ns_env,
        )
    )
    assert (tmp_path / "export" / "point_cloud.ply").stat().st_size > 0


def test_edit_logs_image_strip_and_fpr_scalars(edit_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(glob.glob(str(edit_run / "events.out.tfevents.*"))[0], size_guidance={"images": 0})
    events.Reload()
    scalars = set(events.Tags()["scalars"])
    for name in ("t", "direction_norm", "fpr_distance_before", "fpr_distance_after"):
        assert f"Train Metrics Dict/ids/{name}" in scalars
    strips = events.Images("ids/source|render|target_estimate")
    assert [s.step for s in strips] == [0, 2]
    assert (strips[0].width, strips[0].height) == (96, 32)  # three 32x32 panels


def test_resume_continues_the_edit(edit_run, workspace, ns_env, tiny_sd_dir):
    checked(
        run(
            edit_command(
                workspace,
                timestamp="resumed",
                load_dir=edit_run / "nerfstudio_models",
                model=tiny_sd_dir,
                extra=["--max-num-iterations", "5"],
            ),
            ns_env,
        )
    )
    resumed = workspace / "out" / "scene" / "ids-edit" / "resumed"
    assert _checkpoints(resumed) == ["step-000000004.ckpt"]  # steps 3 and 4: five in all
    before = load_checkpoint(edit_run / "nerfstudio_models" / "step-000000002.ckpt")
    after = load_checkpoint(resumed / "nerfstudio_models" / "step-000000004.ckpt")
    assert torch.equal(before["pipeline"]["source_latents"], after["pipeline"]["source_latents"])
    moved = [k for k, v in before["pipeline"].items() if not torch.equal(v, after["pipeline"][k])]
    assert any("field" in k for k in moved)


def test_dds_edit_with_source_latents_from_the_dataset(source_run, workspace, ns_env, tiny_sd_dir):
    result = checked(
        run(
            edit_command(
                workspace,
                method="dds-edit",
                timestamp="dds",
                model=tiny_sd_dir,
                load_dir=source_run / "nerfstudio_models",
                extra=["--max-num-iterations", "2", "--pipeline.source-latents-from", "dataset"],
            ),
            ns_env,
        )
    )
    assert "Stored 6 source latents of shape (4, 16, 16) (dataset)" in result.stdout
    run_dir = workspace / "out" / "scene" / "dds-edit" / "dds"
    assert _checkpoints(run_dir) == ["step-000000001.ckpt"], result.stdout[-2000:]
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(glob.glob(str(run_dir / "events.out.tfevents.*"))[0])
    events.Reload()
    assert "Train Metrics Dict/ids/fpr_distance_before" not in events.Tags()["scalars"]  # no FPR in DDS
