"""An exact-score "diffusion model": a verification instrument, not an image generator.

For a caption ``y`` let ``X_y = {x_1..x_N}`` be the codec latents of its ground-truth training views
(see ``ids-nerf make-scene``), and let the data distribution be uniform over them. Under Gaussian
noising (Eq. 1) the posterior over which view was noised is a softmax,

    w_i(z_t) ∝ exp(-||z_t - sqrt(a_t) x_i||^2 / (2 (1 - a_t))),

so Tweedie's posterior mean is ``E[x | z_t] = sum_i w_i x_i`` and the exact noise prediction is
``eps_hat = (z_t - sqrt(a_t) E[x | z_t]) / sqrt(1 - a_t)`` (Eq. 5 solved for eps). The unconditional
score is that of the union of all captions' views, so CFG works as with Stable Diffusion. Everything is
differentiable in ``z_t``, as FPR requires.

The codec is pixel space (``encode``: ``2 x - 1`` average-pooled by ``factor``), because a random tiny
VAE is not invertible: its latents cannot be decoded back to the edited image, and its Jacobian would
distort the NeRF's gradients arbitrarily. With pixels, the edit the score asks for is the image itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from ids_nerf.core import alpha_bar, classifier_free_guidance, sample_timesteps, sd_alphas_cumprod
from ids_nerf.core.defaults import GUIDANCE_SCALE, MAX_STEP, MIN_STEP
from ids_nerf.errors import UserError
from ids_nerf.images import read_rgb_on_white

EXACT_PREFIX = "exact:"


class PixelCodec:
    """Images in [0, 1] <-> ``2 x - 1`` average-pooled by ``factor`` (3 channels)."""

    def __init__(self, factor: int = 1) -> None:
        self.factor = factor

    def encode(self, images: Tensor) -> Tensor:
        x = images * 2 - 1
        return F.avg_pool2d(x, self.factor) if self.factor > 1 else x

    def decode(self, latents: Tensor) -> Tensor:
        x = (latents + 1) / 2
        if self.factor > 1:
            x = F.interpolate(x, scale_factor=self.factor, mode="bilinear", align_corners=False)
        return x.clamp(0, 1)


def posterior_weights(z_t: Tensor, a_t: Tensor, support: Tensor) -> Tensor:
    """``w_i(z_t)``, the posterior over which of ``support`` ``[N, C, H, W]`` was noised, ``[B, N]``."""
    flat = z_t.flatten(1)  # [B, D]
    points = support.flatten(1).to(z_t.dtype)  # [N, D]
    a = a_t.reshape(-1, 1)
    sq_dist = flat.square().sum(1, keepdim=True) - 2 * a.sqrt() * flat @ points.T + a * points.square().sum(1)[None]
    return torch.softmax(-sq_dist / (2 * (1 - a)), dim=1)


def posterior_mean(z_t: Tensor, a_t: Tensor, support: Tensor) -> Tensor:
    """``E[x | z_t]`` for data uniform over ``support`` ``[N, C, H, W]``; ``z_t`` ``[B, C, H, W]``."""
    weights = posterior_weights(z_t, a_t, support)
    return (weights @ support.flatten(1).to(z_t.dtype)).reshape(z_t.shape)


class PixelSpaceModel:
    """What the two verification models share: fp32 on one device, a pixel codec for latents, SD 1.x's noise
    schedule and the edit's timestep range. Subclasses set the attributes in their ``__init__``."""

    codec: PixelCodec
    min_step: int
    max_step: int
    _device: torch.device

    @property
    def device(self) -> torch.device:
        return self._device

    @property
    def dtype(self) -> torch.dtype:
        return torch.float32

    def sample_timesteps(self, batch_size: int, generator: Optional[torch.Generator] = None) -> Tensor:
        return sample_timesteps(batch_size, self.min_step, self.max_step, generator, self.device)

    def encode(self, images: Tensor) -> Tensor:
        return self.codec.encode(images)

    def decode(self, latents: Tensor) -> Tensor:
        return self.codec.decode(latents).float()


