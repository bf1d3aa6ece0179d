"""The real path at full size, measured on the CPU (issue 17): Stable Diffusion 1.5's architecture with
random weights at its native 512x512, real nerfacto, the real ``ns-train ids-edit``.

    python -m benchmarks.full_size guidance    # 1: IDS (N = 3) and DDS step at 512x512: time, FLOPs, peak RSS
    python -m benchmarks.full_size chunks      # 2: nerfacto's deferred backward, peak RSS per chunk size
    python -m benchmarks.full_size edit        # 3: ns-train ids-edit, 2 steps, fp32 and bf16, 128x128 views
    python -m benchmarks.full_size project     # GPU time and memory projected from the JSON the parts wrote

Each part writes ``benchmarks/results/full_size_<part>.json``. Memory is the process's resident set
(``VmRSS``/``VmHWM`` from /proc), whose peak is reset between cases through ``/proc/self/clear_refs``;
on a GPU the same tensors would sit in device memory instead (see ``project``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import subprocess
import sys
import tempfile
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import torch
from torch.utils.flop_counter import FlopCounterMode

from benchmarks.models import MODELS, save_folder, sd15_random
from ids_nerf.core import distillation_loss, ids_step  # noqa: E402
from ids_nerf.core.defaults import FPR_SCALE, LOSS_SCALE  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
GIB = 2**30

GPU_PEAK_TFLOPS = 989.0
"""H100/H200 SXM dense bf16 (and fp16) tensor-core peak from NVIDIA's data sheet, TFLOP/s: a ceiling,
used only to project; real kernels reach less (ENVIRONMENT.md notes ~790 seen on the lent card)."""

CUDA_CONTEXT_GIB = 0.5
"""Assumed size of the CUDA context and cuBLAS/cuDNN workspaces in a projection (not measured here)."""

GPU_MEMORY_GOAL_GIB = 16.0
"""Issue 17's goal for a default 512x512 edit in fp16, GiB (16 GB read as 16 GiB, the stricter)."""


# ---- memory of this process ---------------------------------------------------------------------
def _status_gib(field: str) -> float:
    """A ``/proc/self/status`` memory field (``VmRSS``, ``VmHWM``) in GiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024 / GIB
    raise KeyError(field)


def rss_gib() -> float:
    """Resident set size now, GiB."""
    return _status_gib("VmRSS")


def peak_rss_gib() -> float:
    """Peak resident set size since the last :func:`reset_peak_rss` (or the start), GiB."""
    return _status_gib("VmHWM")


def reset_peak_rss() -> None:
    """Reset the peak RSS to the current RSS (Linux >= 4.0: writing 5 to clear_refs)."""
    Path("/proc/self/clear_refs").write_text("5")


def module_gib(module, bytes_per_value: Optional[int] = None) -> float:
    """Size of ``module``'s parameters and buffers, GiB; ``bytes_per_value`` overrides their dtype's
    (2 projects fp16 weights)."""
    tensors = list(module.parameters()) + list(module.buffers())
    return sum(t.numel() * (bytes_per_value or t.element_size()) for t in tensors) / GIB


def write_json(name: str, payload: dict) -> Path:
    path = RESULTS / f"full_size_{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    # the load average says how shared this machine was: times scale with it, FLOPs and memory do not
    load = [round(x, 1) for x in os.getloadavg()]
    payload = {"date": time.strftime("%Y-%m-%d %H:%M"), "commit": _commit(), "load_average": load, **payload}
    path.write_text(json.dumps(payload, indent=2))
    print(f"JSON: {path}")
    return path


def _commit() -> str:
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True)
    return done.stdout.strip() or "unknown"


# ---- part 1: the guidance step ------------------------------------------------------------------
GUIDANCE_PARTS = ("encode", "guidance", "encode_backward")


@dataclass
class StepInputs:
    """What one edit step gives the guidance: the rendered image at the diffusion size, the stored
    source latent, both prompts' embeddings, a timestep and the noise."""

    image: torch.Tensor
    z_src: torch.Tensor
    cond_src: torch.Tensor
    cond_trg: torch.Tensor
    t: torch.Tensor
    noise: torch.Tensor


