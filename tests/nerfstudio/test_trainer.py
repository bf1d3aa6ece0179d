"""The trainer's refusal of a source checkpoint saved from the other hash-grid implementation."""

from pathlib import Path

import pytest
import torch
from torch import nn

from ids_nerf.errors import UserError
from ids_nerf.nerfstudio.trainer import check_checkpoint_fits, hash_grid_implementation


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
