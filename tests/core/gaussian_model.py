"""Closed-form score functions for testing the math: Gaussian data whose eps_hat is exact."""

from __future__ import annotations

import torch
from torch import Tensor

from ids_nerf.core import alpha_bar, classifier_free_guidance, sd_alphas_cumprod  # noqa: F401 (re-exported for tests)


class GaussianScore:
    """Data ``z_0 ~ N(mu_y, sigma^2 I)`` with a mean per condition ``y`` (cond = mean tensor).

    The exact posterior noise is ``E[eps | z_t] = sqrt(1-a) (z_t - sqrt(a) mu) / (a sigma^2 + 1 - a)``.
    The unconditional model is the Gaussian with mean ``uncond_mean``; CFG mixes them.
    """

    def __init__(
        self, alphas_cumprod: Tensor, sigma: float = 0.5, guidance_scale: float = 1.0, uncond_mean: float = 0.0
    ):
        self.ac, self.sigma, self.scale, self.uncond_mean = alphas_cumprod, sigma, guidance_scale, uncond_mean
        self.calls = 0

    def exact_eps(self, z_t: Tensor, t: Tensor, mean: Tensor) -> Tensor:
        a = alpha_bar(self.ac, t, z_t)
        return (1 - a).sqrt() * (z_t - a.sqrt() * mean) / (a * self.sigma**2 + 1 - a)

    def __call__(self, z_t: Tensor, t: Tensor, cond: Tensor) -> Tensor:
        self.calls += 1
        eps_c = self.exact_eps(z_t, t, cond)
        if self.scale == 1.0:
            return eps_c
        eps_u = self.exact_eps(z_t, t, torch.full_like(cond, self.uncond_mean))
        return classifier_free_guidance(eps_u, eps_c, self.scale)
