"""Image, mask and depth metrics for judging a 3D edit: PSNR, SSIM, LPIPS, mask IoU, masked depth error.

Conventions: images are float tensors ``[3, H, W]`` or ``[B, 3, H, W]`` with values in [0, 1]; masks are
bool ``[H, W]`` or ``[B, H, W]``; depths are float ``[H, W]`` or ``[B, H, W]`` (a trailing size-1 channel,
as nerfstudio renders them, is accepted) in scene units. For a batch, PSNR, SSIM, LPIPS and IoU are the mean
of the per-image values (the usual NeRF evaluation convention); the depth error pools all masked pixels.

The metric arithmetic is torchmetrics'; this module adds masks, shape checks and the LPIPS weight check.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import torch
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

from ids_nerf.errors import ModelUnavailableError

ALEXNET_WEIGHTS_URL = "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth"
"""torchvision's ``AlexNet_Weights.IMAGENET1K_V1`` (the LPIPS backbone); the file name ends in the first
hex digits of the file's sha256, as :func:`torch.hub.download_url_to_file` checks them."""


def _as_batch(images: torch.Tensor, name: str) -> torch.Tensor:
    if images.dim() == 3:
        images = images.unsqueeze(0)
    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"{name} must be [3, H, W] or [B, 3, H, W], got {list(images.shape)}")
    return images.float()


