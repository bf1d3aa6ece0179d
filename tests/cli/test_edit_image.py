import json
import subprocess
import sys

import pytest
from PIL import Image

from ids_nerf.cli.main import main


def _args(ball_image, tiny_sd_dir, out, *extra):
    return [
        "edit-image",
        "--image",
        str(ball_image),
        "--source-prompt",
        "a red ball",
        "--target-prompt",
        "a blue ball",
        "--model",
        str(tiny_sd_dir),
        "--out",
        str(out),
        *extra,
    ]


@pytest.mark.parametrize("method", ["ids", "dds", "cds"])
def test_edit_image_end_to_end(ball_image, tiny_sd_dir, tmp_path, method):
    out = tmp_path / method
    assert main(_args(ball_image, tiny_sd_dir, out, "--method", method, "--steps", "4", "--save-every", "2")) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == ["comparison.png", "edit.json", "result.png", "source.png", "step_0002.png", "step_0004.png"]
    assert Image.open(out / "result.png").size == (32, 32)
    assert Image.open(out / "comparison.png").size == (64, 32)
    summary = json.loads((out / "edit.json").read_text())
    assert summary["settings"]["method"] == method
    assert summary["latent_change_l2"] > 0  # the latent moved
    assert not list(tmp_path.glob(".*partial*"))


def test_fpr_zero_ids_run_equals_dds_run(ball_image, tiny_sd_dir, tmp_path):
    main(_args(ball_image, tiny_sd_dir, tmp_path / "a", "--steps", "3", "--fpr-steps", "0"))
    main(_args(ball_image, tiny_sd_dir, tmp_path / "b", "--steps", "3", "--method", "dds"))
    a = json.loads((tmp_path / "a" / "edit.json").read_text())["latent_change_l2"]
    b = json.loads((tmp_path / "b" / "edit.json").read_text())["latent_change_l2"]
    assert a == b


BAD_INPUTS = {
    "missing image": (["--image", "{tmp}/nope.png"], "does not exist"),
    "unreadable image": (["--image", "{tmp}/not-an-image.png"], "cannot be read"),
    "empty prompt": (["--target-prompt", "  "], "--target-prompt is empty"),
    "unknown method": (["--method", "sds2"], "unknown method 'sds2'"),
    "model offline": (["--model", "nobody/absent-model"], "nobody/absent-model"),
    "existing output": (["--out", "{tmp}/taken"], "already exists"),
}


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_bad_input_one_line_nonzero_nothing_overwritten(case, ball_image, tiny_sd_dir, tmp_path):
    (tmp_path / "not-an-image.png").write_text("hello")
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "keep.txt").write_text("precious")
    extra, expected = BAD_INPUTS[case]
    args = _args(ball_image, tiny_sd_dir, tmp_path / "out") + [a.format(tmp=tmp_path) for a in extra]
    result = subprocess.run([sys.executable, "-m", "ids_nerf.cli", *args], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == [lines[-1]] and lines[-1].startswith("ids-nerf: error:") and expected in lines[-1], result.stderr
    assert not (tmp_path / "out").exists()
    assert (tmp_path / "taken" / "keep.txt").read_text() == "precious"
    assert sorted(p.name for p in (tmp_path / "taken").iterdir()) == ["keep.txt"]


def test_make_tiny_sd_refuses_a_non_empty_folder(tmp_path):
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "x").write_text("keep")
    assert main(["make-tiny-sd", str(tmp_path / "model")]) == 2
    assert (tmp_path / "model" / "x").read_text() == "keep"


def test_edit_image_takes_the_exact_score_model_like_the_3d_methods(tmp_path):
    """``--model exact:SCENE`` goes through load_guidance, as ns-train ids-edit's --pipeline.diffusion-model."""
    from ids_nerf.scenes.edit_scene import read_scene_info, write_edit_scene

    scene = write_edit_scene(tmp_path / "scene", size=16, views=4)
    captions = read_scene_info(scene)["appearances"]
    image = sorted((scene / "appearances" / "source").rglob("*.png"))[0]
    out = tmp_path / "edit"
    args = [
        "edit-image",
        "--image",
        str(image),
        "--source-prompt",
        captions["source"],
        "--target-prompt",
        captions["edited"],
        "--model",
        f"exact:{scene}",
        "--out",
        str(out),
        "--steps",
        "3",
        "--fpr-scale",
        "0.1",
    ]
    assert main(args) == 0
    assert Image.open(out / "result.png").size == (16, 16)
    assert json.loads((out / "edit.json").read_text())["latent_change_l2"] > 0
    assert main([*args[:-6], "--out", str(tmp_path / "cds"), "--method", "cds"]) == 2  # CUT needs a UNet
