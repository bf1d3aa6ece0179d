"""The one place where diffusion weights are loaded."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Literal

import torch

from ids_nerf.core.defaults import GUIDANCE_SCALE, MAX_STEP, MIN_STEP
from ids_nerf.errors import ModelUnavailableError
from ids_nerf.guidance.score_model import ScoreModel
from ids_nerf.guidance.stable_diffusion import StableDiffusionGuidance

DEFAULT_MODEL = "stable-diffusion-v1-5/stable-diffusion-v1-5"
"""Stable Diffusion 1.5, the paper's NeRF model family."""

Precision = Literal["auto", "fp32", "fp16", "bf16"]
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
VaePrecision = Literal["same", "fp32"]
"""The VAE's precision: the UNet's, or fp32 whatever the UNet's."""


def _looks_like_path(model: str) -> bool:
    return model.startswith((".", "/", "~")) or model.count("/") > 1 or "\\" in model


def resolve_precision(precision: str, device: str | torch.device) -> str:
    """``auto`` becomes fp16 on CUDA (the official code's) and fp32 elsewhere; others pass through."""
    if precision != "auto":
        return precision
    return "fp16" if str(device).startswith("cuda") else "fp32"


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _hub_reachable(timeout_s: float = 3.0) -> bool:
    """Whether the Hugging Face endpoint answers a TCP connect; avoids minutes of download retries."""
    from urllib.parse import urlparse

    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return False
    url = urlparse(constants.ENDPOINT)
    try:
        socket.create_connection((url.hostname, url.port or (443 if url.scheme == "https" else 80)), timeout_s).close()
    except OSError:
        return False
    return True


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


def _load_folder(folder: str, dtype: torch.dtype) -> dict:
    """The parts of a local diffusers folder; an incomplete one is a one-line error."""
    try:
        return _load_parts(folder, dtype, local_files_only=True)
    except (OSError, ValueError) as err:
        raise ModelUnavailableError(
            f"'{folder}' is not a complete diffusers Stable Diffusion folder ({_first_line(err)}); "
            "make one with `ids-nerf make-tiny-sd DIR` or save a pipeline with save_pretrained"
        ) from err


def _load_hub_id(model: str, dtype: torch.dtype) -> dict:
    """The parts of a hub id: from the local cache, else downloaded when the hub answers."""
    try:
        return _load_parts(model, dtype, local_files_only=True)
    except OSError as err:
        if not _hub_reachable():
            raise ModelUnavailableError(
                f"diffusion model '{model}' is not in the local Hugging Face cache and the hub cannot be reached; "
                f"download it first (`hf download {model}`) or pass a local diffusers folder as the model"
            ) from err
    try:
        return _load_parts(model, dtype, local_files_only=False)
    except OSError as err:
        raise ModelUnavailableError(
            f"diffusion model '{model}' could not be downloaded from the hub ({_first_line(err)}); "
            "check the id and your access, or pass a local diffusers folder as the model"
        ) from err


def load_stable_diffusion(
    model: str = DEFAULT_MODEL,
    precision: Precision = "fp32",
    device: str | torch.device = "cpu",
    guidance_scale: float = GUIDANCE_SCALE,
    min_step: int = MIN_STEP,
    max_step: int = MAX_STEP,
    vae_precision: VaePrecision = "same",
) -> StableDiffusionGuidance:
    """Load a diffusers Stable Diffusion checkpoint (hub id or local folder) as a frozen score model.

    The local Hugging Face cache is tried first, so a downloaded model never touches the network.

    ``precision="auto"`` is fp16 on CUDA (the official code's) and fp32 elsewhere. ``vae_precision="fp32"``
    keeps the VAE in full precision whatever the UNet's (``same``: the UNet's).

    Raises:
        ModelUnavailableError: the folder does not exist, or the id is neither cached nor downloadable.
    """
    precision = resolve_precision(precision, device)
    if precision not in DTYPES:
        raise ModelUnavailableError(f"unknown precision {precision!r}: use one of {', '.join(DTYPES)}")
    dtype = DTYPES[precision]
    folder = Path(model).expanduser()
    if folder.is_dir():
        parts = _load_folder(str(folder), dtype)
    elif _looks_like_path(model):
        raise ModelUnavailableError(
            f"diffusion model folder '{model}' does not exist; pass an existing folder or a hub id"
        )
    else:
        parts = _load_hub_id(model, dtype)
    guidance = StableDiffusionGuidance(guidance_scale=guidance_scale, min_step=min_step, max_step=max_step, **parts)
    for name in ("unet", "vae", "text_encoder"):
        getattr(guidance, name).to(device)
    if vae_precision == "fp32":
        guidance.vae.to(dtype=torch.float32)
    return guidance


def load_guidance(
    model: str = DEFAULT_MODEL,
    precision: Precision = "fp32",
    device: str | torch.device = "cpu",
    guidance_scale: float = GUIDANCE_SCALE,
    min_step: int = MIN_STEP,
    max_step: int = MAX_STEP,
    vae_precision: VaePrecision = "same",
) -> ScoreModel:
    """The score model named by ``model``: ``exact:SCENE`` for the exact-score verification model
    (see :mod:`ids_nerf.guidance.exact`), ``learned:FOLDER`` or ``learned:default`` for the learned one (see
    :mod:`ids_nerf.guidance.learned`; fp32 whatever ``precision``), otherwise a Stable Diffusion hub id or folder."""
    from ids_nerf.guidance.exact import EXACT_PREFIX, load_exact_score
    from ids_nerf.guidance.learned import LEARNED_PREFIX, load_learned

    if model.startswith(EXACT_PREFIX):
        return load_exact_score(model, device, guidance_scale, min_step, max_step)
    if model.startswith(LEARNED_PREFIX):
        return load_learned(model, device, guidance_scale, min_step, max_step)
    return load_stable_diffusion(model, precision, device, guidance_scale, min_step, max_step, vae_precision)
