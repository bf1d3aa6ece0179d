"""Full-view rendering with deferred backpropagation (Zhang et al., ARF 2022).

Memory must not grow with image area times samples per ray, so an edit step renders the view twice:
first without grad to get the image (and, through the VAE and the score, d loss / d pixels), then
chunk by chunk with grad, backpropagating each chunk's pixel gradient at once. Each chunk is rendered
under the same RNG seed in both passes, so the second pass reproduces the first exactly even though
nerfacto's training-mode sampling is stochastic. A view that fits in one chunk needs no second pass:
it is rendered once with grad, its graph (one chunk's memory, as in the deferred pass) kept until the
backward.
"""

from __future__ import annotations

import contextlib
from typing import Callable, Iterator, Optional, Tuple

import torch
from jaxtyping import Float
from nerfstudio.cameras.cameras import Cameras
from nerfstudio.cameras.rays import RayBundle
from nerfstudio.models.base_model import Model
from torch import Tensor

ChunkLoss = Callable[[dict], Tensor]
"""Extra loss of a chunk's model outputs (e.g. nerfacto's proposal loss), added in the second pass."""


def resized_camera(camera: Cameras, size: Optional[Tuple[int, int]]) -> Cameras:
    """A single ``camera`` seeing the same view on ``size`` (H, W) pixels: its focal lengths and principal
    point scaled per axis, as nerfstudio's ``rescale_output_resolution`` scales them by one factor (the
    edit's sizes keep the aspect ratio up to the rounding to the UNet's multiple). None: as it is."""
    if size is None or (int(camera.height), int(camera.width)) == tuple(size):
        return camera
    scale_y, scale_x = size[0] / camera.height, size[1] / camera.width
    camera.fx, camera.cx = camera.fx * scale_x, camera.cx * scale_x
    camera.fy, camera.cy = camera.fy * scale_y, camera.cy * scale_y
    camera.height, camera.width = torch.full_like(camera.height, size[0]), torch.full_like(camera.width, size[1])
    return camera


def camera_rays(
    cameras: Cameras, index: int, device: torch.device | str, size: Optional[Tuple[int, int]] = None
) -> RayBundle:
    """The ``[H, W]`` ray bundle of training camera ``index`` (at ``size`` (H, W) when given), tagged with its
    index so that per-image parts (appearance embedding, pose refinement) use that camera's entries."""
    camera = resized_camera(cameras[index : index + 1].to(device), size)
    bundle = camera.generate_rays(camera_indices=0, keep_shape=True)
    bundle.camera_indices = torch.full_like(bundle.camera_indices, index)
    return bundle


def largest_view(cameras: Cameras) -> int:
    """Index of the camera with the most pixels: the view whose render needs the most memory."""
    return int((cameras.height * cameras.width).flatten().argmax())


@contextlib.contextmanager
def gradients_set_aside(model: torch.nn.Module) -> Iterator[None]:
    """Inside, the model's trainable parameters have no gradient; afterwards they have the ones they had,
    so that a measurement neither sees nor leaves gradients."""
    params = [p for p in model.parameters() if p.requires_grad]
    grads = [p.grad for p in params]
    for param in params:
        param.grad = None
    try:
        yield
    finally:
        for param, grad in zip(params, grads):
            param.grad = grad


class _ProposalSchedule:
    """nerfacto's proposal sampler decides at each forward pass whether the proposal networks get a
    gradient (every few steps, by its update schedule) and resets its counter when they do. An edit step
    is many forward passes (chunks, and two passes over the view): each must see the decision that one
    training forward would see, and the counter is reset once. ``rewind`` restores the counter as it was
    when the step began; the grad pass's last chunk leaves it as one training forward would."""

    def __init__(self, model: Model) -> None:
        self.sampler = getattr(model, "proposal_sampler", None)
        self.count = getattr(self.sampler, "_steps_since_update", None)

    def rewind(self) -> None:
        if self.count is not None:
            self.sampler._steps_since_update = self.count


def _chunks(
    flat: RayBundle, chunk_size: int, seed: int, schedule: Optional[_ProposalSchedule] = None
) -> Iterator[Tuple[slice, RayBundle]]:
    for number, start in enumerate(range(0, len(flat), chunk_size)):
        if schedule is not None:
            schedule.rewind()
        rows = slice(start, start + chunk_size)
        devices = [flat.origins.device] if flat.origins.is_cuda else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed * 1_000_003 + number)
            yield rows, flat[rows]


