"""``ids-nerf eval``: render a source and an edited run on the test views and measure the edit.

Against the ground-truth target (synthetic scenes): PSNR, SSIM, LPIPS, for the whole view and inside the
edited object. Identity against the source render: foreground-mask IoU, depth error inside the objects,
PSNR of what should not change (outside the edited object), and per unedited object and the background
separately PSNR, SSIM, LPIPS and the leak (mean colour change; ``ids_nerf.evaluation.regions``). CLIP
text-image and directional similarity when a CLIP model is available.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import torch
import yaml

from ids_nerf.errors import UserError
from ids_nerf.evaluation.clip_metrics import load_clip
from ids_nerf.evaluation.metrics import lpips, lpips_available, mask_iou, masked_depth_error, psnr, ssim
from ids_nerf.evaluation.regions import region_metrics
from ids_nerf.images import labeled_grid, read_rgb_on_white

DEFAULT_CLIP = "openai/clip-vit-large-patch14"
"""The CLIP model instruct-nerf2nerf's metrics use; used only when it is in the local cache."""


@dataclass
class EvalReport:
    """Per-metric means over the test views, and notices for what was skipped."""

    metrics: Dict[str, float] = field(default_factory=dict)
    notices: List[str] = field(default_factory=list)
    renders: Dict[str, List[torch.Tensor]] = field(default_factory=dict)
    """With ``keep_renders``: the test views' ``[3, H, W]`` images, keys source, edited and target (the
    ground truth, when known), for figures."""

    def headline(self) -> Dict[str, float]:
        keys = ("psnr_edited_to_target", "psnr_source_to_target", "background_psnr", "mask_iou")
        return {k: self.metrics[k] for k in keys if k in self.metrics}

    def markdown(self) -> str:
        rows = ["| metric | value |", "| --- | --- |"] + [f"| {k} | {v:.4f} |" for k, v in self.metrics.items()]
        return "\n".join(rows + [""] + [f"- {n}" for n in self.notices]) + "\n"


def ground_truth_appearance(scene: Optional[Path], target_prompt: str) -> Optional[str]:
    """The synthetic scene's appearance whose caption is ``target_prompt`` (or is named so), if any."""
    if scene is None or not (Path(scene) / "scene.json").is_file():
        return None
    appearances = json.loads((Path(scene) / "scene.json").read_text()).get("appearances", {})
    for name, caption in appearances.items():
        if target_prompt.strip() in (name, caption):
            return name
    return None


def _trained_on(config_path: Path) -> Path:
    config = yaml.load(config_path.read_text(), Loader=yaml.Loader)
    datamanager = config.pipeline.datamanager
    data = datamanager.data or getattr(datamanager.dataparser, "data", None) or config.data
    return Path(data).resolve()


