"""benchmarks/full_size.py's logic at tiny size, so that the full-size benchmark cannot rot."""

import sys

import pytest
import torch

from benchmarks import full_size


def test_peak_rss_resets_and_sees_an_allocation():
    full_size.reset_peak_rss()
    base = full_size.peak_rss_gib()
    block = torch.ones(64 * 2**20 // 4)  # 64 MiB, touched
    grown = full_size.peak_rss_gib()
    del block
    full_size.reset_peak_rss()
    assert grown - base > 0.05
    assert full_size.peak_rss_gib() < grown


def test_guidance_measure_and_projection(tiny_guidance):
    inputs = full_size.step_inputs(tiny_guidance, tiny_guidance.native_size)
    ids = full_size.measure_guidance(tiny_guidance, inputs, fpr_steps=1)
    dds = full_size.measure_guidance(tiny_guidance, inputs, fpr_steps=0)
    assert set(ids["tflop"]) == set(full_size.GUIDANCE_PARTS)
    # FPR adds a forward and a backward pass of the score model: more work than DDS's one forward.
    assert ids["tflop"]["guidance"] > dds["tflop"]["guidance"] > 0
    assert ids["tflop"]["encode_backward"] > 0  # the counter sees the backward into the image
    guidance = {
        "precision": "fp32",
        "params": {"unet": 1000, "vae": 1000},
        "cases": {"DDS": dds, "IDS N=1": ids},
    }
    chunks = {"rows": [{"chunk": 4096, "backward_peak_above_gib": 1.0, "nerf_params": 2**20}]}
    result = full_size.project(guidance, chunks)
    assert result["time_ms"]["IDS N=1"] > result["time_ms"]["DDS"]
    memory = result["memory_gib"]
    expected = memory["weights_fp16"] + max(memory["guidance_activations_fp16"], 1.0) + 1 / 64 + 0.5
    assert memory["total"] == pytest.approx(expected, abs=2e-3)


def test_chunk_peak_measured_or_on_the_line():
    rows = [{"chunk": 512, "backward_peak_above_gib": 1.0}, {"chunk": 1024, "backward_peak_above_gib": 1.5}]
    assert full_size.chunk_peak(rows, 1024) == (1.5, True)
    peak, measured = full_size.chunk_peak(rows, 4096)
    assert not measured and peak == pytest.approx(4.5)  # 1.5 GiB + 3072 rays at 0.5 GiB per 512


def test_meta_flop_count_equals_a_real_count(tiny_guidance):
    """Counting on meta tensors gives a real pass's FLOPs. The real pass uses the math attention
    kernel: torch's counter has no formula for the CPU's flash-attention kernel and would miss attention."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    inputs = full_size.step_inputs(tiny_guidance, tiny_guidance.native_size)
    meta = full_size.count_guidance_flops(tiny_guidance, inputs, fpr_steps=2)
    with sdpa_kernel(SDPBackend.MATH):
        real = full_size.guidance_pass(tiny_guidance, inputs, fpr_steps=2, count_flops=True)
    assert meta == {part: real[part]["flops"] for part in full_size.GUIDANCE_PARTS}


def test_chunk_measure_runs_real_nerfacto(tmp_path, monkeypatch):
    from ids_nerf.evaluation.metrics import write_untrained_alexnet

    write_untrained_alexnet(tmp_path)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    row = full_size.measure_chunk(chunk=16, rays=32, size=8, log2_hashmap_size=10)
    assert row["rays"] == 32 and row["chunks_run"] == 2
    assert row["samples_per_ray"] == 256 + 96 + 48  # nerfacto's defaults
    assert row["backward_peak_above_gib"] >= 0


def test_run_measured_reports_the_child_peak(tmp_path):
    code = "import numpy as np; a = np.ones(300 * 2**20 // 8); print(a.sum())"
    run = full_size.run_measured([sys.executable, "-c", code], {}, tmp_path / "log")
    assert run["rc"] == 0
    assert run["peak_rss_gib"] > 0.25
