"""The one place where diffusion weights are loaded."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import torch

from ids_nerf.errors import ModelUnavailableError
from ids_nerf.guidance.stable_diffusion import StableDiffusionGuidance

DEFAULT_MODEL = "stable-diffusion-v1-5/stable-diffusion-v1-5"
"""Stable Diffusion 1.5, the paper's NeRF model family."""

Precision = Literal["fp32", "fp16", "bf16"]
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def _looks_like_path(model: str) -> bool:
    return model.startswith((".", "/", "~")) or model.count("/") > 1 or "\\" in model


def _load_parts(model: str, dtype: torch.dtype, local_files_only: bool):
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    common = {"local_files_only": local_files_only}
    return dict(
        tokenizer=CLIPTokenizer.from_pretrained(model, subfolder="tokenizer", **common),
        text_encoder=CLIPTextModel.from_pretrained(model, subfolder="text_encoder", dtype=dtype, **common),
        vae=AutoencoderKL.from_pretrained(model, subfolder="vae", torch_dtype=dtype, **common),
        unet=UNet2DConditionModel.from_pretrained(model, subfolder="unet", torch_dtype=dtype, **common),
        scheduler=DDPMScheduler.from_pretrained(model, subfolder="scheduler", **common),
    )


def load_stable_diffusion(
    model: str = DEFAULT_MODEL,
    precision: Precision = "fp32",
    device: str | torch.device = "cpu",
    guidance_scale: float = 7.5,
    min_step: int = 50,
    max_step: int = 950,
) -> StableDiffusionGuidance:
    """Load a diffusers Stable Diffusion checkpoint (hub id or local folder) as a frozen score model.

    The local Hugging Face cache is tried first, so a downloaded model never touches the network.

    Raises:
        ModelUnavailableError: the folder does not exist, or the id is neither cached nor downloadable.
    """
    if precision not in DTYPES:
        raise ModelUnavailableError(f"unknown precision {precision!r}: use one of {', '.join(DTYPES)}")
    dtype = DTYPES[precision]
    folder = Path(model).expanduser()
    if folder.is_dir():
        model = str(folder)
        try:
            parts = _load_parts(model, dtype, local_files_only=True)
        except (OSError, ValueError) as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise ModelUnavailableError(
                f"'{model}' is not a complete diffusers Stable Diffusion folder ({first}); "
                "make one with `ids-nerf make-tiny-sd DIR` or save a pipeline with save_pretrained"
            ) from err
    elif _looks_like_path(model):
        raise ModelUnavailableError(f"diffusion model folder '{model}' does not exist; pass an existing folder or a hub id")
    else:
        try:
            parts = _load_parts(model, dtype, local_files_only=True)
        except OSError:
            try:
                parts = _load_parts(model, dtype, local_files_only=False)
            except OSError as err:
                raise ModelUnavailableError(
                    f"diffusion model '{model}' is not in the local Hugging Face cache and could not be downloaded; "
                    f"download it first (`hf download {model}`) or pass a local diffusers folder as the model"
                ) from err
    guidance = StableDiffusionGuidance(
        guidance_scale=guidance_scale, min_step=min_step, max_step=max_step, **parts
    )
    for name in ("unet", "vae", "text_encoder"):
        getattr(guidance, name).to(device)
    return guidance
