"""The CPU stand-in for gsplat's rasterizer (ids_nerf/testing/gsplat_cpu.py) against answers worked out by hand."""

import pytest
import torch

from ids_nerf.testing.gsplat_cpu import rasterization

SIDE, FOCAL = 32, 20.0
K = torch.tensor(
    [[[FOCAL, 0.0, 16.5], [0.0, FOCAL, 16.5], [0.0, 0.0, 1.0]]]
)  # principal point on pixel (16, 16)'s centre
IDENTITY_VIEW = torch.eye(4)[None]  # camera at the origin looking down +z (gsplat's convention)


def _render(means, colors, opacities, scale=0.05, **kwargs):
    count = means.shape[0]
    quats = torch.tensor([[1.0, 0.0, 0.0, 0.0]]).repeat(count, 1)
    scales = torch.full((count, 3), scale)
    return rasterization(means, quats, scales, opacities, colors, IDENTITY_VIEW, K, SIDE, SIDE, **kwargs)


def test_a_gaussian_on_the_optical_axis_peaks_at_the_principal_point_with_its_opacity():
    image, alpha, info = _render(torch.tensor([[0.0, 0.0, 2.0]]), torch.tensor([[0.2, 0.4, 0.6]]), torch.tensor([0.7]))
    assert image.shape == (1, SIDE, SIDE, 3) and alpha.shape == (1, SIDE, SIDE, 1)
    assert torch.allclose(info["means2d"][0, 0], torch.tensor([16.5, 16.5]))
    assert alpha[0, 16, 16, 0].item() == pytest.approx(0.7, abs=1e-6)  # exp(0) at the mean
    assert torch.allclose(image[0, 16, 16], 0.7 * torch.tensor([0.2, 0.4, 0.6]), atol=1e-6)
    assert (
        alpha[0, 16, 17, 0] < alpha[0, 16, 16, 0] and alpha[0, 0, 0, 0] == 0
    )  # it falls off, and far pixels are empty


def test_the_nearer_gaussian_is_composited_first_whatever_the_input_order():
    red, blue = [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]
    means = torch.tensor([[0.0, 0.0, 4.0], [0.0, 0.0, 2.0]])  # the far blue one comes first
    image, alpha, _ = _render(means, torch.tensor([blue, red]), torch.tensor([0.9, 0.9]), scale=0.2)
    expected = 0.9 * torch.tensor(red) + (1 - 0.9) * 0.9 * torch.tensor(blue)
    assert torch.allclose(image[0, 16, 16], expected, atol=1e-5)
    assert alpha[0, 16, 16, 0].item() == pytest.approx(0.9 + 0.1 * 0.9, abs=1e-5)


def test_expected_depth_and_spherical_harmonics_degree_zero():
    sh_c0 = 0.28209479177387814  # the degree-0 SH basis: colour = 0.5 + C0 * coefficient
    coefficients = torch.tensor([[[1.0, -1.0, 0.0]]])  # [N, K=1, 3]
    image, _, _ = _render(
        torch.tensor([[0.0, 0.0, 3.0]]), coefficients, torch.tensor([0.5]), sh_degree=0, render_mode="RGB+ED"
    )
    assert image.shape[-1] == 4
    expected_rgb = 0.5 * torch.tensor([0.5 + sh_c0, 0.5 - sh_c0, 0.5])
    assert torch.allclose(image[0, 16, 16, :3], expected_rgb, atol=1e-5)
    assert image[0, 16, 16, 3].item() == pytest.approx(3.0, abs=1e-4)  # depth normalised by alpha


def test_gradients_reach_the_means_and_their_projections():
    means = torch.tensor([[0.1, -0.1, 2.0]], requires_grad=True)
    image, _, info = _render(means, torch.tensor([[0.2, 0.4, 0.6]]), torch.tensor([0.7]))
    info["means2d"].retain_grad()  # what splatfacto's densification reads
    image[..., :16, :].sum().backward()  # favour the top half: the mean should be pulled up (-y)
    assert info["means2d"].grad is not None and info["means2d"].grad[0, 0, 1] < 0
    assert means.grad[0, 1] < 0


def test_what_the_stand_in_cannot_do_is_refused():
    with pytest.raises(NotImplementedError, match="absgrad"):
        _render(torch.tensor([[0.0, 0.0, 2.0]]), torch.tensor([[0.2, 0.4, 0.6]]), torch.tensor([0.7]), absgrad=True)


def test_a_pixel_stops_before_its_transmittance_falls_to_1e_4():
    # two opaque Gaussians: after the first (alpha capped at 0.999) T = 1e-3; the second would take it to
    # 1e-6, so gsplat stops there and the second adds nothing (without the stop it would add 1e-3 of blue)
    red, blue = [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]
    means = torch.tensor([[0.0, 0.0, 2.0], [0.0, 0.0, 3.0]])
    image, alpha, _ = _render(means, torch.tensor([red, blue]), torch.tensor([1.0, 1.0]), scale=0.3)
    assert image[0, 16, 16, 2].item() == 0.0
    assert image[0, 16, 16, 0].item() == pytest.approx(0.999, abs=1e-6)
    assert alpha[0, 16, 16, 0].item() == pytest.approx(0.999, abs=1e-6)
