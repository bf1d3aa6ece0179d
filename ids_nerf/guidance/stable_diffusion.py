"""Stable Diffusion as a score model for :mod:`ids_nerf.core`.

The class receives already-built diffusers/transformers parts; loading them lives in
:mod:`ids_nerf.guidance.loading` alone.
"""

from __future__ import annotations

from typing import Dict, Optional

import torch
from jaxtyping import Float
from torch import Tensor

from ids_nerf.core import classifier_free_guidance, sample_timesteps
from ids_nerf.core.defaults import GUIDANCE_SCALE, MAX_STEP, MIN_STEP


class StableDiffusionGuidance:
    """Frozen UNet + VAE + cached prompt embeddings, exposing ``score_fn`` and the VAE codec.

    Args:
        unet, vae, text_encoder, tokenizer, scheduler: diffusers / transformers parts of one checkpoint.
        guidance_scale: CFG scale ``s`` in ``eps_u + s (eps_c - eps_u)`` (official: 7.5).
        min_step, max_step: timesteps are drawn from ``[min_step, max_step)`` (official: 50, 949, so t in [50, 948]).
    """

    def __init__(
        self,
        unet,
        vae,
        text_encoder,
        tokenizer,
        scheduler,
        guidance_scale: float = GUIDANCE_SCALE,
        min_step: int = MIN_STEP,
        max_step: int = MAX_STEP,
    ) -> None:
        for module in (unet, vae, text_encoder):
            module.eval().requires_grad_(False)
        self.unet, self.vae, self.text_encoder, self.tokenizer = unet, vae, text_encoder, tokenizer
        self.guidance_scale = guidance_scale
        self.min_step, self.max_step = min_step, max_step
        self.prediction_type = scheduler.config.prediction_type
        if self.prediction_type not in ("epsilon", "v_prediction"):
            raise ValueError(f"unsupported prediction type {self.prediction_type!r}")
        self.alphas_cumprod: Tensor = scheduler.alphas_cumprod.to(torch.float32)
        self.num_train_timesteps = int(scheduler.config.num_train_timesteps)
        self._prompt_cache: Dict[str, Tensor] = {}

    # ---- properties -------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return self.unet.device

    @property
    def dtype(self) -> torch.dtype:
        return self.unet.dtype

    @property
    def vae_scale_factor(self) -> int:
        """Pixels per latent cell (8 for SD)."""
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    @property
    def size_multiple(self) -> int:
        """Image sides must be multiples of this: the VAE factor times the UNet's downsampling."""
        return self.vae_scale_factor * 2 ** (len(self.unet.config.block_out_channels) - 1)

    @property
    def native_size(self) -> int:
        """The image side the UNet was trained at: ``sample_size * vae_scale_factor`` (512 for SD 1.x)."""
        return int(self.unet.config.sample_size) * self.vae_scale_factor

    # ---- prompts ----------------------------------------------------------------------------
    @torch.no_grad()
    def embed_prompt(self, prompt: str) -> Float[Tensor, "1 tokens dim"]:
        """Text embedding of ``prompt``, computed once and cached on the model's device."""
        if prompt not in self._prompt_cache:
            if self.text_encoder is None:
                raise RuntimeError(f"text encoder was released; prompt {prompt!r} was never embedded")
            ids = self.tokenizer(
                prompt,
                padding="max_length",
                max_length=self.tokenizer.model_max_length,
                truncation=True,
                return_tensors="pt",
            ).input_ids.to(self.text_encoder.device)
            self._prompt_cache[prompt] = self.text_encoder(ids)[0].to(self.device, self.dtype)
        return self._prompt_cache[prompt]

    def release_text_encoder(self) -> None:
        """Free the text encoder once every prompt is embedded (the cache keeps working)."""
        self.embed_prompt("")
        self.text_encoder = None

    def offload_text_encoder(self) -> None:
        """Keep the text encoder for prompts embedded later (a prompt changed from the viewer), on the
        CPU in fp32, where it takes no accelerator memory; embeddings still land on the model's device."""
        self.embed_prompt("")
        if self.text_encoder is not None:
            self.text_encoder.to("cpu", torch.float32)

    # ---- score ------------------------------------------------------------------------------
    def score_fn(
        self, z_t: Float[Tensor, "b c h w"], t: Tensor, cond: Float[Tensor, "b tokens dim"]
    ) -> Float[Tensor, "b c h w"]:
        """Guided noise prediction ``eps_hat(z_t, y, t)`` with CFG, differentiable in ``z_t``.

        The unconditional half uses the empty prompt. The UNet runs in its dtype and device; its outputs are
        combined in fp32 (CFG multiplies the two predictions' difference by 7.5, and the edit then differences
        two such results: in fp16 both would keep 3 significant digits), and returned in ``z_t``'s dtype and
        device. A v-prediction model's output is converted to epsilon.
        """
        batch = z_t.shape[0]
        x = z_t.to(self.device, self.dtype)
        t_dev = t.to(self.device)
        cond = cond.to(self.device, self.dtype)
        if self.guidance_scale == 1.0:
            eps = self._unet_eps(x, t_dev, cond)
        else:
            uncond = self.embed_prompt("").expand(batch, -1, -1)
            eps_uncond, eps_cond = self._unet_eps(
                torch.cat([x, x]), torch.cat([t_dev, t_dev]), torch.cat([uncond, cond])
            ).chunk(2)
            eps = classifier_free_guidance(eps_uncond, eps_cond, self.guidance_scale)
        return eps.to(z_t.device, z_t.dtype)

    def _unet_eps(self, x: Tensor, t: Tensor, cond: Tensor) -> Tensor:
        """The UNet's epsilon in fp32 (the UNet itself in its own dtype)."""
        out = self.unet(x, t, encoder_hidden_states=cond).sample.float()
        if self.prediction_type == "v_prediction":
            a_t = self.alphas_cumprod.to(x.device, torch.float32)[t].view(-1, 1, 1, 1)
            out = a_t.sqrt() * out + (1 - a_t).sqrt() * x.float()
        return out

    def sample_timesteps(self, batch_size: int, generator: Optional[torch.Generator] = None) -> Tensor:
        return sample_timesteps(batch_size, self.min_step, self.max_step, generator, self.device)

    # ---- VAE --------------------------------------------------------------------------------
    def encode(self, images: Float[Tensor, "b 3 h w"]) -> Float[Tensor, "b 4 h/f w/f"]:
        """Latent of RGB ``images`` in [0, 1]: the posterior mean times the scaling factor.

        Differentiable when called with grad enabled; returns ``images``' dtype and device.
        """
        x = images.to(self.vae.device, self.vae.dtype) * 2 - 1
        latents = self.vae.encode(x).latent_dist.mean * self.vae.config.scaling_factor
        return latents.to(images.device, images.dtype)

    def decode(self, latents: Float[Tensor, "b 4 h w"]) -> Float[Tensor, "b 3 H W"]:
        """RGB images in [0, 1] from latents (for previews)."""
        z = latents.to(self.vae.device, self.vae.dtype) / self.vae.config.scaling_factor
        images = (self.vae.decode(z).sample + 1) / 2
        return images.clamp(0, 1).to(latents.device, torch.float32)
