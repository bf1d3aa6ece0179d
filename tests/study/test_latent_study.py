import torch
from PIL import Image

from ids_nerf.cli.main import main
from ids_nerf.study.latent_study import settings


def test_grid_lists_dds_once_per_cfg():
    grid = settings([0, 1, 3], [0.01, 1.0], [1.0, 7.5], ["full", "identity"])
    assert len(grid) == 2 * (1 + 2 * 2 * 2)
    assert [s.method for s in grid[:5]] == ["DDS", "IDS", "IDS", "IDS", "IDS"]
    assert [s.method for s in grid[5:9]] == ["IDS, J = I"] * 4


def test_study_command_writes_the_report(tmp_path):
    out = tmp_path / "results.md"
    code = main(
        [
            "study",
            "--out",
            str(out),
            "--seeds",
            "2",
            "--views",
            "2",
            "--steps",
            "3",
            "--fpr-steps",
            "0",
            "1",
            "--fpr-scales",
            "0.1",
            "--guidance-scales",
            "7.5",
            "--fpr-jacobians",
            "full",
            "identity",
        ]
    )
    assert code == 0
    text = out.read_text()
    assert "| DDS | 0 | - | 7.5 |" in text and "| IDS | 1 | 0.1 | 7.5 |" in text
    assert "| IDS, J = I | 1 | 0.1 | 7.5 |" in text
    assert "± " in text and "IDS beats DDS on both in" in text and "Jacobian-free FPR" in text
    assert "ids-nerf study" in text


def test_the_study_edits_the_striped_box_when_asked(tmp_path):
    out = tmp_path / "results.md"
    args = ["study", "--out", str(out), "--seeds", "1", "--views", "2", "--steps", "2", "--fpr-steps", "0", "1"]
    args += ["--fpr-scales", "0.1", "--guidance-scales", "7.5", "--fpr-jacobians", "full"]
    assert main([*args, "--target-appearance", "striped-box"]) == 0
    text = out.read_text()
    assert "paints yellow stripes on the green box" in text and "inside the mask of the box" in text
    assert "| DDS | 0 | - | 7.5 |" in text
    assert main([*args, "--target-appearance", "plaid"]) == 2


def test_the_cube_edit_is_judged_on_the_union_of_the_masks(tmp_path):
    from ids_nerf.scenes.edit_scene import read_masks, write_edit_scene
    from ids_nerf.study.latent_study import StudyScene

    scene = write_edit_scene(tmp_path / "scene", size=16, views=4, seed=0, appearances=["cube"])
    data = StudyScene.load(scene, 4, "cube")
    ball = torch.from_numpy(read_masks(scene)[:4] == 2)
    assert data.target_prompt == "a red cube and a green box on a table"
    assert (data.edited_object & ~ball).any() and not (ball & ~data.edited_object).any()
    out = tmp_path / "results.md"
    args = ["study", "--out", str(out), "--scene", str(scene), "--seeds", "1", "--views", "2", "--steps", "2"]
    args += ["--fpr-steps", "0", "--fpr-scales", "0.1", "--guidance-scales", "7.5", "--fpr-jacobians", "full"]
    figure = tmp_path / "cube.png"
    assert main([*args, "--target-appearance", "cube", "--figure", str(figure)]) == 0
    assert "turns the red ball into a red cube" in out.read_text() and f"--figure {figure}" in out.read_text()
    with Image.open(figure) as image:  # 2 views; rows: source, target, DDS (--fpr-steps 0 alone)
        assert image.width > 2 * 96 and 3 * 96 < image.height < 4 * 96


def test_the_study_runs_with_the_learned_model(tmp_path, tiny_learned_dir):
    out = tmp_path / "results.md"
    args = ["study", "--out", str(out), "--seeds", "1", "--views", "2", "--steps", "2", "--fpr-steps", "0", "1"]
    args += ["--fpr-scales", "0.1", "--guidance-scales", "7.5", "--fpr-jacobians", "full"]
    assert main([*args, "--model", f"learned:{tiny_learned_dir}"]) == 0
    text = out.read_text()
    assert text.startswith("# Results: IDS against DDS with the learned score model")
    assert f"--model learned:{tiny_learned_dir}" in text  # the regenerate line names the model
    assert "| DDS | 0 | - | 7.5 |" in text and "| IDS | 1 | 0.1 | 7.5 |" in text
    assert main([*args, "--model", f"learned:{tmp_path / 'none'}"]) == 2  # one line, no traceback
