"""The edit's memory plan: its peak estimated before the diffusion weights load, checked against the device.

Parts of the peak, each on the device that holds it:
- the diffusion model's weights, and the larger of its text encoder (loaded with them, released once the
  prompts are embedded) and one step's diffusion activations (``ids_nerf.guidance.memory``: counted on fake
  tensors from the model's configs);
- one render chunk with its graph, measured on two small chunks of the loaded NeRF and extrapolated
  linearly to the chunk size (``IDSEditPipeline.edit_render_bytes``). A view that fits in one chunk
  keeps its graph through the guidance, so then render and guidance add up; otherwise the guidance is done
  before the chunks re-render, and the larger of the two counts;
- the optimizer's gradients and Adam's two moments (3 copies of the trainable parameters) and the stored
  source latents;
- what the allocator holds beyond the live tensors (:data:`ALLOCATOR_BASE` and the margins beside it on the
  CPU, :data:`CUDA_BASE` and its own margins on CUDA: not yet measured on a GPU).
The NeRF's own weights (and a CUDA context) are already in place when the plan is made, so they are not in
the estimate: the free memory it is compared with has them taken out. On CUDA that free memory counts the
blocks this process's caching allocator holds unused (:func:`available_bytes`).

With ``--pipeline.memory-budget-gib`` the plan picks, in this order, the first setting that fits: smaller
render chunks, then half precision for the diffusion model, then the diffusion model on the CPU (beside a
GPU NeRF the plan's line then says how long a step is projected to take there).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, Iterator, List, Optional, Tuple

import torch
from nerfstudio.utils.rich_utils import CONSOLE

from ids_nerf.errors import UserError
from ids_nerf.guidance.loading import resolve_precision
from ids_nerf.guidance.memory import GIB, DiffusionMemory, estimate_diffusion_memory

DIFFUSION_MARGIN = 0.15
RENDER_MARGIN = 0.5
ALLOCATOR_BASE = 128 * 1024**2
"""What the allocator holds beyond the live tensors, added to each device's plan: ``DIFFUSION_MARGIN`` or
``RENDER_MARGIN`` times the largest transient (by its kind) + ``ALLOCATOR_BASE`` bytes. Fitted on the CPU
(docs/performance.md, "Memory plan"): SD 1.5's fp32 step at 128, 256 and 512 pixels peaked 0.17, 0.31 and
0.84 GiB of RSS above its live tensors (about 12 % of them plus 0.12 GiB); a nerfacto chunk of 512, 1,024
and 2,048 rays 0.09, 0.35 and 0.53 GiB (20 to 49 %). Used on the CPU only; CUDA has its own below."""
CUDA_MARGINS_MEASURED = False
"""Whether the three CUDA terms below were measured on a GPU. Not yet: no GPU has been lent to this
project. Until then they are the CPU's fitted margins plus an assumed allowance for what CUDA adds."""
CUDA_DIFFUSION_MARGIN = DIFFUSION_MARGIN
"""On CUDA, the share of the diffusion step's estimate the caching allocator reserves beyond it (block
rounding, cuDNN's workspaces: nerfstudio turns on ``cudnn.benchmark``, which tries algorithms with their
workspaces). Now the CPU's value. To measure: ``python -m benchmarks.memory_plan --model sd15-random
--device cuda --sizes 512 --precision fp16`` (``benchmarks/gpu.sh 1``) prints "margin needed",
``max_memory_reserved`` above the allocation before the step, minus the estimate, over the estimate."""
CUDA_RENDER_MARGIN = RENDER_MARGIN
"""The same for a render chunk on CUDA; now the CPU's value (not measured on a GPU)."""
CUDA_BASE = 512 * 1024**2
"""Bytes added to each CUDA device's plan: workspaces outside the per-part shares, and tiny-cuda-nn's own
arena, which it takes with cudaMalloc beside PyTorch's allocator (the render probe counts PyTorch's tensors
only; what tiny-cuda-nn holds at the plan's time is already out of the free memory). Assumed, not
measured: 0.5 GiB, the figure docs/performance.md's projection of a 512x512 edit assumed for "CUDA context
and workspaces"."""
CPU_FLOPS_PER_SECOND = 17.4e9
"""A CPU's fp32 throughput on the diffusion step, to project a step's time when a budget moves the model to
the CPU. Measured on this project's 2-core CPU machine, shared (load average 9 to 15), so far below what an
idle workstation reaches: ``ns-train ids-edit`` of SD 1.5's architecture at 512x512 in fp32 (IDS, N = 3),
step 0's VAE encode + IDS guidance + encode backward took 77.7 + 635.6 + 33.0 = 746.3 s (docs/performance.md,
"Full size on the CPU", part 3); ``DiffusionMemory.step_flops`` counts 12.98 TFLOP for that step (attention
left out, as it counts it), so 12.98e12 / 746.3 s."""
SMALLEST_CHUNK = 256
"""The smallest render chunk a budget may pick (rays); below it the per-chunk overhead dominates."""