def step_inputs(guidance, size: int, seed: int = 0) -> StepInputs:
    """Random inputs at image side ``size`` (pixels), the source latent encoded from a nearby image."""
    g = torch.Generator().manual_seed(seed)
    source = torch.rand(1, 3, size, size, generator=g)
    image = (source + 0.05 * torch.randn(source.shape, generator=g)).clamp(0, 1)
    with torch.no_grad():
        z_src = guidance.encode(source)
    noise = torch.randn(z_src.shape, generator=g)
    cond_src, cond_trg = guidance.embed_prompt("a photo of a cat"), guidance.embed_prompt("a photo of a tiger")
    return StepInputs(image, z_src, cond_src, cond_trg, torch.tensor([500]), noise)


def guidance_pass(guidance, inputs: StepInputs, fpr_steps: int, count_flops: bool = False) -> Dict[str, dict]:
    """The diffusion half of ``IDSEditPipeline.edit_step``, in its order: VAE encode with grad, the IDS
    step (``fpr_steps = 0`` is DDS exactly, as ``dds-edit`` runs it), the distillation loss and its
    gradient back to the image. The encoder's graph stays alive through the guidance, as there.

    Returns ``{part: {"ms": wall ms, "flops": counted FLOPs or None}}``. The encode backward uses
    ``backward(inputs=...)`` (same gradient as the pipeline's ``autograd.grad``) so that the FLOP
    counter sees it.
    """
    parts: Dict[str, dict] = {}

    def timed(name: str, fn):
        counter = FlopCounterMode(display=False) if count_flops else nullcontext()
        start = time.perf_counter()
        with counter:
            out = fn()
        parts[name] = {
            "ms": 1000 * (time.perf_counter() - start),
            "flops": float(counter.get_total_flops()) if count_flops else None,
        }
        return out

    image = inputs.image.clone().requires_grad_(True)
    with torch.enable_grad():
        z_trg = timed("encode", lambda: guidance.encode(image))
        a = inputs
        result = timed(
            "guidance",
            lambda: ids_step(
                guidance.score_fn,
                a.z_src,
                z_trg,
                a.cond_src,
                a.cond_trg,
                a.t,
                a.noise,
                guidance.alphas_cumprod,
                fpr_steps,
                FPR_SCALE,
            ),
        )
        scale = LOSS_SCALE / (z_trg.shape[-2] * z_trg.shape[-1])
        timed("encode_backward", lambda: distillation_loss(z_trg, result.direction, scale).backward(inputs=[image]))
    if image.device.type != "meta" and not torch.isfinite(image.grad).all():
        raise RuntimeError("non-finite image gradient at full size")
    return parts


def meta_copy(guidance):
    """``guidance`` with its UNet and VAE rebuilt on the meta device (shapes, no data) and its prompt
    embeddings and ``alphas_cumprod`` moved there: a pass through it computes nothing, so its FLOPs
    are counted at full size in seconds. FLOPs depend on shapes alone, so the count is exact."""
    from diffusers import DDPMScheduler

    from ids_nerf.guidance import StableDiffusionGuidance

    guidance.embed_prompt("")  # CFG's unconditional half (cached, so a released text encoder is fine)
    with torch.device("meta"):
        unet = type(guidance.unet).from_config(guidance.unet.config)
        vae = type(guidance.vae).from_config(guidance.vae.config)
    scheduler = DDPMScheduler(prediction_type=guidance.prediction_type)
    meta = StableDiffusionGuidance(
        unet,
        vae,
        torch.nn.Identity(),
        guidance.tokenizer,
        scheduler,
        guidance.guidance_scale,
        guidance.min_step,
        guidance.max_step,
    )
    meta.text_encoder = None  # every prompt comes from the copied cache
    meta.alphas_cumprod = guidance.alphas_cumprod.to("meta")
    meta._prompt_cache = {k: v.to("meta") for k, v in guidance._prompt_cache.items()}
    return meta


