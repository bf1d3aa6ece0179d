"""The diffusion half's memory, counted on fake tensors, against the same step run for real."""

import pytest
import torch

from ids_nerf.guidance import load_stable_diffusion
from ids_nerf.guidance.memory import LiveBytes, diffusion_step, estimate_diffusion_memory


def test_live_bytes_counts_new_storages_while_alive_and_keeps_the_peak():
    outside = torch.zeros(10)
    with LiveBytes() as live:
        a = torch.empty(1000)  # 4000 bytes
        view = a[:10]
        outside.add_(1)  # in place into a storage made before: nothing new
        b = torch.empty(500, dtype=torch.float16)  # 1000 bytes
        assert live.current == 5000
        del a
        assert live.current == 5000  # the view still holds a's storage
        del view
        assert live.current == 1000
        del b
    assert live.current == 0
    assert live.peak == 5000


@pytest.mark.parametrize("size, fpr_steps", [(32, 3), (64, 3), (64, 0)])
def test_estimate_equals_the_real_step_on_the_cpu(tiny_sd_dir, size, fpr_steps):
    estimate = estimate_diffusion_memory(str(tiny_sd_dir), "fp32", (size, size), size, fpr_steps)
    guidance = load_stable_diffusion(str(tiny_sd_dir), "fp32", "cpu")
    for prompt in ("", "source", "target"):
        guidance.embed_prompt(prompt)
    image = torch.rand(1, 3, size, size)
    with torch.no_grad():
        z_src = guidance.encode(image)
    with LiveBytes() as live:
        diffusion_step(guidance, image, z_src, fpr_steps, 1.0, "full")
    assert estimate.step_activations == live.peak > 0
    assert estimate.weights == sum(p.numel() * 4 for m in (guidance.unet, guidance.vae) for p in m.parameters())
    assert estimate.text_encoder == sum(p.numel() * 4 for p in guidance.text_encoder.parameters())
    assert estimate.latent_bytes == z_src.numel() * 4


def test_estimate_follows_precision_size_and_fpr(tiny_sd_dir):
    model = str(tiny_sd_dir)
    base = estimate_diffusion_memory(model, "fp32", (32, 32), None, 3)  # None: the tiny model's native 32
    assert base == estimate_diffusion_memory(model, "fp32", (32, 32), 32, 3)
    half = estimate_diffusion_memory(model, "fp16", (32, 32), None, 3)
    assert half.weights * 2 == base.weights and half.text_encoder * 2 == base.text_encoder
    larger = estimate_diffusion_memory(model, "fp32", (32, 32), 64, 3)  # 4x the pixels
    assert 3 * base.step_activations < larger.step_activations < 5 * base.step_activations
    assert estimate_diffusion_memory(model, "fp32", (32, 32), None, 0).step_activations < base.step_activations
    wide = estimate_diffusion_memory(model, "fp32", (32, 64), None, 3)  # aspect kept: short side 32
    assert wide.latent_bytes == 2 * base.latent_bytes


def test_exact_score_model_is_counted_as_nothing():
    assert estimate_diffusion_memory("exact:/some/scene", "fp32", (32, 32), None, 3).peak == 0
