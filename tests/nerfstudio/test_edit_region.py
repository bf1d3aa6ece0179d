"""Region-limited edits: gradients come only from inside the --pipeline.edit-region box."""

import pytest
import torch
from nerfstudio.engine.callbacks import TrainingCallbackLocation
from nerfstudio.field_components.field_heads import FieldHeadNames

from ids_nerf.errors import UserError
from ids_nerf.nerfstudio.region import (
    check_region,
    inside_region,
    limit_field_to_region,
    zero_gradient_outside,
)
from tests.nerfstudio.conftest import edit_trainer, fresh_splat_checkpoint

BOX = (0.0, 0.0, 0.0, 1.0, 1.0, 1.0)
NOWHERE = (10.0, 10.0, 10.0, 11.0, 11.0, 11.0)
"""A box far outside the test scene (which lies within a radius of about 1 of the origin)."""
EVERYWHERE = (-1e4, -1e4, -1e4, 1e4, 1e4, 1e4)  # nerfacto samples out to its far plane, 1000


def test_inside_and_bad_boxes():
    points = torch.tensor([[0.5, 0.5, 0.5], [1.0, 0.0, 1.0], [1.5, 0.5, 0.5], [0.5, -0.1, 0.5]])
    assert inside_region(points, BOX)[:, 0].tolist() == [True, True, False, False]
    check_region(None)
    check_region(BOX)
    for bad in [(0, 0, 0, 1, 0, 1), (1, 0, 0, 0, 1, 1), (0, 0, 0, 1, 1, float("nan"))]:
        with pytest.raises(UserError, match="is not a box; give X0 Y0 Z0 X1 Y1 Z1"):
            check_region(bad)


class _Frustums:
    def __init__(self, positions):
        self.positions = positions

    def get_positions(self):
        return self.positions


class _Samples:
    def __init__(self, positions):
        self.frustums = _Frustums(positions)


class _ToyField(torch.nn.Module):
    """Colour and density linear in the position, as a field's heads are functions of it."""

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(3))

    def forward(self, ray_samples, compute_normals=False):
        positions = ray_samples.frustums.get_positions()
        rgb = positions * self.weight
        return {FieldHeadNames.RGB: rgb, FieldHeadNames.DENSITY: rgb.sum(-1, keepdim=True)}


def test_a_limited_field_keeps_its_values_and_passes_gradient_from_inside_only():
    positions = torch.tensor([[[0.5, 0.5, 0.5], [2.0, 3.0, 4.0]]])  # one ray, a sample inside, one outside
    field = _ToyField()
    free = field.forward(_Samples(positions))
    limit_field_to_region(field, BOX)
    limited = field.forward(_Samples(positions))
    for head in (FieldHeadNames.RGB, FieldHeadNames.DENSITY):
        assert torch.equal(free[head], limited[head])
    (limited[FieldHeadNames.RGB].sum() + limited[FieldHeadNames.DENSITY].sum()).backward()
    assert torch.allclose(field.weight.grad, 2 * positions[0, 0])  # the inside sample's alone


def test_the_box_is_built_once_per_device_not_on_every_field_call(monkeypatch):
    positions = torch.tensor([[[0.5, 0.5, 0.5], [2.0, 3.0, 4.0]]])
    field = _ToyField()
    limit_field_to_region(field, (0.0, 0.0, 0.0, 0.5, 0.5, 0.5))  # a box no other test has used
    built, tensor = [], torch.tensor
    monkeypatch.setattr(
        torch, "tensor", lambda *args, **kwargs: built.append(kwargs["device"]) or tensor(*args, **kwargs)
    )
    for _ in range(5):
        field.forward(_Samples(positions))
    assert inside_region(positions.to("meta"), (0.0, 0.0, 0.0, 0.5, 0.5, 0.5)).device.type == "meta"
    assert built == [torch.device("cpu"), torch.device("meta")]  # one box per device


def test_zero_gradient_outside_keeps_the_inside_gaussians_rows():
    means = torch.tensor([[0.5, 0.5, 0.5], [3.0, 0.0, 0.0]])
    params = {"means": torch.nn.Parameter(means.clone()), "opacities": torch.nn.Parameter(torch.zeros(2, 1))}
    for param in params.values():
        param.grad = torch.ones_like(param)
    assert zero_gradient_outside(params, means, BOX) == 1
    assert params["means"].grad[:, 0].tolist() == [1.0, 0.0] and params["opacities"].grad[:, 0].tolist() == [1.0, 0.0]


