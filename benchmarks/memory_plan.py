"""The memory plan's diffusion estimate against what one real step uses on this machine (issue 14, item 4).

    python -m benchmarks.memory_plan                               # tiny model, 32 to 128 pixels
    python -m benchmarks.memory_plan --model sd15-random --sizes 128 256 --precision fp32
    python -m benchmarks.memory_plan --nerf --chunks 512 1024 2048     # nerfacto at its defaults, 512x512 view

For each image side: the estimate (``estimate_diffusion_memory``: fake tensors, from the configs), the
same step run for real under ``LiveBytes`` (the tensors alive at its peak) and the process's peak RSS
above its RSS just before the step (``/proc``'s VmHWM, reset first), each real case in a fresh process.
Also the weights: the estimate's bytes against the loaded modules'. With ``--nerf``: the render chunk
as the plan estimates it (``chunk_peak_bytes`` on 128 and 256 rays of ``ns-train nerfacto``'s model,
extrapolated) against the chunk itself (render with grad and backward) under ``LiveBytes`` and its peak
RSS above the RSS before it, the chunk run first thing in a fresh process.

With ``--device cuda`` (cuDNN's benchmark mode on, as ns-train sets it) the real step's
``torch.cuda.max_memory_reserved`` above the memory allocated before it stands in for the RSS: what the
plan compares with, since it counts this process's reserved-but-unallocated blocks as free. The table's
last column, that peak minus the estimate as a share of the estimate, is the margin the plan needs on
CUDA (``memory_plan.CUDA_DIFFUSION_MARGIN``); ``max_memory_allocated`` is printed beside it.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

GIB = 1024**3


def measure(model: str, size: int, precision: str, fpr_steps: int, device: str) -> dict:
    """One real step in this process: LiveBytes' peak and the RSS (or CUDA allocator) peak above the start."""
    from benchmarks.full_size import peak_rss_gib, reset_peak_rss, rss_gib
    from benchmarks.models import MODELS
    from ids_nerf.guidance.memory import LiveBytes, diffusion_step

    torch.manual_seed(0)
    guidance = MODELS[model](device, precision)
    for prompt in ("", "source", "target"):
        guidance.embed_prompt(prompt)
    guidance.text_encoder = None  # released after the prompts, as in an edit
    dtype = guidance.dtype
    image = torch.rand(1, 3, size, size, device=device, dtype=dtype)
    with torch.no_grad():
        z_src = guidance.encode(image)
    weights = sum(p.numel() * p.element_size() for m in (guidance.unet, guidance.vae) for p in m.parameters())
    cuda = device.startswith("cuda")
    if cuda:
        torch.backends.cudnn.benchmark = True  # as nerfstudio's train.py sets it: cuDNN tries workspaces
        torch.cuda.synchronize()
        before = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
    else:
        before = rss_gib() * GIB
        reset_peak_rss()
    with LiveBytes() as live:
        diffusion_step(guidance, image, z_src, fpr_steps, 1.0, "full")
    result = {"live_bytes": live.peak, "weights": weights}
    if cuda:
        torch.cuda.synchronize()
        result["measured_above"] = torch.cuda.max_memory_reserved() - before
        result["allocated_above"] = torch.cuda.max_memory_allocated() - before
    else:
        result["measured_above"] = peak_rss_gib() * GIB - before
    return result


def margin_needed(estimate: int, measured_above: int) -> float:
    """The measured peak's excess over the estimate, as a share of the estimate (the plan's margin)."""
    return (measured_above - estimate) / estimate


def save_configs(model: str, folder: Path) -> Path:
    """A folder with the model's unet/vae/text_encoder configs (all the estimate reads)."""
    from benchmarks.models import sd15_random
    from ids_nerf.guidance import make_tiny_sd

    if model == "tiny":
        return make_tiny_sd(folder)
    with torch.device("meta"):  # shapes only: SD 1.5's 1 B parameters are never allocated
        guidance = sd15_random("meta", "fp32", full_text_encoder=True)
    guidance.unet.save_config(folder / "unet")
    guidance.vae.save_config(folder / "vae")
    guidance.text_encoder.config.save_pretrained(folder / "text_encoder")
    return folder


