"""The ids-edit pipeline: nerfstudio's VanillaPipeline plus a distillation edit step.

The diffusion model is loaded only when an edit starts (``load_diffusion``, called by the trainer),
never when ns-viewer, ns-render, ns-eval or ns-export open a run. Source latents are a buffer of the pipeline, so they
are saved in every checkpoint and a resumed edit keeps scoring against the original scene.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Dict, List, Literal, Mapping, Optional, Tuple, Type, Union

import torch
import torch.nn.functional as F
from nerfstudio.data.utils.data_utils import get_image_mask_tensor_from_path
from nerfstudio.engine.callbacks import TrainingCallback, TrainingCallbackAttributes
from nerfstudio.model_components.losses import interlevel_loss
from nerfstudio.pipelines.base_pipeline import VanillaPipeline, VanillaPipelineConfig
from nerfstudio.utils import writer
from nerfstudio.utils.rich_utils import CONSOLE
from torch import Tensor

from ids_nerf.core import anchored_direction, distillation_loss, ids_step, relevance_map, threshold_relevance
from ids_nerf.core.defaults import FPR_SCALE, FPR_STEPS, GUIDANCE_SCALE, LOSS_SCALE, MAX_STEP, MIN_STEP
from ids_nerf.errors import UserError
from ids_nerf.guidance import DEFAULT_MODEL, ScoreModel, load_guidance
from ids_nerf.images import fit_short_side, image_psnr, labeled_grid, read_rgb_on_white
from ids_nerf.nerfstudio.edit_panel import EditPanel
from ids_nerf.nerfstudio.memory_plan import extrapolate, probe_sizes
from ids_nerf.nerfstudio.region import EditRegion, check_region, limit_field_to_region, rays_through_box
from ids_nerf.nerfstudio.rendering import camera_rays, chunk_peak_bytes, largest_view, render_with_backprop
from ids_nerf.nerfstudio.stale import StaleEditWatch


@dataclass
class IDSEditPipelineConfig(VanillaPipelineConfig):
    """Edit a trained scene with IDS (or DDS with --pipeline.fpr-steps 0)."""

    _target: Type = field(default_factory=lambda: IDSEditPipeline)
    source_prompt: str = ""
    """Text describing the trained scene as it is, e.g. "a photo of a lego bulldozer"."""
    target_prompt: str = ""
    """Text describing the wanted edit, e.g. "a photo of a golden lego bulldozer"."""
    diffusion_model: str = DEFAULT_MODEL
    """Score model: a Stable Diffusion hub id or local diffusers folder (`ids-nerf make-tiny-sd DIR` for
    tests), or exact:SCENE, the exact-score model of a scene from `ids-nerf make-scene` (verification)."""
    diffusion_device: Optional[str] = None
    """Torch device of the diffusion model, e.g. cuda:1; default: the NeRF's device."""
    diffusion_precision: Literal["auto", "fp32", "fp16", "bf16"] = "auto"
    """Weights' precision; auto: fp16 on CUDA (the official code's), fp32 on the CPU."""
    vae_precision: Literal["same", "fp32"] = "same"
    """The VAE's precision: same as --pipeline.diffusion-precision, or fp32 with a half-precision UNet. The
    encoder carries every gradient from the latents to the pixels; in fp32 it costs SD 1.5's 84 M VAE
    parameters 0.17 GB more and a full-precision encoder backward (not yet measured on a GPU)."""
    fpr_steps: int = FPR_STEPS
    """FPR iterations N per step (paper and official code: 3). 0 turns IDS into DDS exactly."""
    fpr_scale: float = FPR_SCALE
    """FPR step size lambda (official: 1.0, chosen for SD 1.x latents)."""
    fpr_jacobian: Literal["full", "identity"] = "full"
    """full: FPR's gradient goes through the score model (the paper); identity: the cheaper
    Jacobian-free variant (one forward pass per FPR step, no backward); see docs/results.md."""
    guidance_scale: float = GUIDANCE_SCALE
    """CFG scale s in eps_u + s (eps_c - eps_u), inside FPR and in the final score (official: 7.5)."""
    min_step: int = MIN_STEP
    """Smallest timestep drawn, inclusive, of 1000 (official: 50)."""
    max_step: int = MAX_STEP
    """Timesteps are drawn below this, exclusive (official: randint(50, 949), so t in [50, 948])."""
    loss_scale: float = LOSS_SCALE
    """The loss is loss_scale * sum(z * direction) / (h * w), h x w the latent size (official: 2000)."""
    diffusion_size: Optional[int] = None
    """Short side in pixels of the image given to the VAE; default the model's native size
    (unet sample_size x VAE factor: 512 for SD 1.5, 32 for the tiny model). Aspect ratio is kept."""
    view_hold_steps: int = 2
    """Edit steps spent on one training view before moving to the next (views are visited in a
    seeded random order). 1, 2 and 8 kept the same identity on the demo scene (docs/results-nerf.md)."""
    render_chunk_rays: int = 4096
    """Rays per chunk in the deferred backpropagation; peak memory grows with it, speed too. A view
    with no more rays than this is rendered once, with grad, instead of twice."""
    source_latents_from: Literal["render", "dataset"] = "render"
    """Where the stored source latents come from: the source model's renders of the training views
    (the paper's choice: the edit is compared with what the NeRF shows) or the dataset's images."""
    source_latents_device: Literal["cpu", "model"] = "model"
    """Keep the stored source latents on the CPU or on the model's device (64 KB per view for SD)."""
    deterministic_sampling: bool = True
    """Render edit views without nerfacto's random jitter of the samples along each ray (as its eval
    renders, the viewer and ns-render do). Then a view the edit has not changed renders exactly as its
    stored source render, and an edit asking for no change gives no gradient; with jitter, each step
    would chase the sampling noise between two renders (measured in docs/results-nerf.md)."""
    train_appearance_embedding: bool = False
    """Let the edit train nerfacto's per-view appearance embeddings. Off: they stay the source's. Eval
    renders, the viewer and ns-render use their mean, not a view's own, so an edit absorbed per view
    would not show there (measured in docs/results-nerf.md)."""
    proposal_loss_mult: float = 1.0
    """Weight of nerfacto's proposal (interlevel) loss during the edit, so its proposal networks
    keep following the density that the edit changes."""
    log_images_every: int = 100
    """Log the strip source | render | one-step target estimate every this many steps (0: never)."""
    max_consecutive_nonfinite: int = 10
    """Stop the edit when this many steps in a row give a non-finite loss (each one is skipped)."""
    stale_check_steps: int = 50
    """Stop the edit, with one line saying what to check, when after this many steps no render has moved
    from the same view's first render of the run by --pipeline.stale-threshold: a stale optimizer, frozen
    parameters or a zero gradient would otherwise finish silently with the source scene. 0: no check.
    With the default hold of 2 steps a view is compared after one update; 50 steps cost seconds on a GPU."""
    stale_threshold: float = 0.002
    """Smallest largest-pixel change (RGB in [0, 1]) that counts as moved: half an 8-bit grey level, so a
    change no saved image could show. A working edit moves some pixel by more within a few steps; an edit
    that changes nothing moves none at all (renders are deterministic, see --pipeline.deterministic-sampling;
    with sampling jitter the check cannot tell the two apart)."""
    edit_region: Optional[Tuple[float, float, float, float, float, float]] = None
    """Only this axis-aligned box may change: X0 Y0 Z0 X1 Y1 Z1, its lower and upper corner in the
    dataparser's world coordinates (the cameras' and the scene box's; `ids-nerf scene-bounds --config
    RUN/config.yml` prints them). In each view the pixels whose rays pass through the box are the edit
    mask (with --pipeline.identity-mask score or dataset: the pixels in both masks); outside it the anchor
    holds the source render (--pipeline.identity-anchor). Default: the whole scene."""
    region_cut: bool = False
    """Also cut the gradient in 3D outside --pipeline.edit-region: nerfacto's ray samples outside the box,
    splatfacto's Gaussians whose centre is outside it (the region's only effect before the mask). On the demo
    scene the cut alone lost the unedited box 8 dB against no region (docs/results-nerf.md, "Regions"):
    nerfacto's shared MLPs then move with no pixel to hold them."""
    identity_mask: Literal["none", "score", "region", "dataset"] = "none"
    """Where the edit may act; outside, the render is pulled back to its stored source render
    (--pipeline.identity-anchor). none: everywhere (the direction as the method gives it), or, with
    --pipeline.edit-region, the pixels that see the region. score: where the score model's predictions for
    the two prompts differ on the source render (DiffEdit's mask, made once per view when the edit starts).
    region: the pixels whose rays pass through --pipeline.edit-region (the box projected into each view;
    what --pipeline.edit-region alone gives). dataset: the
    data's own per-view masks (nerfstudio's mask_path in transforms.json, one image per view of its size:
    white may change, black is kept). DDS and IDS get the same mask; the edit's masks are saved with its
    checkpoints."""
    identity_anchor: float = 10.0
    """Weight w of the pull back to the source outside the mask: the direction there is w (z - z_src), the
    gradient of w/2 ||z - z_src||^2 in latent units (the score's own pull on a drifted region is about
    sqrt(a_t / (1 - a_t)), 0.2-4.4 over t in [50, 949), while CFG multiplies its push on the edited object by
    the CFG scale). 0: the direction is only cut outside the mask. On the demo scene 10 kept the unedited box
    about 3.5 dB better than 1 (docs/results-nerf.md); not yet measured with Stable Diffusion."""
    mask_timestep: int = 500
    """Timestep (of 1000) at which the two prompts' predictions are compared for the mask (DiffEdit: 500)."""
    mask_samples: int = 8
    """Noise draws averaged per view for the mask."""
    mask_threshold: float = 0.3
    """A latent pixel is in the mask where its relevance is at least this share of the view's largest
    (DiffEdit: 0.5; on the demo scene 0.3 found 95 % of the ball's pixels, 0.5 only 64 %)."""
    mask_dilation: int = 1
    """Latent pixels the mask is grown by (8 image pixels each for Stable Diffusion), to reach borders."""
    frozen_modules: Tuple[str, ...] = ()
    """Diagnosis: submodules of the model the edit leaves as they are, by attribute path (e.g.
    field.mlp_head, nerfacto's colour MLP shared by the whole scene). Default: none."""
    oracle_images: Optional[Path] = None
    """Verification: a folder of edited training images, under the training images' file names (an
    edit scene's appearances/<name>/train). The edit then fits them by photometric loss instead of the
    score, with its own optimizer, rate, steps and view schedule: what the NeRF can reach when the
    supervision is exact (the oracle of docs/results-nerf.md)."""
    seed: int = 0
    """Seed of the view order, timesteps and noise."""
    memory_budget_gib: Optional[float] = None
    """Most memory (GiB) the edit may use on the NeRF's device. Before the diffusion model loads, the edit
    estimates its peak (printed as "Memory plan"); over this budget or the device's free memory it picks
    the first setting that fits, in this order: smaller --pipeline.render-chunk-rays (down to 256), half
    precision for the diffusion model, the diffusion model on the CPU. Default: no budget; an edit that
    cannot fit the device's free memory stops in one line naming the flags that would fit."""

    source_kind: ClassVar[str] = "nerfacto"
    """The model kind this pipeline edits, checked against the --load-dir run (a class constant)."""
    other_kind_method: ClassVar[str] = "ids-edit-splat"
    """The method that edits the other kind, named when a --load-dir run is of that kind."""

    def comparable_shape(self, key: str, tensor: Tensor) -> Tuple[int, ...]:
        """The shape a source checkpoint's ``key`` must have to fit this model (all of it for a NeRF)."""
        return tuple(tensor.shape)


