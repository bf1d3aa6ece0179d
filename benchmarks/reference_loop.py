"""The official implementation's per-step work done the straightforward way, for comparison:
one UNet call per CFG branch and per latent (no batching), eager mode. Written for this benchmark."""

from __future__ import annotations

import torch

from ids_nerf.core import add_noise, classifier_free_guidance, guided_noise, tweedie_z0


def unbatched_eps(guidance, z_t, t, cond, uncond):
    unet = guidance.unet
    x = z_t.to(guidance.dtype)
    eps_u = unet(x, t, encoder_hidden_states=uncond).sample
    eps_c = unet(x, t, encoder_hidden_states=cond).sample
    return classifier_free_guidance(eps_u, eps_c, guidance.guidance_scale).to(z_t.dtype)


def reference_ids_step(guidance, z_src, z_trg, cond_src, cond_trg, t, noise, fpr_steps=3, fpr_scale=1.0):
    uncond = guidance.embed_prompt("")
    ac = guidance.alphas_cumprod
    z_t = add_noise(z_src, noise, t, ac)
    for _ in range(fpr_steps):
        z_t = z_t.detach().requires_grad_(True)
        z0 = tweedie_z0(z_t, unbatched_eps(guidance, z_t, t, cond_src, uncond), t, ac)
        (z_src - z0).norm().backward(inputs=[z_t])
        z_t = z_t - fpr_scale * z_t.grad
    z_t = z_t.detach()
    z_t_trg = add_noise(z_trg, guided_noise(z_t, z_src, t, ac), t, ac) if fpr_steps else add_noise(z_trg, noise, t, ac)
    with torch.no_grad():
        eps_src = unbatched_eps(guidance, z_t, t, cond_src, uncond)
        eps_trg = unbatched_eps(guidance, z_t_trg, t, cond_trg, uncond)
    return eps_trg - eps_src