@dataclass(frozen=True)
class Setting:
    """The three settings a memory budget may change."""

    chunk_rays: int
    precision: str
    diffusion_device: str

    def flags(self) -> str:
        return (
            f"--pipeline.render-chunk-rays {self.chunk_rays} --pipeline.diffusion-precision {self.precision} "
            f"--pipeline.diffusion-device {self.diffusion_device}"
        )


@dataclass(frozen=True)
class Plan:
    """The estimated peak of an edit on each device it uses, in bytes, by part."""

    setting: Setting
    parts: Dict[str, Dict[str, int]]
    """device -> part name -> bytes."""

    def total(self, device: str) -> int:
        return sum(self.parts[device].values())

    def describe(self) -> str:
        return "; ".join(
            f"{device}: {_size(self.total(device))} ("
            + ", ".join(f"{name} {_size(value)}" for name, value in parts.items() if value)
            + ")"
            for device, parts in self.parts.items()
        )


def _margin(device: str, diffusion: int, render: int = 0) -> int:
    """What the allocator of ``device`` holds beyond ``diffusion`` and ``render`` bytes of live tensors."""
    if device.startswith("cuda"):
        return int(CUDA_DIFFUSION_MARGIN * diffusion + CUDA_RENDER_MARGIN * render) + CUDA_BASE
    return int(DIFFUSION_MARGIN * diffusion + RENDER_MARGIN * render) + ALLOCATOR_BASE


def _size(count: int) -> str:
    if count >= GIB // 10:
        return f"{count / GIB:.2f} GiB"
    return f"{count / 1024**2:.1f} MiB" if count >= 1024**2 // 10 else f"{count / 1024:.1f} KiB"


def available_bytes(device: str) -> Optional[int]:
    """Free memory of ``device`` now, or None if unknown. On CUDA the device's free bytes plus what this
    process's caching allocator has reserved but not allocated (it hands those blocks out first, and
    ``mem_get_info`` counts them as taken); on the CPU, MemAvailable (Linux)."""
    if device.startswith("cuda"):
        cuda = torch.device(device)
        free, _total = torch.cuda.mem_get_info(cuda)
        cached = torch.cuda.memory_reserved(cuda) - torch.cuda.memory_allocated(cuda)
        return int(free + cached)
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


