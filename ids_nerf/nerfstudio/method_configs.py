"""The methods ids-nerf registers with nerfstudio (entry-point group ``nerfstudio.method_configs``).

Defaults and their reasons:
- FPR N = 3, lambda = 1, CFG 7.5, t in [50, 948] (randint(50, 949)): the paper's official code.
- Learning rates: Adam 1e-3 for fields and proposal networks (a tenth of nerfacto's training rate),
  decayed to 1e-5 over the edit. Adam moves every parameter a gradient reaches by about the learning
  rate however small the gradient, so the rate sets how far what should stay drifts: at 1e-2 a null
  edit drifted 8x more, and the demo's edit kept about 3 dB less background at the same target PSNR
  (docs/results-nerf.md).
- 3000 steps: an estimate for a 15-minute edit on one H100 (about 0.3 s per 512x512 step), not yet
  measured on a GPU.
- Camera poses are frozen: the edit must keep the source's pose.
"""

from __future__ import annotations

from nerfstudio.cameras.camera_optimizers import CameraOptimizerConfig
from nerfstudio.configs.base_config import ViewerConfig
from nerfstudio.data.dataparsers.nerfstudio_dataparser import NerfstudioDataParserConfig
from nerfstudio.engine.optimizers import AdamOptimizerConfig
from nerfstudio.engine.schedulers import ExponentialDecaySchedulerConfig
from nerfstudio.models.nerfacto import NerfactoModelConfig
from nerfstudio.models.splatfacto import SplatfactoModelConfig
from nerfstudio.plugins.types import MethodSpecification

from ids_nerf.nerfstudio.datamanager import IDSEditDataManagerConfig
from ids_nerf.nerfstudio.pipeline import IDSEditPipelineConfig
from ids_nerf.nerfstudio.splat import IDSSplatEditPipelineConfig, splat_param_groups_lr
from ids_nerf.nerfstudio.trainer import IDSEditTrainerConfig

EDIT_STEPS = 3000
EDIT_SCHEDULE = dict(
    max_num_iterations=EDIT_STEPS,
    steps_per_save=250,
    steps_per_eval_batch=0,
    steps_per_eval_image=0,
    steps_per_eval_all_images=0,
    mixed_precision=False,
    vis="viewer",
)
"""Trainer settings every edit shares: no evaluation while editing (``ids-nerf eval`` measures the edit)."""


def nerfacto_edit_optimizers(steps: int) -> dict:
    """Adam at a tenth of nerfacto's training rate, decayed a hundredfold over the edit (see above)."""

    def adam():
        return {
            "optimizer": AdamOptimizerConfig(lr=1e-3, eps=1e-15),
            "scheduler": ExponentialDecaySchedulerConfig(lr_final=1e-5, max_steps=steps),
        }

    return {"proposal_networks": adam(), "fields": adam()}


def nerfacto_edit(method_name: str, fpr_steps: int, diffusion_size=None) -> IDSEditTrainerConfig:
    """A nerfacto edit; the model matches ``ns-train nerfacto``'s (replaced by the source run's own)."""
    return IDSEditTrainerConfig(
        method_name=method_name,
        **EDIT_SCHEDULE,
        pipeline=IDSEditPipelineConfig(
            datamanager=IDSEditDataManagerConfig(dataparser=NerfstudioDataParserConfig()),
            model=NerfactoModelConfig(
                eval_num_rays_per_chunk=1 << 15,
                average_init_density=0.01,
                camera_optimizer=CameraOptimizerConfig(mode="SO3xR3"),
            ),
            fpr_steps=fpr_steps,
            diffusion_size=diffusion_size,
        ),
        optimizers=nerfacto_edit_optimizers(EDIT_STEPS),
        use_grad_scaler=True,  # tiny-cuda-nn's fp16 backward: see IDSEditTrainer.train_iteration
        viewer=ViewerConfig(num_rays_per_chunk=1 << 15),
    )


def splatfacto_edit(method_name: str, fpr_steps: int) -> IDSEditTrainerConfig:
    """A splatfacto edit with splatfacto's own learning rates (the model is replaced by the source run's
    own settings)."""
    return IDSEditTrainerConfig(
        method_name=method_name,
        **EDIT_SCHEDULE,
        pipeline=IDSSplatEditPipelineConfig(
            datamanager=IDSEditDataManagerConfig(dataparser=NerfstudioDataParserConfig()),
            model=SplatfactoModelConfig(background_color="white"),
            fpr_steps=fpr_steps,
        ),
        optimizers=splat_param_groups_lr(EDIT_STEPS),
        viewer=ViewerConfig(num_rays_per_chunk=1 << 15),
    )


ids_edit = MethodSpecification(
    config=nerfacto_edit("ids-edit", fpr_steps=3),
    description="IDS edit of a trained nerfacto scene: text-guided, identity-preserving (CVPR 2025).",
)
dds_edit = MethodSpecification(
    config=nerfacto_edit("dds-edit", fpr_steps=0),
    description="DDS edit of a trained nerfacto scene: ids-edit without FPR, the baseline to compare with.",
)
ids_edit_small = MethodSpecification(
    config=nerfacto_edit("ids-edit-small", fpr_steps=3, diffusion_size=384),
    description="ids-edit at a 384-pixel diffusion input, for cards with less memory.",
)
ids_edit_splat = MethodSpecification(
    config=splatfacto_edit("ids-edit-splat", fpr_steps=3),
    description="IDS edit of a trained splatfacto (gsplat) scene; needs CUDA to render.",
)
dds_edit_splat = MethodSpecification(
    config=splatfacto_edit("dds-edit-splat", fpr_steps=0),
    description="DDS edit of a trained splatfacto scene: ids-edit-splat without FPR.",
)
