"""Score-distillation update directions: SDS, DDS and IDS (Eq. 9).

Each direction is the gradient a distillation loss sends to the target latent; apply it with
:func:`distillation_loss`. All functions take the score function and the noise process explicitly,
so they run with any model (Stable Diffusion, an exact-score model, a test's closed form).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import Tensor

from ids_nerf.core.defaults import FPR_SCALE, FPR_STEPS
from ids_nerf.core.fpr import ScoreFn, fpr_refine, posterior_distance
from ids_nerf.core.noising import add_noise, guided_noise, tweedie_z0


@dataclass
class DistillationStep:
    """One evaluated update, with the diagnostics worth logging. Every tensor is detached."""

    direction: Tensor
    """``eps_hat(z_t^trg, y_trg, t) - eps_hat(z_t^src, y_src, t)``, shape of ``z_trg``."""
    z_t_src: Tensor
    """Noisy source latent the source score was evaluated at (FPR-refined for IDS)."""
    z_t_trg: Tensor
    """Noisy target latent the target score was evaluated at."""
    z0_trg: Tensor
    """One-step Tweedie estimate of the edited latent from the target score (Eq. 5)."""
    distance_before: Optional[Tensor]
    """Per-sample ``||z_src - z_{0|t}||`` at the unrefined source latent (IDS with FPR steps only)."""
    distance_after: Tensor
    """Per-sample ``||z_src - z_{0|t}||`` at the source latent actually used."""


def _paired_scores(score_fn: ScoreFn, z_t_src: Tensor, z_t_trg: Tensor, t: Tensor, cond_src: Tensor, cond_trg: Tensor):
    """Source and target scores in one batched call (the same t for both halves)."""
    batch = z_t_src.shape[0]
    with torch.no_grad():
        eps = score_fn(torch.cat([z_t_src, z_t_trg]), torch.cat([t, t]), torch.cat([cond_src, cond_trg]))
    eps = eps.to(z_t_src.dtype)
    return eps[:batch], eps[batch:]


def _finish(score_fn, z_src, z_t_src, z_t_trg, cond_src, cond_trg, t, alphas_cumprod, distance_before):
    eps_src, eps_trg = _paired_scores(score_fn, z_t_src, z_t_trg, t, cond_src, cond_trg)
    return DistillationStep(
        direction=eps_trg - eps_src,
        z_t_src=z_t_src,
        z_t_trg=z_t_trg,
        z0_trg=tweedie_z0(z_t_trg, eps_trg, t, alphas_cumprod),
        distance_before=distance_before,
        distance_after=posterior_distance(z_src, tweedie_z0(z_t_src, eps_src, t, alphas_cumprod)),
    )


def dds_step(score_fn: ScoreFn, z_src, z_trg, cond_src, cond_trg, t, noise, alphas_cumprod) -> DistillationStep:
    """DDS (Hertz et al. 2023): both latents noised with the same ``eps`` and ``t`` (Eq. 1)."""
    z_src, z_trg, noise = z_src.detach(), z_trg.detach(), noise.detach().to(z_src.dtype)
    z_t_src = add_noise(z_src, noise, t, alphas_cumprod)
    z_t_trg = add_noise(z_trg, noise, t, alphas_cumprod)
    return _finish(score_fn, z_src, z_t_src, z_t_trg, cond_src, cond_trg, t, alphas_cumprod, None)


def ids_step(
    score_fn: ScoreFn,
    z_src,
    z_trg,
    cond_src,
    cond_trg,
    t,
    noise,
    alphas_cumprod,
    fpr_steps: int = FPR_STEPS,
    fpr_scale: float = FPR_SCALE,
    fpr_jacobian: str = "full",
) -> DistillationStep:
    """IDS (Algorithm 1): FPR-refine the noisy source (Eqs. 6-7), take its guided noise (Eq. 8),
    noise the target with it, and return the score difference (Eq. 9).

    ``fpr_jacobian="identity"`` selects the Jacobian-free FPR variant (see :func:`fpr_refine`)."""
    if fpr_steps == 0:
        # Without refinement eps* equals eps; skipping Eq. 8's round trip makes IDS exactly DDS.
        return dds_step(score_fn, z_src, z_trg, cond_src, cond_trg, t, noise, alphas_cumprod)
    z_src, z_trg, noise = z_src.detach(), z_trg.detach(), noise.detach().to(z_src.dtype)
    fpr = fpr_refine(
        score_fn,
        z_src,
        add_noise(z_src, noise, t, alphas_cumprod),
        cond_src,
        t,
        alphas_cumprod,
        fpr_steps,
        fpr_scale,
        fpr_jacobian,
    )
    eps_star = guided_noise(fpr.z_t, z_src, t, alphas_cumprod)
    z_t_trg = add_noise(z_trg, eps_star, t, alphas_cumprod)
    return _finish(score_fn, z_src, fpr.z_t, z_t_trg, cond_src, cond_trg, t, alphas_cumprod, fpr.distances[0])


def ids_direction(
    score_fn: ScoreFn,
    z_src: Tensor,
    z_trg: Tensor,
    cond_src: Tensor,
    cond_trg: Tensor,
    t: Tensor,
    noise: Tensor,
    alphas_cumprod: Tensor,
    fpr_steps: int = FPR_STEPS,
    fpr_scale: float = FPR_SCALE,
    fpr_jacobian: str = "full",
) -> Tensor:
    """Eq. 9: ``eps_hat(z_t^trg*, y_trg, t) - eps_hat(z_t^src*, y_src, t)``.

    ``z_t^src*`` is ``add_noise(z_src, noise, t)`` after ``fpr_steps`` FPR updates of size
    ``fpr_scale`` (Eqs. 6-7); ``z_t^trg* = sqrt(a_t) z_trg + sqrt(1 - a_t) eps*`` with the guided
    noise ``eps*`` of Eq. 8. With ``fpr_steps=0`` this is exactly :func:`dds_direction`.

    Args:
        score_fn: ``score_fn(z_t, t, cond) -> eps_hat``, CFG applied, differentiable in ``z_t``.
        z_src, z_trg: latents ``[B, C, H, W]``; gradients on them are ignored.
        cond_src, cond_trg: conditions whose first dimension is ``B``, passed to ``score_fn``.
        t: long timesteps ``[B]``, indexes into ``alphas_cumprod``.
        noise: the forward process' ``eps``, shape of ``z_src``.
        alphas_cumprod: 1-D cumulative alphas ``a_t``.
        fpr_jacobian: ``"full"`` (the paper) or ``"identity"`` (Jacobian-free FPR), as :func:`ids_step`.

    Returns:
        The direction, detached, in ``z_src``'s dtype (float64 inputs are computed in float64).

    >>> import torch
    >>> ac = torch.linspace(0.99, 0.01, 1000, dtype=torch.float64)
    >>> score = lambda z, t, c: 0.1 * z + c.view(-1, 1, 1, 1)
    >>> z = torch.zeros(1, 4, 8, 8, dtype=torch.float64); c = torch.ones(1, dtype=torch.float64)
    >>> d = ids_direction(score, z, z, c, c, torch.tensor([500]), torch.randn_like(z), ac)
    >>> bool(d.abs().max() < 1e-12)  # identical source and target: no update
    True
    """
    return ids_step(
        score_fn, z_src, z_trg, cond_src, cond_trg, t, noise, alphas_cumprod, fpr_steps, fpr_scale, fpr_jacobian
    ).direction


def dds_direction(
    score_fn: ScoreFn,
    z_src: Tensor,
    z_trg: Tensor,
    cond_src: Tensor,
    cond_trg: Tensor,
    t: Tensor,
    noise: Tensor,
    alphas_cumprod: Tensor,
) -> Tensor:
    """DDS: ``eps_hat(z_t^trg, y_trg, t) - eps_hat(z_t^src, y_src, t)`` with both latents noised by
    the same ``noise`` and ``t`` (Eq. 1). Same arguments and return as :func:`ids_direction`."""
    return dds_step(score_fn, z_src, z_trg, cond_src, cond_trg, t, noise, alphas_cumprod).direction


def sds_direction(
    score_fn: ScoreFn, z: Tensor, cond: Tensor, t: Tensor, noise: Tensor, alphas_cumprod: Tensor
) -> Tensor:
    """SDS (Poole et al. 2023) with ``w(t) = 1``: ``eps_hat(z_t, y, t) - eps``, detached."""
    z, noise = z.detach(), noise.detach().to(z.dtype)
    with torch.no_grad():
        eps_hat = score_fn(add_noise(z, noise, t, alphas_cumprod), t, cond)
    return eps_hat.to(z.dtype) - noise


def distillation_loss(latents: Tensor, direction: Tensor, scale: float = 1.0) -> Tensor:
    """A scalar whose gradient with respect to ``latents`` is ``scale * direction``.

    The score-distillation trick: the direction is a constant, so ``d/dz sum(z * g) = g``. The
    official 2D code uses ``scale = 2000 / (h * w)`` with ``h, w`` the latent's size.
    """
    return scale * (latents * direction.detach().to(latents.dtype)).sum()
