"""The 2D edit of the official code: plain SGD on a latent, pushed by the IDS (or DDS) direction.

``ids-nerf edit-image`` and the latent study (``ids-nerf study``) both run this loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Tuple

import torch
from torch import Tensor

from ids_nerf.core import DistillationStep, distillation_loss, ids_step
from ids_nerf.core.defaults import EDIT_STEPS_2D, FPR_SCALE, FPR_STEPS, LOSS_SCALE, LR_2D
from ids_nerf.guidance.score_model import ScoreModel

ExtraLoss = Callable[[Tensor, Tensor, Tensor], Tensor]
"""``extra_loss(z_trg, t, noise)``: a term added to the distillation loss (CDS's CUT loss)."""
OnStep = Callable[[int, Tensor, DistillationStep], None]
"""``on_step(step, z_trg, result)``, called after each update (step counts from 1)."""


@dataclass(frozen=True)
class LatentEditSettings:
    """The optimisation of a latent edit; defaults are the official 2D code's."""

    steps: int = EDIT_STEPS_2D
    """SGD steps (official: 200)."""
    lr: float = LR_2D
    """SGD learning rate on the latent (official: 0.1)."""
    fpr_steps: int = FPR_STEPS
    """FPR iterations N per step; 0 is DDS exactly."""
    fpr_scale: float = FPR_SCALE
    """FPR step size lambda."""
    fpr_jacobian: str = "full"
    """``full`` (the paper) or ``identity`` (Jacobian-free FPR)."""
    loss_scale: float = LOSS_SCALE
    """The loss is ``loss_scale * sum(z_trg * direction) / (h * w)``, h x w the latent size (official: 2000)."""


def edit_latent(
    model: ScoreModel,
    z_src: Tensor,
    cond_src: Tensor,
    cond_trg: Tensor,
    settings: LatentEditSettings,
    generator: torch.Generator,
    extra_loss: Optional[ExtraLoss] = None,
    on_step: Optional[OnStep] = None,
) -> Tuple[Tensor, DistillationStep]:
    """Move a copy of ``z_src`` [B, C, h, w] toward ``cond_trg`` for ``settings.steps`` SGD steps.

    Each step draws B timesteps from the model's range, then the noise, both from ``generator`` (in that
    order, so a seed reproduces a run). Returns the edited latent (detached) and the last step's result.
    """
    z_src = z_src.detach()
    z_trg = torch.nn.Parameter(z_src.clone())
    optimizer = torch.optim.SGD([z_trg], lr=settings.lr)
    scale = settings.loss_scale / (z_src.shape[-2] * z_src.shape[-1])
    result = None
    for step in range(1, settings.steps + 1):
        t = model.sample_timesteps(z_src.shape[0], generator).to(z_src.device)
        noise = torch.randn(z_src.shape, generator=generator).to(z_src.device)
        result = ids_step(
            model.score_fn,
            z_src,
            z_trg,
            cond_src,
            cond_trg,
            t,
            noise,
            model.alphas_cumprod,
            settings.fpr_steps,
            settings.fpr_scale,
            settings.fpr_jacobian,
        )
        loss = distillation_loss(z_trg, result.direction, scale)
        if extra_loss is not None:
            loss = loss + extra_loss(z_trg, t, noise)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if on_step is not None:
            on_step(step, z_trg, result)
    return z_trg.detach(), result