class EditMemory:
    """Estimates the edit's peak for any :class:`Setting`; the diffusion part is counted once per precision."""

    def __init__(self, pipeline) -> None:
        self.pipeline = pipeline
        config = pipeline.config
        cameras = pipeline.datamanager.train_dataset.cameras
        sizes = [(int(h), int(w)) for h, w in zip(cameras.height.flatten(), cameras.width.flatten())]
        self.view = max(sizes, key=lambda hw: hw[0] * hw[1])
        self.nerf_device = str(pipeline.device)
        trainable = [p for p in pipeline.model.parameters() if p.requires_grad]
        self.optimizer_bytes = 3 * sum(p.numel() * p.element_size() for p in trainable)
        self.views = len(cameras)
        self._diffusion: Dict[str, DiffusionMemory] = {}
        self._render: Dict[int, int] = {}  # rays -> bytes: a budget tries many settings, the probes run once
        self.model, self.fpr_steps, self.jacobian = config.diffusion_model, config.fpr_steps, config.fpr_jacobian
        self.diffusion_size = config.diffusion_size

    def render(self, rays: int) -> int:
        if rays not in self._render:
            self._render[rays] = self.pipeline.edit_render_bytes(rays)
        return self._render[rays]

    def diffusion(self, precision: str) -> DiffusionMemory:
        if precision not in self._diffusion:
            self._diffusion[precision] = estimate_diffusion_memory(
                self.model, precision, self.view, self.diffusion_size, self.fpr_steps, self.jacobian
            )
        return self._diffusion[precision]

    def plan(self, setting: Setting) -> Plan:
        diffusion = self.diffusion(setting.precision)
        # the edit renders a view larger than the diffusion model's input at that size (pipeline.edit_view_size)
        rays = self.view[0] * self.view[1]
        if diffusion.image_size is not None:
            rays = min(rays, diffusion.image_size[0] * diffusion.image_size[1])
        render = self.render(min(setting.chunk_rays, rays))
        state = {"gradients + Adam": self.optimizer_bytes, "source latents": self.views * diffusion.latent_bytes}
        nerf = self.nerf_device
        if setting.diffusion_device != nerf:
            transient = max(diffusion.text_encoder, diffusion.step_activations)
            diffusion_parts = {"diffusion weights": diffusion.weights, "text encoder or step": transient}
            diffusion_parts["allocator margin"] = _margin(setting.diffusion_device, transient)
            nerf_parts = {"render chunk": render, **state, "allocator margin": _margin(nerf, 0, render)}
            return Plan(setting, {nerf: nerf_parts, setting.diffusion_device: diffusion_parts})
        # (bytes, margin) of each transient that can be the largest: one chunk keeps its graph through the
        # guidance (they add up); with more chunks the guidance is done before they re-render
        step = diffusion.step_activations
        if rays <= setting.chunk_rays:
            options = [(step + render, _margin(nerf, step, render))]
        else:
            options = [(step, _margin(nerf, step)), (render, _margin(nerf, 0, render))]
        transient, margin = max([(diffusion.text_encoder, _margin(nerf, diffusion.text_encoder)), *options])
        parts = {"diffusion weights": diffusion.weights, "text encoder or step": transient, **state}
        parts["allocator margin"] = margin
        return Plan(setting, {nerf: parts})

    def cpu_step_note(self, setting: Setting) -> str:
        """For the diffusion model on the CPU beside a GPU NeRF: its projected seconds a step, else ''."""
        if setting.diffusion_device != "cpu" or not self.nerf_device.startswith("cuda"):
            return ""
        seconds = self.diffusion(setting.precision).step_flops / CPU_FLOPS_PER_SECOND
        return (
            f"; the diffusion step on the CPU: about {seconds:,.0f} s a step projected "
            f"(its {self.diffusion(setting.precision).step_flops / 1e12:.2f} TFLOP at "
            f"{CPU_FLOPS_PER_SECOND / 1e9:.0f} GFLOP/s, measured on a shared 2-core CPU; more cores go faster)"
        )


