"""The 2D preview's IDS and DDS columns, with the exact-score model."""

import math

import torch

from ids_nerf.image_editing.latent_edit import LatentEditSettings
from ids_nerf.image_editing.preview import preview_views


def test_preview_runs_ids_and_dds_from_the_same_draws_at_the_diffusion_size(exact_model):
    model = exact_model
    renders = [model.decode(model.sets[0][i : i + 1])[0] for i in range(2)]  # two source views, 8x8
    renders = [torch.nn.functional.interpolate(r[None], size=(16, 16))[0] for r in renders]  # a larger camera
    settings = LatentEditSettings(steps=5, lr=0.1, fpr_steps=3, fpr_scale=0.5)
    previews = preview_views(model, renders, "source", "edited", settings, seed=0)
    assert len(previews) == 2
    for p in previews:
        assert p.source.shape == p.ids.shape == p.dds.shape == (3, 8, 8)  # the model's native size
        n = p.numbers
        assert n["ids_fpr_distance_after"] <= n["ids_fpr_distance_before"] + 1e-6  # FPR pulls towards the source
        assert math.isfinite(n["ids_psnr_to_source"]) and math.isfinite(n["dds_psnr_to_source"])
        assert not torch.equal(p.ids, p.dds)  # FPR changed the steps
        assert not torch.equal(p.ids, p.source)  # and the edit moved the view


def test_preview_with_one_fpr_step_of_size_zero_is_dds(exact_model):
    model = exact_model
    render = model.decode(model.sets[0][:1])[0]
    settings = LatentEditSettings(steps=3, fpr_steps=1, fpr_scale=0.0)
    (p,) = preview_views(model, [render], "source", "edited", settings, seed=4)
    torch.testing.assert_close(p.ids, p.dds)
