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
from ids_nerf.core.edit_mask import anchored_direction, relevance_map, threshold_relevance
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
    "anchored_direction",
    "classifier_free_guidance",
    "dds_direction",
    "dds_step",
    "distillation_loss",
    "fpr_refine",
    "guided_noise",
    "ids_direction",
    "ids_step",
    "posterior_distance",
    "relevance_map",
    "sample_timesteps",
    "sd_alphas_cumprod",
    "sds_direction",
    "threshold_relevance",
    "tweedie_z0",
]
