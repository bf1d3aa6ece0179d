"""Region-limited edits: only an axis-aligned box of the scene may change.

The box is given in the dataparser's world coordinates (where the cameras and nerfstudio's scene box
live; ``ids-nerf scene-bounds`` prints them). By default the box is a mask per view: the pixels whose rays
pass through it (:func:`rays_through_box`; the pipeline holds the rest to the source). With
``--pipeline.region-cut`` the edit's gradient is also cut where the scene is outside the box, at the
finest level the model offers:
- nerfacto: the field's outputs (density and colour) of ray samples outside the box keep their values
  but pass no gradient, so a pixel whose ray misses the box gives none at all, and a ray through the
  box changes only its samples inside. Parameters shared by all samples (the MLPs, hash-table slots
  that collide) still move, so the rest of the scene can drift a little (measured in docs/results-nerf.md).
- splatfacto: the gradient of every Gaussian whose centre lies outside the box is zeroed before the
  optimizer step; Adam, never given a gradient for them, leaves them exactly as they were.
"""

from __future__ import annotations

import functools
from typing import Optional, Sequence, Tuple

import torch
from jaxtyping import Bool, Float
from nerfstudio.field_components.field_heads import FieldHeadNames
from nerfstudio.utils.math import intersect_aabb
from torch import Tensor

from ids_nerf.errors import UserError

EditRegion = Tuple[float, float, float, float, float, float]
"""``(x0, y0, z0, x1, y1, z1)``: the box's lower and upper corner in dataparser world coordinates."""

GATED_OUTPUTS = (FieldHeadNames.RGB, FieldHeadNames.DENSITY)
"""Field outputs whose gradient is cut outside the region (what a pixel's colour is made of)."""


def check_region(region: Optional[Sequence[float]]) -> None:
    """A region needs six finite numbers with each lower corner coordinate below the upper one."""
    if region is None:
        return
    values = torch.tensor([float(v) for v in region])
    if len(values) != 6 or not torch.isfinite(values).all() or not (values[:3] < values[3:]).all():
        given = " ".join(f"{v:g}" for v in values.tolist())
        raise UserError(
            f"--pipeline.edit-region {given} is not a box; give X0 Y0 Z0 X1 Y1 Z1 "
            "with X0 < X1, Y0 < Y1, Z0 < Z1 in the dataparser's coordinates (ids-nerf scene-bounds prints them)"
        )


def inside_region(points: Float[Tensor, "*batch 3"], region: EditRegion) -> Bool[Tensor, "*batch 1"]:
    """Whether each point lies in the box (borders included)."""
    box = region_box(tuple(region), points.device, points.dtype)
    return ((points >= box[:3]) & (points <= box[3:])).all(dim=-1, keepdim=True)


@functools.lru_cache(maxsize=32)
def region_box(region: EditRegion, device: torch.device, dtype: torch.dtype) -> Float[Tensor, "6"]:
    """The box as a tensor, built once per device and dtype: nerfacto calls its field about 300 times
    an edit step, and a new CUDA tensor each time is a host-to-device copy. Outside inference mode, so
    that a box first built by a viewer render still serves training."""
    with torch.inference_mode(False):
        return torch.tensor(region, dtype=dtype, device=device)


def rays_through_box(origins: Float[Tensor, "*batch 3"], directions: Float[Tensor, "*batch 3"], region: EditRegion):
    """``[*batch]`` bool: whether each ray (from its origin, forward only) passes through the box."""
    box = torch.tensor(region, dtype=origins.dtype, device=origins.device)
    with torch.no_grad():
        enter, _ = intersect_aabb(origins, directions, box, max_bound=float("inf"), invalid_value=float("inf"))
    return enter < float("inf")


def cut_gradient_outside(value: Tensor, inside: Bool[Tensor, "*batch 1"]) -> Tensor:
    """``value`` unchanged, with gradient only where ``inside``."""
    return torch.where(inside, value, value.detach())


def limit_field_to_region(field: torch.nn.Module, region: EditRegion) -> None:
    """Make ``field`` (nerfacto's) pass gradient only from samples inside ``region``; values are unchanged,
    so renders (source latents, viewer, evaluation) are exactly as without it.

    nerfacto calls ``field.forward`` directly, so a module hook would never run: the method itself is
    wrapped, on this instance only.
    """
    original = field.forward

    def forward(ray_samples, *args, **kwargs):
        outputs = original(ray_samples, *args, **kwargs)
        inside = inside_region(ray_samples.frustums.get_positions(), region)
        return {k: cut_gradient_outside(v, inside) if k in GATED_OUTPUTS else v for k, v in outputs.items()}

    field.forward = forward


def zero_gradient_outside(params: dict, means: Float[Tensor, "n 3"], region: EditRegion) -> int:
    """Zero the gradient rows of the Gaussians whose centre is outside ``region`` (every per-Gaussian
    parameter in ``params``); returns how many Gaussians are inside."""
    inside = inside_region(means.detach(), region)[:, 0]
    for param in params.values():
        if param.grad is not None and param.grad.shape[:1] == inside.shape:
            param.grad[~inside] = 0
    return int(inside.sum())
