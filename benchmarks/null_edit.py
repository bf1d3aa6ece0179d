"""How far a null edit (target prompt = source prompt) moves a scene, and why: a probe, run in-process.

    python -m benchmarks.null_edit --source-run RUN --scene SCENE [--steps 40] [--variants baseline,...]

RUN is a nerfacto source trained on SCENE (an ``ids-nerf make-scene`` scene, e.g. the demo's), scored by
the scene's exact-score model. For each variant it builds a fresh ids-edit trainer, runs the edit's own
steps with its callbacks (as ns-train does), and prints the mean absolute difference of the test views
(eval mode, on white, 0-1 scale) from the source's, the mean direction norm and render-to-stored-source
difference per step, and how far each parameter group moved.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Type

import torch
from nerfstudio.engine.optimizers import OptimizerConfig

os.environ.setdefault("HF_HUB_OFFLINE", "1")

VARIANTS = {
    "baseline": {},
    "no-ids-gradient": {"pipeline.loss_scale": 0.0},
    "no-proposal-loss": {"pipeline.proposal_loss_mult": 0.0},
    "no-ids-no-proposal": {"pipeline.loss_scale": 0.0, "pipeline.proposal_loss_mult": 0.0},
    "sgd-lr-0.1": {"optimizer": "sgd", "lr": 0.1},
    "sgd-lr-0.01": {"optimizer": "sgd", "lr": 0.01},
    "adam-eps-1e-8": {"adam_eps": 1e-8},
    "adam-eps-1e-6": {"adam_eps": 1e-6},
    "lr-1e-2": {"lr": 1e-2},  # the default before 2026-11-28
    "lr-1e-3": {"lr": 1e-3},
    "train-embedding": {"pipeline.train_appearance_embedding": True},
    "jitter": {"pipeline.deterministic_sampling": False},
    "identity-mask": {"pipeline.identity_mask": "score"},
    "identity-mask-cfg1": {"pipeline.identity_mask": "score", "pipeline.guidance_scale": 1.0},
    "cfg-1": {"pipeline.guidance_scale": 1.0},
    "demo": {"pipeline.identity_mask": "score", "pipeline.guidance_scale": 1.0, "pipeline.max_step": 600},
}


@dataclass
class SGDConfig(OptimizerConfig):
    """Plain SGD, as the official 2D code moves its latent (nerfstudio ships Adam and RAdam)."""

    _target: Type = torch.optim.SGD

    def setup(self, params) -> torch.optim.Optimizer:
        return torch.optim.SGD(params, lr=self.lr)


def build_trainer(source_run: Path, scene: Path, overrides: dict, out: Path, target: str = "source"):
    from nerfstudio.data.dataparsers.blender_dataparser import BlenderDataParserConfig
    from nerfstudio.engine.optimizers import AdamOptimizerConfig
    from nerfstudio.plugins.registry import discover_methods

    from ids_nerf.scenes.edit_scene import read_scene_info

    config = copy.deepcopy(discover_methods()[0]["ids-edit"])
    config.machine.device_type = "cpu"
    config.vis = "tensorboard"
    config.output_dir = out
    config.load_dir = source_run / "nerfstudio_models"
    config.pipeline.datamanager.dataparser = BlenderDataParserConfig(data=scene, alpha_color=None)
    captions = read_scene_info(scene)["appearances"]
    config.pipeline.source_prompt, config.pipeline.target_prompt = captions["source"], captions[target]
    config.pipeline.diffusion_model = f"exact:{scene}"
    config.pipeline.fpr_scale = 0.1  # the demo's
    config.pipeline.log_images_every = 0
    config.pipeline.stale_check_steps = 0  # a null edit is meant to change nothing
    for key, value in overrides.items():
        if key.startswith("pipeline."):
            setattr(config.pipeline, key.split(".", 1)[1], value)
    for group in config.optimizers.values():
        lr = overrides.get("lr", group["optimizer"].lr)
        if overrides.get("optimizer") == "sgd":
            group["optimizer"] = SGDConfig(lr=lr)
        else:
            group["optimizer"] = AdamOptimizerConfig(lr=lr, eps=overrides.get("adam_eps", 1e-15))
    config.set_timestamp()
    config.save_config()
    trainer = config.setup(local_rank=0, world_size=1)
    trainer.setup()
    return trainer


def test_views(pipeline) -> torch.Tensor:
    """``[V, H, W, 3]`` eval-mode renders of the held-out (val) views, as the viewer and ns-render render."""
    cameras = pipeline.datamanager.eval_dataset.cameras
    pipeline.eval()
    with torch.no_grad():
        images = [pipeline.model.get_outputs_for_camera(cameras[i : i + 1])["rgb"] for i in range(len(cameras))]
    pipeline.train()
    return torch.stack(images)


def train_eval_gap(pipeline, views: int = 6) -> float:
    """Mean |train-mode render - eval-mode render| of the first training views: what the edit optimises
    (each view's own appearance embedding) against what the viewer and ns-render show (their mean)."""
    from ids_nerf.nerfstudio.rendering import camera_rays, render_rgb

    cameras = pipeline.datamanager.train_dataset.cameras
    gaps = []
    for index in range(views):
        bundle = camera_rays(cameras, index, pipeline.device)
        train = render_rgb(pipeline.model, bundle, 4096, seed=index)
        pipeline.eval()
        with torch.no_grad():
            shown = pipeline.model.get_outputs_for_camera(cameras[index : index + 1])["rgb"]
        pipeline.train()
        gaps.append(float((train - shown).abs().mean()))
    return sum(gaps) / len(gaps)


def target_quality(scene: Path, target: str, before: torch.Tensor, after: torch.Tensor) -> dict:
    """PSNR of the edited object against the ground-truth target appearance, and of everything else
    against the source's renders (identity), over the test views, in dB."""
    from ids_nerf.evaluation.evaluate import _ground_truth
    from ids_nerf.evaluation.metrics import psnr

    # the edit's eval dataset is the scene's val split (ns-train sets up with test_mode "val")
    targets, masks, edited_id, _, _ = _ground_truth(scene, target, len(after), split="val")
    object_psnr, rest_psnr = [], []
    for src, edi, gt, mask in zip(before, after, targets, masks):
        edi, src = edi.permute(2, 0, 1), src.permute(2, 0, 1)
        object_psnr.append(psnr(edi, gt, mask == edited_id))
        rest_psnr.append(psnr(edi, src, mask != edited_id))
    return {
        "object_psnr_to_target": sum(object_psnr) / len(object_psnr),
        "identity_psnr_outside_object": sum(rest_psnr) / len(rest_psnr),
    }


def run_variant(name: str, source_run: Path, scene: Path, steps: int, out: Path, target: str) -> dict:
    from nerfstudio.engine.callbacks import TrainingCallbackLocation as Where

    trainer = build_trainer(source_run, scene, VARIANTS[name], out / name, target)
    pipeline = trainer.pipeline
    before = test_views(pipeline)
    gap_before = train_eval_gap(pipeline)
    params = {group: [p.detach().clone() for p in ps] for group, ps in pipeline.get_param_groups().items()}
    norms, render_gaps = [], []  # per step: |direction|, mean |z_trg - z_src|
    start = time.time()
    for step in range(steps):
        for callback in trainer.callbacks:
            callback.run_callback_at_location(step, Where.BEFORE_TRAIN_ITERATION)
        _, _, metrics = trainer.train_iteration(step)
        for callback in trainer.callbacks:
            callback.run_callback_at_location(step, Where.AFTER_TRAIN_ITERATION)
        norms.append(metrics["ids/direction_norm"])
        render_gaps.append(metrics["ids/latent_change"])
    after = test_views(pipeline)
    quality = target_quality(scene, target, before, after)
    moved = {
        group: float(sum((p.detach() - q).norm() ** 2 for p, q in zip(ps, params[group])) ** 0.5)
        for group, ps in pipeline.get_param_groups().items()
    }
    return {
        "variant": name,
        "target": target,
        "train_eval_gap_before_after": [gap_before, train_eval_gap(pipeline)],
        "test_view_mean_abs_diff": float((after - before).abs().mean()),
        "direction_norm_mean": sum(norms) / len(norms),
        "direction_norm_first_last": [norms[0], norms[-1]],
        "latent_change_first_mean_last": [render_gaps[0], sum(render_gaps) / steps, render_gaps[-1]],
        "parameters_moved": moved,
        "seconds": time.time() - start,
        **quality,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source-run", type=Path, required=True)
    parser.add_argument("--scene", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--variants", default="baseline")
    parser.add_argument("--out", type=Path, default=Path("outputs/null-edit"))
    parser.add_argument("--target", default="source", help="the scene appearance whose caption is the target prompt")
    args = parser.parse_args()
    for name in args.variants.split(","):
        if name not in VARIANTS:
            parser.error(f"unknown variant {name!r}; choose from {', '.join(VARIANTS)}")
    for name in args.variants.split(","):
        print(json.dumps(run_variant(name, args.source_run, args.scene, args.steps, args.out, args.target)), flush=True)


if __name__ == "__main__":
    main()