def meta_inputs(inputs: StepInputs) -> StepInputs:
    return StepInputs(*(getattr(inputs, f).to("meta") for f in StepInputs.__dataclass_fields__))


def count_guidance_flops(guidance, inputs: StepInputs, fpr_steps: int) -> Dict[str, float]:
    """FLOPs of each part of :func:`guidance_pass` (torch's FLOP counter: matmuls and convolutions,
    forward and backward), counted on meta tensors."""
    parts = guidance_pass(meta_copy(guidance), meta_inputs(inputs), fpr_steps, count_flops=True)
    return {p: parts[p]["flops"] for p in GUIDANCE_PARTS}


def measure_guidance(guidance, inputs: StepInputs, fpr_steps: int, timed: bool = True) -> dict:
    """FLOPs counted on meta tensors; with ``timed``, one real pass: its wall time and its peak RSS
    above the RSS before it (the activations and temporaries; the weights are already there)."""
    flops = count_guidance_flops(guidance, inputs, fpr_steps)
    row = {"fpr_steps": fpr_steps, "tflop": {p: round(flops[p] / 1e12, 4) for p in GUIDANCE_PARTS}}
    if timed:
        before = rss_gib()
        reset_peak_rss()
        parts = guidance_pass(guidance, inputs, fpr_steps)
        peak = peak_rss_gib()
        row["ms"] = {p: round(parts[p]["ms"], 1) for p in GUIDANCE_PARTS}
        row.update(
            rss_before_gib=round(before, 3), peak_rss_gib=round(peak, 3), peak_above_before_gib=round(peak - before, 3)
        )
    return row


def run_guidance(args) -> dict:
    torch.manual_seed(0)
    guidance = MODELS[args.model]("cpu", args.precision)
    size = args.size or guidance.native_size
    inputs = step_inputs(guidance, size)
    guidance.release_text_encoder()  # as the pipeline does once both prompts are embedded
    weights = {name: round(module_gib(getattr(guidance, name)), 3) for name in ("unet", "vae")}
    cases = {}
    for name, steps in ((f"IDS N={args.fpr_steps}", args.fpr_steps), ("DDS", 0)):
        cases[name] = measure_guidance(guidance, inputs, steps, timed=name.split()[0] in args.timed)
        _print_guidance(name, cases[name])
    payload = {
        "model": args.model,
        "precision": args.precision,
        "size": size,
        "latent": list(inputs.z_src.shape),
        "threads": torch.get_num_threads(),
        "weights_gib": weights,
        "params": {name: sum(p.numel() for p in getattr(guidance, name).parameters()) for name in ("unet", "vae")},
        "cases": cases,
    }
    return payload


def _print_guidance(name: str, case: dict) -> None:
    total_tflop = sum(case["tflop"].values())
    if "ms" not in case:
        print(f"{name}: {total_tflop:.3f} TFLOP (" + ", ".join(f"{p} {v:.3f}" for p, v in case["tflop"].items()) + ")")
        return
    total_s = sum(case["ms"].values()) / 1000
    print(f"{name}: {total_s:.1f} s, {total_tflop:.3f} TFLOP, {total_tflop / total_s:.3f} TFLOP/s")
    for part in GUIDANCE_PARTS:
        print(f"  {part:16} {case['ms'][part] / 1000:8.1f} s  {case['tflop'][part]:8.3f} TFLOP")
    print(f"  peak RSS {case['peak_rss_gib']:.2f} GiB ({case['peak_above_before_gib']:.2f} above the RSS before it)")


# ---- part 2: nerfacto's deferred backward per chunk size ---------------------------------------
def nerfacto_model(log2_hashmap_size: int = 19):
    """``ns-train nerfacto``'s model (its method config) with the torch hash grid, for one camera,
    sampling as the edit does (no jitter along the rays). Needs ``TORCH_HOME`` with an AlexNet."""
    import copy

    from nerfstudio.configs.method_configs import method_configs
    from nerfstudio.data.scene_box import SceneBox

    config = copy.deepcopy(method_configs["nerfacto"].pipeline.model)
    config.implementation = "torch"  # tinycudann is not installed here (nor on the lent GPU machine)
    config.log2_hashmap_size = log2_hashmap_size
    aabb = torch.tensor([[-1.5] * 3, [1.5] * 3])  # blender-data's scene box
    model = config.setup(scene_box=SceneBox(aabb=aabb), num_train_data=1, metadata={})
    model.train()
    for module in model.modules():
        if hasattr(module, "train_stratified"):
            module.train_stratified = False
    return model