def candidates(first: Setting, nerf_device: str) -> Iterator[Setting]:
    """Settings in the order a budget tries them: the asked one, smaller chunks, half precision, then the
    diffusion model on the CPU (only when the NeRF is on a GPU)."""
    chunks = [first.chunk_rays]
    while chunks[-1] // 2 >= SMALLEST_CHUNK:
        chunks.append(chunks[-1] // 2)
    precisions = [first.precision]
    half = "fp16" if first.diffusion_device.startswith("cuda") else "bf16"
    if first.precision == "fp32":
        precisions.append(half)
    devices = [first.diffusion_device]
    if nerf_device.startswith("cuda") and first.diffusion_device != "cpu":
        devices.append("cpu")
    for device in devices:
        for precision in precisions if device == first.diffusion_device else ["fp32"]:
            for chunk in chunks:
                yield Setting(chunk, precision, device)


def _fits(plan: Plan, limits: Callable[[str], Optional[int]]) -> bool:
    return all(limits(device) is None or plan.total(device) <= limits(device) for device in plan.parts)


def plan_edit_memory(pipeline, available: Callable[[str], Optional[int]] = available_bytes) -> Optional[Plan]:
    """Estimate the edit's peak before the diffusion model loads, print it in one line, and apply
    ``--pipeline.memory-budget-gib`` (changing ``pipeline.config``). Raises :class:`UserError` with the
    flags that would fit when the asked setting cannot fit a device. None when the model's configs cannot be
    read (loading it then fails with the reason)."""
    config = pipeline.config
    nerf_device = str(pipeline.device)
    diffusion_device = config.diffusion_device or nerf_device
    asked = Setting(
        config.render_chunk_rays, resolve_precision(config.diffusion_precision, diffusion_device), diffusion_device
    )
    memory = EditMemory(pipeline)
    budget = None if config.memory_budget_gib is None else int(config.memory_budget_gib * GIB)

    def limit(device: str) -> Optional[int]:
        free = available(device)
        if budget is not None and device == nerf_device:
            return budget if free is None else min(budget, free)
        return free

    def free_text(device: str) -> str:
        free = available(device)
        return "unknown" if free is None else _size(free)

    try:
        plan = memory.plan(asked)
    except (OSError, ValueError) as err:  # configs not there: the model's loading says what is wrong
        CONSOLE.print(f"Memory plan skipped: the diffusion model's configs could not be read ({type(err).__name__})")
        return None
    if _fits(plan, limit):
        where = ", ".join(f"{d} {free_text(d)} free" for d in plan.parts)
        CONSOLE.print(f"Memory plan: {plan.describe()}; {where}{memory.cpu_step_note(asked)}", soft_wrap=True)
        return plan
    fitting = next((p for p in map(memory.plan, candidates(asked, nerf_device)) if _fits(p, limit)), None)
    if budget is not None and fitting is not None:
        config.render_chunk_rays = fitting.setting.chunk_rays
        config.diffusion_precision = fitting.setting.precision
        config.diffusion_device = fitting.setting.diffusion_device
        CONSOLE.print(
            f"Memory plan for a budget of {config.memory_budget_gib:g} GiB: {fitting.setting.flags()} "
            f"({fitting.describe()}){memory.cpu_step_note(fitting.setting)}",
            soft_wrap=True,
        )
        return fitting
    need = ", ".join(f"{d}: {_size(plan.total(d))}, {free_text(d)} free" for d in plan.parts)
    what = f"a budget of {config.memory_budget_gib:g} GiB" if budget is not None else "the device"
    hint = (
        f"these settings would fit: {fitting.setting.flags()}"
        if fitting
        else "no chunk size, precision or diffusion device would fit; free memory or lower --pipeline.diffusion-size"
    )
    raise UserError(f"the edit needs more memory than {what} allows ({need}); {hint}")


def probe_sizes() -> Tuple[int, int]:
    """The two chunk sizes (rays) the render is measured at."""
    return (128, 256)


def extrapolate(sizes: List[int], peaks: List[int], rays: int) -> int:
    """The peak at ``rays`` on the line through two measured (rays, peak) points, never below either one."""
    (a, pa), (b, pb) = zip(sizes, peaks)
    slope = max(0.0, (pb - pa) / (b - a))
    return int(max(pa, pb, pb + slope * (rays - b)))