def render_rgb(model: Model, bundle: RayBundle, chunk_size: int, seed: int) -> Float[Tensor, "h w 3"]:
    """Render ``bundle`` without grad in chunks, in the model's current mode."""
    height, width = bundle.shape
    flat = bundle.flatten()
    parts = []
    schedule = _ProposalSchedule(model)
    with torch.no_grad():
        for _, chunk in _chunks(flat, chunk_size, seed, schedule):
            parts.append(model(chunk)["rgb"])
    schedule.rewind()  # a render without grad is not a training forward
    return torch.cat(parts).reshape(height, width, 3)


def render_with_backprop(
    model: Model, bundle: RayBundle, chunk_size: int, seed: int, chunk_loss: Optional[ChunkLoss] = None
) -> Tuple[Float[Tensor, "h w 3"], Callable[[Tensor], Tensor]]:
    """The view (detached) and ``backprop(grad_rgb) -> extra loss``, which backpropagates d loss / d image
    into the model as :func:`backprop_rgb` does.

    With grad enabled and at most ``chunk_size`` rays, the view is rendered once with grad; otherwise
    (or under ``no_grad``) it is rendered without grad and ``backprop`` re-renders it chunk by chunk.
    Both give the same image and gradients for the same ``seed``.
    """
    height, width = bundle.shape
    if not torch.is_grad_enabled() or height * width > chunk_size:
        image = render_rgb(model, bundle, chunk_size, seed)
        return image, lambda grad_rgb: backprop_rgb(model, bundle, grad_rgb, chunk_size, seed, chunk_loss)
    for _, chunk in _chunks(bundle.flatten(), chunk_size, seed):  # one chunk, seeded as in render_rgb
        outputs = model(chunk)

    def backprop(grad_rgb: Tensor) -> Tensor:
        surrogate = (outputs["rgb"] * grad_rgb.reshape(-1, 3)).sum()
        extra = chunk_loss(outputs) if chunk_loss is not None else surrogate.new_zeros(())
        (surrogate + extra).backward()
        return extra.detach()

    return outputs["rgb"].detach().reshape(height, width, 3), backprop


def backprop_rgb(
    model: Model,
    bundle: RayBundle,
    grad_rgb: Float[Tensor, "h w 3"],
    chunk_size: int,
    seed: int,
    chunk_loss: Optional[ChunkLoss] = None,
) -> Float[Tensor, ""]:
    """Second pass: re-render each chunk with grad and backpropagate ``grad_rgb`` into the model.

    Gradients accumulate in the parameters' ``.grad``. Returns the summed ``chunk_loss`` (detached),
    each chunk weighted by its share of the rays.
    """
    flat = bundle.flatten()
    grad_flat = grad_rgb.reshape(-1, 3)
    total = grad_rgb.new_zeros(())
    for rows, chunk in _chunks(flat, chunk_size, seed, _ProposalSchedule(model)):
        with torch.enable_grad():
            outputs = model(chunk)
            surrogate = (outputs["rgb"] * grad_flat[rows]).sum()
            if chunk_loss is not None:
                extra = chunk_loss(outputs) * (len(chunk) / len(flat))
                surrogate = surrogate + extra
                total = total + extra.detach()
        surrogate.backward()
    return total


def chunk_peak_bytes(
    model: Model, bundle: RayBundle, rays: int, seed: int, chunk_loss: Optional[ChunkLoss] = None
) -> int:
    """Bytes that rendering the first ``rays`` rays of ``bundle`` with grad and backpropagating them keeps
    alive at its peak (``LiveBytes``), as one chunk of :func:`backprop_rgb`; the model's gradients, its
    proposal schedule and the random state are left as they were."""
    from ids_nerf.guidance.memory import LiveBytes

    schedule = _ProposalSchedule(model)
    try:
        with gradients_set_aside(model), LiveBytes() as live:
            for _, chunk in _chunks(bundle.flatten()[:rays], rays, seed, schedule):
                with torch.enable_grad():
                    outputs = model(chunk)
                    loss = outputs["rgb"].sum() + (chunk_loss(outputs) if chunk_loss is not None else 0.0)
                loss.backward()
                del outputs, loss
        return live.peak
    finally:
        schedule.rewind()