def _mean(values: List[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return float(np.mean(finite)) if finite else float("nan")


def _ground_truth(scene: Path, appearance: str, count: int, split: str = "test"):
    """The target appearance's images of ``split``, the object-id masks, the edited object's id, the
    region names (name -> object id, background included) and the source appearance's images."""
    from ids_nerf.scenes.edit_scene import appearance_images, edit_masks, edited_object, read_scene_info

    info = read_scene_info(scene)
    targets = [read_rgb_on_white(p) for p in appearance_images(scene, appearance, split)]
    truths = [read_rgb_on_white(p) for p in appearance_images(scene, info.get("source", "source"), split)]
    masks = list(torch.from_numpy(edit_masks(scene, appearance, split).astype(np.int64)))
    if not len(targets) == len(masks) == count:
        raise UserError(f"scene '{scene}' has {len(targets)} test views but the runs render {count}; wrong scene?")
    return targets, masks, edited_object(info, appearance), dict(info["objects"]), truths


def _check_runs(source_config: Path, edited_config: Path, scene: Optional[Path]) -> None:
    """Both configs exist and, with a scene, were trained on it."""
    for path in (source_config, edited_config):
        if not path.is_file():
            raise UserError(f"config '{path}' does not exist; pass a run's config.yml")
    if scene is not None:
        for path in (source_config, edited_config):
            trained_on = _trained_on(path)
            if trained_on != Path(scene).resolve():
                raise UserError(f"run '{path.parent}' was trained on '{trained_on}', not on scene '{scene}'")


def _view_metrics(src: dict, edi: dict, target, mask, edited_id, regions, truth, have_lpips) -> Dict[str, float]:
    """One test view's metrics: geometry always; against the ground truth and per region with a mask."""
    fg_src, fg_edi = src["accumulation"] > 0.5, edi["accumulation"] > 0.5
    objects = mask > 0 if mask is not None else fg_src
    metrics = {
        "mask_iou": mask_iou(fg_src, fg_edi),
        "depth_error_objects_median": masked_depth_error(src["depth"], edi["depth"], objects, "median"),
    }
    if mask is None:
        metrics["psnr_edited_to_source"] = psnr(edi["rgb"], src["rgb"])
        return metrics
    metrics.update(
        background_psnr=psnr(edi["rgb"], src["rgb"], mask != edited_id),
        psnr_edited_to_target=psnr(edi["rgb"], target),
        psnr_source_to_target=psnr(src["rgb"], target),
        psnr_edited_to_target_object=psnr(edi["rgb"], target, mask == edited_id),
        psnr_source_to_target_object=psnr(src["rgb"], target, mask == edited_id),
        ssim_edited_to_target=ssim(edi["rgb"], target),
    )
    if have_lpips:
        metrics["lpips_edited_to_target"] = lpips(edi["rgb"], target)
    metrics.update(region_metrics(edi["rgb"], src["rgb"], target, mask, edited_id, regions, have_lpips, truth))
    return metrics


def _clip_scores(report: EvalReport, source, edited, source_prompt, target_prompt, clip_model: str) -> None:
    scorer, notice = load_clip(clip_model)
    report.notices.append(notice)
    if scorer is None:
        return
    src_images = torch.stack([s["rgb"] for s in source])
    edi_images = torch.stack([e["rgb"] for e in edited])
    report.metrics.update(scorer.edit_scores(src_images, edi_images, source_prompt, target_prompt))


def _write(report: EvalReport, out: Path, grid_rows: List[list], with_target: bool) -> None:
    """``metrics.json``, ``metrics.md`` and ``grid.png`` into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps({"metrics": report.metrics, "notices": report.notices}, indent=2))
    (out / "metrics.md").write_text(report.markdown())
    reference_name = "ground-truth target" if with_target else "source (no target)"
    columns = ["source", "edited", reference_name, "difference x4"]  # |edited - reference|
    labels = [f"test view {i}" for i in range(len(grid_rows))]
    labeled_grid(grid_rows, columns, row_labels=labels).save(out / "grid.png")


def evaluate_runs(
    source_config: Path,
    edited_config: Path,
    out: Path,
    scene: Optional[Path] = None,
    target_appearance: Optional[str] = None,
    source_prompt: Optional[str] = None,
    target_prompt: Optional[str] = None,
    clip_model: str = DEFAULT_CLIP,
    keep_renders: bool = False,
    source_renders: Optional[List[dict]] = None,
    edited_renders: Optional[List[dict]] = None,
) -> EvalReport:
    """Render the test views of both runs, compute the metrics, write ``metrics.json``,
    ``metrics.md`` and ``grid.png`` (a labeled figure; a row per test view: source | edited |
    ground-truth target | 4x difference) into ``out``. ``source_renders`` (``render_run_views``'s dicts
    with geometry, of the source's test views) saves rendering the source again when several edits share it;
    ``edited_renders`` the same for the edited run (e.g. one of its earlier checkpoints)."""
    from ids_nerf.nerfstudio.compare import render_run_views

    _check_runs(source_config, edited_config, scene)
    report = EvalReport()
    source = source_renders or render_run_views(source_config, "test", with_geometry=True)
    edited = edited_renders or render_run_views(edited_config, "test", with_geometry=True)
    have_lpips = False
    if target_appearance is not None and scene is not None:
        targets, masks, edited_id, regions, truths = _ground_truth(Path(scene), target_appearance, len(edited))
        have_lpips, lpips_notice = lpips_available()
        if not have_lpips:
            report.notices.append(lpips_notice)
    else:
        targets = masks = truths = [None] * len(edited)
        edited_id = regions = None
        report.notices.append("no ground-truth target: metrics against the target skipped")
    values: Dict[str, List[float]] = {}
    grid_rows = []
    for src, edi, target, mask, truth in zip(source, edited, targets, masks, truths):
        for name, value in _view_metrics(src, edi, target, mask, edited_id, regions, truth, have_lpips).items():
            values.setdefault(name, []).append(value)
        reference = target if target is not None else src["rgb"]
        grid_rows.append([src["rgb"], edi["rgb"], reference, ((edi["rgb"] - reference).abs() * 4).clamp(0, 1)])
    report.metrics = {k: _mean(v) for k, v in values.items()}
    if keep_renders:
        report.renders = {"source": [s["rgb"] for s in source], "edited": [e["rgb"] for e in edited]}
        if targets[0] is not None:
            report.renders["target"] = list(targets)
    if source_prompt and target_prompt:
        _clip_scores(report, source, edited, source_prompt, target_prompt, clip_model)
    _write(report, out, grid_rows, targets[0] is not None)
    return report


@dataclass
class EvalRuns:
    """Measure an edit: source vs edited renders of the test views, and the ground truth when known."""

    source: Path
    """The source run's config.yml."""
    edited: Path
    """The edited run's config.yml."""
    out: Path
    """Folder for metrics.json, metrics.md and grid.png; must not exist or be empty."""
    scene: Optional[Path] = None
    """A synthetic scene from `ids-nerf make-scene`, for the ground-truth target, masks and depth."""
    target_appearance: Optional[str] = None
    """The scene's appearance the edit aims at (e.g. edited); needs --scene."""
    source_prompt: Optional[str] = None
    """For the CLIP metrics."""
    target_prompt: Optional[str] = None
    """For the CLIP metrics."""
    clip_model: str = DEFAULT_CLIP
    """CLIP hub id or folder; used only when available locally, otherwise skipped with a notice."""

    def main(self) -> EvalReport:
        from ids_nerf.io import staged_output_dir

        if self.target_appearance is not None and self.scene is None:
            raise UserError("--target-appearance needs --scene")
        if self.scene is not None and self.target_appearance is not None:
            from ids_nerf.scenes.edit_scene import appearance_images

            appearance_images(self.scene, self.target_appearance, "test")  # unknown names fail here, in one line
        with staged_output_dir(self.out) as staging:
            report = evaluate_runs(
                self.source,
                self.edited,
                staging,
                self.scene,
                self.target_appearance,
                self.source_prompt,
                self.target_prompt,
                self.clip_model,
            )
        print(report.markdown(), end="")
        print(f"Written to {self.out}/metrics.json, metrics.md, grid.png")
        return report
