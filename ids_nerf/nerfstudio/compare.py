"""``ids-nerf compare``: render the same cameras from the source run and the edited run, side by side."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import List, Literal, Optional

import torch
import yaml

from ids_nerf.errors import UserError
from ids_nerf.images import side_by_side
from ids_nerf.io import staged_output_dir


def source_config_of(edited_config: Path) -> Path:
    """The source run's config.yml, found through the edited run's ``load_dir``."""
    config = yaml.load(edited_config.read_text(), Loader=yaml.Loader)
    load_dir = getattr(config, "load_dir", None)
    if load_dir is None:
        raise UserError(f"'{edited_config}' records no --load-dir; pass the source run with --source")
    candidate = Path(load_dir).parent / "config.yml"
    if not candidate.is_file():
        raise UserError(f"the source run's config '{candidate}' is gone; pass it with --source")
    return candidate


def render_random_background_white(model) -> None:
    """A model trained on random backgrounds renders on white, the ground truth's compositing colour
    (nerfacto would use black, splatfacto the viewer's grey)."""
    if getattr(model.config, "background_color", None) != "random":
        return
    if hasattr(model, "renderer_rgb"):  # nerfacto
        model.renderer_rgb.background_color = "white"
    elif hasattr(model, "set_background"):  # splatfacto
        model.set_background(torch.ones(3))


def spread_indices(count: int, views: int) -> List[int]:
    """``views`` indices spread evenly over ``range(count)`` (all of them when ``views >= count``)."""
    if views >= count:
        return list(range(count))
    return [round(i * (count - 1) / max(views - 1, 1)) for i in range(views)]


def open_run(config_path: Path):
    """The run's pipeline, ready to render (no diffusion model is loaded); random backgrounds become white."""
    from nerfstudio.utils.eval_utils import eval_setup

    import ids_nerf.nerfstudio  # noqa: F401  (lets torch.load read nerfstudio checkpoints)

    _, pipeline, _, _ = eval_setup(config_path, test_mode="test")
    render_random_background_white(pipeline.model)
    return pipeline


def split_cameras(pipeline, split: Literal["train", "test"]):
    """The cameras of ``split`` of an opened run."""
    datamanager = pipeline.datamanager
    return (datamanager.train_dataset if split == "train" else datamanager.eval_dataset).cameras


def render_cameras(pipeline, split: Literal["train", "test"], indices: List[int], with_geometry: bool = False) -> List:
    """Render ``indices`` of ``split`` with an opened run (:func:`open_run`).

    Returns ``[3, H, W]`` RGB tensors in [0, 1]; with ``with_geometry``, dicts with ``rgb``,
    ``depth`` ``[H, W]`` and ``accumulation`` ``[H, W]`` instead."""
    cameras = split_cameras(pipeline, split)
    images = []
    for index in indices:
        if not 0 <= index < len(cameras):
            raise UserError(f"view {index} does not exist; the {split} split has {len(cameras)} views")
        camera = cameras[index : index + 1].to(pipeline.device)
        with torch.no_grad():
            outputs = pipeline.model.get_outputs_for_camera(camera)
        rgb = outputs["rgb"].permute(2, 0, 1).clamp(0, 1).cpu()
        if with_geometry:
            images.append(
                {
                    "rgb": rgb,
                    "depth": outputs["depth"][..., 0].cpu(),
                    "accumulation": outputs["accumulation"][..., 0].cpu(),
                }
            )
        else:
            images.append(rgb)
    return images


def render_run_views(
    config_path: Path, split: Literal["train", "test"], indices: Optional[List[int]] = None, with_geometry: bool = False
) -> List:
    """Render ``indices`` (default: all) of ``split`` from the run at ``config_path``; see :func:`render_cameras`."""
    pipeline = open_run(config_path)
    if indices is None:
        indices = list(range(len(split_cameras(pipeline, split))))
    return render_cameras(pipeline, split, indices, with_geometry)


@dataclass
class CompareRuns:
    """Render the source and the edited run from the same cameras: one PNG per view, source | edited."""

    edited: Path
    """The edited run's config.yml (outputs/<scene>/ids-edit/<run>/config.yml)."""
    out: Path
    """Folder to write; must not exist or be empty."""
    source: Optional[Path] = None
    """The source run's config.yml; default: the run the edit was loaded from (--load-dir)."""
    split: Literal["train", "test"] = "test"
    """Which cameras to render."""
    views: Optional[List[int]] = None
    """View indices to render; default: all of the split."""

    def main(self) -> Path:
        for path in (self.edited, self.source):
            if path is not None and not path.is_file():
                raise UserError(f"config '{path}' does not exist; pass a run's config.yml")
        source = self.source or source_config_of(self.edited)
        with staged_output_dir(self.out) as staging:
            before = render_run_views(source, self.split, self.views)
            after = render_run_views(self.edited, self.split, self.views)
            for number, (a, b) in enumerate(zip(before, after)):
                side_by_side([a, b]).save(staging / f"{self.split}_{number:03d}.png")
        print(f"Wrote {len(before)} source | edited images to {self.out}")
        return self.out