def nerf_chunk(chunk: int, real: bool) -> dict:
    """For ``chunk`` rays of a 512x512 view of nerfacto at its defaults: the plan's estimate (probes on 128
    and 256 rays, extrapolated), or with ``real`` the chunk itself, first thing in a fresh process: its
    LiveBytes peak and the peak RSS above the RSS before it (nothing freed earlier for the allocator to reuse)."""
    from benchmarks.full_size import nerfacto_model, peak_rss_gib, reset_peak_rss, rss_gib, square_camera
    from ids_nerf.nerfstudio.memory_plan import extrapolate, probe_sizes
    from ids_nerf.nerfstudio.rendering import camera_rays, chunk_peak_bytes

    torch.manual_seed(0)
    model = nerfacto_model()
    bundle = camera_rays(square_camera(512), 0, "cpu")
    if real:
        before = rss_gib() * GIB
        reset_peak_rss()
        live = chunk_peak_bytes(model, bundle, chunk, seed=0)
        return {"live_bytes": live, "rss_above": peak_rss_gib() * GIB - before}
    sizes = list(probe_sizes())
    return {"estimate": extrapolate(sizes, [chunk_peak_bytes(model, bundle, n, seed=0) for n in sizes], chunk)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="tiny", choices=["tiny", "sd15-random"])
    parser.add_argument("--sizes", type=int, nargs="+", default=[32, 64, 128])
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--fpr-steps", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--nerf", action="store_true", help="the render chunk instead of the diffusion step")
    parser.add_argument("--chunks", type=int, nargs="+", default=[512, 1024, 2048])
    parser.add_argument("--out", type=Path, help="also write the rows as JSON")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # a real case, in its own process
    args = parser.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit(f"error: --device {args.device}, but torch sees no CUDA device")
    if args.one:
        result = (
            nerf_chunk(args.one, True)
            if args.nerf
            else measure(args.model, args.one, args.precision, args.fpr_steps, args.device)
        )
        print(json.dumps(result))
        return
    if args.nerf:
        print("nerfacto (ns-train's defaults, torch hash grid), 512x512 view, one chunk with grad and its backward")
        print("| chunk (rays) | plan's estimate (GiB) | the chunk, LiveBytes (GiB) | backward, RSS above start (GiB) |")
        print("| --- | --- | --- | --- |")
        for chunk in args.chunks:
            command = [sys.executable, "-m", "benchmarks.memory_plan", "--nerf", "--one", str(chunk)]
            row = json.loads(
                subprocess.run(command, capture_output=True, text=True, check=True).stdout.splitlines()[-1]
            )
            cells = [nerf_chunk(chunk, real=False)["estimate"], row["live_bytes"], row["rss_above"]]
            print(f"| {chunk} | " + " | ".join(f"{value / GIB:.3f}" for value in cells) + " |")
        return

    from ids_nerf.guidance.memory import estimate_diffusion_memory

    folder = save_configs(args.model, Path(tempfile.mkdtemp(prefix="configs-")))
    what = "peak reserved (CUDA allocator)" if args.device.startswith("cuda") else "peak RSS"
    print(f"{args.model}, {args.precision}, N = {args.fpr_steps}, {args.device}: one edit step's diffusion half")
    print(
        f"| side (px) | estimate (GiB) | real step, LiveBytes (GiB) | {what} above start (GiB) | "
        "peak allocated above start (GiB) | estimate / measured | margin needed (measured - estimate) / estimate |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    rows = []
    for size in args.sizes:
        estimate = estimate_diffusion_memory(str(folder), args.precision, (size, size), size, args.fpr_steps)
        command = [sys.executable, "-m", "benchmarks.memory_plan", "--one", str(size), "--model", args.model]
        command += ["--precision", args.precision, "--fpr-steps", str(args.fpr_steps), "--device", args.device]
        real = json.loads(subprocess.run(command, capture_output=True, text=True, check=True).stdout.splitlines()[-1])
        step = estimate.step_activations
        allocated = real.get("allocated_above")
        margin = margin_needed(step, real["measured_above"])
        print(
            f"| {size} | {step / GIB:.4f} | {real['live_bytes'] / GIB:.4f} | {real['measured_above'] / GIB:.4f} | "
            f"{'-' if allocated is None else f'{allocated / GIB:.4f}'} | {step / real['measured_above']:.2f} | "
            f"{margin:+.3f} |"
        )
        rows.append({"size": size, "estimate": step, **real, "margin_needed": margin})
    print(f"weights: estimate {estimate.weights / GIB:.4f} GiB, loaded {real['weights'] / GIB:.4f} GiB")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        payload = {"model": args.model, "precision": args.precision, "device": args.device, "rows": rows}
        args.out.write_text(json.dumps({**payload, "fpr_steps": args.fpr_steps}, indent=2))


if __name__ == "__main__":
    main()
