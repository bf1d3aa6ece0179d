"""``ids-nerf preview``: the edit in 2D on a few of the source run's own training views, in seconds.

    ids-nerf preview --load-config outputs/scene/nerfacto/RUN/config.yml --views 4 \\
        --pipeline.source-prompt "a red ball" --pipeline.target-prompt "a blue ball"

The ``--pipeline.*`` flags are ns-train ids-edit's own, with its defaults, so a preview that looks right
is the same command line's settings for the 3D edit.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import List, Literal, Optional

import torch

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
from ids_nerf.guidance import DEFAULT_MODEL
from ids_nerf.io import check_output_free, staged_output_dir


@dataclass
class PreviewPipeline:
    """The ids-edit settings a 2D preview uses: the same names and defaults as ``ns-train ids-edit``'s
    ``--pipeline.*`` flags (a test keeps them equal)."""

    source_prompt: str = ""
    """Text describing the trained scene as it is."""
    target_prompt: str = ""
    """Text describing the wanted edit."""
    diffusion_model: str = DEFAULT_MODEL
    """Stable Diffusion hub id or local diffusers folder, or exact:SCENE."""
    diffusion_device: Optional[str] = None
    """Torch device of the diffusion model; default CUDA when there is one, else the CPU."""
    diffusion_precision: Literal["auto", "fp32", "fp16", "bf16"] = "auto"
    """auto: fp16 on CUDA, fp32 on the CPU."""
    fpr_steps: int = FPR_STEPS
    """FPR iterations N per step of the IDS column (the DDS column uses 0)."""
    fpr_scale: float = FPR_SCALE
    """FPR step size lambda."""
    fpr_jacobian: Literal["full", "identity"] = "full"
    """full (the paper) or identity (Jacobian-free FPR)."""
    guidance_scale: float = GUIDANCE_SCALE
    """CFG scale."""
    min_step: int = MIN_STEP
    """Smallest timestep drawn, inclusive, of 1000."""
    max_step: int = MAX_STEP
    """Timesteps are drawn below this, exclusive."""
    loss_scale: float = LOSS_SCALE
    """The loss is loss_scale * sum(z * direction) / (h * w)."""
    diffusion_size: Optional[int] = None
    """Short side in pixels of the diffusion input; default the model's native size."""
    seed: int = 0
    """Seed of the timesteps and noise (view i uses seed + i)."""


