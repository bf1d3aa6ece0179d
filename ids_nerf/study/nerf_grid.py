"""What the 3D study varies: edits, backbones, methods (DDS, IDS at each lambda), optimizers, sources, seeds.

Each edit is one ``ns-train`` run; this module only describes them and turns a description into ns-train
flags and a cache key. Running them is ``nerf_runs``; reporting is ``nerf_report``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import List, Optional, Tuple

import torch

from ids_nerf.core.defaults import GUIDANCE_SCALE, MAX_STEP
from ids_nerf.errors import UserError
from ids_nerf.methods import CPU_NERFACTO, RANDOM_BACKGROUND, SMALL_SPLATFACTO, SPLAT_EDIT_COLOUR_LR, for_device


@dataclass(frozen=True)
class EditCase:
    """One edit of the synthetic scene: its target appearance and the objects that matter."""

    appearance: str
    """The scene's appearance the edit aims at (its caption is the target prompt)."""
    description: str
    """What changes, in words."""
    edited: str
    """Region name of the object that should change."""
    neighbour: str
    """Region name of the object next to it, which should not: where a leak shows first."""


EDIT_CASES = {
    "blue-ball": EditCase("edited", "the red ball turns blue", "ball", "box"),
    "striped-box": EditCase("striped-box", "yellow stripes on the green box, beside the ball", "box", "ball"),
}
"""The study's edits. striped-box is a texture change of an object that stands next to another: in the 2D
study (docs/results.md) DDS lost identity at CFG 7.5 where IDS kept it; a texture next to a neighbour is where
a blurry source score costs most."""
SCENE_APPEARANCES = ("source", "edited", "striped-box")
"""The appearances of the study's scene; the exact-score model's unconditional set is their union."""


@dataclass(frozen=True)
class Backbone:
    """A scene representation: its source training and its two edit methods."""

    source_method: str
    ids_method: str
    dds_method: str
    source_args: Tuple[str, ...]
    """ns-train flags of the source training (besides steps, seed and device) off CUDA; a CUDA run leaves
    out the CPU-only ones (``methods.for_device``)."""

    def source_flags(self) -> List[str]:
        """``source_args`` for this machine's device."""
        return for_device(self.source_args, torch.cuda.is_available())

    edit_args: Tuple[str, ...]
    """ns-train flags every edit of this backbone gets."""
    adam_groups: Tuple[str, ...]
    """Optimizer groups, as ns-train flags name them (for --optimizers.<group>.optimizer.eps)."""


BACKBONES = {
    "nerfacto": Backbone(
        "nerfacto",
        "ids-edit",
        "dds-edit",
        (*CPU_NERFACTO, *RANDOM_BACKGROUND, "--pipeline.datamanager.train-num-rays-per-batch", "512"),
        (),
        ("fields", "proposal-networks"),
    ),
    "splatfacto": Backbone(
        "splatfacto",
        "ids-edit-splat",
        "dds-edit-splat",
        # the CPU stand-in rasterizer has no absgrad (gsplat's per-pixel gradient sum)
        (*SMALL_SPLATFACTO, "--pipeline.model.use-absgrad", "False"),
        tuple(SPLAT_EDIT_COLOUR_LR),
        ("means", "scales", "quats", "opacities", "features-dc", "features-rest"),
    ),
}


@dataclass(frozen=True)
class Arm:
    """A method: DDS (no FPR) or IDS with FPR step size ``fpr_scale`` (lambda)."""

    fpr_scale: Optional[float] = None
    """None: DDS; otherwise IDS with N = 3 FPR steps of this size."""

    @property
    def is_dds(self) -> bool:
        return self.fpr_scale is None

    @property
    def label(self) -> str:
        return "DDS" if self.is_dds else f"IDS λ={self.fpr_scale:g}"

    @property
    def slug(self) -> str:
        return "dds" if self.is_dds else f"ids-l{self.fpr_scale:g}"


def arms(fpr_scales: List[float]) -> List[Arm]:
    """DDS first, then IDS at each lambda."""
    return [Arm(None), *[Arm(float(scale)) for scale in fpr_scales]]


def optimizer_flags(spec: str, backbone: Backbone) -> List[str]:
    """ns-train flags of an optimizer spec: ``adam`` (the edit's default: Adam, eps 1e-15), ``adam-eps:E``
    (Adam with eps E on every group: gradients far below E step less than the learning rate), ``sgd:S``
    (plain SGD at S times each group's rate, see ``--edit-optimizer``). A bad spec is one line."""
    name, _, value = spec.partition(":")
    try:
        number = float(value) if value else None
    except ValueError:
        number = None
        name = "bad"
    if name == "adam" and not value:
        return []
    if name == "adam-eps" and number is not None and number > 0:
        return [flag for group in backbone.adam_groups for flag in (f"--optimizers.{group}.optimizer.eps", value)]
    if name == "sgd" and number is not None and number > 0:
        return ["--edit-optimizer", "sgd", "--sgd-lr-scale", value]
    raise UserError(f"optimizer '{spec}' is not one of adam, adam-eps:E, sgd:S (E, S positive numbers)")


