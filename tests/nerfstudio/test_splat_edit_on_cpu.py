"""ids-edit-splat end to end on the CPU: the real ns-train, ids-nerf eval and ns-render commands, with
gsplat's CUDA rasterizer swapped for the dense stand-in of ``ids_nerf.testing.gsplat_cpu``
(``ids_nerf.testing.ns_run``).

A splatfacto source is trained on the synthetic edit scene, edited towards the blue ball with the
scene's exact-score model, and measured against the ground truth. The guidance's copy of the scene is
deleted after the edit: evaluation and rendering must not need it.
"""

import json
import shutil
import subprocess

import pytest
import torch

from ids_nerf.methods import SMALL_SPLATFACTO
from ids_nerf.nerfstudio.checkpoints import load_checkpoint
from ids_nerf.scenes.edit_scene import write_edit_scene
from ids_nerf.testing.ns_commands import NS_RUN, splat_edit_args, synthetic_train_command
from tests.nerfstudio.viewer_check import assert_viewer_shows_the_run

pytestmark = pytest.mark.slow
SOURCE_STEPS = 500
EDIT_STEPS = 80
# the stand-in rasterizer has no absgrad (the per-pixel gradient sum of gsplat's own backward pass)
SOURCE_SPLAT = [*SMALL_SPLATFACTO, "--pipeline.model.use-absgrad", "False"]


def _edit(root, scene, load_dir, guidance_scene, timestamp, steps):
    return synthetic_train_command(
        root,
        scene,
        "ids-edit-splat",
        timestamp,
        steps,
        *splat_edit_args(scene, load_dir, guidance_scene, colour_lr=0.05),
    )


def _checked(command, env, timeout=600):
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def splat_edit(tmp_path_factory, ns_env):
    root = tmp_path_factory.mktemp("splat-cpu")
    scene = write_edit_scene(root / "scene", size=32, views=12, seed=0)
    guidance_scene = root / "scene-for-guidance"
    shutil.copytree(scene, guidance_scene)
    _checked(synthetic_train_command(root, scene, "splatfacto", "src", SOURCE_STEPS, *SOURCE_SPLAT), ns_env)
    source = root / "out" / "scene" / "splatfacto" / "src"
    edit = _checked(_edit(root, scene, source / "nerfstudio_models", guidance_scene, "edit", EDIT_STEPS), ns_env)
    shutil.rmtree(guidance_scene)  # from here on, nothing may need the diffusion model
    return {
        "log": edit.stdout,
        "root": root,
        "scene": scene,
        "source": source,
        "edited": root / "out" / "scene" / "ids-edit-splat" / "edit",
    }


def test_splat_edit_moves_the_ball_to_the_target_and_keeps_the_rest(splat_edit, ns_env):
    out = splat_edit["root"] / "eval"
    _checked(
        [
            *NS_RUN,
            "ids-nerf",
            "eval",
            "--source",
            str(splat_edit["source"] / "config.yml"),
            "--edited",
            str(splat_edit["edited"] / "config.yml"),
            "--out",
            str(out),
            "--scene",
            str(splat_edit["scene"]),
            "--target-appearance",
            "edited",
        ],
        ns_env,
    )
    metrics = json.loads((out / "metrics.json").read_text())["metrics"]
    print(json.dumps(metrics, indent=1))
    # the ball changes colour towards the ground-truth blue (measured: 8.8 -> 12.4 dB in the ball,
    # 18.3 -> 19.9 dB in the whole view) ...
    assert metrics["psnr_edited_to_target_object"] > metrics["psnr_source_to_target_object"] + 2.5
    assert metrics["psnr_edited_to_target"] > metrics["psnr_source_to_target"] + 1.0
    # ... while the silhouette and what lies outside the ball stay close to the source (0.975, 27.2 dB)
    assert metrics["mask_iou"] > 0.9
    assert metrics["background_psnr"] > 24.0


def test_the_splat_edit_printed_its_memory_plan_with_the_measured_render(splat_edit):
    """The exact-score model has no weights: the plan's transient is the measured render of a whole view."""
    lines = [line for line in splat_edit["log"].splitlines() if line.startswith("Memory plan: cpu: ")]
    assert len(lines) == 1, splat_edit["log"][-3000:]
    assert "diffusion weights" not in lines[0] and "text encoder or step" in lines[0]
    step = lines[0].split("text encoder or step ")[1].split(",")[0]  # e.g. "1.2 MiB"
    assert float(step.split()[0]) > 0 and step.split()[1] in ("KiB", "MiB", "GiB")


def test_an_edited_splat_run_opens_in_ns_eval_render_export_without_the_diffusion_model(splat_edit, ns_env, tmp_path):
    config = str(splat_edit["edited"] / "config.yml")
    _checked([*NS_RUN, "ns-eval", "--load-config", config, "--output-path", str(tmp_path / "eval.json")], ns_env)
    assert 10 < json.loads((tmp_path / "eval.json").read_text())["results"]["psnr"] < 100
    _checked(
        [
            *NS_RUN,
            "ns-render",
            "dataset",
            "--load-config",
            config,
            "--output-path",
            str(tmp_path / "renders"),
            "--split",
            "test",
            "--rendered-output-names",
            "rgb",
        ],
        ns_env,
    )
    assert len(list((tmp_path / "renders").rglob("*.jpg"))) == 2
    _checked(
        [*NS_RUN, "ns-export", "gaussian-splat", "--load-config", config, "--output-dir", str(tmp_path / "export")],
        ns_env,
    )
    assert (tmp_path / "export" / "splat.ply").stat().st_size > 0


def test_a_splat_edit_resumes_from_its_own_checkpoint(splat_edit, ns_env):
    root, scene, edited = splat_edit["root"], splat_edit["scene"], splat_edit["edited"]
    result = _checked(_edit(root, scene, edited / "nerfstudio_models", scene, "resumed", EDIT_STEPS + 5), ns_env)
    assert f"Resuming the edit from {edited / 'nerfstudio_models'}" in " ".join(result.stdout.split())
    before = load_checkpoint(edited / "nerfstudio_models" / f"step-{EDIT_STEPS - 1:09d}.ckpt")
    after = load_checkpoint(
        root / "out" / "scene" / "ids-edit-splat" / "resumed" / "nerfstudio_models" / f"step-{EDIT_STEPS + 4:09d}.ckpt"
    )
    assert torch.equal(before["pipeline"]["source_latents"], after["pipeline"]["source_latents"])
    colours = "_model.gauss_params.features_dc"
    assert before["pipeline"][colours].shape == after["pipeline"][colours].shape  # densification stays off
    assert not torch.equal(before["pipeline"][colours], after["pipeline"][colours])  # and the edit goes on


def test_the_viewer_shows_an_edited_splat_run(chromium, splat_edit, ns_env, tmp_path):
    assert_viewer_shows_the_run(
        [*NS_RUN, "ns-viewer"], splat_edit["edited"] / "config.yml", ns_env, tmp_path / "viewer.png"
    )


def test_a_splat_edit_logs_like_ids_edit(splat_edit):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(splat_edit["edited"]), size_guidance={"images": 0})
    events.Reload()
    scalars = set(events.Tags()["scalars"])
    for name in ("t", "direction_norm", "fpr_distance_before", "fpr_distance_after", "ms_render", "ms_guidance"):
        assert f"Train Metrics Dict/ids/{name}" in scalars, sorted(scalars)
    strip = events.Images("ids/source|render|target_estimate")[0]
    assert (strip.width, strip.height) == (96, 32)  # source | render | target estimate, 32x32 each
