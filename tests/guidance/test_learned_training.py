"""Which captions a training step sees (``CaptionDraw``): whole, cut to one object, or dropped."""

import pytest
import torch

from ids_nerf.errors import UserError
from ids_nerf.guidance.learned_training import CaptionDraw, TrainingSettings

WHOLE, BALL, BOX, NULL = 1, 2, 3, 9  # one word id per kind of caption, so each row says which it is


def _draw(dropout: float, single: float, n: int = 4000) -> torch.Tensor:
    views = 10
    draw = CaptionDraw(
        TrainingSettings(caption_dropout=dropout, single_object_captions=single),
        torch.full((views, 3), WHOLE),
        [torch.full((views, 3), BALL), torch.full((views, 3), BOX)],
        torch.full((1, 3), NULL),
    )
    g = torch.Generator().manual_seed(0)
    return draw(torch.randint(views, (n,), generator=g), g)[:, 0]


def test_without_halves_captions_are_whole_or_dropped_and_use_one_draw_per_row():
    kinds = _draw(0.15, 0.0)
    assert set(kinds.tolist()) == {WHOLE, NULL}
    assert abs((kinds == NULL).float().mean() - 0.15) < 0.02
    # the generator advances exactly as before halves existed: learned:default's run repeats bit for bit
    g = torch.Generator().manual_seed(0)
    torch.randint(10, (4000,), generator=g)  # the rows
    expected = torch.where(torch.rand(4000, generator=g) < 0.15, NULL, WHOLE)
    assert torch.equal(kinds, expected)


def test_halves_take_their_share_of_the_kept_captions_evenly_between_the_objects():
    kinds = _draw(0.2, 0.5)
    share = {k: (kinds == k).float().mean().item() for k in (WHOLE, BALL, BOX, NULL)}
    assert abs(share[NULL] - 0.2) < 0.02
    assert abs(share[WHOLE] - 0.8 * 0.5) < 0.03
    assert abs(share[BALL] - 0.8 * 0.25) < 0.03 and abs(share[BOX] - 0.8 * 0.25) < 0.03
    assert set(_draw(0.0, 1.0).tolist()) == {BALL, BOX}


def test_a_share_outside_0_to_1_is_refused_in_one_line():
    with pytest.raises(UserError, match=r"--single-object-captions must be in \[0, 1\], not 1.5"):
        TrainingSettings(single_object_captions=1.5).check()


def test_a_cube_share_outside_0_to_1_is_refused_in_one_line():
    with pytest.raises(UserError, match=r"--cube-share must be in \[0, 1\], not -0.1"):
        TrainingSettings(cube_share=-0.1).check()


def test_a_model_trained_with_cubes_knows_the_word_and_one_without_refuses_it(tmp_path, tiny_learned_dir):
    import json

    from ids_nerf.cli.main import main
    from ids_nerf.guidance.loading import load_guidance
    from tests.learned_model import tiny_args

    out = tmp_path / "cubes"
    assert main(tiny_args(out, 2, "--cube-share", "0.5")) == 0
    captions = json.loads((out / "training-set" / "captions.json").read_text())["captions"]
    assert any(" cube and " in c for c in captions) and any(" ball and " in c for c in captions)
    prompt = "a red cube and a green box on a table"
    assert torch.isfinite(load_guidance(f"learned:{out}").embed_prompt(prompt)).all()
    with pytest.raises(UserError, match="cube"):
        load_guidance(f"learned:{tiny_learned_dir}").embed_prompt(prompt)