class ExactScoreGuidance(PixelSpaceModel):
    """The closed-form score of finite image sets, behind the same interface as Stable Diffusion's.

    Args:
        sets: latents per caption, each ``[N, C, h, w]``.
        codec: maps images to latents and back.
        native_size: short side (pixels) of the images the sets were made from.
        aliases: other names for a caption (e.g. the appearance name), mapped to the caption.
    """

    def __init__(
        self,
        sets: Dict[str, Tensor],
        codec: PixelCodec,
        native_size: int,
        guidance_scale: float = GUIDANCE_SCALE,
        min_step: int = MIN_STEP,
        max_step: int = MAX_STEP,
        device: str | torch.device = "cpu",
        aliases: Optional[Dict[str, str]] = None,
    ) -> None:
        self.captions: List[str] = list(sets)
        self.sets = [sets[c].to(device) for c in self.captions]
        self.union = torch.cat(self.sets)
        self.codec = codec
        self.native_size = native_size
        self.vae_scale_factor = codec.factor
        self.size_multiple = codec.factor
        self.guidance_scale = guidance_scale
        self.min_step, self.max_step = min_step, max_step
        self.alphas_cumprod = sd_alphas_cumprod().float()
        self.aliases = aliases or {}
        self._device = torch.device(device)

    def embed_prompt(self, prompt: str) -> Tensor:
        """The caption's index as a ``[1]`` tensor: the condition this model understands."""
        caption = self.aliases.get(prompt.strip(), prompt.strip())
        if caption not in self.captions:
            known = "; ".join(f'"{c}"' for c in self.captions)
            raise UserError(f'the exact-score model knows no caption "{prompt}"; use one of: {known}')
        return torch.tensor([float(self.captions.index(caption))], device=self.device)

    def release_text_encoder(self) -> None:
        """Nothing to release: conditions are caption indices."""

    def offload_text_encoder(self) -> None:
        """Nothing to offload: conditions are caption indices."""

    def score_fn(self, z_t: Tensor, t: Tensor, cond: Tensor) -> Tensor:
        """Exact ``eps_hat(z_t, y, t)`` with CFG against the union of all captions' views."""
        x = z_t.to(self.device)
        a_t = alpha_bar(self.alphas_cumprod, t.to(self.device), x)
        index = cond.to(self.device).reshape(-1).long()
        mean_c = torch.empty_like(x)
        for caption in index.unique().tolist():
            rows = index == caption
            mean_c[rows] = posterior_mean(x[rows], a_t[rows], self.sets[caption])
        eps_c = (x - a_t.sqrt() * mean_c) / (1 - a_t).sqrt()
        if self.guidance_scale != 1.0:
            eps_u = (x - a_t.sqrt() * posterior_mean(x, a_t, self.union)) / (1 - a_t).sqrt()
            eps_c = classifier_free_guidance(eps_u, eps_c, self.guidance_scale)
        return eps_c.to(z_t.device, z_t.dtype)


def load_exact_score(
    spec: str,
    device: str | torch.device = "cpu",
    guidance_scale: float = GUIDANCE_SCALE,
    min_step: int = MIN_STEP,
    max_step: int = MAX_STEP,
    factor: int = 1,
) -> ExactScoreGuidance:
    """Build the model from ``exact:SCENE`` (a folder written by ``ids-nerf make-scene``):
    one set per appearance, made of its training views."""
    from ids_nerf.scenes.edit_scene import appearance_images, read_scene_info

    scene = Path(spec[len(EXACT_PREFIX) :]).expanduser()
    info = read_scene_info(scene)
    codec = PixelCodec(factor)
    sets, aliases = {}, {}
    for name, caption in info["appearances"].items():
        images = torch.stack([read_rgb_on_white(p) for p in appearance_images(scene, name, "train")])
        sets[caption] = codec.encode(images)
        aliases[name] = caption
    return ExactScoreGuidance(sets, codec, int(info["size"]), guidance_scale, min_step, max_step, device, aliases)