def square_camera(size: int):
    """One ``size`` x ``size`` camera of the synthetic scene (radius 4, looking at the origin)."""
    import numpy as np
    from nerfstudio.cameras.cameras import Cameras

    from ids_nerf.scenes.blender_scene import CAMERA_ANGLE_X, camera_poses

    c2w = torch.tensor(camera_poses(1, np.random.default_rng(0))[0][:3], dtype=torch.float32)
    focal = 0.5 * size / math.tan(0.5 * CAMERA_ANGLE_X)
    return Cameras(camera_to_worlds=c2w[None], fx=focal, fy=focal, cx=size / 2, cy=size / 2, width=size, height=size)


def measure_chunk(chunk: int, rays: int, size: int, log2_hashmap_size: int = 19) -> dict:
    """Peak RSS of rendering (no grad) and of the deferred backward (re-render with grad, chunk by
    chunk) over the first ``rays`` rays (whole rows) of a ``size`` x ``size`` view, as
    ``IDSEditPipeline.render_for_edit`` does it (``rendering.py``), proposal loss included."""
    from nerfstudio.model_components.losses import interlevel_loss

    from ids_nerf.nerfstudio.rendering import backprop_rgb, camera_rays, render_rgb

    model = nerfacto_model(log2_hashmap_size)
    rows = min(size, max(1, math.ceil(rays / size)))
    band = camera_rays(square_camera(size), 0, "cpu")[:rows]  # the view's top rows: [rows, size] rays

    def proposal_loss(outputs):
        return interlevel_loss(outputs["weights_list"], outputs["ray_samples_list"])

    # each phase's peak is taken above the RSS at its own start: memory the render returned to the
    # system before the backward would otherwise make the backward's peak look smaller than it is
    reset_peak_rss()
    before = rss_gib()
    start = time.perf_counter()
    image = render_rgb(model, band, chunk, seed=0)
    render_s, render_peak = time.perf_counter() - start, peak_rss_gib()
    grad = torch.full_like(image, 1e-3)
    reset_peak_rss()
    backward_start = rss_gib()
    start = time.perf_counter()
    backprop_rgb(model, band, grad, chunk, seed=0, chunk_loss=proposal_loss)
    backward_s, backward_peak = time.perf_counter() - start, peak_rss_gib()
    samples = sum(model.config.num_proposal_samples_per_ray) + model.config.num_nerf_samples_per_ray
    return {
        "chunk": chunk,
        "view": size,
        "rays": rows * size,
        "chunks_run": math.ceil(rows * size / chunk),
        "samples_per_ray": samples,
        "nerf_params": sum(p.numel() for p in model.parameters()),
        "rss_before_gib": round(before, 3),
        "render_peak_above_gib": round(render_peak - before, 3),
        "backward_peak_above_gib": round(backward_peak - backward_start, 3),
        "render_s": round(render_s, 1),
        "backward_s": round(backward_s, 1),
    }


def run_chunks(args) -> dict:
    """Each setting in a fresh subprocess (``chunks --one``), so no allocator state carries over."""
    rows = []
    for setting in args.settings:
        chunk, rays = (int(x) for x in setting.split(":"))
        command = [
            sys.executable,
            "-m",
            "benchmarks.full_size",
            "chunks",
            "--one",
            str(chunk),
            str(rays),
            "--size",
            str(args.size),
        ]
        command += ["--log2-hashmap-size", str(args.log2_hashmap_size)]
        done = subprocess.run(command, capture_output=True, text=True, env=_offline_env(args.torch_home))
        if done.returncode != 0:
            raise RuntimeError(f"chunk {chunk} failed:\n{done.stderr[-3000:]}")
        row = json.loads(done.stdout.strip().splitlines()[-1])
        rows.append(row)
        write_json("chunks", {"size": args.size, "log2_hashmap_size": args.log2_hashmap_size, "rows": rows})
        print(
            f"chunk {row['chunk']:5} rays, {row['chunks_run']:3} chunks of a {row['view']}-wide view: "
            f"backward peak {row['backward_peak_above_gib']:.3f} GiB above start, render peak "
            f"{row['render_peak_above_gib']:.3f} GiB ({row['render_s']:.0f} s + {row['backward_s']:.0f} s)"
        )
    return {"size": args.size, "log2_hashmap_size": args.log2_hashmap_size, "rows": rows}


