"""Metrics for judging a 3D edit (no nerfstudio here): image fidelity (PSNR, SSIM, LPIPS), mask IoU,
masked depth error, and CLIP text-image / directional similarity. Models are passed in; CLIP loading
lives in :func:`load_clip` alone."""

from ids_nerf.evaluation.clip_metrics import ClipScorer, load_clip
from ids_nerf.evaluation.metrics import (
    alexnet_weights_path,
    lpips,
    lpips_available,
    mask_iou,
    masked_depth_error,
    psnr,
    ssim,
)

__all__ = [
    "ClipScorer",
    "alexnet_weights_path",
    "load_clip",
    "lpips",
    "lpips_available",
    "mask_iou",
    "masked_depth_error",
    "psnr",
    "ssim",
]