def validate_edit_config(config: IDSEditPipelineConfig) -> None:
    """Empty prompts and impossible settings are errors; identical prompts a warning."""
    for name in ("source_prompt", "target_prompt"):
        if not getattr(config, name).strip():
            raise UserError(f"--pipeline.{name.replace('_', '-')} is empty; describe the scene in a few words")
    if config.source_prompt.strip() == config.target_prompt.strip():
        CONSOLE.print("[bold yellow]Warning: source and target prompts are identical; the edit will change little.")
    if config.fpr_steps < 0 or config.view_hold_steps < 1 or config.render_chunk_rays < 1:
        raise UserError(
            "need --pipeline.fpr-steps >= 0, --pipeline.view-hold-steps >= 1, --pipeline.render-chunk-rays >= 1"
        )
    check_region(config.edit_region)
    if config.stale_check_steps < 0 or config.stale_threshold < 0:
        raise UserError("need --pipeline.stale-check-steps >= 0 and --pipeline.stale-threshold >= 0")
    if config.memory_budget_gib is not None and config.memory_budget_gib <= 0:
        raise UserError("--pipeline.memory-budget-gib must be positive (GiB); leave it out for no budget")
    if not 0 <= config.min_step < config.max_step <= 1000:
        raise UserError("need 0 <= --pipeline.min-step < --pipeline.max-step <= 1000")
    if config.identity_anchor < 0 or config.mask_samples < 1 or config.mask_dilation < 0:
        raise UserError(
            "need --pipeline.identity-anchor >= 0, --pipeline.mask-samples >= 1, --pipeline.mask-dilation >= 0"
        )
    if not 0 < config.mask_threshold <= 1 or not 0 <= config.mask_timestep < 1000:
        raise UserError("need 0 < --pipeline.mask-threshold <= 1 and 0 <= --pipeline.mask-timestep < 1000")
    if config.identity_mask == "region" and config.edit_region is None:
        raise UserError("--pipeline.identity-mask region needs --pipeline.edit-region X0 Y0 Z0 X1 Y1 Z1")
    if config.oracle_images is not None and not Path(config.oracle_images).is_dir():
        raise UserError(f"--pipeline.oracle-images {config.oracle_images} is not a folder of edited training images")