@dataclass(frozen=True)
class SourceRun:
    """One source training: backbone, training seed and steps, on the study's scene."""

    backbone: str
    seed: int
    steps: int
    scene_key: str

    def key(self) -> str:
        """Cache key: everything that changes the trained weights (flags included: a CUDA source differs)."""
        flags = BACKBONES[self.backbone].source_flags()
        return _digest({**asdict(self), "flags": flags})

    def args(self, device: List[str]) -> List[str]:
        backbone = BACKBONES[self.backbone]
        return [
            *device,
            "--machine.seed",
            str(self.seed),
            "--max-num-iterations",
            str(self.steps),
            "--steps-per-save",
            str(self.steps),
            *backbone.source_flags(),
        ]


def settings_label(guidance_scale: float, max_step: int, identity_mask: str) -> str:
    """CFG, largest timestep and mask where they differ from the paper's (CFG 7.5, t < 949, no mask), e.g.
    ``CFG 1, t < 600, mask score``; empty at the paper's."""
    parts = [f"CFG {guidance_scale:g}"] if guidance_scale != GUIDANCE_SCALE else []
    parts += [f"t < {max_step}"] if max_step != MAX_STEP else []
    parts += [f"mask {identity_mask}"] if identity_mask != "none" else []
    return ", ".join(parts)


@dataclass(frozen=True)
class EditRun:
    """One edit: a source, an edit case, a method, an optimizer, an edit seed, steps, CFG, score model, the largest
    timestep and the edit mask."""

    source: SourceRun
    case: str
    arm: Arm
    optimizer: str
    seed: int
    steps: int
    guidance_scale: float
    model: str = "exact"
    """exact (the scene's exact-score model) or a --pipeline.diffusion-model name such as learned:default."""
    max_step: int = MAX_STEP
    """Largest timestep drawn (--pipeline.max-step)."""
    identity_mask: str = "none"
    """--pipeline.identity-mask: none, or score (the score model's edit mask, the anchor outside it)."""

    @property
    def settings(self) -> str:
        """:func:`settings_label` of this edit's CFG, largest timestep and mask."""
        return settings_label(self.guidance_scale, self.max_step, self.identity_mask)

    @property
    def variant(self) -> str:
        """What the report groups by beside backbone and edit: the optimizer and any non-paper settings."""
        return f"{self.optimizer}, {self.settings}" if self.settings else self.optimizer

    def at_paper_settings(self) -> "EditRun":
        """The same edit at the paper's CFG, largest timestep and no mask: the control of a settings study."""
        return replace(self, guidance_scale=GUIDANCE_SCALE, max_step=MAX_STEP, identity_mask="none")

    @property
    def method(self) -> str:
        backbone = BACKBONES[self.source.backbone]
        return backbone.dds_method if self.arm.is_dds else backbone.ids_method

    def key(self) -> str:
        """Cache key: the source's key and every edit setting."""
        settings = {k: v for k, v in asdict(self).items() if k != "source"}
        # a field at its default is left out: the keys of the edits from before it existed stay
        for name, default in (("model", "exact"), ("max_step", MAX_STEP), ("identity_mask", "none")):
            if settings[name] == default:
                del settings[name]
        return _digest({"source": self.source.key(), **settings})

    def diffusion_model(self, scene: Path) -> str:
        return f"exact:{scene}" if self.model == "exact" else self.model

    def args(self, device: List[str], model: str) -> List[str]:
        backbone = BACKBONES[self.source.backbone]
        fpr = [] if self.arm.is_dds else ["--pipeline.fpr-scale", f"{self.arm.fpr_scale:g}"]
        return [
            *device,
            "--max-num-iterations",
            str(self.steps),
            "--steps-per-save",
            str(self.steps),
            "--pipeline.seed",
            str(self.seed),
            "--pipeline.guidance-scale",
            f"{self.guidance_scale:g}",
            "--pipeline.diffusion-model",
            model,
            "--pipeline.log-images-every",
            "0",
            *fpr,
            "--pipeline.max-step",
            str(self.max_step),
            *(["--pipeline.identity-mask", self.identity_mask] if self.identity_mask != "none" else []),
            *backbone.edit_args,
            *optimizer_flags(self.optimizer, backbone),
        ]


def _digest(payload: dict) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:12]
