import pytest
import torch

from ids_nerf.core import classifier_free_guidance, ids_direction
from ids_nerf.errors import ModelUnavailableError
from ids_nerf.guidance import load_stable_diffusion


def test_loaded_model_is_frozen_and_native_size_follows_config(tiny_guidance):
    g = tiny_guidance
    for module in (g.unet, g.vae, g.text_encoder):
        assert not any(p.requires_grad for p in module.parameters())
    assert g.native_size == g.unet.config.sample_size * g.vae_scale_factor == 32
    assert g.alphas_cumprod.shape == (1000,)
    betas = torch.linspace(0.00085**0.5, 0.012**0.5, 1000) ** 2
    torch.testing.assert_close(g.alphas_cumprod, torch.cumprod(1 - betas, 0))


def test_each_part_loads_in_the_asked_precision(tiny_sd_dir):
    # the text encoder's dtype= (transformers >= 4.56, pyproject's pin); older ones leave it in fp32
    g = load_stable_diffusion(str(tiny_sd_dir), precision="bf16")
    assert {name: getattr(g, name).dtype for name in ("unet", "vae", "text_encoder")} == dict.fromkeys(
        ("unet", "vae", "text_encoder"), torch.bfloat16
    )


def test_a_half_precision_unet_is_guided_in_fp32_and_the_vae_can_stay_in_fp32(tiny_sd_dir):
    g = load_stable_diffusion(str(tiny_sd_dir), precision="bf16", vae_precision="fp32")
    assert g.unet.dtype == torch.bfloat16 and g.vae.dtype == torch.float32
    z = torch.randn(1, 4, 16, 16)
    t = torch.tensor([500])
    cond = g.embed_prompt("a red ball")
    with torch.no_grad():
        eps_c = g.unet(z.bfloat16(), t, encoder_hidden_states=cond).sample
        eps_u = g.unet(z.bfloat16(), t, encoder_hidden_states=g.embed_prompt("")).sample
        got = g.score_fn(z, t, cond)
    assert got.dtype == torch.float32
    assert torch.equal(got, classifier_free_guidance(eps_u.float(), eps_c.float(), 7.5))  # combined in fp32
    assert not torch.equal(got, classifier_free_guidance(eps_u, eps_c, 7.5).float())  # not in bf16
    images = torch.rand(1, 3, 32, 32, requires_grad=True)
    g.encode(images).square().sum().backward()
    assert images.grad.dtype == torch.float32 and images.grad.abs().sum() > 0
    assert load_stable_diffusion(str(tiny_sd_dir), precision="bf16").vae.dtype == torch.bfloat16  # same: the UNet's


def test_prompt_embeddings_are_cached(tiny_guidance):
    calls = []
    hook = tiny_guidance.text_encoder.register_forward_hook(lambda *a: calls.append(1))
    try:
        first = tiny_guidance.embed_prompt("a cached prompt")
        second = tiny_guidance.embed_prompt("a cached prompt")
    finally:
        hook.remove()
    assert first is second and len(calls) == 1
    assert first.shape == (1, 77, 32)


def test_score_fn_applies_cfg_with_the_empty_prompt(tiny_guidance):
    g = tiny_guidance
    z = torch.randn(2, 4, 16, 16)
    t = torch.tensor([100, 800])
    cond = g.embed_prompt("a red ball").expand(2, -1, -1)
    with torch.no_grad():
        eps_c = g.unet(z, t, encoder_hidden_states=cond).sample
        eps_u = g.unet(z, t, encoder_hidden_states=g.embed_prompt("").expand(2, -1, -1)).sample
        got = g.score_fn(z, t, cond)
    # score_fn runs both prompts in one batch; the UNet's float32 sums then differ by ~1e-6, which CFG 7.5
    # scales by 8.5 (CI measured 1.3e-5), so the bound is 8.5 times float32's batch noise, not 1e-5
    torch.testing.assert_close(got, classifier_free_guidance(eps_u, eps_c, 7.5), rtol=1e-4, atol=5e-5)


def test_encode_with_and_without_grad(tiny_guidance):
    images = torch.rand(1, 3, 32, 32, requires_grad=True)
    latents = tiny_guidance.encode(images)
    assert latents.shape == (1, 4, 16, 16)
    latents.square().sum().backward()
    assert images.grad is not None and images.grad.abs().sum() > 0
    with torch.no_grad():
        expected = tiny_guidance.vae.encode(images * 2 - 1).latent_dist.mean * tiny_guidance.vae.config.scaling_factor
    torch.testing.assert_close(latents.detach(), expected)
    assert tiny_guidance.decode(latents.detach()).shape == (1, 3, 32, 32)


def test_ids_with_the_real_unet_sends_no_gradient_to_weights(tiny_guidance):
    g = tiny_guidance
    z_src = torch.randn(1, 4, 16, 16)
    z_trg = (z_src + 0.1 * torch.randn_like(z_src)).requires_grad_(True)
    for p in g.unet.parameters():
        p.requires_grad_(True)  # even trainable weights must stay untouched
    try:
        d = ids_direction(
            g.score_fn,
            z_src,
            z_trg,
            g.embed_prompt("a"),
            g.embed_prompt("b"),
            torch.tensor([500]),
            torch.randn_like(z_src),
            g.alphas_cumprod,
        )
        assert all(p.grad is None for p in g.unet.parameters())
    finally:
        g.unet.requires_grad_(False)
    assert d.shape == z_src.shape and torch.isfinite(d).all() and d.abs().sum() > 0


def test_missing_folder_and_unreachable_hub_fail_with_one_line(tmp_path):
    with pytest.raises(ModelUnavailableError, match="does not exist"):
        load_stable_diffusion(str(tmp_path / "missing") + "/")
    with pytest.raises(ModelUnavailableError) as info:
        load_stable_diffusion("nobody/not-a-model")
    message = str(info.value)
    assert "nobody/not-a-model" in message and "download" in message and "local" in message
    assert "\n" not in message
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelUnavailableError, match="not a complete diffusers"):
        load_stable_diffusion(str(tmp_path / "empty"))
