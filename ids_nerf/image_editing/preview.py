"""A 2D preview of a 3D edit: IDS and DDS on a few of the scene's own views, in latent space.

Before a 3D edit of minutes to hours, the same model, prompts, lambda, CFG and timestep range edit a few
source renders the way the official 2D code edits an image (:func:`~ids_nerf.image_editing.latent_edit.
edit_latent`), so a user sees whether the prompts move the views at all and what IDS keeps that DDS does not.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from ids_nerf.guidance.score_model import ScoreModel
from ids_nerf.image_editing.latent_edit import LatentEditSettings, edit_latent
from ids_nerf.images import fit_short_side, image_psnr


@dataclass
class ViewPreview:
    """One view's source render and its IDS and DDS edits, ``[3, H, W]`` in [0, 1] at the diffusion size."""

    source: Tensor
    ids: Tensor
    dds: Tensor
    numbers: Dict[str, float]
    """``ids_fpr_distance_before`` / ``_after``: mean ``||z_src - z_0|t||`` of IDS's last step before and
    after FPR; ``dds_distance``: the same at DDS's unrefined latent; ``*_psnr_to_source``: how far each
    result moved from the render, in dB (higher: closer to the source)."""


def preview_view(
    model: ScoreModel,
    image: Tensor,
    cond_src: Tensor,
    cond_trg: Tensor,
    settings: LatentEditSettings,
    seed: int,
    short_side: Optional[int] = None,
) -> ViewPreview:
    """Edit one ``[3, H, W]`` render with IDS (``settings.fpr_steps``) and with DDS (N = 0), both from the
    same seed, so they see the same timesteps and noise. ``short_side``: the diffusion input's short side
    in pixels (default the model's native size), the aspect ratio kept as the 3D edit keeps it."""
    size = fit_short_side(*image.shape[-2:], short_side or model.native_size, model.size_multiple)
    source = F.interpolate(image[None].float().clamp(0, 1), size=size, mode="bilinear", antialias=True)
    source = source.to(model.device)
    with torch.no_grad():
        z_src = model.encode(source).float()
    results = {}
    for name, fpr_steps in (("ids", settings.fpr_steps), ("dds", 0)):
        generator = torch.Generator().manual_seed(seed)
        z, last = edit_latent(model, z_src, cond_src, cond_trg, replace(settings, fpr_steps=fpr_steps), generator)
        with torch.no_grad():
            results[name] = (model.decode(z)[0].float().clamp(0, 1).cpu(), last)
    source = source[0].float().cpu()
    (ids, ids_last), (dds, dds_last) = results["ids"], results["dds"]
    numbers = {
        "ids_fpr_distance_before": float(ids_last.distance_before.mean())
        if ids_last.distance_before is not None
        else float(ids_last.distance_after.mean()),
        "ids_fpr_distance_after": float(ids_last.distance_after.mean()),
        "dds_distance": float(dds_last.distance_after.mean()),
        "ids_psnr_to_source": image_psnr(ids, source),
        "dds_psnr_to_source": image_psnr(dds, source),
    }
    return ViewPreview(source, ids, dds, numbers)


def preview_views(
    model: ScoreModel,
    images: Sequence[Tensor],
    source_prompt: str,
    target_prompt: str,
    settings: LatentEditSettings,
    seed: int,
    short_side: Optional[int] = None,
) -> List[ViewPreview]:
    """:func:`preview_view` for each image, view ``i`` seeded with ``seed + i``."""
    cond_src, cond_trg = model.embed_prompt(source_prompt), model.embed_prompt(target_prompt)
    return [
        preview_view(model, image, cond_src, cond_trg, settings, seed + i, short_side) for i, image in enumerate(images)
    ]
