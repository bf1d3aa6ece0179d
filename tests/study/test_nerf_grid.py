"""The 3D study's source trainings: the CPU recipes off CUDA, without their CPU-only flags on CUDA."""

import pytest
import torch

from ids_nerf.methods import CPU_ONLY_FLAGS
from ids_nerf.study.nerf_grid import BACKBONES, SourceRun


@pytest.mark.parametrize("backbone", sorted(BACKBONES))
def test_a_cuda_source_gets_no_cpu_only_flags_and_its_own_cache_key(monkeypatch, backbone):
    source = SourceRun(backbone, 0, 600, "32px")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    cpu_args, cpu_key = source.args(["--machine.device-type", "cpu"]), source.key()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    cuda_args, cuda_key = source.args([]), source.key()
    assert CPU_ONLY_FLAGS & set(cpu_args)  # each backbone's CPU recipe has some
    assert not CPU_ONLY_FLAGS & set(cuda_args), cuda_args
    assert cuda_key != cpu_key  # other weights: never served from the CPU's cache
    assert cuda_args[cuda_args.index("--machine.seed") + 1] == "0"


def test_an_edit_names_its_score_model_and_the_exact_models_keys_stay(monkeypatch, tmp_path):
    from ids_nerf.study.nerf_grid import Arm, EditRun

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    source = SourceRun("nerfacto", 0, 600, "32px-16v-s0")
    exact = EditRun(source, "blue-ball", Arm(0.1), "adam", 1, 60, 7.5)
    learned = EditRun(source, "blue-ball", Arm(0.1), "adam", 1, 60, 7.5, "learned:default")
    assert exact.key() == "edd6391ac917"  # its key before the model field: the caches keep serving it
    assert learned.key() != exact.key()
    for edit, model in ((exact, f"exact:{tmp_path}"), (learned, "learned:default")):
        args = edit.args([], edit.diffusion_model(tmp_path))
        assert args[args.index("--pipeline.diffusion-model") + 1] == model


def test_an_edit_at_the_demos_settings_has_its_own_key_and_flags_and_the_study_reproduces_its_command(
    monkeypatch, tmp_path
):
    from ids_nerf.errors import UserError
    from ids_nerf.study.nerf_grid import Arm, EditRun
    from ids_nerf.study.nerf_setup import command_line
    from ids_nerf.study.nerf_study import NerfStudy

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    source = SourceRun("nerfacto", 0, 600, "32px-16v-s0")
    today = EditRun(source, "blue-ball", Arm(0.1), "adam", 1, 60, 7.5, "exact", 949, "none")
    demo = EditRun(source, "blue-ball", Arm(0.1), "adam", 1, 60, 1.0, "exact", 600, "score")
    assert today.key() == "edd6391ac917"  # the defaults spelled out keep the key from before the fields
    assert (
        len({today.key(), demo.key(), EditRun(source, "blue-ball", Arm(0.1), "adam", 1, 60, 7.5, max_step=600).key()})
        == 3
    )
    args = demo.args([], "exact:scene")
    assert args[args.index("--pipeline.max-step") + 1] == "600"
    assert args[args.index("--pipeline.identity-mask") + 1] == "score"
    assert args[args.index("--pipeline.guidance-scale") + 1] == "1"
    assert "--pipeline.identity-mask" not in today.args([], "exact:scene")

    study = NerfStudy(guidance_scale=1.0, max_step=600, identity_mask="score")
    assert {(e.guidance_scale, e.max_step, e.identity_mask) for e in study.plan("32px-16v-s0")} == {(1.0, 600, "score")}
    assert command_line(study).endswith("--guidance-scale 1 --max-step 600 --identity-mask score")
    assert "--max-step" not in command_line(NerfStudy())
    with pytest.raises(UserError, match="--identity-mask must be none or score"):
        NerfStudy(identity_mask="region").check()


def test_the_setup_names_only_the_edits_and_backbones_that_ran():
    from ids_nerf.study.nerf_setup import setup_text
    from ids_nerf.study.nerf_study import NerfStudy

    one = setup_text(NerfStudy(backbones=["nerfacto"], edits=["blue-ball"]), [10.0], 0, 20.0, {})
    assert "edits: blue-ball (the red ball turns blue). Score model" in one  # the scene still has striped-box
    sources = next(line for line in one.splitlines() if line.startswith("- Sources:"))
    assert "splatfacto" not in sources and "nerfacto 600 steps" in sources
    assert "(the box for blue-ball)" in one
    both = setup_text(NerfStudy(), [10.0], 0, 20.0, {})
    assert "blue-ball (the red ball turns blue) and striped-box (yellow stripes" in both
    assert "the box for blue-ball, the ball for striped-box" in both
    assert " and splatfacto " in both
