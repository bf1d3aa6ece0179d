"""Where an edit may act: a relevance map from the score model itself, and the anchored direction.

A distillation edit of a NeRF moves parameters shared by the whole scene (nerfacto's colour MLP, coarse
hash levels), so a push on the edited object spills onto its neighbours; the score's pull back on them is
weaker than its CFG-amplified push (docs/results-nerf.md). The remedy here has two parts, the same for DDS
and IDS (so that they still differ by FPR alone):

1. **Relevance** (DiffEdit, Couairon et al. 2023; Watch Your Steps' relevance map, Mirzaei et al. 2023): the
   mean over noise draws of ``|eps_hat(z_t, y_trg, t) - eps_hat(z_t, y_src, t)|`` at the *source* latent,
   with ``z_t`` from Eq. 1. Where the two prompts agree, the prompts do not ask for a change.
2. **Anchor**: outside the mask ``m`` the direction is replaced by the gradient of
   ``w/2 ||z - z_src||^2``, which pulls the render back to its stored source render:

       d' = m * d + (1 - m) * w * (z_trg - z_src)

   With ``w = 0`` this only gates the direction; with ``m = 1`` everywhere it is ``d`` unchanged.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from ids_nerf.core.fpr import ScoreFn
from ids_nerf.core.noising import add_noise


def relevance_map(
    score_fn: ScoreFn,
    z_src: Tensor,
    cond_src: Tensor,
    cond_trg: Tensor,
    t: Tensor,
    noises: Tensor,
    alphas_cumprod: Tensor,
) -> Tensor:
    """``[B, 1, h, w]``: mean over the ``K`` draws of ``noises`` ``[K, B, C, h, w]`` and over channels of
    ``|eps_hat(z_t, y_trg, t) - eps_hat(z_t, y_src, t)|``, ``z_t = add_noise(z_src, noise, t)`` (Eq. 1).

    Both prompts score the same ``z_t`` (DiffEdit's mask, on the source rather than on an edit). ``t`` is
    ``[B]``; ``cond_src``/``cond_trg`` have first dimension ``B``. Evaluated without gradient."""
    total = torch.zeros_like(z_src[:, :1])
    batch = z_src.shape[0]
    with torch.no_grad():
        for noise in noises:
            z_t = add_noise(z_src, noise.to(z_src.dtype), t, alphas_cumprod)
            eps = score_fn(torch.cat([z_t, z_t]), torch.cat([t, t]), torch.cat([cond_src, cond_trg])).to(z_src.dtype)
            total += (eps[batch:] - eps[:batch]).abs().mean(dim=1, keepdim=True)
    return total / len(noises)


def threshold_relevance(
    relevance: Tensor, threshold: float = 0.5, floor: float = 0.1, dilation: int = 1, peak: Optional[float] = None
) -> Tensor:
    """Binary masks ``[B, 1, h, w]`` (float, 0 or 1) from relevance maps.

    Each map is normalised by its own largest value and cut at ``threshold`` (DiffEdit's 0.5), then grown by
    ``dilation`` latent pixels (a ``2 dilation + 1`` square), so that the edit reaches the object's border.
    A map whose largest value is below ``floor`` times ``peak`` (default: the largest over the batch) is
    empty: in a view that does not show what the prompts differ on, the normalised map would be noise. A map
    of zeros (identical prompts) is empty."""
    if not 0 < threshold <= 1 or not 0 <= floor <= 1 or dilation < 0:
        raise ValueError("need 0 < threshold <= 1, 0 <= floor <= 1, dilation >= 0")
    view_peak = relevance.flatten(1).amax(dim=1).reshape(-1, 1, 1, 1)
    overall = float(view_peak.max()) if peak is None else peak
    shown = (view_peak > floor * overall) & (view_peak > 0)
    mask = ((relevance >= threshold * view_peak) & shown).to(relevance.dtype)
    if dilation > 0:
        mask = F.max_pool2d(mask, 2 * dilation + 1, stride=1, padding=dilation)
    return mask


def anchored_direction(direction: Tensor, z_trg: Tensor, z_src: Tensor, mask: Tensor, anchor_weight: float) -> Tensor:
    """``m * d + (1 - m) * w * (z_trg - z_src)``: the direction inside the mask, a pull back to the source
    outside (the gradient of ``w/2 ||(1 - m)^(1/2) (z - z_src)||^2``). ``mask`` broadcasts against
    ``direction`` (e.g. ``[B, 1, h, w]``), values in [0, 1]. Detached, in ``direction``'s dtype."""
    m = mask.to(direction.dtype)
    pull = (z_trg.detach() - z_src.detach()).to(direction.dtype)
    return m * direction.detach() + (1 - m) * anchor_weight * pull
