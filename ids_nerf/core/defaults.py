"""The official IDS code's settings (Kim et al., CVPR 2025), defined once; every default refers here."""

GUIDANCE_SCALE = 7.5
"""CFG scale s in eps_u + s (eps_c - eps_u), inside FPR and in the final score."""
MIN_STEP = 50
"""Smallest timestep drawn, inclusive, of 1000."""
MAX_STEP = 949
"""Timesteps are drawn below this: the official ``randint(50, 949)``, i.e. t in [50, 948]."""
FPR_STEPS = 3
"""FPR iterations N per step."""
FPR_SCALE = 1.0
"""FPR step size lambda, chosen for SD 1.x latents."""
LOSS_SCALE = 2000.0
"""loss = LOSS_SCALE * sum(z * direction) / (h * w), h x w the latent size."""
EDIT_STEPS_2D = 200
"""Optimisation steps of a 2D edit."""
LR_2D = 0.1
"""SGD learning rate on the target latent of a 2D edit."""
SD_BETA_START, SD_BETA_END, SD_TRAIN_TIMESTEPS = 0.00085, 0.012, 1000
"""Stable Diffusion 1.x's scaled-linear noise schedule."""
