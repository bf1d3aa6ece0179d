"""The trainer's refusals of a source checkpoint of the other hash grid and of views of mixed shapes."""

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from ids_nerf.errors import UserError
from ids_nerf.images import fit_short_side
from ids_nerf.nerfstudio.trainer import check_checkpoint_fits, check_view_sizes, hash_grid_implementation


class _FakeTcnnModule(nn.Module):
    """What a tiny-cuda-nn module holds: all its weights in one flat ``params`` parameter."""

    def __init__(self, *args, **kwargs):
        super().__init__()
        self.params = nn.Parameter(torch.zeros(8))


def _nerfacto_modules(monkeypatch, implementation):
    """nerfacto's field and a proposal network, built by nerfstudio with either hash grid (tiny sizes),
    under the names NerfactoModel gives them; with a stand-in for the tiny-cuda-nn bindings."""
    from nerfstudio.field_components import encodings, mlp
    from nerfstudio.fields.density_fields import HashMLPDensityField
    from nerfstudio.fields.nerfacto_field import NerfactoField

    fake = type("tcnn", (), {name: _FakeTcnnModule for name in ("Encoding", "Network", "NetworkWithInputEncoding")})
    for module in (encodings, mlp):
        monkeypatch.setattr(module, "TCNN_EXISTS", True)
        monkeypatch.setattr(module, "tcnn", fake)
    aabb = torch.tensor([[-1.0, -1, -1], [1, 1, 1]])
    return nn.ModuleDict(
        {
            "field": NerfactoField(aabb, num_images=2, log2_hashmap_size=8, implementation=implementation),
            "proposal": HashMLPDensityField(aabb, log2_hashmap_size=8, implementation=implementation),
        }
    ).state_dict()


def _shape(key, tensor):
    return tuple(tensor.shape)


@pytest.mark.parametrize(
    "ours, theirs, expected",
    [
        ("torch", "tcnn", "install tiny-cuda-nn, or train the source with --pipeline.model.implementation torch"),
        ("tcnn", "torch", "pass --pipeline.model.implementation torch"),
    ],
)
def test_a_checkpoint_of_the_other_hash_grid_is_refused_naming_it(monkeypatch, ours, theirs, expected):
    model, checkpoint = _nerfacto_modules(monkeypatch, ours), _nerfacto_modules(monkeypatch, theirs)
    assert (hash_grid_implementation(model), hash_grid_implementation(checkpoint)) == (ours, theirs)
    with pytest.raises(UserError, match=expected) as refused:
        check_checkpoint_fits(model, checkpoint, _shape, Path("step-1.ckpt"), "ids-edit")
    assert "\n" not in str(refused.value)


def test_a_checkpoint_of_another_model_is_refused_as_such(monkeypatch):
    model = _nerfacto_modules(monkeypatch, "torch")
    other = {"field.mlp.weight": torch.zeros(4, 4)}
    with pytest.raises(UserError, match="does not fit the model of this edit"):
        check_checkpoint_fits(model, other, _shape, Path("step-1.ckpt"), "ids-edit")


def test_a_fitting_checkpoint_passes(monkeypatch):
    model = _nerfacto_modules(monkeypatch, "torch")
    check_checkpoint_fits(model, {k: v.clone() for k, v in model.items()}, _shape, Path("step-1.ckpt"), "ids-edit")


def _cameras(sizes):
    from nerfstudio.cameras.cameras import Cameras

    n = len(sizes)
    heights, widths = (torch.tensor([[size[i]] for size in sizes]) for i in (0, 1))
    return Cameras(torch.eye(4)[:3].expand(n, 3, 4), fx=50.0, fy=50.0, cx=16.0, cy=16.0, width=widths, height=heights)


def test_views_of_different_aspect_ratios_are_refused_before_the_diffusion_model_loads():
    with pytest.raises(UserError, match=r"views 0 and 2 .* \(32x24 and 24x32 pixels\).* one aspect ratio") as refused:
        check_view_sizes(_cameras([(24, 32), (24, 32), (32, 24)]))  # one view turned upright
    assert "\n" not in str(refused.value)


def test_views_of_one_aspect_ratio_pass_and_share_their_diffusion_size():
    sizes = [(24, 32), (48, 64), (600, 800)]
    check_view_sizes(_cameras(sizes))
    assert len({fit_short_side(h, w, 512, 64) for h, w in sizes}) == 1  # hence one latent shape


def _begin_edit(monkeypatch, sizes, device="cpu", diffusion_device=None, done=None):
    """``IDSEditTrainer._begin_edit`` on a stand-in trainer (views of ``sizes``); returns ``done``, to which
    it appends what it loaded, in order."""
    from ids_nerf.nerfstudio import trainer

    done = [] if done is None else done
    monkeypatch.setattr(trainer, "plan_edit_memory", lambda pipeline: None)
    pipeline = SimpleNamespace(
        datamanager=SimpleNamespace(train_dataset=SimpleNamespace(cameras=_cameras(sizes))),
        check_edit_masks=lambda: None,
        mask_figure=lambda: None,
        load_diffusion=lambda **kwargs: done.append("diffusion"),
        encode_views=lambda: done.append("latents"),
    )
    fake = SimpleNamespace(
        pipeline=pipeline,
        device=device,
        config=SimpleNamespace(pipeline=SimpleNamespace(diffusion_device=diffusion_device), is_viewer_enabled=bool),
        _checkpoint_path=Path("no-run/nerfstudio_models/step-1.ckpt"),
        _resumed=False,
        _connect_edit_panel=lambda: None,
    )
    trainer.IDSEditTrainer._begin_edit(fake)
    return done


def test_the_edit_refuses_mixed_views_before_it_loads_the_diffusion_model(monkeypatch):
    loaded = []
    with pytest.raises(UserError, match="different aspect ratios"):
        _begin_edit(monkeypatch, [(24, 32), (32, 24)], done=loaded)
    assert not loaded
    assert _begin_edit(monkeypatch, [(24, 32), (48, 64)]) == ["diffusion", "latents"]


@pytest.fixture
def matmul_precision():
    before = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("highest")
    yield
    torch.set_float32_matmul_precision(before)


@pytest.mark.parametrize(
    "device, diffusion_device, expected",
    [("cuda:0", None, "high"), ("cpu", "cuda:1", "high"), ("cpu", None, "highest"), ("cpu", "cpu", "highest")],
)
def test_an_edit_on_cuda_uses_tf32_matmuls(monkeypatch, matmul_precision, device, diffusion_device, expected):
    _begin_edit(monkeypatch, [(24, 32)], device, diffusion_device)
    assert torch.get_float32_matmul_precision() == expected


def test_edit_steps_are_timed_on_the_steps_nerfstudio_logs_only():
    from ids_nerf.nerfstudio.trainer import IDSEditTrainer

    timed = []

    def edit_step(step, timed_now, loss_scale):
        assert float(loss_scale) == 1.0  # the scaler is off
        timed.append(timed_now)
        return {"ids_loss": torch.zeros(())}, {}, False

    fake = SimpleNamespace(
        config=SimpleNamespace(logging=SimpleNamespace(steps_per_log=10)),
        optimizers=SimpleNamespace(zero_grad_all=lambda: None),
        pipeline=SimpleNamespace(edit_step=lambda step, timed, loss_scale: edit_step(step, timed, loss_scale)),
        grad_scaler=torch.amp.GradScaler("cpu", enabled=False),
        device="cpu",
    )
    for step in range(25):
        IDSEditTrainer.train_iteration(fake, step)
    assert [step for step, t in enumerate(timed) if t] == [0, 10, 20]