@dataclass
class Preview:
    """Run IDS and DDS in 2D on a few training views of a source run: a labeled strip and the numbers."""

    load_config: Path
    """The source run's config.yml (from ns-train nerfacto or splatfacto)."""
    pipeline: PreviewPipeline = field(default_factory=PreviewPipeline)
    views: int = 4
    """Training views, spread evenly over the split."""
    steps: int = EDIT_STEPS_2D
    """SGD steps on each view's latent (the official 2D edit: 200)."""
    lr: float = LR_2D
    """SGD learning rate on the latent (official: 0.1)."""
    clip_model: str = "openai/clip-vit-large-patch14"
    """CLIP model for text-image and directional scores, used only when it is available locally."""
    out: Optional[Path] = None
    """Folder to write; must not exist or be empty. Default: outputs/preview/<run>-<time>."""

    def validate(self) -> None:
        if not self.load_config.is_file():
            raise UserError(f"--load-config '{self.load_config}' does not exist; pass a source run's config.yml")
        if not self.pipeline.source_prompt.strip() or not self.pipeline.target_prompt.strip():
            raise UserError("--pipeline.source-prompt and --pipeline.target-prompt must not be empty")
        if self.views < 1 or self.steps < 1 or self.pipeline.fpr_steps < 1:
            raise UserError("--views, --steps and --pipeline.fpr-steps must be at least 1")

    def main(self) -> Path:
        self.validate()
        out = self.out or Path("outputs/preview") / f"{self.load_config.parent.name}-{time.strftime('%Y%m%d-%H%M%S')}"
        check_output_free(out)
        started = time.time()
        views, previews, clip = self._run()
        with staged_output_dir(out) as staging:
            _strip(views, previews).save(staging / "preview.png")
            summary = {"views": views, "settings": _jsonable(asdict(self)), "per_view": [p.numbers for p in previews]}
            summary["seconds"] = round(time.time() - started, 1)
            summary.update(clip)
            (staging / "preview.json").write_text(json.dumps(summary, indent=2))
        _print_summary(views, previews, clip, out, summary["seconds"])
        return out

    def _run(self):
        from ids_nerf.guidance import load_guidance
        from ids_nerf.image_editing.latent_edit import LatentEditSettings
        from ids_nerf.image_editing.preview import preview_views
        from ids_nerf.nerfstudio.compare import open_run, render_cameras, split_cameras, spread_indices

        p = self.pipeline
        device = p.diffusion_device or ("cuda" if torch.cuda.is_available() else "cpu")
        run = open_run(self.load_config)
        views = spread_indices(len(split_cameras(run, "train")), self.views)
        images = render_cameras(run, "train", views)
        del run  # the NeRF is not needed while the diffusion model works
        precision, cfg = p.diffusion_precision, p.guidance_scale
        model = load_guidance(p.diffusion_model, precision, device, cfg, p.min_step, p.max_step)
        settings = LatentEditSettings(self.steps, self.lr, p.fpr_steps, p.fpr_scale, p.fpr_jacobian, p.loss_scale)
        previews = preview_views(model, images, p.source_prompt, p.target_prompt, settings, p.seed, p.diffusion_size)
        del model
        return views, previews, self._clip_scores(previews)

    def _clip_scores(self, previews) -> dict:
        from ids_nerf.evaluation.clip_metrics import load_clip

        scorer, notice = load_clip(self.clip_model)
        if scorer is None:
            return {"clip": notice}
        source = torch.stack([p.source for p in previews])
        scores = {"clip": notice}
        prompts = (self.pipeline.source_prompt, self.pipeline.target_prompt)
        for name in ("ids", "dds"):
            edited = torch.stack([getattr(p, name) for p in previews])
            for metric, value in scorer.edit_scores(source, edited, *prompts).items():
                scores[f"{name}_{metric}"] = value
        return scores


def _jsonable(value):
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return str(value) if isinstance(value, Path) else value


def _strip(views: List[int], previews):
    from ids_nerf.images import labeled_grid

    rows = [[p.source, p.ids, p.dds] for p in previews]
    captions = [
        [
            f"FPR dist {p.numbers['ids_fpr_distance_before']:.2f}",
            f"{p.numbers['ids_fpr_distance_after']:.2f}, {p.numbers['ids_psnr_to_source']:.1f} dB",
            f"{p.numbers['dds_distance']:.2f}, {p.numbers['dds_psnr_to_source']:.1f} dB",
        ]
        for p in previews
    ]
    return labeled_grid(rows, ["source render", "IDS", "DDS"], [f"view {v}" for v in views], captions, tile=256)


def _print_summary(views, previews, clip, out: Path, seconds: float) -> None:
    print(f"Preview of {len(previews)} views in {seconds:.0f} s: {out / 'preview.png'} (source render | IDS | DDS)")
    print("view  FPR distance before -> after (IDS)  DDS distance  PSNR to source IDS / DDS (dB)")
    for view, p in zip(views, previews):
        n = p.numbers
        print(
            f"{view:>4}  {n['ids_fpr_distance_before']:>10.3f} -> {n['ids_fpr_distance_after']:<10.3f}"
            f"  {n['dds_distance']:>12.3f}  {n['ids_psnr_to_source']:>6.1f} / {n['dds_psnr_to_source']:.1f}"
        )
    print(clip["clip"] if len(clip) == 1 else ", ".join(f"{k} {v:.3f}" for k, v in clip.items() if k != "clip"))