def _field_grads(trainer):
    trainer.optimizers.zero_grad_all()
    trainer.pipeline.edit_step(0)
    return [p.grad for p in trainer.pipeline.model.field.parameters() if p.requires_grad]


@pytest.mark.slow
def test_a_nerfacto_edit_limited_to_empty_space_moves_nothing(
    workspace, ns_env, tiny_sd_dir, source_run, tmp_path, monkeypatch
):
    from ids_nerf.nerfstudio.pipeline import IDSEditPipeline

    # a box no view sees is refused before the edit starts (test_identity_mask.py), and a region's pixels are its
    # mask: both set aside (every pixel in the mask), to see the 3D cut itself
    def whole_views(self):
        cameras = self.datamanager.train_dataset.cameras
        return [torch.ones(int(c.height), int(c.width), dtype=torch.bool) for c in cameras]

    monkeypatch.setattr(IDSEditPipeline, "region_pixel_masks", whole_views)
    grads = {}
    for name, region in (("nowhere", NOWHERE), ("everywhere", EVERYWHERE), ("none", None)):
        trainer = edit_trainer(
            "ids-edit",
            workspace,
            tiny_sd_dir,
            source_run / "nerfstudio_models",
            tmp_path / name,
            edit_region=region,
            region_cut=True,
        )
        grads[name] = _field_grads(trainer)
    assert all(g is None or not g.any() for g in grads["nowhere"])
    assert any(g is not None and g.any() for g in grads["none"])
    for limited, free in zip(grads["everywhere"], grads["none"]):  # a box holding the scene changes nothing
        assert (limited is None and free is None) or torch.allclose(limited, free, atol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("region_cut", [True, False])
def test_a_splat_edit_changes_only_the_gaussians_inside_or_only_the_pixels_that_see_the_box(
    workspace, ns_env, tiny_sd_dir, tmp_path, region_cut
):
    from ids_nerf.testing.gsplat_cpu import use_cpu_rasterizer

    checkpoint = fresh_splat_checkpoint(workspace, tmp_path / "splat")
    region = (0.0, -2.0, -2.0, 2.0, 2.0, 2.0)  # the half x > 0 of the scene
    with use_cpu_rasterizer():
        trainer = edit_trainer(
            "ids-edit-splat",
            workspace,
            tiny_sd_dir,
            checkpoint,
            tmp_path / "out",
            model={"num_random": 300, "use_absgrad": False},
            edit_region=region,
            region_cut=region_cut,
        )
        model = trainer.pipeline.model
        for callback in trainer.callbacks:  # as the trainer does before a step (hands splatfacto its optimizers)
            callback.run_callback_at_location(0, TrainingCallbackLocation.BEFORE_TRAIN_ITERATION)
        trainer.optimizers.zero_grad_all()
        trainer.pipeline.edit_step(0)
    inside = inside_region(model.means.detach(), region)[:, 0]
    assert 0 < int(inside.sum()) < len(inside)
    grad = model.gauss_params["features_dc"].grad
    assert grad[inside].any()
    assert 0 < float(trainer.pipeline.edit_masks.mean()) < 1  # the box is a mask per view either way
    if region_cut:  # and the box cuts Gaussian by Gaussian
        assert not grad[~inside].any()
    else:  # Gaussians in front of or behind it, seen through it, change too
        assert grad[~inside].any()


def test_object_boxes_follow_the_dataparser_transform():
    import numpy as np

    from ids_nerf.cli.scene_bounds import region_flag, synthetic_object_boxes, to_dataparser

    ball = dict(synthetic_object_boxes())["ball"]
    assert region_flag(ball) == "--pipeline.edit-region -0.10 -0.60 -0.05 0.80 0.30 0.85"
    swap = np.array([[0.0, 1.0, 0.0, 1.0], [1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0]])  # x <-> y, then x += 1
    low, high = to_dataparser(ball, swap, scale=0.5)
    assert np.allclose(low, [0.2, -0.05, -0.025]) and np.allclose(high, [0.65, 0.4, 0.425])


@pytest.mark.slow
def test_scene_bounds_prints_the_flags(source_run, capsys):
    from ids_nerf.cli.main import main

    assert main(["scene-bounds", "--config", str(source_run / "config.yml")]) == 0
    out = capsys.readouterr().out
    assert "scene box                  --pipeline.edit-region -1.50 -1.50 -1.50 1.50 1.50 1.50" in out
    assert "cameras" in out
