"""A learned score model for verification: a small text-conditioned pixel-space diffusion model.

**A verification instrument, not a replacement for Stable Diffusion.** It is trained offline
(``ids-nerf train-score-model``) on renders of random scenes (:mod:`ids_nerf.scenes.random_scenes`) that never
include the evaluation layout, so on the evaluation scene its predictions carry a learned model's errors: they
are what FPR corrects, and what the exact-score model (:mod:`ids_nerf.guidance.exact`), whose posterior snaps to
one training view, cannot show.

It predicts epsilon under Stable Diffusion 1.x's noise schedule, in the exact model's pixel space (images in
[0, 1] -> ``2 x - 1``), with a diffusers ``UNet2DConditionModel`` conditioned on a word-level caption encoder
(:mod:`ids_nerf.guidance.captions`); the empty caption is the unconditional condition of CFG.

A model folder (``learned:FOLDER``)::

    model_index.json                 {"kind": "ids-nerf-learned", ...}: what the folder is
    unet/                            diffusers save_pretrained: config.json, diffusion_pytorch_model.safetensors
    caption_encoder/config.json      the encoder's shape and vocabulary
    caption_encoder/model.safetensors
    training.json                    how it was made (written by the training command)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, Optional, Sequence

import torch
from torch import Tensor

from ids_nerf.core import classifier_free_guidance, sd_alphas_cumprod
from ids_nerf.core.defaults import GUIDANCE_SCALE, MAX_STEP, MIN_STEP
from ids_nerf.errors import ModelUnavailableError
from ids_nerf.guidance.captions import CaptionEncoder, CaptionEncoderConfig
from ids_nerf.guidance.exact import PixelCodec, PixelSpaceModel

LEARNED_PREFIX = "learned:"
KIND = "ids-nerf-learned"
MANIFEST = "model_index.json"
UNET_DIR = "unet"
CAPTION_DIR = "caption_encoder"
CAPTION_CONFIG = "config.json"
CAPTION_WEIGHTS = "model.safetensors"
REQUIRED_FILES = (
    MANIFEST,
    f"{UNET_DIR}/config.json",
    f"{UNET_DIR}/diffusion_pytorch_model.safetensors",
    f"{CAPTION_DIR}/{CAPTION_CONFIG}",
    f"{CAPTION_DIR}/{CAPTION_WEIGHTS}",
)
DEFAULT_FOLDER = Path(__file__).resolve().parent / "weights" / "learned-default"
"""Where ``learned:default`` looks: a model trained with the command's defaults, shipped with the package."""
TRAIN_HINT = "train one with `ids-nerf train-score-model FOLDER` and pass learned:FOLDER"


def build_unet(size: int, channels: Sequence[int], layers_per_block: int, cross_attention_dim: int):
    """A pixel-space ``UNet2DConditionModel``: 3 channels in and out, plain blocks at full resolution and
    cross-attention blocks below it (attention at 32 x 32 would cost the most and see the least)."""
    from diffusers import UNet2DConditionModel

    down = ("DownBlock2D",) + ("CrossAttnDownBlock2D",) * (len(channels) - 1)
    up = ("CrossAttnUpBlock2D",) * (len(channels) - 1) + ("UpBlock2D",)
    return UNet2DConditionModel(
        sample_size=size,
        in_channels=3,
        out_channels=3,
        block_out_channels=tuple(channels),
        layers_per_block=layers_per_block,
        down_block_types=down,
        up_block_types=up,
        cross_attention_dim=cross_attention_dim,
        attention_head_dim=4,  # diffusers' name for the number of heads here
        norm_num_groups=32,
    )


class LearnedScoreGuidance(PixelSpaceModel):
    """The learned model behind the :class:`~ids_nerf.guidance.score_model.ScoreModel` interface (fp32)."""

    def __init__(
        self,
        unet,
        caption_encoder: CaptionEncoder,
        guidance_scale: float = GUIDANCE_SCALE,
        min_step: int = MIN_STEP,
        max_step: int = MAX_STEP,
        device: str | torch.device = "cpu",
    ) -> None:
        self._device = torch.device(device)
        if unet.dtype != torch.float32:  # a dtype passed to diffusers' ``to`` warns, even fp32 on fp32
            unet = unet.float()
        self.unet = unet.to(self._device).eval().requires_grad_(False)
        self.caption_encoder: Optional[CaptionEncoder] = caption_encoder.to(self._device).eval().requires_grad_(False)
        self.vocabulary = caption_encoder.config.vocabulary
        self.codec = PixelCodec(1)
        self.native_size = int(unet.config.sample_size)
        self.vae_scale_factor = 1
        self.size_multiple = 2 ** (len(unet.config.block_out_channels) - 1)  # the UNet's downsampling
        self.guidance_scale = guidance_scale
        self.min_step, self.max_step = min_step, max_step
        self.alphas_cumprod = sd_alphas_cumprod().float()
        self._prompt_cache: Dict[str, Tensor] = {}

    def embed_prompt(self, prompt: str) -> Tensor:
        """``[1, max_words, dim]`` hidden states of ``prompt`` (cached); ``""`` is the unconditional one."""
        if prompt not in self._prompt_cache:
            if self.caption_encoder is None:
                raise RuntimeError(f"caption encoder was released; prompt {prompt!r} was never embedded")
            with torch.no_grad():
                states = self.caption_encoder.encode([prompt])
            self._prompt_cache[prompt] = states.to(self.device)
        return self._prompt_cache[prompt]

    def release_text_encoder(self) -> None:
        """Drop the caption encoder; the cache (with the unconditional condition) keeps working."""
        self.embed_prompt("")
        self.caption_encoder = None

    def offload_text_encoder(self) -> None:
        """Keep the caption encoder on the CPU for prompts embedded later; embeddings land on the device."""
        self.embed_prompt("")
        if self.caption_encoder is not None:
            self.caption_encoder.to("cpu")

    def _eps(self, x: Tensor, t: Tensor, cond: Tensor) -> Tensor:
        return self.unet(x, t, encoder_hidden_states=cond).sample

    def score_fn(self, z_t: Tensor, t: Tensor, cond: Tensor) -> Tensor:
        """CFG-guided ``eps_hat(z_t, y, t)``, differentiable in ``z_t``; a ``[1, ...]`` condition serves the batch."""
        batch = z_t.shape[0]
        x = z_t.to(self.device, self.dtype)
        t_dev = t.to(self.device).reshape(-1).expand(batch)
        cond = cond.to(self.device, self.dtype).expand(batch, -1, -1)
        if self.guidance_scale == 1.0:
            eps = self._eps(x, t_dev, cond)
        else:
            uncond = self.embed_prompt("").expand(batch, -1, -1)
            eps_uncond, eps_cond = self._eps(
                torch.cat([x, x]), torch.cat([t_dev, t_dev]), torch.cat([uncond, cond])
            ).chunk(2)
            eps = classifier_free_guidance(eps_uncond, eps_cond, self.guidance_scale)
        return eps.to(z_t.device, z_t.dtype)


