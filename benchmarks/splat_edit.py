"""A whole ids-edit-splat run on the synthetic scene, timed and measured against the ground truth.

Trains a splatfacto source with the real ns-train, edits it towards the blue ball with the scene's
exact-score model, evaluates source and edit with ids-nerf eval, and reads the edit step's time split.

    python -m benchmarks.splat_edit --device cuda --size 64      # gsplat on a GPU
    python -m benchmarks.splat_edit                              # CPU: the tests' stand-in rasterizer

Every command runs through ``python -m ids_nerf.testing.ns_run``, which swaps in the CPU rasterizer only when
there is no CUDA device.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path


def run(command: list, env: dict, log: Path) -> float:
    """Run ``command``, its output going to ``log``. Returns seconds."""
    started = time.time()
    with log.open("w") as stream:
        result = subprocess.run(command, env=env, stdout=stream, stderr=subprocess.STDOUT)
    if result.returncode != 0:
        raise SystemExit(
            f"{' '.join(command[3:5])} failed ({result.returncode}); see {log}:\n{log.read_text()[-3000:]}"
        )
    return time.time() - started


def main() -> None:
    from benchmarks.edit_step import step_split
    from ids_nerf.methods import SMALL_SPLATFACTO
    from ids_nerf.scenes import write_edit_scene
    from ids_nerf.testing.ns_commands import (
        NS_RUN,
        make_offline_alexnet,
        offline_env,
        splat_edit_args,
        synthetic_train_command,
    )

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--size", type=int, default=32, help="image side of the scene")
    parser.add_argument("--views", type=int, default=24)
    parser.add_argument("--source-steps", type=int, default=1500)
    parser.add_argument("--edit-steps", type=int, default=120)
    parser.add_argument("--colour-lr", type=float, default=0.025, help="features_dc learning rate of the edit")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/splat_edit.json"))
    args = parser.parse_args()

    args.out.parent.mkdir(parents=True, exist_ok=True)
    logs = args.out.parent
    root = Path(tempfile.mkdtemp(prefix="splat-edit-"))
    scene = write_edit_scene(root / "scene", size=args.size, views=args.views)
    torch_home = root / "torch-home"
    make_offline_alexnet(torch_home)
    env = {
        **offline_env(torch_home),
        "PYTHONPATH": os.pathsep.join(
            filter(None, [str(Path(__file__).resolve().parent.parent), os.environ.get("PYTHONPATH")])
        ),
    }
    device = args.device.split(":")[0]
    seconds = {}
    seconds["source"] = run(
        synthetic_train_command(
            root,
            scene,
            "splatfacto",
            "src",
            args.source_steps,
            *SMALL_SPLATFACTO,
            *(["--pipeline.model.use-absgrad", "False"] if device == "cpu" else []),  # the stand-in has no absgrad
            device=device,
        ),
        env,
        logs / "splat_source.log",
    )
    source = root / "out" / "scene" / "splatfacto" / "src"
    seconds["edit"] = run(
        synthetic_train_command(
            root,
            scene,
            "ids-edit-splat",
            "edit",
            args.edit_steps,
            "--logging.steps-per-log",
            "1",
            *splat_edit_args(scene, source / "nerfstudio_models", scene, args.colour_lr),
            device=device,
        ),
        env,
        logs / "splat_edit.log",
    )
    edited = root / "out" / "scene" / "ids-edit-splat" / "edit"
    seconds["eval"] = run(
        [
            *NS_RUN,
            "ids-nerf",
            "eval",
            "--source",
            str(source / "config.yml"),
            "--edited",
            str(edited / "config.yml"),
            "--out",
            str(root / "eval"),
            "--scene",
            str(scene),
            "--target-appearance",
            "edited",
        ],
        env,
        logs / "splat_eval.log",
    )
    metrics = json.loads((root / "eval" / "metrics.json").read_text())["metrics"]
    split, peaks = step_split(edited)
    result = {
        "device": args.device,
        "size": args.size,
        "views": args.views,
        "source_steps": args.source_steps,
        "edit_steps": args.edit_steps,
        "colour_lr": args.colour_lr,
        "seconds": seconds,
        "step_ms": split,
        "step_total_ms": sum(split.values()),
        "peak_memory_gib": peaks["allocated"],
        "peak_reserved_gib": peaks["reserved"],
        "metrics": metrics,
    }
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
