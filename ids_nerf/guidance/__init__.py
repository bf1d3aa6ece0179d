"""Score models for :mod:`ids_nerf.core`: Stable Diffusion through diffusers, and the exact-score
verification model. Models are passed in; loading lives in :func:`load_guidance` alone."""

from ids_nerf.guidance.loading import DEFAULT_MODEL, load_guidance, load_stable_diffusion
from ids_nerf.guidance.score_model import ScoreModel
from ids_nerf.guidance.stable_diffusion import StableDiffusionGuidance
from ids_nerf.guidance.tiny import make_tiny_sd

__all__ = [
    "DEFAULT_MODEL",
    "ScoreModel",
    "load_guidance",
    "StableDiffusionGuidance",
    "load_stable_diffusion",
    "make_tiny_sd",
]
