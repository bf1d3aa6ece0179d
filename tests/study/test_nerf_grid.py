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
