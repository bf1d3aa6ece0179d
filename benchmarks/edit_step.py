"""Whole ids-edit step, split into render / encode / guidance / encode backward / render backward,
read from the ``ids/ms_*`` scalars the pipeline logs. Runs the real ns-train on a synthetic scene.

    python -m benchmarks.edit_step                          # CPU, 32x32 views, tiny model
    python -m benchmarks.edit_step --device cuda --size 512 --model sd15-random
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

PARTS = ("render", "encode", "guidance", "encode_backward", "render_backward")


def step_split(run_dir: Path, skip: int = 1) -> tuple:
    """Median ms of each part of an edit step (``ids/ms_*`` in the run's tensorboard events, the first
    ``skip`` steps left out as warm-up), and the largest peak memory of a step in GiB: CUDA's allocated
    (``ids/peak_memory_gib``) and reserved (``ids/peak_reserved_gib``) bytes, each None off CUDA."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    events.Reload()
    split = {}
    for part in PARTS:
        values = [e.value for e in events.Scalars(f"Train Metrics Dict/ids/ms_{part}")][skip:]
        split[part] = statistics.median(values)
    peaks = {}
    for name, tag in (("allocated", "peak_memory_gib"), ("reserved", "peak_reserved_gib")):
        tag = f"Train Metrics Dict/ids/{tag}"
        peaks[name] = max(e.value for e in events.Scalars(tag)) if tag in events.Tags()["scalars"] else None
    return split, peaks


def plan_line(output: str) -> str:
    """The memory plan's line in ns-train's output ('' if it printed none)."""
    return next((line.strip() for line in output.splitlines() if line.startswith("Memory plan")), "")


def diffusion_folder(model: str, device: str, root: Path) -> Path:
    folder = root / model
    if model == "tiny":
        from ids_nerf.guidance import make_tiny_sd

        return make_tiny_sd(folder)
    from benchmarks.models import save_folder, sd15_random

    return save_folder(sd15_random("cpu", "fp32"), folder)


def main() -> None:
    from ids_nerf.scenes import write_edit_scene
    from ids_nerf.testing.ns_commands import edit_command, make_offline_alexnet, offline_env, train_source_nerfacto

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--model", choices=["tiny", "sd15-random"], default="tiny")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--chunk", type=int, default=4096, help="--pipeline.render-chunk-rays")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/edit_step.json"))
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="edit-step-"))
    scene = write_edit_scene(root / "scene", size=args.size, views=4)
    torch_home = root / "torch-home"
    make_offline_alexnet(torch_home)
    env = offline_env(torch_home)
    source = train_source_nerfacto(scene, root / "out", env, steps=1)
    model = diffusion_folder(args.model, args.device, root)
    flags = ("--logging.steps-per-log", "1", "--pipeline.render-chunk-rays", str(args.chunk))
    command = edit_command(
        "ids-edit",
        scene,
        source / "nerfstudio_models",
        model,
        root / "out",
        "bench",
        "edit",
        args.steps,
        *flags,
        "--pipeline.log-images-every",
        "0",
        prompts=("a red ball", "a blue ball"),
        device=args.device.split(":")[0],
    )
    started = time.time()
    run = subprocess.run(command, env=env, capture_output=True, text=True)
    wall = time.time() - started
    if run.returncode != 0:
        raise SystemExit(f"ns-train ids-edit failed ({run.returncode}):\n{(run.stdout + run.stderr)[-3000:]}")

    split, peaks = step_split(root / "out/bench/ids-edit/edit")
    plan = plan_line(run.stdout)
    total = sum(split.values())
    print(
        f"ids-edit step, {args.size}x{args.size} render, model {args.model}, {args.device} "
        f"(median of {args.steps - 1} steps):"
    )
    for part, ms in split.items():
        print(f"  {part:16} {ms:9.1f} ms  {100 * ms / total:5.1f} %")
    print(f"  {'total':16} {total:9.1f} ms   (ns-train wall time incl. start-up: {wall:.0f} s)")
    if peaks["allocated"] is not None:
        allocated, reserved = peaks["allocated"], peaks["reserved"]
        print(f"  peak GPU memory in a step: {allocated:.2f} GiB allocated, {reserved:.2f} GiB reserved")
    print(f"  the run's memory plan (its estimate, before the diffusion weights loaded): {plan or 'none printed'}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "size": args.size,
                "model": args.model,
                "device": args.device,
                "chunk": args.chunk,
                "ms": split,
                "total_ms": total,
                "peak_memory_gib": peaks["allocated"],
                "peak_reserved_gib": peaks["reserved"],
                "memory_plan": plan,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    main()
