"""The one SGD latent loop (edit-image and the study both run it), checked step by step."""

import torch

from ids_nerf.core import ids_step
from ids_nerf.image_editing.latent_edit import LatentEditSettings, edit_latent


def _inputs(model):
    z_src = model.encode(torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(1)))
    return z_src, model.embed_prompt("source").expand(2), model.embed_prompt("edited").expand(2)


def test_one_step_is_plain_sgd_on_the_ids_direction(exact_model):
    model = exact_model
    z_src, cond_src, cond_trg = _inputs(model)
    settings = LatentEditSettings(steps=1, lr=0.1, fpr_steps=3, fpr_scale=0.5, loss_scale=2000.0)
    z_trg, result = edit_latent(model, z_src, cond_src, cond_trg, settings, torch.Generator().manual_seed(7))

    # the same draws, in the same order: timesteps, then noise
    g = torch.Generator().manual_seed(7)
    t, noise = model.sample_timesteps(2, g), torch.randn(z_src.shape, generator=g)
    expected = ids_step(model.score_fn, z_src, z_src, cond_src, cond_trg, t, noise, model.alphas_cumprod, 3, 0.5)
    torch.testing.assert_close(result.direction, expected.direction)
    torch.testing.assert_close(z_trg, z_src - 0.1 * 2000.0 / 64 * expected.direction)


def test_an_extra_loss_adds_its_gradient_and_on_step_sees_every_step(exact_model):
    model = exact_model
    z_src, cond_src, cond_trg = _inputs(model)
    settings = LatentEditSettings(steps=1, lr=0.1, fpr_steps=0, loss_scale=0.0)  # only the extra loss acts
    seen = []
    z_trg, _ = edit_latent(
        model,
        z_src,
        cond_src,
        cond_trg,
        settings,
        torch.Generator().manual_seed(0),
        extra_loss=lambda z, t, noise: 0.5 * (z**2).sum(),
        on_step=lambda step, z, result: seen.append(step),
    )
    torch.testing.assert_close(z_trg, z_src * 0.9)  # z - lr * z
    assert seen == [1]


def test_a_seed_reproduces_a_run_and_the_source_is_left_alone(exact_model):
    model = exact_model
    z_src, cond_src, cond_trg = _inputs(model)
    before = z_src.clone()
    settings = LatentEditSettings(steps=3, fpr_steps=2)
    a, _ = edit_latent(model, z_src, cond_src, cond_trg, settings, torch.Generator().manual_seed(3))
    b, _ = edit_latent(model, z_src, cond_src, cond_trg, settings, torch.Generator().manual_seed(3))
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not torch.equal(a, z_src)
    torch.testing.assert_close(z_src, before, rtol=0, atol=0)
