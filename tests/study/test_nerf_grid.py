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
