"""Diffusers-backed score models for :mod:`ids_nerf.core`. Models are passed in; loading lives in
:func:`load_stable_diffusion` alone."""

from ids_nerf.guidance.loading import DEFAULT_MODEL, load_stable_diffusion
from ids_nerf.guidance.stable_diffusion import StableDiffusionGuidance
from ids_nerf.guidance.tiny import make_tiny_sd

__all__ = ["DEFAULT_MODEL", "StableDiffusionGuidance", "load_stable_diffusion", "make_tiny_sd"]
