"""ids-edit for splatfacto (gsplat): the same edit step, rendered by rasterizing Gaussians.

Rasterization is cheap and its memory small, so a view is rendered once with grad (no deferred
backpropagation). splatfacto runs its schedules (render resolution, SH degree, densification) on its
own step counter; the edit renders at the step a loaded splatfacto has (full resolution and SH degree,
as ns-viewer and ns-render show it), and densification stays off unless asked for.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
from dataclasses import dataclass, field
from typing import Callable, ClassVar, Iterator, Tuple, Type

import torch
from nerfstudio.engine.callbacks import TrainingCallback, TrainingCallbackAttributes, TrainingCallbackLocation
from torch import Tensor

from ids_nerf.errors import UserError
from ids_nerf.guidance.memory import LiveBytes
from ids_nerf.nerfstudio.pipeline import IDSEditPipeline, IDSEditPipelineConfig
from ids_nerf.nerfstudio.region import EditRegion, zero_gradient_outside
from ids_nerf.nerfstudio.rendering import gradients_set_aside, largest_view, resized_camera

GAUSSIAN_PREFIX = "gauss_params."
"""State-dict entries whose first dimension is the number of Gaussians, which a checkpoint sets."""


@dataclass
class IDSSplatEditPipelineConfig(IDSEditPipelineConfig):
    """Edit a trained splatfacto scene with IDS (or DDS with --pipeline.fpr-steps 0)."""

    _target: Type = field(default_factory=lambda: IDSSplatEditPipeline)
    source_kind: ClassVar[str] = "splatfacto"
    """The model kind this pipeline edits, checked against the --load-dir run (a class constant)."""
    other_kind_method: ClassVar[str] = "ids-edit"
    """The method that edits the other kind, named when a --load-dir run is of that kind."""

    def comparable_shape(self, key: str, tensor: Tensor) -> Tuple[int, ...]:
        """A checkpoint sets the number of Gaussians: only the per-Gaussian shape must fit."""
        return tuple(tensor.shape[1:]) if key.startswith(GAUSSIAN_PREFIX) else tuple(tensor.shape)

    densify: bool = False
    """Let splatfacto split, duplicate and prune Gaussians during the edit, on its schedule as from the
    end of its warm-up (every 100 steps; its opacity reset would come at edit step 2500). Off by default:
    the source's Gaussians keep the scene's geometry, and new ones would be free to drift from it."""


class SplatfactoHooks:
    """The splatfacto internals an edit relies on, in one place, read from nerfstudio
    :data:`NERFSTUDIO_VERSION`: its step counter (render resolution, SH degree), its densification
    strategy and the hook that strategy puts into every training render. On another nerfstudio the
    edit stops with one line instead of misbehaving."""

    NERFSTUDIO_VERSION = "1.1.5"

    def __init__(self, model) -> None:
        installed = importlib.metadata.version("nerfstudio")
        if installed != self.NERFSTUDIO_VERSION:
            raise UserError(
                f"the splat edit was written against splatfacto of nerfstudio {self.NERFSTUDIO_VERSION}, this is "
                f"nerfstudio {installed}; install nerfstudio=={self.NERFSTUDIO_VERSION} (or edit a nerfacto scene)"
            )
        self.model = model

    def render_step(self) -> int:
        return int(self.model.step)

    def set_render_step(self, optimizers, step: int) -> None:
        self.model.step_cb(optimizers, step)

    def densify(self, step: int) -> None:
        """One step of splatfacto's gsplat strategy at ``step`` of its own schedule (splatfacto's
        step_post_backward insists on its render step, so the strategy is called directly)."""
        model = self.model
        model.strategy.step_post_backward(
            params=model.gauss_params,
            optimizers=model.optimizers,
            state=model.strategy_state,
            step=step,
            info=model.info,
            packed=False,
        )

    @property
    def refine_start(self) -> int:
        return int(self.model.config.warmup_length)

    @contextlib.contextmanager
    def without_densify_bookkeeping(self) -> Iterator[None]:
        """For source renders (no grad, before the first step): splatfacto's training-mode render, so that
        it matches the edit's renders, minus its densification hook, which needs gradients and the
        optimizers that the first step's callback hands the model."""
        model = self.model
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

    def render_for_edit(self, index: int, seed: int, loss_scale=1.0) -> Tuple[Tensor, Callable[[Tensor], Tensor]]:
        # no extra loss to scale: gsplat's backward runs in fp32, so the trainer's scale stays 1
        camera = self.datamanager.train_dataset.cameras[index : index + 1].to(self.device)
        camera = resized_camera(camera, self.edit_view_size(index))
        camera.metadata = {"cam_idx": index}  # splatfacto's pose refinement looks the camera up by it
        quiet = (
            contextlib.nullcontext()
            if torch.is_grad_enabled()
            else SplatfactoHooks(self.model).without_densify_bookkeeping()
        )
        with quiet:
            rgb = self.model.get_outputs(camera)["rgb"]  # [H, W, 3]
        image = rgb.reshape(-1, *rgb.shape[-3:])[0].permute(2, 0, 1)[None]

        def backprop(grad_image: Tensor) -> Tensor:
            if image.requires_grad:
                image.backward(grad_image)
                if self.gates_region:
                    zero_gradient_outside(self.model.gauss_params, self.model.means, self.config.edit_region)
            return grad_image.new_zeros(())

        return image, backprop

    def edit_render_bytes(self, rays: int) -> int:
        """Peak bytes of rendering the largest training view with grad and its backward, measured (a splat
        view renders whole: ``rays`` does not apply). Gradients are left as they were."""
        index = largest_view(self.datamanager.train_dataset.cameras)
        hooks = SplatfactoHooks(self.model)
        with gradients_set_aside(self.model), LiveBytes() as live, hooks.without_densify_bookkeeping():
            image, _ = self.render_for_edit(index, self.config.seed)
            image.sum().backward()
            del image
        return live.peak

    def limit_to_region(self, region: EditRegion) -> None:
        """Nothing to install: ``backprop`` zeroes the gradient of the Gaussians outside the region."""

    def get_training_callbacks(self, attributes: TrainingCallbackAttributes):
        """splatfacto's schedules, fixed where a loaded model renders.

        Loading a checkpoint sets splatfacto's step to 30,000 (full resolution, full SH degree), whatever
        the source's training length: so ns-viewer, ns-render and ns-eval render, and so were the stored
        source renders made. The edit keeps that step for every render, so the edit's renders and the
        stored ones agree even for a source shorter than the resolution and SH warm-ups. Densification
        (``--pipeline.densify``) runs on its own counter, starting where splatfacto's refinement starts
        (its warm-up length), so that it splits and prunes from the first hundred edit steps on.
        """
        hooks = SplatfactoHooks(self.model)
        render_step = hooks.render_step()

        def before(step: int) -> None:
            hooks.set_render_step(attributes.optimizers, render_step)

        def densify(step: int) -> None:
            hooks.densify(hooks.refine_start + step)

        callbacks = [TrainingCallback([TrainingCallbackLocation.BEFORE_TRAIN_ITERATION], before)]
        if self.config.densify:
            callbacks.append(TrainingCallback([TrainingCallbackLocation.AFTER_TRAIN_ITERATION], densify))
        return callbacks


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
