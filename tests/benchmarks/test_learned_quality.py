"""The learned model's quality probe: its sampler, loss and colour reader checked where the answer is known
(the exact-score model, the scene's own ground truth), then the whole probe on a model trained in seconds."""

import numpy as np
import pytest
import torch
from PIL import Image

from benchmarks.learned_quality import (
    caption_colours,
    ddim_scheduler,
    loss_by_timestep,
    main,
    object_colour,
    redness,
    sample,
    shape_following,
    word_order_sensitivity,
)
from ids_nerf.core import sd_alphas_cumprod
from ids_nerf.guidance.exact import ExactScoreGuidance, PixelCodec
from ids_nerf.images import read_rgb_on_white
from ids_nerf.scenes.edit_scene import (
    DEFAULT_APPEARANCES,
    appearance_images,
    appearance_masks,
    mask_images,
    read_masks,
    write_edit_scene,
)


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    appearances = [*DEFAULT_APPEARANCES, "cube"]
    return write_edit_scene(tmp_path_factory.mktemp("quality") / "scene", size=16, views=8, appearances=appearances)


def _views(n=4, size=8, seed=0):
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def test_the_sampler_runs_on_the_schedule_every_model_shares():
    assert torch.allclose(ddim_scheduler(50).alphas_cumprod, sd_alphas_cumprod().float(), rtol=1e-5)


def test_sampling_the_exact_model_from_noise_lands_on_one_of_its_images():
    images = _views()
    model = ExactScoreGuidance({"c": PixelCodec().encode(images)}, PixelCodec(), 8, guidance_scale=1.0)
    out = sample(model, "c", torch.zeros(3, 3, 8, 8), steps=50, seed=0)
    nearest = torch.cdist(out.flatten(1), images.flatten(1)).min(1).values
    assert nearest.max() < 0.05 * images[0].norm()  # close to a training image, not a blend of them
    sdedit = sample(model, "c", PixelCodec().encode(images[:1]), t_start=200, steps=50)
    assert torch.allclose(sdedit, images[:1], atol=1e-2)  # at t = 200 the exact posterior is the view itself


def test_the_exact_model_predicts_the_noise_of_its_own_images_at_small_t():
    images = _views()
    model = ExactScoreGuidance({"c": PixelCodec().encode(images)}, PixelCodec(), 8, guidance_scale=1.0)
    losses = loss_by_timestep(model, images, ["c"] * len(images), timesteps=(20, 980))
    assert losses[20] < 1e-4 and losses[980] > losses[20]


def test_the_colour_reader_names_the_ground_truth_colours(scene):
    masks = [torch.from_numpy(np.array(Image.open(p))) for p in mask_images(scene)]
    for appearance, ball in (("source", "red"), ("edited", "blue")):
        for path, mask in zip(appearance_images(scene, appearance), masks):
            image = read_rgb_on_white(path)
            if (mask == 2).sum() >= 4:
                assert object_colour(image, mask == 2) == ball
            if (mask == 3).sum() >= 4:
                assert object_colour(image, mask == 3) == "green"
    assert caption_colours("a yellow ball and a purple box on a table") == {"ball": "yellow", "box": "purple"}


def test_the_probe_prints_its_tables_and_writes_the_figure(scene, tiny_learned_dir, tmp_path, capsys):
    main(["--scene", str(scene), "--model", f"learned:{tiny_learned_dir}", "--held-out", "2", "--noises", "1",
          "--out", str(tmp_path), "--sweep", "2"])  # fmt: skip
    out = capsys.readouterr().out
    # loss, word order, caption following, its sweep, shape following, both models' posterior error
    assert out.count("## ") == 7
    assert "does not know the word cube" in out
    assert "word_order_sensitivity: " in out
    assert "| 7.5, 600 |" in out
    assert "| 980 |" in out and "| a blue ball and a green box on a table |" in out
    assert "| - |" in out  # the learned model has no posterior weights to report
    views = len(mask_images(scene, "test"))
    with Image.open(tmp_path / "samples.png") as figure:
        assert figure.width > 2 * views * 96 and figure.height > 5 * 96  # SDEdit and noise columns; 5 rows


def test_word_order_sensitivity_is_zero_for_an_encoder_blind_to_order_and_grows_with_its_positions():
    from ids_nerf.guidance.captions import CaptionEncoder, CaptionEncoderConfig
    from ids_nerf.scenes.random_scenes import CAPTION_WORDS

    found = {}
    for std in (0.0, 0.02, 1.0):
        torch.manual_seed(0)
        found[std] = word_order_sensitivity(CaptionEncoder(CaptionEncoderConfig(CAPTION_WORDS, position_std=std)))
    assert found[0.0] < 1e-5  # no positions: a permutation of the words permutes the vectors, nothing else
    assert found[0.02] < 0.05 < 0.2 < found[1.0], found


def test_redness_is_high_where_only_the_cube_stands_in_the_cube_appearance_alone(tmp_path):
    scene = write_edit_scene(tmp_path / "scene", size=32, views=16, appearances=["cube"])
    ball, cube = read_masks(scene, "test") == 2, appearance_masks(scene, "cube", "test") == 2
    corners, top = torch.from_numpy(cube & ~ball), torch.from_numpy(ball & ~cube)
    assert corners.sum() > 5 and top.sum() > 5
    for appearance, cube_drawn in (("cube", True), ("source", False)):
        images = torch.stack([read_rgb_on_white(p) for p in appearance_images(scene, appearance, "test")])
        red = redness(images)
        assert (red[corners].mean() > 0.2) == cube_drawn and (red[corners].mean() < 0.05) != cube_drawn
        assert (red[top].mean() > 0.2) != cube_drawn and (red[top].mean() < 0.05) == cube_drawn


def test_shape_following_reads_both_captions_with_a_model_that_knows_cubes(scene, tmp_path):
    from ids_nerf.cli.main import main as ids_nerf
    from ids_nerf.guidance.loading import load_guidance
    from tests.learned_model import tiny_args

    assert ids_nerf(tiny_args(tmp_path / "cubes", 2, "--cube-share", "0.5")) == 0
    model = load_guidance(f"learned:{tmp_path / 'cubes'}", guidance_scale=7.5)
    views = torch.stack([read_rgb_on_white(p) for p in appearance_images(scene, "source", "test")])
    ball = torch.from_numpy(read_masks(scene, "test") == 2)
    cube = torch.from_numpy(appearance_masks(scene, "cube", "test") == 2)
    rows = shape_following(model, views, ball, cube, t_start=400)
    assert [r["caption"].split()[2] for r in rows] == ["ball", "cube"]
    assert all(0 <= r["corners"] <= 1 and 0 <= r["top"] <= 1 for r in rows)