def _offline_env(torch_home: Optional[Path]) -> dict:
    """This environment, offline, with an untrained AlexNet for nerfacto's LPIPS (values meaningless)."""
    from ids_nerf.evaluation.metrics import write_untrained_alexnet

    home = Path(torch_home or tempfile.mkdtemp(prefix="torch-home-"))
    write_untrained_alexnet(home)
    return {**os.environ, "TORCH_HOME": str(home), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


# ---- part 3: the real ns-train ids-edit ---------------------------------------------------------
LIGHT_NERFACTO = (
    "--pipeline.model.num-proposal-samples-per-ray",
    "64",
    "32",
    "--pipeline.model.num-nerf-samples-per-ray",
    "16",
)
"""Samples per ray of the edit run's source (and so of the edit): 112 instead of nerfacto's 400, as
the NeRF's cost on this CPU is not what part 3 shows (part 2 measures nerfacto at its defaults)."""


def write_model(folder: Path, model: str) -> Path:
    """A diffusers folder for ``--pipeline.diffusion-model``: SD 1.5's architecture with random weights
    (full-size text encoder) or the tiny model."""
    if model == "tiny":
        from ids_nerf.guidance import make_tiny_sd

        return make_tiny_sd(folder)
    torch.manual_seed(0)
    return save_folder(sd15_random("cpu", "fp32", full_text_encoder=True), folder)


def edit_command(
    root: Path, scene: Path, source: Path, model: Path, precision: str, steps: int, extra: Sequence[str] = ()
) -> List[str]:
    """``ns-train ids-edit`` at its defaults (diffusion size: the model's native; 4096-ray chunks; a
    preview strip at step 0), only the run's length, logging and precision set, then ``extra``."""
    from ids_nerf.testing.ns_commands import edit_command as ns_edit_command

    flags = ("--logging.steps-per-log", "1", "--pipeline.diffusion-precision", precision, *extra)
    prompts = ("a red ball on a table", "a blue ball on a table")
    load_dir = source / "nerfstudio_models"
    return ns_edit_command(
        "ids-edit", scene, load_dir, model, root / "out", "full-size", precision, steps, *flags, prompts=prompts
    )


def run_measured(command: List[str], env: dict, log: Path) -> dict:
    """Run ``command``; its wall time and its own peak RSS (``wait4``'s ``ru_maxrss``, KiB on Linux)."""
    start = time.time()
    with open(log, "w") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    return {
        "rc": process.returncode,
        "wall_s": round(time.time() - start, 1),
        "peak_rss_gib": usage.ru_maxrss / GIB * 1024,
    }


def run_edit(args) -> dict:
    from benchmarks.edit_step import PARTS, step_split
    from ids_nerf.scenes import write_edit_scene
    from ids_nerf.testing.ns_commands import train_source_nerfacto

    root = Path(args.root or tempfile.mkdtemp(prefix="full-size-"))
    env = _offline_env(args.torch_home)
    scene = root / "scene"
    if not scene.exists():
        write_edit_scene(scene, size=args.view_size, views=args.views)
    source = root / "out/scene/nerfacto/src"
    if not (source / "config.yml").exists():
        source = train_source_nerfacto(scene, root / "out", env, 2, *args.source_flags)
    model = root / f"model-{args.model}"
    if not model.exists():  # in a child process, so this one never holds the weights
        subprocess.run(
            [sys.executable, __file__, "write-model", str(model), "--model", args.model], check=True, env=env
        )
    runs = {}
    for precision in args.precisions:
        log = root / f"ns-train-{precision}.log"
        command = edit_command(root, scene, source, model, precision, args.steps, shlex.split(args.edit_flags))
        run = run_measured(command, env, log)
        if run["rc"] != 0:
            raise RuntimeError(f"ns-train ids-edit ({precision}) failed, log {log}:\n{log.read_text()[-3000:]}")
        split, _ = step_split(root / "out/full-size/ids-edit" / precision, skip=0)
        run["step_ms"] = {p: round(split[p], 1) for p in PARTS}
        runs[precision] = run
        total = sum(split.values()) / 1000
        print(
            f"ids-edit {precision}: {run['wall_s']:.0f} s wall for {args.steps} steps incl. start-up, peak RSS "
            f"{run['peak_rss_gib']:.2f} GiB, median step {total:.1f} s:"
        )
        print("  " + ", ".join(f"{p} {ms / 1000:.1f} s" for p, ms in split.items()))
    return {
        "model": args.model,
        "edit_flags": args.edit_flags,
        "view_size": args.view_size,
        "views": args.views,
        "steps": args.steps,
        "root": str(root),
        "runs": runs,
    }


# ---- projections --------------------------------------------------------------------------------
def project(guidance: dict, chunks: Optional[dict], chunk_rays: int = 4096) -> dict:
    """GPU time from counted FLOPs at :data:`GPU_PEAK_TFLOPS`, and the peak GPU memory of a default
    512x512 edit in fp16, from the CPU measurements (all GiB):

    weights (UNet + VAE at 2 bytes a value; the text encoder is released before the edit) + the larger
    of the guidance's activations (measured fp32 peak above the weights, halved for fp16) and the
    NeRF chunk's (measured at ``chunk_rays``; the NeRF stays fp32) + nerfacto's parameters with their
    gradient and Adam's two moments (4 copies, fp32) + :data:`CUDA_CONTEXT_GIB`. The two activation
    peaks do not overlap: the encoder's graph is freed by the encode backward before the render backward.
    """
    out = {"gpu_peak_tflops": GPU_PEAK_TFLOPS, "time_ms": {}}
    for name, case in guidance["cases"].items():
        tflop = sum(case["tflop"].values())
        out["time_ms"][name] = 1000 * tflop / GPU_PEAK_TFLOPS
    ids = next(c for n, c in guidance["cases"].items() if n.startswith("IDS"))
    weights = sum(guidance["params"].values()) * 2 / GIB
    act_guidance = ids["peak_above_before_gib"] / 2 if guidance["precision"] == "fp32" else ids["peak_above_before_gib"]
    memory = {"weights_fp16": round(weights, 3), "guidance_activations_fp16": round(act_guidance, 3)}
    if chunks:
        peak, measured = chunk_peak(chunks["rows"], chunk_rays)
        memory["nerf_chunk_activations"] = round(peak, 3)
        memory["nerf_chunk_measured"] = measured
        memory["nerf_state"] = round(chunks["rows"][0]["nerf_params"] * 4 * 4 / GIB, 3)
    memory["cuda_context_assumed"] = CUDA_CONTEXT_GIB
    total = weights + max(act_guidance, memory.get("nerf_chunk_activations", 0.0))
    total += memory.get("nerf_state", 0.0) + CUDA_CONTEXT_GIB
    memory["total"] = round(total, 3)
    memory["goal"] = GPU_MEMORY_GOAL_GIB
    out["memory_gib"] = memory
    return out


def chunk_peak(rows: List[dict], chunk_rays: int) -> tuple:
    """The deferred backward's peak above its start (GiB) at ``chunk_rays``: measured when a row has that
    chunk size (second value True), else a least-squares line through the rows (False)."""
    for row in rows:
        if row["chunk"] == chunk_rays:
            return row["backward_peak_above_gib"], True
    xs, ys = [r["chunk"] for r in rows], [r["backward_peak_above_gib"] for r in rows]
    if len(rows) == 1:
        return ys[0] * chunk_rays / xs[0], False
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys)) / sum((x - mean_x) ** 2 for x in xs)
    return mean_y + slope * (chunk_rays - mean_x), False


