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
HALF = DiffusionMemory(weights=200 * MIB, text_encoder=25 * MIB, step_activations=150 * MIB, latent_bytes=MIB)
DIFFUSION = {
    "fp32": DiffusionMemory(400 * MIB, 50 * MIB, 300 * MIB, MIB, step_flops=3 * 10**12),
    "bf16": HALF,
    "fp16": HALF,
}


class _Cameras(list):
    def __init__(self, side: int, views: int):
        super().__init__(range(views))
        self.height = torch.full((views, 1), side)
        self.width = torch.full((views, 1), side)


def _stub(monkeypatch, side=64, chunk=4096, budget=None, device="cpu", diffusion_device=None):
    """An edit pipeline as the plan sees it: 2 cameras of side x side pixels, 1 MiB of trainable weights,
    1 KiB per rendered ray, and the diffusion numbers above (the real parts have their own tests)."""
    monkeypatch.setattr(memory_plan, "estimate_diffusion_memory", lambda model, precision, *a: DIFFUSION[precision])
    config = SimpleNamespace(
        render_chunk_rays=chunk,
        diffusion_precision="fp32",
        diffusion_device=diffusion_device,
        memory_budget_gib=budget,
        diffusion_model="model",
        fpr_steps=3,
        fpr_jacobian="full",
        diffusion_size=None,
    )
    return SimpleNamespace(
        config=config,
        device=device,
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


def test_a_view_larger_than_the_diffusion_input_is_planned_at_the_size_the_edit_renders(monkeypatch):
    pipeline = _stub(monkeypatch, side=1024, chunk=64 * 64)
    sized = {k: DiffusionMemory(**{**vars(v), "image_size": (64, 64)}) for k, v in DIFFUSION.items()}
    monkeypatch.setattr(memory_plan, "estimate_diffusion_memory", lambda model, precision, *a: sized[precision])
    parts = plan_edit_memory(pipeline, available=lambda device: 100 * GIB).parts["cpu"]
    # 1024x1024 renders 64x64: one chunk, its graph alive through the guidance (not the larger of the two)
    assert parts["text encoder or step"] == 300 * MIB + 64 * 64 * 1024


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


def _fix_cuda_margins(monkeypatch, diffusion=0.15, render=0.5, base=512 * MIB) -> None:
    monkeypatch.setattr(memory_plan, "CUDA_DIFFUSION_MARGIN", diffusion)
    monkeypatch.setattr(memory_plan, "CUDA_RENDER_MARGIN", render)
    monkeypatch.setattr(memory_plan, "CUDA_BASE", base)


def _mock_cuda(monkeypatch, free: int, reserved: int, allocated: int) -> list:
    """torch.cuda's memory queries answering the given bytes, and the CUDA margins fixed at the values the
    tests' sums use (a GPU measurement will change the module's); returns the devices asked about."""
    _fix_cuda_margins(monkeypatch)
    asked = []

    def answer(value):
        return lambda device=None: asked.append(device) or value

    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: asked.append(device) or (free, 80 * GIB))
    monkeypatch.setattr(torch.cuda, "memory_reserved", answer(reserved))
    monkeypatch.setattr(torch.cuda, "memory_allocated", answer(allocated))
    return asked


def test_cuda_free_memory_adds_the_blocks_this_process_holds_unused(monkeypatch):
    asked = _mock_cuda(monkeypatch, free=2 * GIB, reserved=5 * GIB, allocated=3 * GIB)
    assert memory_plan.available_bytes("cuda:1") == 4 * GIB  # 2 free + (5 reserved - 3 allocated)
    assert asked == [torch.device("cuda:1")] * 3


def test_cuda_plan_fits_in_cached_blocks_and_refuses_without_them(monkeypatch):
    """The plan needs about 1.24 GiB on the GPU. The device reports 0.5 GiB free; this process's allocator
    holds 1.25 GiB more unused: it fits. With nothing cached it is refused, in one line."""
    _mock_cuda(monkeypatch, free=GIB // 2, reserved=GIB + GIB // 2, allocated=GIB // 4)
    plan = plan_edit_memory(_stub(monkeypatch, device="cuda:0"))
    assert GIB < plan.total("cuda:0") <= GIB + 3 * GIB // 4
    _mock_cuda(monkeypatch, free=GIB // 2, reserved=GIB // 4, allocated=GIB // 4)
    with pytest.raises(UserError, match="0.50 GiB free"):
        plan_edit_memory(_stub(monkeypatch, device="cuda:0"))


def test_cuda_uses_its_own_margin_terms(monkeypatch):
    _fix_cuda_margins(monkeypatch, diffusion=0.5, render=2.0, base=GIB)
    plan = plan_edit_memory(_stub(monkeypatch, device="cuda:0"), available=lambda device: 100 * GIB)
    assert plan.parts["cuda:0"]["allocator margin"] == int(0.5 * 300 * MIB + 2.0 * 4096 * 1024) + GIB
    cpu = plan_edit_memory(_stub(monkeypatch), available=lambda device: 100 * GIB)  # the CPU keeps its own
    assert cpu.parts["cpu"]["allocator margin"] == int(0.15 * 300 * MIB + 0.5 * 4096 * 1024) + 128 * MIB


def test_budget_that_moves_the_diffusion_to_the_cpu_projects_its_step_time(monkeypatch, capsys):
    """0.6 GiB: the diffusion model fits on the GPU at no chunk size or precision, the NeRF alone does."""
    _fix_cuda_margins(monkeypatch)
    pipeline = _stub(monkeypatch, device="cuda:0", budget=0.6)
    plan = plan_edit_memory(pipeline, available=lambda device: 100 * GIB)
    assert plan.setting.diffusion_device == "cpu" and pipeline.config.diffusion_device == "cpu"
    line = capsys.readouterr().out
    seconds = 3 * 10**12 / memory_plan.CPU_FLOPS_PER_SECOND
    assert f"the diffusion step on the CPU: about {seconds:,.0f} s a step projected" in line, line
    memory = memory_plan.EditMemory(pipeline)
    assert memory.cpu_step_note(Setting(4096, "fp16", "cuda:0")) == ""  # on the GPU: nothing projected


def test_asked_cpu_diffusion_beside_a_gpu_nerf_projects_its_step_time(monkeypatch, capsys):
    pipeline = _stub(monkeypatch, device="cuda:0", diffusion_device="cpu")
    plan_edit_memory(pipeline, available=lambda device: 100 * GIB)
    assert "s a step projected" in capsys.readouterr().out
    plan_edit_memory(_stub(monkeypatch), available=lambda device: 100 * GIB)  # all on the CPU: nothing to say
    assert "projected" not in capsys.readouterr().out


def test_estimate_counts_the_flops_of_the_real_step(tmp_path):
    """The fake-tensor step's FLOP count (what the CPU projection divides) equals the real step's."""
    from torch.utils.flop_counter import FlopCounterMode

    from ids_nerf.guidance import load_stable_diffusion, make_tiny_sd
    from ids_nerf.guidance.memory import diffusion_step, estimate_diffusion_memory

    folder = make_tiny_sd(tmp_path / "tiny")
    estimate = estimate_diffusion_memory(str(folder), "fp32", (64, 64), 64, 3)
    guidance = load_stable_diffusion(str(folder), "fp32", "cpu")
    for prompt in ("", "source", "target"):
        guidance.embed_prompt(prompt)
    image = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        z_src = guidance.encode(image)
    with FlopCounterMode(display=False) as counter:
        diffusion_step(guidance, image, z_src, 3, 1.0, "full")
    assert estimate.step_flops == counter.get_total_flops() > 0


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
