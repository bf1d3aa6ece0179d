"""The demo's ns-train commands: the CPU recipe off CUDA, nerfstudio's own settings on CUDA."""

import pytest
import torch

from ids_nerf.demo import Demo
from ids_nerf.methods import CPU_NERFACTO, CPU_ONLY_FLAGS


@pytest.fixture
def captions(monkeypatch):
    info = {"appearances": {"source": "a red ball", "edited": "a blue ball"}}
    monkeypatch.setattr("ids_nerf.scenes.edit_scene.read_scene_info", lambda scene: info)


@pytest.mark.parametrize("method", ["ids-edit", "ids-edit-splat"])
def test_a_cuda_demo_gets_no_cpu_only_flags(monkeypatch, captions, tmp_path, method):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    spec = Demo(method=method).edit_spec(tmp_path)
    for args in (spec.source_args, spec.edit_args):
        assert not CPU_ONLY_FLAGS & set(args) and "--machine.device-type" not in args, args
    assert "--max-num-iterations" in spec.source_args


def test_a_cpu_demo_trains_the_cpu_recipe(monkeypatch, captions, tmp_path):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    args = Demo().edit_spec(tmp_path).source_args
    assert args[:2] == ["--machine.device-type", "cpu"]
    assert " ".join(CPU_NERFACTO) in " ".join(args)


@pytest.mark.parametrize(
    "model, given, expected",
    [("exact", None, "1"), ("stable-diffusion-v1-5/stable-diffusion-v1-5", None, "7.5"), ("exact", 3.0, "3")],
)
def test_the_exact_model_edits_without_cfg_unless_asked(captions, tmp_path, model, given, expected):
    args = Demo(model=model, guidance_scale=given).edit_spec(tmp_path).edit_args
    assert args[args.index("--pipeline.guidance-scale") + 1] == expected


@pytest.mark.parametrize(
    "model, given, expected",
    [("exact", None, "600"), ("stable-diffusion-v1-5/stable-diffusion-v1-5", None, "949"), ("exact", 900, "900")],
)
def test_the_exact_model_draws_t_below_600_unless_asked(captions, tmp_path, model, given, expected):
    args = Demo(model=model, max_step=given).edit_spec(tmp_path).edit_args
    assert args[args.index("--pipeline.max-step") + 1] == expected


@pytest.mark.parametrize(
    "model, expected",
    [("exact", "exact:{scene}"), ("learned", "learned:default"), ("learned:/m", "learned:/m"), ("some/sd", "some/sd")],
)
def test_the_demo_names_its_score_model(captions, tmp_path, model, expected):
    spec = Demo(model=model).edit_spec(tmp_path)
    args = spec.edit_args
    assert args[args.index("--pipeline.diffusion-model") + 1] == expected.format(scene=tmp_path)
    assert ("--pipeline.fpr-scale" in args) == (model != "some/sd")  # the pixel-space models' lambda 0.1
    if model.startswith("learned"):  # a learned model has CFG's and large t's usual behaviour: the paper's settings
        assert args[args.index("--pipeline.guidance-scale") + 1] == "7.5"
        assert args[args.index("--pipeline.max-step") + 1] == "949"