LOADED_MODEL_STEP = 30000
"""The training step a loaded nerfstudio model renders as: nerfstudio's default training length.
splatfacto sets its step to it when loading a checkpoint; nerfacto starts with the proposal annealing
it reaches by then. A source trained for fewer steps still renders that way in the viewer."""

SOURCE_PSNR_WARNING_DB = 18.0
"""Below this mean PSNR of the source's renders of its training views against the training images, the
source shows too little of its scene for an edit to keep (a hazy Blender-format source: about 10 dB;
the demo's: above 23 dB)."""


def source_fidelity_warning(mean_psnr_db: float) -> Optional[str]:
    """One line for a source whose renders are far from its training images, else None."""
    if mean_psnr_db >= SOURCE_PSNR_WARNING_DB:
        return None
    return (
        f"the source's renders of its training views are far from the training images (mean PSNR "
        f"{mean_psnr_db:.1f} dB < {SOURCE_PSNR_WARNING_DB:.0f} dB); an edit keeps only what the source shows. "
        "Train longer, or, for a Blender-format scene, train with --pipeline.model.background-color random "
        "and blender-data --alpha-color None (docs/usage.md)"
    )


class IDSEditPipeline(VanillaPipeline):
    """VanillaPipeline whose training step is an IDS edit of a loaded source model (nerfacto; see
    ``splat.py`` for splatfacto, which overrides ``render_for_edit``)."""

    config: IDSEditPipelineConfig

    def __init__(self, config: IDSEditPipelineConfig, device: str, **kwargs) -> None:
        super().__init__(config, device, **kwargs)
        self.register_buffer("source_latents", torch.empty(0), persistent=True)
        # [views, 1, h, w] in [0, 1] with --pipeline.identity-mask (empty without): saved like the latents
        self.register_buffer("edit_masks", torch.empty(0), persistent=True)
        self._oracle: Dict[int, Tensor] = {}
        self._region_pixel_masks: Optional[List[Tensor]] = None  # traced for the start-up check, kept for the masks
        # the source checkpoint's step, for models whose schedules run on their own step counter
        self.register_buffer("source_model_step", torch.zeros((), dtype=torch.long), persistent=True)
        self.guidance: Optional[ScoreModel] = None
        if config.deterministic_sampling:
            for module in self.model.modules():  # nerfstudio's samplers jitter only where this is set
                if hasattr(module, "train_stratified"):
                    module.train_stratified = False
        self.nonfinite_in_a_row = 0
        self.nonfinite_total = 0
        # the viewer's panel, only while ns-train edits (ns-viewer, ns-render and ns-eval open runs in test mode)
        self.edit_panel = EditPanel(config) if kwargs.get("test_mode", "val") == "val" else None
        self.stale_watch = StaleEditWatch(config.stale_check_steps, config.stale_threshold)
        if self.gates_region:
            self.limit_to_region(config.edit_region)

    # ---- set-up ------------------------------------------------------------------------------
    def load_diffusion(self, keep_text_encoder: bool = False) -> ScoreModel:
        """Load the diffusion model (the only place an edit does) and embed both prompts once.

        ``keep_text_encoder``: keep it (on the CPU) for a target prompt changed from the viewer's panel."""
        device = self.config.diffusion_device or str(self.device)
        self.guidance = load_guidance(
            self.config.diffusion_model,
            self.config.diffusion_precision,
            device,
            self.config.guidance_scale,
            self.config.min_step,
            self.config.max_step,
            self.config.vae_precision,
        )
        self.guidance.embed_prompt(self.config.source_prompt)
        self.guidance.embed_prompt(self.config.target_prompt)
        if keep_text_encoder:
            self.guidance.offload_text_encoder()
        else:
            self.guidance.release_text_encoder()
        if self.edit_panel is not None:
            self.edit_panel.source_view = lambda index: self.guidance.decode(self.source_latents[index : index + 1])[0]
        return self.guidance

    def diffusion_image_size(self, height: int, width: int) -> Tuple[int, int]:
        g = self.guidance
        return fit_short_side(height, width, self.config.diffusion_size or g.native_size, g.size_multiple)

    def edit_view_size(self, index: int) -> Tuple[int, int]:
        """(H, W) an edit renders training view ``index`` at: the diffusion model's input size where that has
        fewer pixels than the view (rays the VAE would only average away are not rendered: an 800x800 Blender
        view renders 512x512 for SD, 2.4 times fewer rays), else the view's own; the view's own before the
        diffusion model is loaded."""
        camera = self.datamanager.train_dataset.cameras[index]
        height, width = int(camera.height), int(camera.width)
        if self.guidance is None:
            return height, width
        size = self.diffusion_image_size(height, width)
        return size if size[0] * size[1] < height * width else (height, width)

    def encode_views(self) -> None:
        """Store the latent of every training view (the paper's stored source renders); warn when the
        source's renders are far from the training images (:data:`SOURCE_PSNR_WARNING_DB`)."""
        cameras = self.datamanager.train_dataset.cameras
        latents, psnrs = [], []
        with torch.no_grad():
            for index in range(len(cameras)):
                image = self.source_image(index)
                latents.append(self.encode(image).cpu())
                if self.config.source_latents_from == "render":  # against the image at the render's size
                    reference = F.interpolate(self.dataset_image(index), size=image.shape[-2:], mode="area")
                    psnrs.append(image_psnr(image, reference))
        target = "cpu" if self.config.source_latents_device == "cpu" else self.device
        self.source_latents = torch.cat(latents).to(target)
        CONSOLE.print(
            f"Stored {len(latents)} source latents of shape {tuple(latents[0].shape[1:])} "
            f"({self.config.source_latents_from})"
        )
        if self.mask_kind and self.config.oracle_images is None:  # the oracle fits every pixel
            masks = self.make_edit_masks()
            self.edit_masks = masks.to(target)
            CONSOLE.print(
                f"Edit masks ({self.mask_kind}): {100 * float(masks.mean()):.1f} % of the latent pixels "
                f"(mean over {len(masks)} views) may change; outside, the anchor holds the source"
            )
        warning = source_fidelity_warning(sum(psnrs) / len(psnrs)) if psnrs else None
        if warning:
            CONSOLE.print(f"[bold yellow]Warning: {warning}", soft_wrap=True)  # one line, however wide

    def score_masks(self) -> Tensor:
        """``[views, 1, h, w]``: where the two prompts' predictions differ on each stored source latent
        (``core.edit_mask``), thresholded per view; one seeded set of noise draws for every view."""
        g = self.guidance
        cond_src, cond_trg = g.embed_prompt(self.config.source_prompt), g.embed_prompt(self.config.target_prompt)
        generator = torch.Generator().manual_seed(self.config.seed * 15_485_863 + 1)
        maps = []
        for latent in self.source_latents.split(1):
            z_src = latent.to(g.device, g.dtype)
            noises = torch.randn((self.config.mask_samples, *z_src.shape), generator=generator).to(z_src)
            t = torch.full((1,), self.config.mask_timestep, dtype=torch.long, device=g.device)
            maps.append(relevance_map(g.score_fn, z_src, cond_src, cond_trg, t, noises, g.alphas_cumprod).float())
        relevance = torch.cat(maps)
        return threshold_relevance(relevance, self.config.mask_threshold, dilation=self.config.mask_dilation).cpu()

    def mask_figure(self, views: int = 6):
        """A PIL figure of the edit masks: per view (evenly spread, at most ``views``), the stored source render
        and the same with what may change kept and the rest greyed; None without masks."""
        if not self.edit_masks.numel():
            return None
        rows, labels = [], []
        count = len(self.edit_masks)
        for index in sorted({round(i * (count - 1) / max(1, views - 1)) for i in range(min(views, count))}):
            with torch.no_grad():
                source = self.guidance.decode(self.source_latents[index : index + 1].to(self.guidance.device))[0]
            source = source.float().cpu()
            mask = F.interpolate(self.edit_masks[index : index + 1].float().cpu(), size=source.shape[-2:])[0]
            greyed = mask * source + (1 - mask) * (0.35 + 0.3 * source.mean(0, keepdim=True))
            rows.append([source, greyed])
            labels.append(f"view {index}: {100 * float(self.edit_masks[index].mean()):.0f} %")
        columns = ["stored source render", f"may change ({self.mask_kind} mask)"]
        return labeled_grid(rows, columns, labels)

    def check_edit_masks(self) -> None:
        """Refuse, in one line, masks and regions that cannot be used; the trainer calls it before the diffusion
        model loads (score masks need the model, and an empty one is valid: identical prompts ask for no change;
        mis-sized mask files the datamanager refuses when it opens the data)."""
        if self.config.edit_region is not None:
            self.region_pixel_masks()
        if self.config.identity_mask == "dataset":
            self.dataset_pixel_masks()

    @property
    def gates_region(self) -> bool:
        """Whether --pipeline.edit-region also cuts gradients in 3D (sample by sample, or Gaussian by
        Gaussian): only with --pipeline.region-cut."""
        return self.config.edit_region is not None and self.config.region_cut

    @property
    def mask_kind(self) -> str:
        """Which masks the edit makes: "score", "dataset", "region", "score and region", ...; "" for none."""
        mode = self.config.identity_mask
        kinds = [] if mode in ("none", "region") else [mode]  # region: the box's mask, added below
        if self.config.edit_region is not None:
            kinds.append("region")
        return " and ".join(kinds)

    def make_edit_masks(self) -> Tensor:
        """``[views, 1, h, w]`` 0/1: the score's or the data's masks, and the region's where one is given."""
        masks = None
        if self.config.identity_mask == "score":
            masks = self.score_masks()
        elif self.config.identity_mask == "dataset":
            masks = self.latent_masks(self.dataset_pixel_masks())
        if self.config.edit_region is not None:
            region = self.latent_masks(self.region_pixel_masks())
            masks = region if masks is None else masks * region
        return masks

    def region_pixel_masks(self) -> List[Tensor]:
        """Per training view, ``[H, W]`` bool: the pixels whose camera ray passes through the edit region.
        Refused in one line when no view sees the region (called before the diffusion model loads)."""
        if self._region_pixel_masks is not None:
            return self._region_pixel_masks
        cameras = self.datamanager.train_dataset.cameras
        masks = []
        for index in range(len(cameras)):
            bundle = camera_rays(cameras, index, "cpu")
            masks.append(rays_through_box(bundle.origins, bundle.directions, self.config.edit_region))
        if not any(mask.any() for mask in masks):
            given = " ".join(f"{v:g}" for v in self.config.edit_region)
            raise UserError(
                f"--pipeline.edit-region {given} is seen by no training view; give a box inside the scene "
                "(ids-nerf scene-bounds --config SOURCE/config.yml prints the scene's)"
            )
        self._region_pixel_masks = masks
        return masks

    def dataset_pixel_masks(self) -> List[Tensor]:
        """Per training view, ``[H, W]`` bool: the data's own mask (nerfstudio's ``mask_path``), white where the
        edit may act. Refused in one line when the data has none or every one is black."""
        dataset = self.datamanager.train_dataset
        files = dataset._dataparser_outputs.mask_filenames
        if not files:
            raise UserError(
                "--pipeline.identity-mask dataset needs a mask per view in the data (mask_path in transforms.json, "
                "white where the edit may change); or use --pipeline.identity-mask score or region"
            )
        masks = [get_image_mask_tensor_from_path(Path(f), dataset.scale_factor)[..., 0] for f in files]
        if not any(mask.any() for mask in masks):
            raise UserError(
                f"every mask of the data is black ({Path(files[0]).parent}/...): nothing may change; "
                "paint white where the edit may act"
            )
        return masks

    def latent_masks(self, pixels: List[Tensor]) -> Tensor:
        """``[views, 1, h, w]`` from per-view pixel masks: a latent pixel may change when any image pixel under
        it may."""
        h, w = self.source_latents.shape[-2:]
        pooled = torch.cat([F.adaptive_max_pool2d(m[None, None].float(), (h, w)) for m in pixels])
        return threshold_relevance(pooled, 1.0, floor=0.0, dilation=self.config.mask_dilation)  # 0/1: only dilates

    def limit_to_region(self, region: EditRegion) -> None:
        """Let only ``region`` change (``region.py``): nerfacto's field passes no gradient from samples
        outside it. Subclasses limit their own model."""
        limit_field_to_region(self.model.field, region)

    def dataset_image(self, index: int) -> Tensor:
        """``[1, 3, H, W]`` in [0, 1]: training image ``index``, composited on white when it has alpha
        (as the edit renders a source trained on a random background)."""
        image = self.datamanager.train_dataset.get_image_float32(index)
        if image.shape[-1] == 4:
            image = image[..., :3] * image[..., 3:] + (1 - image[..., 3:])
        return image.permute(2, 0, 1)[None].to(self.device)

    def source_image(self, index: int) -> Tensor:
        """``[1, 3, H, W]`` in [0, 1]: the source model's render or the dataset image of view ``index``."""
        if self.config.source_latents_from == "dataset":
            return self.dataset_image(index)
        with torch.no_grad():
            image, _ = self.render_for_edit(index, seed=index)
        return image.detach()

    def render_for_edit(
        self, index: int, seed: int, loss_scale: Union[float, Tensor] = 1.0
    ) -> Tuple[Tensor, Callable[[Tensor], Tensor]]:
        """Render view ``index`` for an edit step: ``[1, 3, H, W]`` and a function that takes
        d loss / d image and backpropagates it into the model (returning any extra loss it adds, times
        ``loss_scale``, the trainer's gradient scale: the caller scales d loss / d image by it too).

        At :meth:`edit_view_size`. NeRF: ``rendering.render_with_backprop`` (a view larger than one chunk is
        rendered without grad now and re-rendered chunk by chunk with grad in the backward function; a smaller
        one is rendered once, with grad). Subclasses render differently.
        """
        bundle = camera_rays(self.datamanager.train_dataset.cameras, index, self.device, self.edit_view_size(index))
        proposal = None
        if self.config.proposal_loss_mult > 0:
            proposal = lambda outputs: self._proposal_loss(outputs) * loss_scale  # noqa: E731
        rgb, backprop = render_with_backprop(self.model, bundle, self.config.render_chunk_rays, seed, proposal)
        return rgb.permute(2, 0, 1)[None], lambda grad_image: backprop(grad_image[0].permute(1, 2, 0))

    def edit_render_bytes(self, rays: int) -> int:
        """Peak bytes of one render chunk of ``rays`` rays with its graph and backward: measured on two
        small chunks of the largest training view, extrapolated linearly (``memory_plan``)."""
        cameras = self.datamanager.train_dataset.cameras
        bundle = camera_rays(cameras, largest_view(cameras), self.device)
        proposal = self._proposal_loss if self.config.proposal_loss_mult > 0 else None
        sizes = [min(n, rays) for n in probe_sizes()]
        if sizes[0] == sizes[1]:
            return chunk_peak_bytes(self.model, bundle, rays, self.config.seed, proposal)
        peaks = [chunk_peak_bytes(self.model, bundle, n, self.config.seed, proposal) for n in sizes]
        return extrapolate(sizes, peaks, rays)

    def encode(self, image: Tensor) -> Tensor:
        """VAE latent of ``[1, 3, H, W]`` at the diffusion size; differentiable when grad is on."""
        size = self.diffusion_image_size(*image.shape[-2:])
        resized = F.interpolate(image.clamp(0, 1), size=size, mode="bilinear", align_corners=False, antialias=True)
        return self.guidance.encode(resized)

    def load_pipeline(self, loaded_state: Mapping[str, Any], step: int) -> None:
        """Load a saved ids-edit pipeline; the source latents' shape comes from the checkpoint."""
        state = {k[len("module.") :] if k.startswith("module.") else k: v for k, v in loaded_state.items()}
        if "source_latents" in state:
            self.source_latents = state["source_latents"].to(self.source_latents.device)
        if "edit_masks" in state:
            self.edit_masks = state["edit_masks"].to(self.edit_masks.device)
        state.setdefault("edit_masks", self.edit_masks)  # runs saved before masks existed
        state.setdefault("source_model_step", self.source_model_step)  # runs saved before it existed
        super().load_pipeline(state, step)

    def get_param_groups(self):
        """Field and proposal networks only: camera poses stay as the source run refined them, and
        nerfacto's per-view appearance embeddings stay the source's (``train_appearance_embedding``)."""
        groups = super().get_param_groups()
        for param in groups.pop("camera_opt", []):
            param.requires_grad_(False)
        frozen = [self._submodule(path) for path in self.config.frozen_modules]
        embedding = getattr(getattr(self.model, "field", None), "embedding_appearance", None)
        if embedding is not None and not self.config.train_appearance_embedding:
            frozen.append(embedding)
        frozen_ids = {id(p) for module in frozen for p in module.parameters()}
        for module in frozen:
            for param in module.parameters():
                param.requires_grad_(False)
        return {name: [p for p in params if id(p) not in frozen_ids] for name, params in groups.items()}

    def _submodule(self, path: str) -> torch.nn.Module:
        try:
            return self.model.get_submodule(path)
        except AttributeError:
            raise UserError(
                f"--pipeline.frozen-modules: the model has no submodule {path!r}; name one such as field.mlp_head"
            ) from None

    def get_training_callbacks(self, attributes: TrainingCallbackAttributes) -> List[TrainingCallback]:
        """The model's own callbacks, on a step counter that continues a finished training.

        Schedules that warm up over a training (nerfacto's proposal-weight annealing and proposal update
        interval) must stay where a loaded model has them, as when the stored source renders were made
        and as ns-viewer and ns-render show the scene; on the edit's own counter they would restart from
        step 0 (uniform sampling along each ray). The counter starts after the later of the source's last
        step and :data:`LOADED_MODEL_STEP`.
        """
        offset = max(int(self.source_model_step), LOADED_MODEL_STEP) + 1
        callbacks = self.datamanager.get_training_callbacks(attributes)
        return callbacks + [_on_source_counter(c, offset) for c in self.model.get_training_callbacks(attributes)]

    # ---- the edit step -----------------------------------------------------------------------
    def view_for_step(self, step: int) -> int:
        """Training view of ``step``: a seeded random order, each view held ``view_hold_steps`` steps."""
        count = len(self.datamanager.train_dataset)
        slot = step // self.config.view_hold_steps
        generator = torch.Generator().manual_seed(self.config.seed * 7919 + slot // count)
        return int(torch.randperm(count, generator=generator)[slot % count])

    def edit_step(
        self, step: int, timed: bool = True, loss_scale: Union[float, Tensor] = 1.0
    ) -> Tuple[Dict[str, Tensor], Dict[str, Any], bool]:
        """Render a view, score it against its source latent with IDS, backpropagate into the NeRF.

        Returns ``(loss_dict, metrics_dict, applied)``; gradients are left in the parameters'
        ``.grad``, times ``loss_scale`` (the trainer's gradient scaler: a half-precision field's backward
        would flush most of them to zero unscaled; docs/performance.md); ``applied`` is False when the step
        was skipped for a non-finite loss. ``timed``: time the step's parts (``ids/ms_*``), synchronising
        CUDA at each; the trainer asks on logged steps only.
        """
        if self.guidance is None or self.source_latents.numel() == 0:
            raise RuntimeError("begin the edit first: the trainer loads the diffusion model and source latents")
        if self.edit_panel is not None:
            self.edit_panel.apply(self, step)  # changes asked from the viewer: between steps only
        index = self.view_for_step(step)
        generator = torch.Generator().manual_seed(self.config.seed * 1_000_003 + step)
        render_seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))

        clock = _StepClock(self.device, timed)
        rendered, backprop = self.render_for_edit(index, render_seed, loss_scale)
        clock.lap("render")
        stale = self.stale_watch.observe(step, index, rendered)
        if stale:
            raise UserError(stale)
        image = rendered.detach().requires_grad_(True)
        if self.config.oracle_images is not None:
            return self._oracle_step(step, index, image, backprop, clock, loss_scale)
        with torch.enable_grad():
            z_trg = self.encode(image)
            clock.lap("encode")
            z_src = self.source_latents[index : index + 1].to(z_trg.device, z_trg.dtype)
            t = self.guidance.sample_timesteps(1, generator).to(z_trg.device)
            noise = torch.randn(z_trg.shape, generator=generator).to(z_trg.device, z_trg.dtype)
            cond_src = self.guidance.embed_prompt(self.config.source_prompt)
            cond_trg = self.guidance.embed_prompt(self.config.target_prompt)
            result = ids_step(
                self.guidance.score_fn,
                z_src,
                z_trg,
                cond_src,
                cond_trg,
                t,
                noise,
                self.guidance.alphas_cumprod,
                self.config.fpr_steps,
                self.config.fpr_scale,
                self.config.fpr_jacobian,
            )
            clock.lap("guidance")
            direction = result.direction
            if self.edit_masks.numel():
                mask = self.edit_masks[index : index + 1].to(direction.device)
                direction = anchored_direction(direction, z_trg, z_src, mask, self.config.identity_anchor)
            scale = self.config.loss_scale / (z_trg.shape[-2] * z_trg.shape[-1])
            loss = distillation_loss(z_trg, direction, scale)
            (grad_image,) = torch.autograd.grad(loss, image)
            clock.lap("encode_backward")

        metrics: Dict[str, Any] = {
            "ids/t": float(t),
            "ids/view": index,
            "ids/direction_norm": float(direction.norm()),
            "ids/latent_change": float((z_trg.detach() - z_src).abs().mean()),  # from the stored source render
            "ids/fpr_distance_after": float(result.distance_after),
            "ids/nonfinite_steps": self.nonfinite_total,
            "ids/guidance_scale": float(self.config.guidance_scale),
            "ids/fpr_scale": float(self.config.fpr_scale),
            "ids/fpr_steps": self.config.fpr_steps,
        }
        if result.distance_before is not None:
            metrics["ids/fpr_distance_before"] = float(result.distance_before)
        if not (torch.isfinite(loss) and torch.isfinite(grad_image).all()):
            return {"ids_loss": loss.detach().new_zeros(())}, metrics, self._skip(step)
        self.nonfinite_in_a_row = 0

        extra_loss = backprop(grad_image * loss_scale) / loss_scale
        clock.lap("render_backward")
        metrics.update(clock.metrics())

        def strip() -> Tensor:
            return self.strip_image(z_src, image.detach(), result.z0_trg)

        if self.config.log_images_every and step % self.config.log_images_every == 0:
            writer.put_image(name="ids/source|render|target_estimate", image=strip().permute(1, 2, 0), step=step)
        if self.edit_panel is not None:
            self.edit_panel.after_step(self, step, index, metrics, strip)
        return {"ids_loss": loss.detach(), "model_loss": extra_loss}, metrics, True

    def oracle_image(self, index: int) -> Tensor:
        """``[1, 3, H, W]``: the edited training image of view ``index`` from --pipeline.oracle-images."""
        if index not in self._oracle:
            name = Path(self.datamanager.train_dataset.image_filenames[index]).name
            path = Path(self.config.oracle_images) / name
            if not path.is_file():
                raise UserError(f"--pipeline.oracle-images has no {name}; it needs an image per training view")
            self._oracle[index] = read_rgb_on_white(path)[None].to(self.device)
        return self._oracle[index]

    def _oracle_step(self, step: int, index: int, image: Tensor, backprop, clock: "_StepClock", loss_scale=1.0):
        """The oracle's step: the mean squared error to the edited training image, backpropagated as an
        edit's (the same views, renders and optimizer); the score model is not used."""
        target = self.oracle_image(index)
        if target.shape != image.shape:
            raise UserError(
                f"--pipeline.oracle-images: {tuple(target.shape[-2:])} pixels for view {index}, "
                f"but it renders {tuple(image.shape[-2:])}; give images of the training views' size"
            )
        with torch.enable_grad():
            loss = F.mse_loss(image, target)
            (grad_image,) = torch.autograd.grad(loss, image)
        extra_loss = backprop(grad_image * loss_scale) / loss_scale
        clock.lap("render_backward")
        metrics = {"ids/view": index, "oracle/psnr": float(-10 * torch.log10(loss.detach().clamp_min(1e-10)))}
        return {"oracle_loss": loss.detach(), "model_loss": extra_loss}, metrics, True

    def _proposal_loss(self, outputs: Dict[str, Any]) -> Tensor:
        if "weights_list" not in outputs:
            return outputs["rgb"].new_zeros(())
        return self.config.proposal_loss_mult * interlevel_loss(outputs["weights_list"], outputs["ray_samples_list"])

    def _skip(self, step: int) -> bool:
        self.nonfinite_in_a_row += 1
        self.nonfinite_total += 1
        warnings.warn(f"step {step}: non-finite IDS loss, step skipped ({self.nonfinite_total} so far)")
        if self.nonfinite_in_a_row >= self.config.max_consecutive_nonfinite:
            raise UserError(
                f"the IDS loss was non-finite {self.nonfinite_in_a_row} steps in a row (last at step {step}); "
                "lower --pipeline.fpr-scale or use --pipeline.diffusion-precision fp32"
            )
        return False

    def strip_image(self, z_src: Tensor, render: Tensor, z0_trg: Tensor) -> Tensor:
        """``[3, H, 3W]``: source (decoded stored latent) | current render at the diffusion size | one-step
        target estimate."""
        with torch.no_grad():
            size = self.diffusion_image_size(*render.shape[-2:])
            current = F.interpolate(render.clamp(0, 1), size=size, mode="bilinear", antialias=True).cpu()
            source = self.guidance.decode(z_src).cpu()
            target = self.guidance.decode(z0_trg).cpu()
            return torch.cat([source, current, target], dim=-1)[0]


