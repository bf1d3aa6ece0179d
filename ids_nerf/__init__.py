"""ids-nerf: IDS (Identity-preserving Distillation Sampling, CVPR 2025) for nerfstudio.

- :mod:`ids_nerf.core`: the paper's math, torch only.
- :mod:`ids_nerf.guidance`: Stable Diffusion (diffusers) as a score model.
- :mod:`ids_nerf.image_editing`: the 2D editor behind ``ids-nerf edit-image``.
"""

__version__ = "0.1.0"
