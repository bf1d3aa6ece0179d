"""The edit's memory plan: how parts add up, what a budget picks, what is refused; the render probe on the
real nerfacto; and the plan in a real ns-train ids-edit."""

from types import SimpleNamespace

import pytest
import torch

from ids_nerf.errors import UserError
from ids_nerf.guidance.memory import GIB, DiffusionMemory
from ids_nerf.nerfstudio import memory_plan
from ids_nerf.nerfstudio.memory_plan import Setting, candidates, extrapolate, plan_edit_memory
from tests.nerfstudio.conftest import edit_command, run

MIB = 1024**2
DIFFUSION = {
    "fp32": DiffusionMemory(weights=400 * MIB, text_encoder=50 * MIB, step_activations=300 * MIB, latent_bytes=MIB),
    "bf16": DiffusionMemory(weights=200 * MIB, text_encoder=25 * MIB, step_activations=150 * MIB, latent_bytes=MIB),
}


class _Cameras(list):
    def __init__(self, side: int, views: int):
        super().__init__(range(views))
        self.height = torch.full((views, 1), side)
        self.width = torch.full((views, 1), side)


def _stub(monkeypatch, side=64, chunk=4096, budget=None):
    """An edit pipeline as the plan sees it: 2 cameras of side x side pixels, 1 MiB of trainable weights,
    1 KiB per rendered ray, and the diffusion numbers above (the real parts have their own tests)."""
    monkeypatch.setattr(memory_plan, "estimate_diffusion_memory", lambda model, precision, *a: DIFFUSION[precision])
    config = SimpleNamespace(
        render_chunk_rays=chunk,
        diffusion_precision="fp32",
        diffusion_device=None,
        memory_budget_gib=budget,
        diffusion_model="model",
        fpr_steps=3,
        fpr_jacobian="full",
        diffusion_size=None,
    )
    return SimpleNamespace(
        config=config,
        device="cpu",
        model=torch.nn.Linear(512, 512, bias=False),  # 1 MiB of fp32 weights
        datamanager=SimpleNamespace(train_dataset=SimpleNamespace(cameras=_Cameras(side, 2))),
        edit_render_bytes=lambda rays: rays * 1024,
    )


def test_one_chunk_view_adds_render_to_the_guidance_step(monkeypatch):
    pipeline = _stub(monkeypatch, side=64, chunk=4096)  # 4096 rays: one chunk, graph alive through the guidance
    plan = plan_edit_memory(pipeline, available=lambda device: 100 * GIB)
    parts = plan.parts["cpu"]
    assert parts["diffusion weights"] == 400 * MIB
    assert parts["text encoder or step"] == 300 * MIB + 4096 * 1024
    assert parts["gradients + Adam"] == 3 * MIB
    assert parts["source latents"] == 2 * MIB
    assert parts["allocator margin"] == int(0.15 * 300 * MIB + 0.5 * 4096 * 1024) + 128 * MIB


def test_several_chunks_count_the_larger_of_render_and_guidance(monkeypatch):
    pipeline = _stub(monkeypatch, side=1024, chunk=4096)  # 1M rays, 256 chunks
    plan = plan_edit_memory(pipeline, available=lambda device: 100 * GIB)
    assert plan.parts["cpu"]["text encoder or step"] == max(300 * MIB, 4096 * 1024)


def test_budget_picks_the_first_setting_that_fits_and_applies_it(monkeypatch):
    pipeline = _stub(monkeypatch, side=1024, chunk=1024 * 1024, budget=1.0)  # a 1 GiB chunk does not fit
    plan = plan_edit_memory(pipeline, available=lambda device: 100 * GIB)
    # a quarter of the chunk: 400 + max(300, 256) + 3 + 2 MiB, and the margin 0.15 x 300 + 128 MiB
    assert plan.setting == Setting(262144, "fp32", "cpu")
    assert pipeline.config.render_chunk_rays == 262144
    assert plan.total("cpu") <= GIB