def _on_source_counter(callback: TrainingCallback, offset: int) -> TrainingCallback:
    """``callback`` run as if the step were ``offset + step``, its own interval rules included."""
    return TrainingCallback(callback.where_to_run, lambda step: callback.run_callback(offset + step))


class _StepClock:
    """Wall-clock milliseconds of the parts of an edit step (CUDA synchronised), logged as ``ids/ms_*``;
    on CUDA also the step's peak allocated memory, ``ids/peak_memory_gib``. Untimed (``timed`` False)
    it neither synchronises nor times: a synchronisation stalls the queue of CUDA work."""

    def __init__(self, device, timed: bool = True) -> None:
        self.cuda = torch.device(device).type == "cuda"
        self.timed = timed
        self.laps: Dict[str, float] = {}
        if self.cuda:
            torch.cuda.reset_peak_memory_stats()  # the allocator's own count: no synchronisation
        self.last = self._now() if timed else 0.0

    def _now(self) -> float:
        if self.cuda:
            torch.cuda.synchronize()
        return time.perf_counter()

    def lap(self, name: str) -> None:
        if not self.timed:
            return
        now = self._now()
        self.laps[name] = 1000 * (now - self.last)
        self.last = now

    def metrics(self) -> Dict[str, float]:
        metrics = {f"ids/ms_{name}": value for name, value in self.laps.items()}
        if self.cuda:
            metrics["ids/peak_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30
            metrics["ids/peak_reserved_gib"] = torch.cuda.max_memory_reserved() / 2**30  # what the memory plan counts
        return metrics
