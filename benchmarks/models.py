"""Score models for benchmarks: the tiny offline model, or Stable Diffusion 1.5's architecture with
random weights (timing does not depend on the weights)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from ids_nerf.core.defaults import SD_BETA_END, SD_BETA_START
from ids_nerf.guidance import StableDiffusionGuidance, load_stable_diffusion, make_tiny_sd


def tiny(device: str, precision: str) -> StableDiffusionGuidance:
    folder = tempfile.mkdtemp(prefix="tiny-sd-")
    make_tiny_sd(folder)
    return load_stable_diffusion(folder, precision, device)


def sd15_random(device: str, precision: str, full_text_encoder: bool = False) -> StableDiffusionGuidance:
    """SD 1.5's UNet and VAE (from their published configs) with random weights. The text encoder is
    tiny by default (prompt embeddings are computed once and never timed), 768 wide as SD's; with
    ``full_text_encoder`` it has CLIP ViT-L/14's text tower size (12 layers, 123 M parameters), so a
    saved folder weighs and loads like the real one."""
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    from ids_nerf.guidance.loading import DTYPES
    from ids_nerf.guidance.tiny import write_byte_tokenizer

    dtype = DTYPES[precision]
    unet = UNet2DConditionModel(
        sample_size=64,
        cross_attention_dim=768,
        attention_head_dim=8,
        block_out_channels=(320, 640, 1280, 1280),
        layers_per_block=2,
        down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
    ).to(device, dtype)
    vae = AutoencoderKL(
        block_out_channels=(128, 256, 512, 512),
        latent_channels=4,
        layers_per_block=2,
        sample_size=512,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
    ).to(device, dtype)
    folder = Path(tempfile.mkdtemp(prefix="tok-"))
    write_byte_tokenizer(folder)
    tokenizer = CLIPTokenizer.from_pretrained(folder)
    # SD 1.5's text encoder: vocabulary 49408, 3072-wide MLP, 12 layers (our byte tokenizer uses the
    # first 514 ids only, so the rest of the embedding table is there for its size alone).
    size = dict(vocab_size=49408, intermediate_size=3072, num_hidden_layers=12) if full_text_encoder else {}
    text = CLIPTextModel(
        CLIPTextConfig(
            **{"vocab_size": len(tokenizer), "intermediate_size": 64, "num_hidden_layers": 1, **size},
            hidden_size=768,
            num_attention_heads=12,
            max_position_embeddings=77,
            hidden_act="quick_gelu",
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
    ).to(device, dtype)
    scheduler = DDPMScheduler(beta_start=SD_BETA_START, beta_end=SD_BETA_END, beta_schedule="scaled_linear")
    return StableDiffusionGuidance(unet, vae, text, tokenizer, scheduler)


def save_folder(guidance: StableDiffusionGuidance, folder: Path) -> Path:
    """Write ``guidance``'s parts as a diffusers folder that ``load_stable_diffusion`` (and so
    ``--pipeline.diffusion-model``) opens: unet, vae, text_encoder, tokenizer, scheduler. Returns it."""
    from diffusers import DDPMScheduler

    folder = Path(folder)
    for name in ("unet", "vae", "text_encoder", "tokenizer"):
        getattr(guidance, name).save_pretrained(folder / name)
    scheduler = DDPMScheduler(beta_start=SD_BETA_START, beta_end=SD_BETA_END, beta_schedule="scaled_linear")
    scheduler.save_pretrained(folder / "scheduler")
    return folder


MODELS = {"tiny": tiny, "sd15-random": sd15_random}
