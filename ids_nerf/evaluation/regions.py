"""Identity metrics per object: what should have stayed, measured object by object, and the edited object
against its ground truth.

An edit scene's object-id masks (``ids_nerf.scenes.edit_scene.mask_images``) split each view into
regions: the background (id 0), and each object. For every region the edit should leave alone, the edited
render is compared with the source render there; for the edited object, with the ground-truth target.

Conventions as in :mod:`ids_nerf.evaluation.metrics`: images ``[3, H, W]`` in [0, 1], masks bool ``[H, W]``.
Keys of the returned dicts (``<name>`` is the region's name from ``scene.json``'s ``objects``):

- ``identity_psnr_<name>`` (dB), ``identity_ssim_<name>`` (at most 1), ``identity_lpips_<name>`` (0 = same):
  edited render against the source render inside an unedited region;
- ``leak_<name>``: mean absolute colour change inside an unedited region, on the 0-1 scale (0: nothing leaked;
  0.01 is about 2.5 of 255 levels): the edit's spill into what it should not touch, as one number;
- ``target_psnr_<name>``, ``target_ssim_<name>``, ``target_lpips_<name>``: edited render against the
  ground-truth target inside the edited object; ``source_target_psnr_<name>`` the same for the source render
  (where the edit started);
- ``ceiling_identity_psnr_<name>`` (only with the source's ground truth): the ground-truth target against the
  ground-truth source inside an unedited region. Colours are supersampled and masks are not, so the target
  itself differs from the source on the edited object's anti-aliased border, which lies in its neighbours'
  masks: an edit that reached the target exactly would score this.

A region absent from a view gives ``nan`` for that view (left out of means over views). PSNR is capped at
:data:`PSNR_CAP` so that means and differences stay finite when a region is reproduced bit for bit.
"""

from __future__ import annotations

from typing import Dict, Mapping, Optional

import torch
from torchmetrics.functional.image import structural_similarity_index_measure

from ids_nerf.evaluation.metrics import lpips, psnr

PSNR_CAP = 100.0
"""dB; an MSE of 1e-10, far below one 8-bit level (MSE 1.5e-5 is 48 dB)."""


def _check(image: torch.Tensor, mask: torch.Tensor) -> None:
    if image.dim() != 3 or image.shape[0] != 3:
        raise ValueError(f"images must be [3, H, W], got {list(image.shape)}")
    if mask.dtype != torch.bool or tuple(mask.shape) != tuple(image.shape[1:]):
        raise ValueError(f"mask must be a bool [H, W] = {list(image.shape[1:])}, got {mask.dtype} {list(mask.shape)}")


def capped_psnr(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> float:
    """PSNR (dB) over the masked pixels, at most :data:`PSNR_CAP`; ``nan`` for an empty mask."""
    _check(pred, mask)
    if not mask.any():
        return float("nan")
    return min(psnr(pred, target, mask), PSNR_CAP)


def masked_ssim(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> float:
    """SSIM map (torchmetrics: 11x11 Gaussian window, sigma 1.5, data range 1) averaged over the masked
    pixels and the three channels; ``nan`` for an empty mask. The window reaches 5 pixels beyond a pixel,
    so a change that close to the mask lowers it too: what the eye sees at an object's border."""
    _check(pred, mask)
    if not mask.any():
        return float("nan")
    _, ssim_map = structural_similarity_index_measure(
        pred[None].float(), target[None].float(), data_range=1.0, return_full_image=True
    )
    return float(ssim_map[0][:, mask].mean())


def masked_lpips(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> float:
    """LPIPS of ``pred`` with everything outside ``mask`` replaced by ``target``, against ``target``: only
    differences inside the mask count, judged with their surroundings (LPIPS has no per-pixel map of its
    own); ``nan`` for an empty mask. Needs the real AlexNet weights (see :func:`lpips`)."""
    _check(pred, mask)
    if not mask.any():
        return float("nan")
    inside = torch.where(mask[None], pred, target)
    return lpips(inside, target)


def mean_abs_change(pred: torch.Tensor, reference: torch.Tensor, mask: torch.Tensor) -> float:
    """Mean of ``|pred - reference|`` over the masked pixels and channels, in [0, 1]; ``nan`` for an empty mask."""
    _check(pred, mask)
    if not mask.any():
        return float("nan")
    return float((pred.float() - reference.float()).abs()[:, mask].mean())


def region_metrics(
    edited: torch.Tensor,
    source: torch.Tensor,
    target: torch.Tensor,
    object_ids: torch.Tensor,
    edited_id: int,
    names: Mapping[str, int],
    with_lpips: bool = False,
    source_truth: Optional[torch.Tensor] = None,
) -> Dict[str, float]:
    """The per-region metrics of one view (keys in the module docstring).

    Args:
        edited, source, target: the edited render, the source render and the ground-truth target, ``[3, H, W]``.
        object_ids: integer ``[H, W]`` object id of each pixel (the scene's mask image).
        edited_id: the id of the object the edit should change.
        names: region name -> object id, e.g. ``{"background": 0, "table": 1, "ball": 2, "box": 3}``.
        with_lpips: add the LPIPS keys (needs the real AlexNet weights).
        source_truth: the ground-truth source image, for the ceiling keys.
    """
    values: Dict[str, float] = {}
    for name, object_id in names.items():
        mask = object_ids == object_id
        if object_id == edited_id:
            values[f"target_psnr_{name}"] = capped_psnr(edited, target, mask)
            values[f"target_ssim_{name}"] = masked_ssim(edited, target, mask)
            values[f"source_target_psnr_{name}"] = capped_psnr(source, target, mask)
            if with_lpips:
                values[f"target_lpips_{name}"] = masked_lpips(edited, target, mask)
            continue
        values[f"identity_psnr_{name}"] = capped_psnr(edited, source, mask)
        values[f"identity_ssim_{name}"] = masked_ssim(edited, source, mask)
        values[f"leak_{name}"] = mean_abs_change(edited, source, mask)
        if source_truth is not None:
            values[f"ceiling_identity_psnr_{name}"] = capped_psnr(target, source_truth, mask)
        if with_lpips:
            values[f"identity_lpips_{name}"] = masked_lpips(edited, source, mask)
    return values
