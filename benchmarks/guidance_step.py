"""Guidance-step benchmark: ids-nerf's IDS/DDS step against the straightforward reference loop,
side by side in one run. Prints a table and writes JSON.

    python -m benchmarks.guidance_step                       # CPU, tiny model
    python -m benchmarks.guidance_step --model sd15-random --device cuda --precisions fp32 fp16 bf16 --size 512
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from benchmarks.models import MODELS
from benchmarks.reference_loop import reference_ids_step
from ids_nerf.core import ids_step

PEAK_BF16_TFLOPS = 989.0  # NVIDIA's datasheet dense bf16 rate of the H100/H200 SXM; for projections only


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def time_interleaved(cases: dict, device: str, repeats: int, warmup: int = 2) -> dict:
    """Median ms per case, the cases taken in turn within each repeat: load that drifts on a shared
    machine then slows every case alike, and the ratios between them stay fair."""
    for fn in cases.values():
        for _ in range(warmup):
            fn()
    samples = {name: [] for name in cases}
    for _ in range(repeats):
        for name, fn in cases.items():
            sync(device)
            start = time.perf_counter()
            fn()
            sync(device)
            samples[name].append(1000 * (time.perf_counter() - start))
    return {name: sorted(values)[len(values) // 2] for name, values in samples.items()}


def flops(fn) -> float:
    counter = FlopCounterMode(display=False)
    with counter:
        fn()
    return float(counter.get_total_flops())


def bench(model: str, device: str, precision: str, size: int, repeats: int, encode: bool) -> list[dict]:
    guidance = MODELS[model](device, precision)
    latent = size // guidance.vae_scale_factor
    g = torch.Generator().manual_seed(0)
    z_src = torch.randn(1, 4, latent, latent, generator=g).to(device)
    z_trg = z_src + 0.1 * torch.randn(z_src.shape, generator=g).to(device)
    noise = torch.randn(z_src.shape, generator=g).to(device)
    t = torch.tensor([500], device=device)
    c_src, c_trg = guidance.embed_prompt("a photo of a cat"), guidance.embed_prompt("a photo of a tiger")
    image = torch.rand(1, 3, size, size, generator=g).to(device)
    ac = guidance.alphas_cumprod

    def ours(n):
        return lambda: ids_step(guidance.score_fn, z_src, z_trg, c_src, c_trg, t, noise, ac, n, 1.0)

    def ours_jfree():
        return ids_step(guidance.score_fn, z_src, z_trg, c_src, c_trg, t, noise, ac, 3, 1.0, "identity")

    def reference(n):
        return lambda: reference_ids_step(guidance, z_src, z_trg, c_src, c_trg, t, noise, n, 1.0)

    cases = {
        "IDS N=3 (ids-nerf)": ours(3),
        "IDS N=3 (reference loop)": reference(3),
        "IDS N=3, J=I (ids-nerf)": ours_jfree,
        "DDS (ids-nerf)": ours(0),
        "DDS (reference loop)": reference(0),
    }
    if encode:

        def encode_with_grad():
            x = image.clone().requires_grad_(True)
            guidance.encode(x).sum().backward()

        cases["VAE encode + input grad"] = encode_with_grad
    timings = time_interleaved(cases, device, repeats)
    rows = []
    for name, fn in cases.items():
        if device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
        ms = timings[name]
        work = flops(fn)  # runs the case once more: the peak memory below is that run's
        row = {
            "case": name,
            "model": model,
            "device": device,
            "precision": precision,
            "size": size,
            "ms": round(ms, 3),
            "tflops": round(work / 1e12, 3),
            "achieved_tflops_per_s": round(work / 1e12 / (ms / 1000), 3),
        }
        if device.startswith("cuda"):
            row["peak_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 3)
            row["percent_of_bf16_peak"] = round(100 * row["achieved_tflops_per_s"] / PEAK_BF16_TFLOPS, 1)
        rows.append(row)
    for method in ("IDS N=3", "DDS"):
        ref = next(r for r in rows if r["case"] == f"{method} (reference loop)")
        new = next(r for r in rows if r["case"] == f"{method} (ids-nerf)")
        new["speedup_vs_reference"] = round(ref["ms"] / new["ms"], 2)
    full = next(r for r in rows if r["case"] == "IDS N=3 (ids-nerf)")
    jfree = next(r for r in rows if r["case"] == "IDS N=3, J=I (ids-nerf)")
    jfree["speedup_vs_full_fpr"] = round(full["ms"] / jfree["ms"], 2)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=sorted(MODELS), default="tiny")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precisions", nargs="+", default=["fp32"])
    parser.add_argument("--size", type=int, default=None, help="image side (default: the model's native size)")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/guidance_step.json"))
    args = parser.parse_args()
    size = args.size or (32 if args.model == "tiny" else 512)
    rows = []
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for precision in args.precisions:  # each precision printed and saved when done: a time limit keeps those
        done = bench(args.model, args.device, precision, size, args.repeats, encode=True)
        for row in done:
            extra = {
                k: row[k]
                for k in ("speedup_vs_reference", "speedup_vs_full_fpr", "peak_memory_gib", "percent_of_bf16_peak")
                if k in row
            }
            print(
                f"{row['precision']:5} {row['case']:28} {row['ms']:9.2f} ms  "
                f"{row['achieved_tflops_per_s']:8.3f} TFLOP/s  {extra}",
                flush=True,
            )
        rows += done
        args.out.write_text(json.dumps({"date": time.strftime("%Y-%m-%d"), "rows": rows}, indent=2))
    print(f"JSON: {args.out}")


if __name__ == "__main__":
    main()
