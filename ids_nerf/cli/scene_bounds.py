"""``ids-nerf scene-bounds --config RUN/config.yml``: boxes to pass as ``--pipeline.edit-region``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import List, Tuple

import numpy as np
import torch
import yaml

from ids_nerf.errors import UserError

Box = Tuple[np.ndarray, np.ndarray]


def region_flag(box: Box) -> str:
    """``--pipeline.edit-region X0 Y0 Z0 X1 Y1 Z1`` for ``box``, two decimals."""
    return "--pipeline.edit-region " + " ".join(f"{v:.2f}" for v in np.concatenate(box))


def to_dataparser(box: Box, transform: np.ndarray, scale: float) -> Box:
    """The axis-aligned box around ``box``'s eight corners carried into the dataparser's coordinates
    (``p' = scale * (R p + t)``, nerfstudio's ``dataparser_transform`` and ``dataparser_scale``)."""
    low, high = box
    corners = np.array([[a[0], b[1], c[2]] for a in (low, high) for b in (low, high) for c in (low, high)])
    moved = scale * (corners @ transform[:3, :3].T + transform[:3, 3])
    return moved.min(axis=0), moved.max(axis=0)


def synthetic_object_boxes() -> List[Tuple[str, Box]]:
    """The objects of ``ids-nerf make-scene``'s scene, in its world coordinates (a small margin added)."""
    from ids_nerf.scenes import blender_scene as scene

    margin = 0.05
    radius = scene.SPHERE_RADIUS + margin
    return [
        ("ball", (scene.SPHERE_CENTER - radius, scene.SPHERE_CENTER + radius)),
        ("box", (scene.BOX_MIN - margin, scene.BOX_MAX + margin)),
        ("table", (np.array([-1.0, -1.0, -0.02]) * scene.DISC_RADIUS, np.array([1.0, 1.0, 0.02]) * scene.DISC_RADIUS)),
    ]


def gaussian_box(run_dir: Path, opacity: float = 0.5) -> Box | None:
    """The 1st-99th percentile box of the centres of a splatfacto run's Gaussians with at least ``opacity``."""
    from ids_nerf.nerfstudio.checkpoints import latest_checkpoint, load_checkpoint

    state = load_checkpoint(latest_checkpoint(run_dir / "nerfstudio_models"))["pipeline"]
    means, opacities = state.get("_model.gauss_params.means"), state.get("_model.gauss_params.opacities")
    if means is None or opacities is None:
        return None
    kept = means[torch.sigmoid(opacities[:, 0]) >= opacity].numpy()
    if len(kept) == 0:
        return None
    return np.percentile(kept, 1, axis=0), np.percentile(kept, 99, axis=0)


@dataclass
class SceneBounds:
    """Print boxes in the dataparser's world coordinates, each as the --pipeline.edit-region flag that gives it.

    The scene box and the cameras' bounds of the run's data; for a splatfacto run, where its Gaussians are;
    for a scene from `ids-nerf make-scene`, each object's box. The viewer's Crop Viewport box (Crop center C,
    Crop scale S, rotation 0) is in the same coordinates: the box from C - S/2 to C + S/2.
    """

    config: Path
    """A run's config.yml (the source run or an edit of it)."""

    def main(self) -> None:
        if not self.config.is_file():
            raise UserError(f"config '{self.config}' does not exist; pass a run's config.yml")
        run = yaml.load(self.config.read_text(), Loader=yaml.Loader)
        dataparser = run.pipeline.datamanager.dataparser
        if run.pipeline.datamanager.data is not None:
            dataparser.data = run.pipeline.datamanager.data
        outputs = dataparser.setup().get_dataparser_outputs(split="train")
        transform = outputs.dataparser_transform.numpy()
        scale = float(outputs.dataparser_scale)
        aabb = outputs.scene_box.aabb.numpy()
        centres = outputs.cameras.camera_to_worlds[:, :3, 3].numpy()
        rows = [("scene box", (aabb[0], aabb[1])), ("cameras", (centres.min(axis=0), centres.max(axis=0)))]
        gaussians = gaussian_box(self.config.parent) if "splat" in str(run.method_name) else None
        if gaussians is not None:
            rows.append(("Gaussians (opaque, 1-99%)", gaussians))
        if (Path(dataparser.data) / "scene.json").is_file():
            rows += [(name, to_dataparser(box, transform, scale)) for name, box in synthetic_object_boxes()]
        print(f"Boxes of '{self.config.parent}' in the dataparser's coordinates:")
        for name, box in rows:
            print(f"  {name:<26} {region_flag(box)}")