def save_learned(folder: Path, unet, caption_encoder: CaptionEncoder, manifest: Optional[dict] = None) -> None:
    """Write ``unet`` and ``caption_encoder`` as a model folder (layout in the module docstring)."""
    from safetensors.torch import save_file

    folder = Path(folder)
    unet.save_pretrained(folder / UNET_DIR, safe_serialization=True)
    (folder / CAPTION_DIR).mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in caption_encoder.state_dict().items()}
    save_file(state, str(folder / CAPTION_DIR / CAPTION_WEIGHTS))
    config = json.dumps(caption_encoder.config.to_json(), indent=2) + "\n"
    (folder / CAPTION_DIR / CAPTION_CONFIG).write_text(config)
    index = {
        "kind": KIND,
        "prediction_type": "epsilon",
        "noise_schedule": "Stable Diffusion 1.x: scaled-linear betas 0.00085-0.012, 1000 steps",
        "codec": "pixels: images in [0, 1] -> 2 x - 1",
        "native_size": int(unet.config.sample_size),
        **(manifest or {}),
    }
    (folder / MANIFEST).write_text(json.dumps(index, indent=2) + "\n")


def resolve_folder(spec: str) -> Path:
    """The folder of ``learned:FOLDER`` (``learned:default``: :data:`DEFAULT_FOLDER`)."""
    name = spec[len(LEARNED_PREFIX) :] if spec.startswith(LEARNED_PREFIX) else spec
    if name == "default":
        if not DEFAULT_FOLDER.is_dir():
            raise ModelUnavailableError(
                f"learned:default is missing from this install (no folder {DEFAULT_FOLDER}); reinstall ids-nerf, "
                f"or train it with `ids-nerf train-score-model {DEFAULT_FOLDER}`, or pass learned:FOLDER"
            )
        return DEFAULT_FOLDER
    return Path(name).expanduser()


def check_folder(folder: Path) -> dict:
    """The manifest of a complete learned model folder; anything else is a one-line ModelUnavailableError."""
    if not folder.is_dir():
        raise ModelUnavailableError(f"learned score model folder '{folder}' does not exist; {TRAIN_HINT}")
    missing = [name for name in REQUIRED_FILES if not (folder / name).is_file()]
    if missing:
        raise ModelUnavailableError(
            f"'{folder}' is not a complete learned score model (missing {', '.join(missing)}); {TRAIN_HINT}"
        )
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except ValueError as err:
        raise ModelUnavailableError(f"'{folder}/{MANIFEST}' is not JSON ({err}); {TRAIN_HINT}") from None
    if not isinstance(manifest, dict) or manifest.get("kind") != KIND:
        raise ModelUnavailableError(
            f"'{folder}' is not a learned score model ({MANIFEST} lacks kind {KIND!r}); {TRAIN_HINT}"
        )
    return manifest


def load_learned_parts(folder: Path):
    """``(unet, caption_encoder)`` of a checked folder, on the CPU in fp32."""
    from diffusers import UNet2DConditionModel
    from safetensors.torch import load_file

    config = CaptionEncoderConfig.from_json(json.loads((folder / CAPTION_DIR / CAPTION_CONFIG).read_text()))
    encoder = CaptionEncoder(config)
    encoder.load_state_dict(load_file(str(folder / CAPTION_DIR / CAPTION_WEIGHTS)))
    unet = UNet2DConditionModel.from_pretrained(folder / UNET_DIR, torch_dtype=torch.float32)
    return unet, encoder


def load_learned(
    spec: str,
    device: str | torch.device = "cpu",
    guidance_scale: float = GUIDANCE_SCALE,
    min_step: int = MIN_STEP,
    max_step: int = MAX_STEP,
) -> LearnedScoreGuidance:
    """The model of ``learned:FOLDER`` (or ``learned:default``)."""
    folder = resolve_folder(spec)
    check_folder(folder)
    try:
        unet, encoder = load_learned_parts(folder)
    except (OSError, ValueError, RuntimeError, KeyError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ModelUnavailableError(f"learned score model '{folder}' cannot be read ({first}); {TRAIN_HINT}") from err
    return LearnedScoreGuidance(unet, encoder, guidance_scale, min_step, max_step, device)
