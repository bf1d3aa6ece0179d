"""Forward noising, Tweedie's posterior mean, guided noise and classifier-free guidance.

Notation follows the paper (Kim et al., CVPR 2025): ``a_t`` is the cumulative product of the
scheduler's alphas (diffusers' ``scheduler.alphas_cumprod``), indexed by the integer timestep ``t``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ids_nerf.core.defaults import MAX_STEP, MIN_STEP, SD_BETA_END, SD_BETA_START, SD_TRAIN_TIMESTEPS


def sd_alphas_cumprod(dtype: torch.dtype = torch.float64) -> Tensor:
    """``a_t`` of Stable Diffusion 1.x's schedule: scaled-linear betas from 0.00085 to 0.012, 1000 steps."""
    betas = torch.linspace(SD_BETA_START**0.5, SD_BETA_END**0.5, SD_TRAIN_TIMESTEPS, dtype=dtype) ** 2
    return torch.cumprod(1 - betas, dim=0)


def alpha_bar(alphas_cumprod: Tensor, t: Tensor, like: Tensor) -> Tensor:
    """``a_t`` for each sample, shaped ``[B, 1, ..., 1]`` to broadcast against ``like``.

    Cast to ``like``'s dtype and device, so that float64 inputs are computed in float64.
    """
    a_t = alphas_cumprod.to(device=like.device, dtype=like.dtype)[t.to(like.device).long()]
    return a_t.reshape(-1, *([1] * (like.dim() - 1)))


def add_noise(z_0: Tensor, noise: Tensor, t: Tensor, alphas_cumprod: Tensor) -> Tensor:
    """Eq. 1: ``z_t = sqrt(a_t) z_0 + sqrt(1 - a_t) eps``."""
    a_t = alpha_bar(alphas_cumprod, t, z_0)
    return a_t.sqrt() * z_0 + (1 - a_t).sqrt() * noise


def tweedie_z0(z_t: Tensor, eps_hat: Tensor, t: Tensor, alphas_cumprod: Tensor) -> Tensor:
    """Eq. 5, Tweedie's posterior mean: ``z_{0|t} = (z_t - sqrt(1 - a_t) eps_hat) / sqrt(a_t)``."""
    a_t = alpha_bar(alphas_cumprod, t, z_t)
    return (z_t - (1 - a_t).sqrt() * eps_hat) / a_t.sqrt()


def guided_noise(z_t_src: Tensor, z_src: Tensor, t: Tensor, alphas_cumprod: Tensor) -> Tensor:
    """Eq. 8: the noise that takes ``z_src`` to the (FPR-refined) ``z_t_src``.

    ``eps* = (z_t^src* - sqrt(a_t) z_src) / sqrt(1 - a_t)``; it inverts :func:`add_noise`, so
    ``add_noise(z_src, guided_noise(z_t, z_src, t, ac), t, ac) == z_t`` up to rounding.
    """
    a_t = alpha_bar(alphas_cumprod, t, z_t_src)
    return (z_t_src - a_t.sqrt() * z_src) / (1 - a_t).sqrt()


def classifier_free_guidance(eps_uncond: Tensor, eps_cond: Tensor, scale: float) -> Tensor:
    """Classifier-free guidance in the official code's form: ``eps_u + s (eps_c - eps_u)``.

    The paper writes ``(1 + w) eps_c - w eps_u``; the two agree for ``s = 1 + w``. ``s = 1`` is the
    plain conditional prediction, ``s = 7.5`` the official default.
    """
    return eps_uncond + scale * (eps_cond - eps_uncond)


def sample_timesteps(
    batch_size: int,
    min_step: int = MIN_STEP,
    max_step: int = MAX_STEP,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
) -> Tensor:
    """Timesteps drawn uniformly from ``[min_step, max_step)`` (official: ``randint(50, 949)``, 50 to 948 of 1000)."""
    if not 0 <= min_step < max_step:
        raise ValueError(f"need 0 <= min_step < max_step, got {min_step} and {max_step}")
    t = torch.randint(min_step, max_step, (batch_size,), generator=generator)
    return t.to(device)
