"""``ids-nerf eval`` and ``ids-nerf demo`` end to end, and their refusals."""

import json

import pytest
import torch

from ids_nerf.scenes.edit_scene import write_edit_scene
from tests.nerfstudio.conftest import BIN, checked, run

pytestmark = pytest.mark.slow


def _eval(source_run, edit_run, out, *extra):
    return [
        str(BIN / "ids-nerf"),
        "eval",
        "--source",
        str(source_run / "config.yml"),
        "--edited",
        str(edit_run / "config.yml"),
        "--out",
        str(out),
        *extra,
    ]


@pytest.fixture(scope="module")
def other_scene(tmp_path_factory):
    return write_edit_scene(tmp_path_factory.mktemp("other") / "scene", size=16, views=4, seed=1)


def test_eval_refuses_a_scene_missing_files(source_run, edit_run, ns_env, tmp_path):
    (tmp_path / "half").mkdir()
    result = run(
        _eval(
            source_run, edit_run, tmp_path / "out", "--scene", str(tmp_path / "half"), "--target-appearance", "edited"
        ),
        ns_env,
    )
    assert result.returncode == 2 and "is missing scene.json" in result.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "out").exists()


def test_eval_refuses_an_unknown_appearance(source_run, edit_run, ns_env, tmp_path, other_scene):
    result = run(
        _eval(source_run, edit_run, tmp_path / "out", "--scene", str(other_scene), "--target-appearance", "purple"),
        ns_env,
    )
    assert result.returncode == 2 and "no appearance 'purple'" in result.stderr.strip().splitlines()[-1]


def test_eval_refuses_runs_of_another_scene(source_run, edit_run, ns_env, tmp_path, other_scene):
    result = run(
        _eval(source_run, edit_run, tmp_path / "out", "--scene", str(other_scene), "--target-appearance", "edited"),
        ns_env,
    )
    assert result.returncode == 2 and "not on scene" in result.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "out").exists()


def test_demo_on_its_smallest_setting(ns_env, tmp_path):
    out = tmp_path / "demo"
    result = checked(
        run(
            [
                str(BIN / "ids-nerf"),
                "demo",
                "--out",
                str(out),
                "--size",
                "16",
                "--views",
                "4",
                "--source-steps",
                "5",
                "--source-rays",
                "256",
                "--edit-steps",
                "2",
            ],
            ns_env,
            timeout=1200,  # five stages, three ns-train start-ups; slow on a loaded 2-core machine
        )
    )
    assert "| psnr_edited_to_target |" in result.stdout and "ns-viewer --load-config" in result.stdout
    # a console for a person: numbered stages, what to open, no third-party deprecations
    stages = ("[1/5] scene", "[2/5] source nerfacto: done", "[3/5] edit with ids-edit: done", "[4/5] evaluation")
    for stage in (*stages, "[5/5] oracle: the source fitted to the ground-truth edited views, as the edit runs: done"):
        assert stage in result.stdout, result.stdout[-3000:]
    assert "| region metric (test views) | edit | oracle | edit - oracle |" in result.stdout
    assert any("grid.png" in line for line in result.stdout.splitlines()[-6:])  # among "Open:" and what follows
    for noise in ("Using a non-tuple sequence", "torch.jit.script", "custom_fwd", "This DataLoader will create"):
        assert noise not in result.stdout + result.stderr, noise
    source_log = (out / "runs" / "demo" / "source.log").read_text()
    assert "Using a non-tuple sequence" in source_log  # kept in the run's log for whoever needs it
    runs = list((out / "runs" / "demo" / "ids-edit").iterdir())
    assert len(runs) == 1, runs  # the oracle's run has a folder of its own
    assert len(list((out / "runs" / "demo-oracle" / "ids-edit").iterdir())) == 1
    from PIL import Image

    assert Image.open(runs[0] / "eval" / "grid.png").width >= 4 * 192  # upscaled, four labeled columns
    metrics = json.loads((runs[0] / "eval" / "metrics.json").read_text())["metrics"]
    for key in (
        "psnr_edited_to_target",
        "psnr_source_to_target",
        "background_psnr",
        "mask_iou",
        "ssim_edited_to_target",
    ):
        assert key in metrics
    config = (runs[0] / "config.yml").read_text()
    assert "exact:" in config  # edited with the scene's exact-score model
    oracle_rows = [
        line for line in (runs[0] / "eval" / "oracle.md").read_text().splitlines() if "target_psnr_ball" in line
    ]
    assert len(oracle_rows) == 1 and len(oracle_rows[0].split(" | ")) == 4  # metric, edit, oracle, difference


def test_eval_without_ground_truth_with_clip(source_run, edit_run, ns_env, tmp_path, tiny_clip_dir):
    out = tmp_path / "out"
    result = checked(
        run(
            _eval(
                source_run,
                edit_run,
                out,
                "--source-prompt",
                "a red ball",
                "--target-prompt",
                "a blue ball",
                "--clip-model",
                str(tiny_clip_dir),
            ),
            ns_env,
        )
    )
    report = json.loads((out / "metrics.json").read_text())
    for key in (
        "mask_iou",
        "depth_error_objects_median",
        "psnr_edited_to_source",
        "clip_text_image",
        "clip_directional",
    ):
        assert key in report["metrics"], key
    assert -1 <= report["metrics"]["clip_directional"] <= 1
    assert "| clip_directional |" in result.stdout
    assert sorted(p.name for p in out.iterdir()) == ["grid.png", "metrics.json", "metrics.md"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="the refusal is for machines without CUDA")
def test_demo_refuses_a_splat_edit_without_cuda(ns_env, tmp_path):
    out = tmp_path / "demo"
    result = run([str(BIN / "ids-nerf"), "demo", "--out", str(out), "--method", "ids-edit-splat"], ns_env)
    assert result.returncode == 2
    assert "ids-edit-splat needs a CUDA device" in result.stderr.strip().splitlines()[-1]
    assert not out.exists()
