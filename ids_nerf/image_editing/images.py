"""Reading and writing RGB images as ``[1, 3, H, W]`` tensors in [0, 1]."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor

from ids_nerf.errors import UserError


def load_image(path: Path) -> Image.Image:
    """Read ``path`` as an RGB image, or fail with one line saying what is wrong."""
    if not path.is_file():
        raise UserError(f"image '{path}' does not exist or is not a file; pass an existing PNG or JPEG with --image")
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except (UnidentifiedImageError, OSError) as err:
        raise UserError(f"image '{path}' cannot be read as an image ({type(err).__name__}); pass a PNG or JPEG") from err


def to_tensor(image: Image.Image, size: int) -> Tensor:
    """``[1, 3, size, size]`` in [0, 1], resized bicubically (to the diffusion model's native size)."""
    rgb = image.resize((size, size), Image.Resampling.BICUBIC)
    return torch.from_numpy(np.asarray(rgb, dtype=np.float32) / 255.0).permute(2, 0, 1)[None]


def to_pil(image: Tensor) -> Image.Image:
    """``[1, 3, H, W]`` or ``[3, H, W]`` in [0, 1] to a PIL image."""
    array = image.detach().float().clamp(0, 1).squeeze(0).permute(1, 2, 0).cpu().numpy()
    return Image.fromarray((array * 255).round().astype(np.uint8))


def side_by_side(images: Sequence[Tensor]) -> Image.Image:
    """Images of equal height concatenated left to right."""
    return to_pil(torch.cat([img.detach().float().cpu().reshape(1, *img.shape[-3:]) for img in images], dim=-1))
