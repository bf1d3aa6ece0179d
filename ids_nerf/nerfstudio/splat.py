"""ids-edit for splatfacto (gsplat): the same edit step, rendered by rasterizing Gaussians.

Rasterization is cheap and its memory small, so a view is rendered once with grad (no deferred
backpropagation). splatfacto runs its schedules (render resolution, SH degree, densification) on its
own step counter; the edit renders at the step a loaded splatfacto has (full resolution and SH degree,
as ns-viewer and ns-render show it), and densification stays off unless asked for.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Callable, Iterator, Tuple, Type

import torch
from torch import Tensor

from ids_nerf.nerfstudio.pipeline import IDSEditPipeline, IDSEditPipelineConfig
from nerfstudio.engine.callbacks import TrainingCallback, TrainingCallbackAttributes, TrainingCallbackLocation


@dataclass
class IDSSplatEditPipelineConfig(IDSEditPipelineConfig):
    """Edit a trained splatfacto scene with IDS (or DDS with --pipeline.fpr-steps 0)."""

    _target: Type = field(default_factory=lambda: IDSSplatEditPipeline)
    densify: bool = False
    """Let splatfacto split, duplicate and prune Gaussians during the edit, on its schedule as from the
    end of its warm-up (every 100 steps; its opacity reset would come at edit step 2500). Off by default:
    the source's Gaussians keep the scene's geometry, and new ones would be free to drift from it."""


@contextlib.contextmanager
def _without_densify_bookkeeping(model) -> Iterator[None]:
    """For source renders (no grad, before the first step): splatfacto's training-mode render, so that
    it matches the edit's renders, minus its densification hook, which needs gradients and the
    optimizers that the first step's callback hands the model."""
    strategy = model.strategy
    missing = not hasattr(model, "optimizers")
    if missing:
        model.optimizers = None
    strategy.step_pre_backward = lambda *args, **kwargs: None
    try:
        yield
    finally:
        del strategy.step_pre_backward
        if missing:
            del model.optimizers


class IDSSplatEditPipeline(IDSEditPipeline):
    config: IDSSplatEditPipelineConfig

    def render_for_edit(self, index: int, seed: int) -> Tuple[Tensor, Callable[[Tensor], Tensor]]:
        camera = self.datamanager.train_dataset.cameras[index : index + 1].to(self.device)
        camera.metadata = {"cam_idx": index}  # splatfacto's pose refinement looks the camera up by it
        with contextlib.nullcontext() if torch.is_grad_enabled() else _without_densify_bookkeeping(self.model):
            rgb = self.model.get_outputs(camera)["rgb"]  # [H, W, 3]
        image = rgb.reshape(-1, *rgb.shape[-3:])[0].permute(2, 0, 1)[None]

        def backprop(grad_image: Tensor) -> Tensor:
            if image.requires_grad:
                image.backward(grad_image)
            return grad_image.new_zeros(())

        return image, backprop

    def get_training_callbacks(self, attributes: TrainingCallbackAttributes):
        """splatfacto's schedules, fixed where a loaded model renders.

        Loading a checkpoint sets splatfacto's step to 30,000 (full resolution, full SH degree), whatever
        the source's training length: so ns-viewer, ns-render and ns-eval render, and so were the stored
        source renders made. The edit keeps that step for every render, so the edit's renders and the
        stored ones agree even for a source shorter than the resolution and SH warm-ups. Densification
        (``--pipeline.densify``) runs on its own counter, starting where splatfacto's refinement starts
        (its warm-up length), so that it splits and prunes from the first hundred edit steps on.
        """
        model, render_step = self.model, int(self.model.step)

        def before(step: int) -> None:
            model.step_cb(attributes.optimizers, render_step)

        def densify(step: int) -> None:
            # splatfacto's own step_post_backward requires its render step; call gsplat's strategy directly
            model.strategy.step_post_backward(
                params=model.gauss_params, optimizers=model.optimizers, state=model.strategy_state,
                step=model.config.warmup_length + step, info=model.info, packed=False,
            )

        callbacks = [TrainingCallback([TrainingCallbackLocation.BEFORE_TRAIN_ITERATION], before)]
        if self.config.densify:
            callbacks.append(TrainingCallback([TrainingCallbackLocation.AFTER_TRAIN_ITERATION], densify))
        return callbacks


GAUSSIAN_PREFIX = "gauss_params."
"""State-dict entries whose first dimension is the number of Gaussians, which a checkpoint sets."""


def splat_param_groups_lr(steps: int) -> dict:
    """splatfacto's own learning rates; the means' decay spans the edit."""
    from nerfstudio.engine.optimizers import AdamOptimizerConfig
    from nerfstudio.engine.schedulers import ExponentialDecaySchedulerConfig

    def adam(lr, scheduler=None):
        return {"optimizer": AdamOptimizerConfig(lr=lr, eps=1e-15), "scheduler": scheduler}

    return {
        "means": adam(1.6e-4, ExponentialDecaySchedulerConfig(lr_final=1.6e-6, max_steps=steps)),
        "features_dc": adam(0.0025),
        "features_rest": adam(0.0025 / 20),
        "opacities": adam(0.05),
        "scales": adam(0.005),
        "quats": adam(0.001),
        "bilateral_grid": adam(2e-3),
    }