def run_project(args) -> dict:
    guidance = json.loads((RESULTS / "full_size_guidance.json").read_text())
    chunks_path = RESULTS / "full_size_chunks.json"
    chunks = json.loads(chunks_path.read_text()) if chunks_path.exists() else None
    result = project(guidance, chunks)
    for name, ms in result["time_ms"].items():
        print(f"projected GPU time, {name}: {ms:.1f} ms at {GPU_PEAK_TFLOPS:.0f} TFLOP/s (100 % of peak: a floor)")
    memory = result["memory_gib"]
    parts = ", ".join(f"{k} {v:.2f}" for k, v in memory.items() if isinstance(v, float) and k not in ("total", "goal"))
    if not memory.get("nerf_chunk_measured", True):
        parts += "; the NeRF chunk's peak extrapolated from the measured chunk sizes"
    print(
        f"projected peak GPU memory, 512x512 fp16 edit: {memory['total']:.2f} GiB ({parts}); goal <= {memory['goal']}"
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="part", required=True)
    p = sub.add_parser("guidance", help="part 1: the guidance step at full size")
    p.add_argument("--model", choices=sorted(MODELS), default="sd15-random")
    p.add_argument("--precision", default="fp32")
    p.add_argument("--size", type=int, default=None, help="image side, pixels (default: the model's native)")
    p.add_argument("--fpr-steps", type=int, default=3)
    p.add_argument("--timed", nargs="*", default=["IDS", "DDS"], help="cases run for real (the others: FLOPs only)")
    p = sub.add_parser("chunks", help="part 2: deferred-backward peak memory per chunk size")
    p.add_argument("--size", type=int, default=512, help="view side, pixels")
    p.add_argument(
        "--settings",
        nargs="+",
        default=["512:8192", "1024:8192", "2048:8192", "4096:8192", "1024:2048"],
        help="CHUNK:RAYS pairs: chunk size and how many rays of the view (whole rows) to run",
    )
    p.add_argument("--log2-hashmap-size", type=int, default=19, help="nerfacto's default: 19")
    p.add_argument("--one", nargs=2, type=int, metavar=("CHUNK", "RAYS"), help="measure one setting here")
    p.add_argument("--torch-home", type=Path, default=None)
    p = sub.add_parser("edit", help="part 3: ns-train ids-edit with the SD 1.5 architecture")
    p.add_argument("--model", choices=["sd15-random", "tiny"], default="sd15-random")
    p.add_argument("--precisions", nargs="*", default=["fp32", "bf16"], help="none: only prepare --root")
    p.add_argument("--view-size", type=int, default=128, help="camera views' side, pixels")
    p.add_argument("--views", type=int, default=2, help="training views of the synthetic scene")
    p.add_argument("--steps", type=int, default=2)
    p.add_argument("--root", type=Path, default=None, help="work folder (reused: scene, source, model)")
    p.add_argument("--edit-flags", default="", help='more ns-train ids-edit flags, one string: "--a 1 --b 2"')
    p.add_argument(
        "--source-flags",
        nargs="*",
        default=list(LIGHT_NERFACTO),
        help="extra ns-train nerfacto flags of the source (the edit inherits its model)",
    )
    p.add_argument("--torch-home", type=Path, default=None)
    p = sub.add_parser("write-model", help="write the random SD 1.5-architecture folder")
    p.add_argument("folder", type=Path)
    p.add_argument("--model", choices=["sd15-random", "tiny"], default="sd15-random")
    sub.add_parser("project", help="GPU projections from the parts' JSON")
    args = parser.parse_args()

    if args.part == "write-model":
        print(write_model(args.folder, args.model))
    elif args.part == "chunks" and args.one:
        print(json.dumps(measure_chunk(*args.one, size=args.size, log2_hashmap_size=args.log2_hashmap_size)))
    else:
        run = {"guidance": run_guidance, "chunks": run_chunks, "edit": run_edit, "project": run_project}[args.part]
        write_json(args.part, run(args))


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    main()
