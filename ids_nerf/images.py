"""Reading, writing and laying out RGB images as tensors in [0, 1]: the one images module of the package
(the 2D editor, compare, eval and the exact-score model use it)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont, UnidentifiedImageError
from torch import Tensor

from ids_nerf.errors import UserError


def image_psnr(image: Tensor, reference: Tensor) -> float:
    """PSNR in dB of ``image`` to ``reference`` (same shape, values in [0, 1]) over all pixels and channels:
    ``10 * log10(1 / MSE)``; ``inf`` when they are identical. Per-image means and masks:
    :func:`ids_nerf.evaluation.metrics.psnr`."""
    from torchmetrics.functional.image import peak_signal_noise_ratio

    return float(peak_signal_noise_ratio(image.float(), reference.float(), data_range=1.0))


def load_image(path: Path) -> Image.Image:
    """Read ``path`` as an RGB image, or fail with one line saying what is wrong."""
    if not path.is_file():
        raise UserError(f"image '{path}' does not exist or is not a file; pass an existing PNG or JPEG with --image")
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except (UnidentifiedImageError, OSError) as err:
        raise UserError(
            f"image '{path}' cannot be read as an image ({type(err).__name__}); pass a PNG or JPEG"
        ) from err


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


def labeled_grid(
    rows: Sequence[Sequence[Tensor]],
    columns: Sequence[str],
    row_labels: Optional[Sequence[str]] = None,
    captions: Optional[Sequence[Sequence[str]]] = None,
    tile: int = 192,
) -> Image.Image:
    """A figure a person can read: each ``[3, H, W]`` (or ``[1, 3, H, W]``) image of ``rows`` upscaled
    (nearest, so pixels stay visible) to ``tile`` pixels high, a header naming the ``columns``, an
    optional label left of each row and an optional caption (e.g. its numbers) under each image."""
    font_size = max(12, tile // 12)
    font = _font(font_size)
    line = font_size + 8
    first = rows[0][0]
    scale = tile / first.shape[-2]
    width = round(first.shape[-1] * scale)
    left = round(max(_text_width(font, label) for label in row_labels)) + 12 if row_labels else 0
    caption_h = line if captions else 0
    headers = [_wrap(font, name, width - 6) for name in columns]  # a long name takes more lines, not the next column
    header_h = line + (font_size + 2) * (max(len(lines) for lines in headers) - 1)
    canvas = Image.new("RGB", (left + width * len(columns), header_h + (tile + caption_h) * len(rows)), "white")
    draw = ImageDraw.Draw(canvas)
    for c, lines in enumerate(headers):
        for k, text in enumerate(lines):
            x = left + c * width + (width - _text_width(font, text)) / 2
            draw.text((x, 3 + k * (font_size + 2)), text, fill="black", font=font)
    for r, images in enumerate(rows):
        y = header_h + r * (tile + caption_h)
        if row_labels:
            draw.text((6, y + tile / 2 - line / 2), row_labels[r], fill="black", font=font)
        for c, image in enumerate(images):
            picture = to_pil(image).resize((width, tile), Image.Resampling.NEAREST)
            canvas.paste(picture, (left + c * width, y))
            if captions and captions[r][c]:
                text = captions[r][c]
                draw.text(
                    (left + c * width + (width - _text_width(font, text)) / 2, y + tile + 2),
                    text,
                    fill="black",
                    font=font,
                )
    return canvas


def _wrap(font, text: str, width: float) -> List[str]:
    """``text`` broken at spaces into lines no wider than ``width`` pixels (a single word may be wider)."""
    lines: List[str] = []
    for word in text.split(" "):
        if lines and _text_width(font, f"{lines[-1]} {word}") <= width:
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(word)
    return lines or [""]


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)  # scalable with FreeType (Pillow >= 10.1)
    except (TypeError, OSError):
        return ImageFont.load_default()


def _text_width(font: ImageFont.ImageFont, text: str) -> float:
    return font.getlength(text)


def read_rgb_on_white(path: Path) -> Tensor:
    """``[3, H, W]`` in [0, 1], RGBA composited on white as nerfstudio's blender-data parser does."""
    rgba = np.asarray(Image.open(path).convert("RGBA"), dtype=np.float32) / 255.0
    rgb = rgba[..., :3] * rgba[..., 3:] + (1 - rgba[..., 3:])
    return torch.from_numpy(rgb).permute(2, 0, 1)


def fit_short_side(height: int, width: int, short_side: int, multiple: int) -> Tuple[int, int]:
    """Size with the short side ``short_side`` and the aspect ratio kept, both sides rounded to a
    multiple of ``multiple`` (the UNet's downsampling times the VAE factor)."""
    scale = short_side / min(height, width)
    return (
        max(multiple, round(height * scale / multiple) * multiple),
        max(multiple, round(width * scale / multiple) * multiple),
    )