def _pair(pred: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    pred, target = _as_batch(pred, "pred"), _as_batch(target, "target")
    if pred.shape != target.shape:
        raise ValueError(f"pred and target differ in shape: {list(pred.shape)} vs {list(target.shape)}")
    return pred, target


def _mask_batch(mask: torch.Tensor, batch: int, height: int, width: int, name: str = "mask") -> torch.Tensor:
    """A bool ``[B, H, W]`` mask; an ``[H, W]`` mask is shared by every image of the batch."""
    if mask.dtype != torch.bool:
        raise ValueError(f"{name} must be a bool tensor, got {mask.dtype}")
    if mask.dim() == 2:
        mask = mask.unsqueeze(0).expand(batch, -1, -1)
    if tuple(mask.shape) != (batch, height, width):
        raise ValueError(f"{name} must be [H, W] or [B, H, W] = {[batch, height, width]}, got {list(mask.shape)}")
    return mask


def psnr(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> float:
    """Peak signal-to-noise ratio in dB, ``10 * log10(1 / MSE)`` for images in [0, 1] (data range 1.0).

    With ``mask``, the MSE is taken over the masked pixels only (all three channels of each masked pixel,
    nothing outside), so differences outside the mask do not count. A batch gives the mean of per-image PSNRs.

    Returns ``inf`` when the compared pixels are identical (MSE 0), and ``nan`` when a mask selects no pixel
    (an image with an empty mask makes the batch mean ``nan`` too).
    """
    pred, target = _pair(pred, target)
    if mask is None:
        values = peak_signal_noise_ratio(pred, target, data_range=1.0, reduction="none", dim=(1, 2, 3))
        return float(values.mean())
    mask = _mask_batch(mask, pred.shape[0], pred.shape[2], pred.shape[3]).to(pred.device)
    values = []
    for p, t, m in zip(pred, target, mask):
        if not m.any():
            values.append(float("nan"))
            continue
        # [3, H, W][:, m] -> [3, n]: the masked pixels' channels; one MSE over them.
        values.append(float(peak_signal_noise_ratio(p[:, m], t[:, m], data_range=1.0)))
    return float(torch.tensor(values, dtype=torch.float64).mean())


def ssim(pred: torch.Tensor, target: torch.Tensor) -> float:
    """Structural similarity (torchmetrics defaults: 11x11 Gaussian window, sigma 1.5), data range 1.0.

    1.0 for identical images, lower the less alike (at most 1, can go slightly below 0). Images need
    sides of at least 11 pixels. A batch gives the mean of per-image SSIMs.
    """
    pred, target = _pair(pred, target)
    return float(structural_similarity_index_measure(pred, target, data_range=1.0))


def alexnet_weights_path(torch_home: str | os.PathLike | None = None) -> Path:
    """Where torchvision caches the AlexNet weights: ``<torch_home>/hub/checkpoints/<file>``, or under
    :func:`torch.hub.get_dir` (``$TORCH_HOME/hub``, by default ``~/.cache/torch/hub``) when ``torch_home`` is None."""
    hub_dir = Path(torch_home) / "hub" if torch_home is not None else Path(torch.hub.get_dir())
    return hub_dir / "checkpoints" / ALEXNET_WEIGHTS_URL.rsplit("/", 1)[-1]


def write_untrained_alexnet(torch_home: str | os.PathLike) -> Path:
    """Put untrained AlexNet weights where torchvision looks under ``torch_home`` (if none are there).

    With ``TORCH_HOME`` pointing there, nerfacto's LPIPS module builds offline; torchvision loads the
    cached file without checking its hash, so LPIPS values computed with it are meaningless, and
    :func:`lpips_available` reports them as not the real weights. Returns the file.
    """
    import torchvision

    path = alexnet_weights_path(torch_home)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(torchvision.models.alexnet(weights=None).state_dict(), path)
    return path


_SHA256_CACHE: dict[tuple[str, int, int], str] = {}


def _sha256(path: Path) -> str:
    """The file's sha256 hex digest, remembered per (path, size, mtime) so the ~240 MB file is read once."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _SHA256_CACHE:
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
        _SHA256_CACHE[key] = digest.hexdigest()
    return _SHA256_CACHE[key]


def lpips_available(torch_home: str | os.PathLike | None = None) -> tuple[bool, str]:
    """Whether LPIPS can be computed with the real ImageNet AlexNet weights, without any download.

    True only if torchvision's cached weight file exists and its sha256 starts with the hex digits in its
    name (``7be5be79``). Untrained stand-ins saved at that path (which tests use so nerfacto builds offline)
    fail the hash. Returns ``(available, reason)``; the reason says why LPIPS is skipped, or where the weights are.
    """
    path = alexnet_weights_path(torch_home)
    if not path.is_file():
        return False, f"LPIPS skipped: no AlexNet weights in the torch hub cache ({path})"
    prefix = re.search(r"-([a-f0-9]+)\.", path.name).group(1)
    if not _sha256(path).startswith(prefix):
        return False, f"LPIPS skipped: the cached AlexNet weights are not the real ones (sha256 mismatch: {path})"
    return True, f"LPIPS with the AlexNet weights at {path}"


_LPIPS_MODULES: dict[tuple[str, str], torch.nn.Module] = {}


def lpips(pred: torch.Tensor, target: torch.Tensor) -> float:
    """LPIPS (AlexNet backbone, torchmetrics' learned linear layers) of images in [0, 1]; 0 for identical
    images, higher the more different (typically below 1). A batch gives the mean of per-image values.

    Uses the weights under :func:`torch.hub.get_dir`, the same place torchvision loads them from, and only if
    :func:`lpips_available` accepts them; inputs are clamped to [0, 1].

    Raises:
        ModelUnavailableError: the real AlexNet weights are not cached (the message is the skip reason).
    """
    from torchmetrics.image.lpip import LearnedPerceptualImagePatchSimilarity

    pred, target = _pair(pred, target)
    available, reason = lpips_available()  # checked before torchvision could try to download anything
    if not available:
        raise ModelUnavailableError(reason)
    key = (str(alexnet_weights_path()), str(pred.device))
    if key not in _LPIPS_MODULES:
        _LPIPS_MODULES[key] = LearnedPerceptualImagePatchSimilarity(net_type="alex", normalize=True).to(pred.device)
    metric = _LPIPS_MODULES[key]
    metric.reset()
    with torch.no_grad():
        return float(metric(pred.clamp(0, 1), target.clamp(0, 1)))


def mask_iou(a: torch.Tensor, b: torch.Tensor) -> float:
    """Intersection over union of two bool masks, in [0, 1]; two empty masks count as identical (1.0).

    For ``[B, H, W]`` masks, the mean of the per-image IoUs.
    """
    if a.dtype != torch.bool or b.dtype != torch.bool:
        raise ValueError(f"masks must be bool tensors, got {a.dtype} and {b.dtype}")
    if a.shape != b.shape or a.dim() not in (2, 3):
        raise ValueError(f"masks must share a shape [H, W] or [B, H, W], got {list(a.shape)} and {list(b.shape)}")
    a, b = a.reshape(-1, *a.shape[-2:]), b.reshape(-1, *b.shape[-2:])
    inter = (a & b).sum(dim=(1, 2)).double()
    union = (a | b).sum(dim=(1, 2)).double()
    iou = torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union))
    return float(iou.mean())


def _depth(depth: torch.Tensor, name: str) -> torch.Tensor:
    if depth.dim() in (3, 4) and depth.shape[-1] == 1:  # nerfstudio's [H, W, 1]
        depth = depth[..., 0]
    if depth.dim() == 2:
        depth = depth.unsqueeze(0)
    if depth.dim() != 3:
        raise ValueError(f"{name} must be [H, W] or [B, H, W], got {list(depth.shape)}")
    return depth.double()


def masked_depth_error(
    depth_a: torch.Tensor, depth_b: torch.Tensor, mask: torch.Tensor, reduction: str = "mean"
) -> float:
    """Mean (or ``reduction="median"``) absolute depth difference ``|depth_a - depth_b|`` over the
    masked pixels, in scene units. The median resists the few pixels where a NeRF's expected depth
    runs off to its far plane (seen: a 0.06 median beside a 10.2 mean on one view).

    NaN-safe: pixels where either depth is not finite are left out. Batches pool all masked pixels.
    Returns ``nan`` when no masked pixel with finite depths is left (an empty mask, say).
    """
    depth_a, depth_b = _depth(depth_a, "depth_a"), _depth(depth_b, "depth_b")
    if depth_a.shape != depth_b.shape:
        raise ValueError(f"depths differ in shape: {list(depth_a.shape)} vs {list(depth_b.shape)}")
    mask = _mask_batch(mask, *depth_a.shape).to(depth_a.device)
    valid = mask & torch.isfinite(depth_a) & torch.isfinite(depth_b)
    if not valid.any():
        return float("nan")
    errors = (depth_a[valid] - depth_b[valid]).abs()
    if reduction not in ("mean", "median"):
        raise ValueError(f"reduction must be mean or median, got {reduction!r}")
    return float(errors.median() if reduction == "median" else errors.mean())
