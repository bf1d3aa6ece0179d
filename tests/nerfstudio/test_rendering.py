"""Deferred backpropagation gives the same gradients as one full-image backward pass."""

import pytest
import torch
from nerfstudio.cameras.rays import RayBundle
from torch import nn

from ids_nerf.nerfstudio.rendering import (
    _chunks,
    backprop_rgb,
    gradients_set_aside,
    largest_view,
    render_rgb,
    render_with_backprop,
)


class NoisyField(nn.Module):
    """A stand-in renderer whose output, like nerfacto's in training, depends on the RNG."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(6, 3)

    def forward(self, bundle: RayBundle):
        x = torch.cat([bundle.origins, bundle.directions], dim=-1)
        jitter = 0.1 * torch.rand(x.shape[0], 3)
        return {"rgb": torch.sigmoid(self.linear(x) + jitter), "extra": self.linear.weight.square().sum()}


def _bundle(h=5, w=7):
    g = torch.Generator().manual_seed(0)
    return RayBundle(
        origins=torch.randn(h, w, 3, generator=g),
        directions=torch.randn(h, w, 3, generator=g),
        pixel_area=torch.ones(h, w, 1),
        camera_indices=torch.zeros(h, w, 1, dtype=torch.long),
    )


def test_second_pass_reproduces_the_first_and_matches_full_backward():
    torch.manual_seed(0)
    model, bundle = NoisyField(), _bundle()
    grad_rgb = torch.randn(5, 7, 3)
    image = render_rgb(model, bundle, chunk_size=8, seed=3)
    backprop_rgb(model, bundle, grad_rgb, chunk_size=8, seed=3)
    chunked = [p.grad.clone() for p in model.parameters()]

    model.zero_grad()
    full = torch.cat([model(chunk)["rgb"] for _, chunk in _chunks(bundle.flatten(), 8, seed=3)]).reshape(5, 7, 3)
    torch.testing.assert_close(full.detach(), image, rtol=0, atol=0)  # the same RNG draws per chunk
    (full * grad_rgb).sum().backward()
    for got, expected in zip(chunked, model.parameters()):
        torch.testing.assert_close(got, expected.grad)


def test_a_different_seed_gives_a_different_render():
    model, bundle = NoisyField(), _bundle()
    assert not torch.equal(render_rgb(model, bundle, 8, seed=1), render_rgb(model, bundle, 8, seed=2))


def test_chunk_loss_is_weighted_by_chunk_share():
    model, bundle = NoisyField(), _bundle()
    total = backprop_rgb(model, bundle, torch.zeros(5, 7, 3), 8, 0, chunk_loss=lambda out: out["extra"])
    torch.testing.assert_close(total, model.linear.weight.square().sum().detach())
    torch.testing.assert_close(model.linear.weight.grad, 2 * model.linear.weight.detach())


def _grads(model):
    return [p.grad.clone() for p in model.parameters()]


def test_a_view_within_one_chunk_is_rendered_once_with_the_deferred_result():
    torch.manual_seed(0)
    model, bundle = NoisyField(), _bundle()  # 35 rays
    grad_rgb = torch.randn(5, 7, 3)
    extra = lambda out: out["extra"]  # noqa: E731

    deferred_image = render_rgb(model, bundle, 64, seed=3)
    deferred_extra = backprop_rgb(model, bundle, grad_rgb, 64, seed=3, chunk_loss=extra)
    deferred = _grads(model)

    model.zero_grad()
    calls = []
    model.register_forward_hook(lambda *args: calls.append(1))
    image, backprop = render_with_backprop(model, bundle, 64, seed=3, chunk_loss=extra)
    one_pass_extra = backprop(grad_rgb)
    assert len(calls) == 1  # no second rendering
    torch.testing.assert_close(image, deferred_image, rtol=0, atol=0)
    torch.testing.assert_close(one_pass_extra, deferred_extra)
    for got, expected in zip(_grads(model), deferred):
        torch.testing.assert_close(got, expected)


def test_a_larger_view_or_no_grad_takes_the_deferred_path():
    model, bundle = NoisyField(), _bundle()
    calls = []
    model.register_forward_hook(lambda *args: calls.append(1))
    _, backprop = render_with_backprop(model, bundle, 8, seed=0)  # 35 rays in chunks of 8: 5 chunks
    backprop(torch.zeros(5, 7, 3))
    assert len(calls) == 10
    with torch.no_grad():
        image, _ = render_with_backprop(model, bundle, 64, seed=0)
    assert not image.requires_grad


def test_a_measurement_neither_sees_nor_leaves_gradients():
    model = NoisyField()
    model.linear.bias.requires_grad_(False)  # frozen: not touched
    model.linear.weight.grad = before = torch.ones_like(model.linear.weight)
    with gradients_set_aside(model):
        assert model.linear.weight.grad is None
        model(_bundle().flatten())["rgb"].sum().backward()
    assert model.linear.weight.grad is before and model.linear.bias.grad is None


def test_the_largest_view_is_the_one_with_most_pixels():
    from nerfstudio.cameras.cameras import Cameras

    sizes = [(4, 4), (8, 6), (5, 9)]  # 16, 48, 45 pixels
    cameras = Cameras(
        camera_to_worlds=torch.eye(4)[:3].expand(3, 3, 4),
        fx=1.0,
        fy=1.0,
        cx=2.0,
        cy=2.0,
        height=torch.tensor([[h] for h, _ in sizes]),
        width=torch.tensor([[w] for _, w in sizes]),
    )
    assert largest_view(cameras) == 1


def test_a_resized_camera_sees_what_nerfstudios_rescaled_one_sees():
    from nerfstudio.cameras.cameras import Cameras

    from ids_nerf.nerfstudio.rendering import camera_rays

    cameras = Cameras(
        camera_to_worlds=torch.eye(4)[None, :3], fx=500.0, fy=500.0, cx=400.0, cy=300.0, width=800, height=600
    )
    rescaled = Cameras(
        camera_to_worlds=torch.eye(4)[None, :3], fx=500.0, fy=500.0, cx=400.0, cy=300.0, width=800, height=600
    )
    rescaled.rescale_output_resolution(0.64)
    ours = camera_rays(cameras, 0, "cpu", size=(384, 512))
    theirs = rescaled.generate_rays(camera_indices=0, keep_shape=True)
    assert ours.shape == theirs.shape == (384, 512)
    assert torch.allclose(ours.directions, theirs.directions, atol=1e-6)
    assert int(cameras.width[0]) == 800 and float(cameras.fx[0]) == 500.0  # the dataset's camera is left as it was
    assert camera_rays(cameras, 0, "cpu").shape == (600, 800)


@pytest.mark.slow
def test_an_edit_step_renders_a_large_view_at_the_diffusion_size(workspace, ns_env, tiny_sd_dir, source_run, tmp_path):
    """An 800x800 view (the test scene's cameras scaled up) renders the diffusion model's input size, chunk by
    chunk twice (the deferred pass), not the view's 640,000 rays."""
    from tests.nerfstudio.conftest import edit_trainer

    trainer = edit_trainer(
        "ids-edit", workspace, tiny_sd_dir, source_run / "nerfstudio_models", tmp_path / "e", render_chunk_rays=100
    )
    pipeline = trainer.pipeline
    cameras = pipeline.datamanager.train_dataset.cameras
    cameras.rescale_output_resolution(800 / int(cameras.width[0]))
    assert (int(cameras.height[0]), int(cameras.width[0])) == (800, 800)
    rays = []
    model = pipeline.model
    forward = model.forward
    model.forward = lambda bundle, *args, **kwargs: rays.append(len(bundle)) or forward(bundle, *args, **kwargs)
    trainer.optimizers.zero_grad_all()
    _, _, applied = pipeline.edit_step(0)
    height, width = pipeline.diffusion_image_size(800, 800)
    assert applied and pipeline.edit_view_size(0) == (height, width) and height * width < 800 * 800 / 100
    assert sum(rays) == 2 * height * width and max(rays) == 100  # two passes over the diffusion-sized view
    assert any(p.grad is not None and p.grad.any() for p in model.parameters())
