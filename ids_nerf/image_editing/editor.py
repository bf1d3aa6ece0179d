"""2D image editing by optimising a latent with IDS, DDS or CDS: the official repository's job."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

import torch
from tqdm.auto import tqdm

from ids_nerf.core.defaults import (
    EDIT_STEPS_2D,
    FPR_SCALE,
    FPR_STEPS,
    GUIDANCE_SCALE,
    LOSS_SCALE,
    LR_2D,
    MAX_STEP,
    MIN_STEP,
)
from ids_nerf.errors import UserError
from ids_nerf.guidance import DEFAULT_MODEL, load_guidance
from ids_nerf.guidance.cut import cut_loss
from ids_nerf.guidance.loading import resolve_precision
from ids_nerf.image_editing.latent_edit import LatentEditSettings, edit_latent
from ids_nerf.images import load_image, side_by_side, to_pil, to_tensor
from ids_nerf.io import check_output_free, staged_output_dir

METHODS = ("ids", "dds", "cds")


@dataclass
class EditImageConfig:
    """Edit one image with a text prompt, keeping its identity (IDS), or with the DDS/CDS baselines."""

    image: Path
    """The source image (PNG/JPEG). Resized to the model's native square size (512 for SD 1.x)."""
    source_prompt: str
    """Text describing the source image, e.g. "a photo of a cat"."""
    target_prompt: str
    """Text describing the wanted result, e.g. "a photo of a tiger"."""
    method: str = "ids"
    """ids (FPR-corrected guided noise), dds (no FPR) or cds (DDS + patch-contrastive loss)."""
    steps: int = EDIT_STEPS_2D
    """Optimisation steps (official: 200)."""
    fpr_steps: int = FPR_STEPS
    """FPR iterations N per step, IDS only (official: 3). 0 makes IDS equal to DDS."""
    fpr_scale: float = FPR_SCALE
    """FPR step size lambda (official: 1.0, tuned for SD 1.x latents)."""
    guidance_scale: float = GUIDANCE_SCALE
    """CFG scale s in eps_u + s (eps_c - eps_u), used inside FPR and in the final score (official: 7.5)."""
    model: str = DEFAULT_MODEL
    """Score model: a diffusers Stable Diffusion hub id or local folder (see `ids-nerf make-tiny-sd`), or
    exact:SCENE, the exact-score model of a scene from `ids-nerf make-scene` (as the 3D methods take it)."""
    seed: int = 0
    """Seed of the timesteps, the noise and the CUT patch sampling."""
    out: Optional[Path] = None
    """Result folder; must not exist or be empty. Default: outputs/edit-image/<image>-<method>-<time>."""
    lr: float = LR_2D
    """SGD learning rate on the target latent (official: 0.1)."""
    loss_scale: float = LOSS_SCALE
    """The loss is loss_scale * sum(z_trg * direction) / (h * w), h x w the latent size (official: 2000)."""
    cut_weight: float = 3.0
    """Weight of the CUT loss for --method cds (CDS default: 3.0)."""
    min_step: int = MIN_STEP
    """Smallest timestep drawn, inclusive (official: 50 of 1000)."""
    max_step: int = MAX_STEP
    """Timesteps are drawn below this, exclusive (official: randint(50, 949), so t in [50, 948])."""
    save_every: int = 50
    """Write an intermediate image every this many steps (0: never)."""
    precision: str = "auto"
    """fp32, fp16, bf16, or auto (fp16 on CUDA as the official code, fp32 on the CPU)."""
    device: str = "auto"
    """Torch device for the diffusion model, e.g. cuda:0 or cpu; auto picks CUDA when available."""

    def validate(self) -> None:
        if self.method not in METHODS:
            raise UserError(f"unknown method '{self.method}'; use one of: {', '.join(METHODS)}")
        for name in ("source_prompt", "target_prompt"):
            if not getattr(self, name).strip():
                raise UserError(f"--{name.replace('_', '-')} is empty; describe the image in a few words")
        if self.steps < 1 or self.fpr_steps < 0 or self.save_every < 0:
            raise UserError("--steps must be >= 1, --fpr-steps and --save-every >= 0")
        if not 0 <= self.min_step < self.max_step <= 1000:
            raise UserError("need 0 <= --min-step < --max-step <= 1000")

    def resolve_out(self) -> Path:
        if self.out is not None:
            return self.out
        stamp = time.strftime("%Y%m%d-%H%M%S")
        return Path("outputs/edit-image") / f"{self.image.stem}-{self.method}-{stamp}"

    def main(self) -> Path:
        """Run the edit; returns the result folder."""
        return edit_image(self)


def _device(config: EditImageConfig) -> str:
    if config.device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return config.device


def edit_image(config: EditImageConfig) -> Path:
    """Optimise the image's latent toward the target prompt and write the result folder:
    ``source.png``, ``step_XXXX.png`` every ``save_every`` steps, ``result.png``,
    ``comparison.png`` (source | result) and ``edit.json`` (settings and final diagnostics)."""
    config.validate()
    out = config.resolve_out()
    check_output_free(out)
    image = load_image(config.image)
    device = _device(config)
    guidance = load_guidance(
        config.model, config.precision, device, config.guidance_scale, config.min_step, config.max_step
    )
    if config.method == "cds" and not hasattr(guidance, "unet"):
        raise UserError(
            f"--method cds needs a Stable Diffusion model (CUT uses its UNet's self-attention); "
            f"'{config.model}' has none: use --method ids or dds with it"
        )
    source = to_tensor(image, guidance.native_size).to(device)
    cond_src = guidance.embed_prompt(config.source_prompt)
    cond_trg = guidance.embed_prompt(config.target_prompt)

    generator = torch.Generator().manual_seed(config.seed)
    with torch.no_grad():
        z_src = guidance.encode(source).float()
    settings = LatentEditSettings(
        steps=config.steps,
        lr=config.lr,
        fpr_steps=config.fpr_steps if config.method == "ids" else 0,  # N = 0 is DDS exactly
        fpr_scale=config.fpr_scale,
        loss_scale=config.loss_scale,
    )

    def cut(z_trg, t, noise):
        return config.cut_weight * cut_loss(guidance, z_src, z_trg, cond_src, cond_trg, t, noise, generator=generator)

    with staged_output_dir(out) as staging:
        to_pil(source).save(staging / "source.png")
        progress = tqdm(total=config.steps, desc=f"{config.method} edit", unit="step")

        def on_step(step, z_trg, result):
            progress.update()
            progress.set_postfix(dist=f"{float(result.distance_after.mean()):.3f}")
            if config.save_every and step % config.save_every == 0:
                with torch.no_grad():
                    to_pil(guidance.decode(z_trg)).save(staging / f"step_{step:04d}.png")

        z_trg, result = edit_latent(
            guidance,
            z_src,
            cond_src,
            cond_trg,
            settings,
            generator,
            extra_loss=cut if config.method == "cds" else None,
            on_step=on_step,
        )
        progress.close()
        with torch.no_grad():
            edited = guidance.decode(z_trg)
        to_pil(edited).save(staging / "result.png")
        side_by_side([source, edited]).save(staging / "comparison.png")
        summary = {
            "settings": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(config).items()},
            "device": device,
            "precision": resolve_precision(config.precision, device),
            "latent_change_l2": float((z_trg.detach() - z_src).norm()),
            "final_posterior_distance": float(result.distance_after),
        }
        (staging / "edit.json").write_text(json.dumps(summary, indent=2))
    print(f"Edited image written to {out}/result.png (comparison: {out}/comparison.png)")
    return out
