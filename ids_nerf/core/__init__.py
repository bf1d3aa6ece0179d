"""The paper's math in torch only: no nerfstudio, no diffusers, no weights.

See ``docs/math.md`` for the map from each equation to its function.
"""

from ids_nerf.core.directions import (
    DistillationStep,
    dds_direction,
    dds_step,
    distillation_loss,
    ids_direction,
    ids_step,
    sds_direction,
)
from ids_nerf.core.fpr import FPRResult, ScoreFn, fpr_refine, posterior_distance
from ids_nerf.core.noising import (
    add_noise,
    alpha_bar,
    classifier_free_guidance,
    guided_noise,
    sample_timesteps,
    sd_alphas_cumprod,
    tweedie_z0,
)

__all__ = [
    "DistillationStep",
    "FPRResult",
    "ScoreFn",
    "add_noise",
    "alpha_bar",
    "classifier_free_guidance",
    "dds_direction",
    "dds_step",
    "distillation_loss",
    "fpr_refine",
    "guided_noise",
    "ids_direction",
    "ids_step",
    "posterior_distance",
    "sample_timesteps",
    "sd_alphas_cumprod",
    "sds_direction",
    "tweedie_z0",
]