def test_budget_falls_back_to_half_precision(monkeypatch):
    pipeline = _stub(monkeypatch, side=1024, chunk=4096, budget=0.6)  # fp32 needs 878 MiB at any chunk, bf16 506
    plan = plan_edit_memory(pipeline, available=lambda device: 100 * GIB)
    assert plan.setting == Setting(4096, "bf16", "cpu")
    assert pipeline.config.diffusion_precision == "bf16"


def test_over_the_free_memory_refuses_in_one_line_with_flags_that_fit(monkeypatch):
    pipeline = _stub(monkeypatch, side=1024, chunk=1024 * 1024)
    with pytest.raises(UserError) as err:
        plan_edit_memory(pipeline, available=lambda device: GIB)  # 1 GiB: the half chunk fits (above)
    message = str(err.value)
    assert "\n" not in message and "GiB free" in message
    assert "--pipeline.render-chunk-rays 262144 --pipeline.diffusion-precision fp32" in message
    assert pipeline.config.render_chunk_rays == 1024 * 1024  # nothing changed without a budget


def test_nothing_fits_says_so(monkeypatch):
    pipeline = _stub(monkeypatch, side=64, budget=0.01)
    with pytest.raises(UserError, match="no chunk size, precision or diffusion device would fit"):
        plan_edit_memory(pipeline, available=lambda device: 100 * GIB)


def test_candidates_try_chunks_then_precision_then_the_cpu():
    order = list(candidates(Setting(1024, "fp16", "cuda:0"), "cuda:0"))
    assert order[:3] == [
        Setting(1024, "fp16", "cuda:0"),
        Setting(512, "fp16", "cuda:0"),
        Setting(256, "fp16", "cuda:0"),
    ]
    assert order[3:] == [Setting(1024, "fp32", "cpu"), Setting(512, "fp32", "cpu"), Setting(256, "fp32", "cpu")]
    assert Setting(256, "bf16", "cpu") in list(candidates(Setting(256, "fp32", "cpu"), "cpu"))


def test_extrapolate_is_the_line_through_two_points():
    assert extrapolate([64, 128], [1000, 1500], 1024) == 1500 + 500 * (1024 - 128) // 64
    assert extrapolate([64, 128], [1500, 1000], 1024) == 1500  # never below what was measured


def test_render_probe_on_the_real_nerfacto_predicts_a_larger_chunk(source_run, ns_env):
    """Measured on 128 and 256 rays of the real model, extrapolated to 1024 rays, against 1024 measured;
    the probe leaves no gradient behind."""
    from ids_nerf.nerfstudio.compare import open_run
    from ids_nerf.nerfstudio.rendering import camera_rays, chunk_peak_bytes

    pipeline = open_run(source_run / "config.yml")
    model = pipeline.model.train()
    bundle = camera_rays(pipeline.datamanager.train_dataset.cameras, 0, "cpu")
    peaks = [chunk_peak_bytes(model, bundle, n, seed=0) for n in (128, 256, 1024)]
    predicted = extrapolate([128, 256], peaks[:2], 1024)
    assert 0.8 * peaks[2] <= predicted <= 1.25 * peaks[2], (peaks, predicted)
    assert all(p.grad is None for p in model.parameters())


def test_ns_train_prints_the_plan_and_refuses_a_budget_nothing_fits(workspace, source_run, tiny_sd_dir, ns_env):
    load_dir = source_run / "nerfstudio_models"
    flags = ("--pipeline.memory-budget-gib", "0.0001")
    result = run(edit_command(workspace, "ids-edit", "tight", load_dir, tiny_sd_dir, flags), ns_env)
    assert result.returncode != 0
    lines = [line for line in (result.stdout + result.stderr).splitlines() if "needs more memory" in line]
    assert len(lines) == 1 and "budget of 0.0001 GiB" in lines[0], result.stdout[-2000:] + result.stderr[-2000:]
    assert not (workspace / "out" / "scene" / "ids-edit" / "tight").exists()  # no half-made run is left
