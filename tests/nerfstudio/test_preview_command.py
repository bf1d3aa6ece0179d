"""``ids-nerf preview`` on a real nerfacto source run: renders its training views, edits them in 2D."""

import dataclasses
import json

from PIL import Image

from ids_nerf.cli.main import main
from ids_nerf.cli.preview import PreviewPipeline


def test_preview_settings_are_ns_trains_own():
    from ids_nerf.nerfstudio.pipeline import IDSEditPipelineConfig

    edit = {f.name: f for f in dataclasses.fields(IDSEditPipelineConfig)}
    for f in dataclasses.fields(PreviewPipeline):
        assert f.name in edit, f"--pipeline.{f.name} is not an ns-train ids-edit flag"
        assert f.default == edit[f.name].default, f.name
        assert f.type == edit[f.name].type, f.name


def _args(source_run, tiny_sd_dir, out, *extra):
    return [
        "preview",
        "--load-config",
        str(source_run / "config.yml"),
        "--pipeline.source-prompt",
        "a red ball",
        "--pipeline.target-prompt",
        "a blue ball",
        "--pipeline.diffusion-model",
        str(tiny_sd_dir),
        "--out",
        str(out),
        *extra,
    ]


def test_preview_writes_a_labeled_strip_and_the_numbers(source_run, ns_env, tiny_sd_dir, tiny_clip_dir, tmp_path):
    out = tmp_path / "preview"
    extra = ("--views", "3", "--steps", "3", "--clip-model", str(tiny_clip_dir))
    assert main(_args(source_run, tiny_sd_dir, out, *extra)) == 0
    assert sorted(p.name for p in out.iterdir()) == ["preview.json", "preview.png"]
    summary = json.loads((out / "preview.json").read_text())
    assert summary["views"] == [0, 2, 5]  # spread over the fixture's 6 training views
    assert len(summary["per_view"]) == 3
    for numbers in summary["per_view"]:
        assert numbers["ids_fpr_distance_after"] <= numbers["ids_fpr_distance_before"] + 1e-4
    assert -1 <= summary["ids_clip_directional"] <= 1 and -1 <= summary["dds_clip_text_image"] <= 1
    width, height = Image.open(out / "preview.png").size
    assert height > 3 * 256 and width > 3 * 256  # three rows and three columns of readable tiles


def test_preview_refuses_a_missing_run_and_empty_prompts(tmp_path, capsys):
    assert main(["preview", "--load-config", str(tmp_path / "none.yml"), "--pipeline.source-prompt", "a"]) == 2
    assert "does not exist" in capsys.readouterr().err
    config = tmp_path / "config.yml"
    config.write_text("")
    assert main(["preview", "--load-config", str(config), "--pipeline.source-prompt", "a"]) == 2
    assert "must not be empty" in capsys.readouterr().err
    assert not (tmp_path / "outputs").exists()
