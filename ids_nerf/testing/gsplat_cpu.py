"""A CPU stand-in for ``gsplat.rasterization``, for the tests and the CPU benchmarks.

gsplat rasterizes on CUDA only; even its "pure torch" ``_rasterization`` calls CUDA kernels to bin
Gaussians into tiles. This module keeps gsplat's own torch reference for everything per Gaussian
(covariance, projection, antialiasing compensation, spherical harmonics) and replaces the tiled
rasterizer by dense front-to-back alpha compositing of every Gaussian at every pixel, with gsplat's
per-pixel rules (skip alpha < 1/255, cap alpha at 0.999, stop before transmittance falls to 1e-4).
Dense is cheap at test sizes (32x32 views, a few thousand Gaussians); autograd gives the backward.

``use_cpu_rasterizer()`` patches splatfacto to use it and to keep its intrinsics on the CPU; only
:mod:`ids_nerf.testing.ns_run` calls it, so the production path stays gsplat's.
"""

from __future__ import annotations

import contextlib
from typing import Dict, Iterator, Optional, Tuple

import torch
from gsplat.cuda._torch_impl import _fully_fused_projection, _quat_scale_to_covar_preci, _spherical_harmonics
from torch import Tensor

ALPHA_MIN = 1.0 / 255.0  # gsplat skips fainter contributions
ALPHA_MAX = 0.999  # and caps each at this, so transmittance never reaches 0
TRANSMITTANCE_MIN = 1e-4  # a pixel stops at the first Gaussian that would take it to this or below


def composite(
    means2d: Tensor, conics: Tensor, opacities: Tensor, colors: Tensor, depths: Tensor, width: int, height: int
) -> Tuple[Tensor, Tensor]:
    """Alpha-composite N projected Gaussians of one camera, front to back, at every pixel centre.

    Returns colors [H, W, D] and accumulated alpha [H, W, 1]. Gaussians are ordered by depth, as
    gsplat orders them within a tile.
    """
    order = depths.argsort()
    means2d, conics, opacities, colors = means2d[order], conics[order], opacities[order], colors[order]
    ys, xs = torch.meshgrid(
        torch.arange(height, dtype=means2d.dtype), torch.arange(width, dtype=means2d.dtype), indexing="ij"
    )
    pixels = torch.stack([xs, ys], -1).reshape(-1, 1, 2) + 0.5  # [P, 1, 2]
    dx, dy = (pixels - means2d[None]).unbind(-1)  # [P, N] each
    sigma = 0.5 * (conics[:, 0] * dx**2 + conics[:, 2] * dy**2) + conics[:, 1] * dx * dy
    alpha = (opacities * torch.exp(-sigma)).clamp_max(ALPHA_MAX)
    alpha = torch.where((sigma >= 0) & (alpha >= ALPHA_MIN), alpha, torch.zeros_like(alpha))
    transmittance = torch.cumprod(torch.cat([torch.ones_like(alpha[:, :1]), 1 - alpha[:, :-1]], 1), 1)
    stopped = torch.cumsum((transmittance * (1 - alpha) <= TRANSMITTANCE_MIN).int(), 1) > 0
    weights = torch.where(stopped, torch.zeros_like(alpha), alpha * transmittance)  # [P, N]
    rendered = (weights @ colors).reshape(height, width, -1)
    return rendered, weights.sum(1).reshape(height, width, 1)


def rasterization(
    means: Tensor,
    quats: Tensor,
    scales: Tensor,
    opacities: Tensor,
    colors: Tensor,
    viewmats: Tensor,
    Ks: Tensor,
    width: int,
    height: int,
    near_plane: float = 0.01,
    far_plane: float = 1e10,
    eps2d: float = 0.3,
    sh_degree: Optional[int] = None,
    render_mode: str = "RGB",
    rasterize_mode: str = "classic",
    absgrad: bool = False,
    **_ignored,
) -> Tuple[Tensor, Tensor, Dict]:
    """The subset of ``gsplat.rasterization`` that splatfacto uses: one camera, unpacked, RGB or RGB+ED.

    ``absgrad`` (the per-pixel absolute gradient that splatfacto's densification may use) needs
    gsplat's own backward pass: train with ``--pipeline.model.use-absgrad False``.
    """
    if viewmats.shape[0] != 1 or render_mode not in ("RGB", "RGB+ED") or absgrad:
        raise NotImplementedError(
            "CPU rasterizer: one camera, RGB or RGB+ED, absgrad off "
            f"(got {viewmats.shape[0]} cameras, {render_mode}, absgrad={absgrad})"
        )
    covars, _ = _quat_scale_to_covar_preci(quats, scales, True, False, triu=False)
    radii, means2d, depths, conics, compensations = _fully_fused_projection(
        means,
        covars,
        viewmats,
        Ks,
        width,
        height,
        eps2d=eps2d,
        near_plane=near_plane,
        far_plane=far_plane,
        calc_compensations=rasterize_mode == "antialiased",
    )
    opacities = opacities[None] * (compensations if compensations is not None else 1.0)  # [1, N]
    if sh_degree is not None:
        directions = means[None] - torch.inverse(viewmats)[:, None, :3, 3]
        colors = (_spherical_harmonics(sh_degree, directions, colors[None]) + 0.5).clamp_min(0.0)
    else:
        colors = colors[None]
    if render_mode == "RGB+ED":
        colors = torch.cat([colors, depths[..., None]], -1)
    visible = radii[0] > 0
    rendered, alpha = composite(
        means2d[0, visible],
        conics[0, visible],
        opacities[0, visible],
        colors[0, visible],
        depths[0, visible],
        width,
        height,
    )
    if render_mode == "RGB+ED":
        rendered = torch.cat([rendered[..., :-1], rendered[..., -1:] / alpha.clamp(min=1e-10)], -1)
    info = {
        "radii": radii,
        "means2d": means2d,
        "depths": depths,
        "conics": conics,
        "width": width,
        "height": height,
        "n_cameras": 1,
        "camera_ids": None,
        "gaussian_ids": None,
    }
    return rendered[None], alpha[None], info


@contextlib.contextmanager
def use_cpu_rasterizer() -> Iterator[None]:
    """Within the block, splatfacto rasterizes with :func:`rasterization` and ``Tensor.cuda`` is a no-op
    (splatfacto moves its intrinsics with ``.cuda()``), when no CUDA device is present."""
    import nerfstudio.models.splatfacto as splatfacto

    if torch.cuda.is_available():
        yield
        return
    saved = splatfacto.rasterization, torch.Tensor.cuda
    splatfacto.rasterization = rasterization
    torch.Tensor.cuda = lambda self, *args, **kwargs: self
    try:
        yield
    finally:
        splatfacto.rasterization, torch.Tensor.cuda = saved
