"""The interface every score model of an edit has: Stable Diffusion (:class:`StableDiffusionGuidance`)
and the two verification models, exact-score (:class:`ExactScoreGuidance`) and learned
(:class:`LearnedScoreGuidance`), all satisfy it."""

from __future__ import annotations

from typing import Optional, Protocol, runtime_checkable

import torch
from torch import Tensor


@runtime_checkable
class ScoreModel(Protocol):
    """A frozen text-conditioned denoiser in a latent space, with the codec between images and latents."""

    guidance_scale: float
    """CFG scale s of eps_u + s (eps_c - eps_u)."""
    alphas_cumprod: Tensor
    """``[T]`` cumulative products of the noise schedule's alphas (a_t of Eq. 1)."""
    native_size: int
    """Short side in pixels of the images the model is made for (512 for SD 1.5)."""
    size_multiple: int
    """Image sides must be multiples of this (the codec's downsampling, times the UNet's for SD)."""

    @property
    def device(self) -> torch.device: ...

    @property
    def dtype(self) -> torch.dtype: ...

    def embed_prompt(self, prompt: str) -> Tensor:
        """The condition of ``prompt`` (cached), as ``score_fn`` takes it."""

    def release_text_encoder(self) -> None:
        """Free the text encoder once every prompt of the edit is embedded."""

    def offload_text_encoder(self) -> None:
        """Keep the text encoder, off the accelerator, for prompts embedded later."""

    def score_fn(self, z_t: Tensor, t: Tensor, cond: Tensor) -> Tensor:
        """CFG-guided eps_hat(z_t, cond, t): the :data:`ids_nerf.core.ScoreFn` of the math."""

    def sample_timesteps(self, batch_size: int, generator: Optional[torch.Generator] = None) -> Tensor:
        """Timesteps from the model's range, ``[batch_size]``."""

    def encode(self, images: Tensor) -> Tensor:
        """``[B, 3, H, W]`` images in [0, 1] to latents, differentiable."""

    def decode(self, latents: Tensor) -> Tensor:
        """Latents back to ``[B, 3, H, W]`` images in [0, 1]."""
