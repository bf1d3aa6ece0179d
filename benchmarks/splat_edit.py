"""A whole ids-edit-splat run on the synthetic scene, timed and measured against the ground truth.

Trains a splatfacto source with the real ns-train, edits it towards the blue ball with the scene's
exact-score model, evaluates source and edit with ids-nerf eval, and reads the edit step's time split.

    python -m benchmarks.splat_edit --device cuda --size 64      # gsplat on a GPU
    python -m benchmarks.splat_edit                              # CPU: the tests' stand-in rasterizer
    python -m benchmarks.splat_edit --arms whole region region-cut --seeds 0 1   # the edit region's worth

With several arms or seeds every edit starts from the one source, and a table of the ball against the
target and of the unedited regions against the source is printed (and written beside ``--out``).

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


ARMS = ("whole", "region", "region-cut")


def arm_flags(arm: str) -> list:
    """The extra ns-train flags of an arm: ``whole`` edits the whole scene, ``region`` limits the edit to the
    ball's box (a 2D mask per view, the anchor outside), ``region-cut`` also zeroes the gradient of the
    Gaussians whose centre is outside the box."""
    from ids_nerf.study.identity_study import edited_object_region

    if arm not in ARMS:
        raise SystemExit(f"splat_edit: unknown arm {arm!r}; choose from {', '.join(ARMS)}")
    region = edited_object_region("blue-ball")
    return {"whole": [], "region": region, "region-cut": [*region, "--pipeline.region-cut", "True"]}[arm]


COLUMNS = (
    ("ball to target", "target_psnr_ball"),
    ("box vs source", "identity_psnr_box"),
    ("table vs source", "identity_psnr_table"),
    ("background vs source", "identity_psnr_background"),
    ("box leak", "leak_box"),
)


def table(edits: list) -> str:
    """Markdown: one row per arm and seed, PSNR in dB, leak as mean absolute colour change."""
    lines = [
        "| arm | seed | " + " | ".join(name for name, _ in COLUMNS) + " |",
        "| --- | --- |" + " --- |" * len(COLUMNS),
    ]
    for edit in edits:
        cells = [f"{edit['metrics'][key]:.{3 if key.startswith('leak') else 2}f}" for _, key in COLUMNS]
        lines.append(f"| {edit['arm']} | {edit['seed']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def edit_and_measure(root: Path, scene: Path, source: Path, env: dict, args, device: str, arm, flags, seed) -> dict:
    """One ids-edit-splat run of ``source`` with an arm's flags and an edit seed, evaluated on the test views."""
    from benchmarks.edit_step import step_split
    from ids_nerf.testing.ns_commands import NS_RUN, splat_edit_args, synthetic_train_command

    name = f"edit-{arm}-s{seed}"
    edit_seconds = run(
        synthetic_train_command(
            root,
            scene,
            "ids-edit-splat",
            name,
            args.edit_steps,
            "--logging.steps-per-log",
            "1",
            "--pipeline.seed",
            str(seed),
            *splat_edit_args(scene, source / "nerfstudio_models", scene, args.colour_lr),
            *flags,
            device=device,
        ),
        env,
        args.out.parent / f"splat_{name}.log",
    )
    edited, evaluation = root / "out" / "scene" / "ids-edit-splat" / name, root / f"eval-{name}"
    eval_command = ["ids-nerf", "eval", "--source", str(source / "config.yml"), "--edited", str(edited / "config.yml")]
    eval_seconds = run(
        [*NS_RUN, *eval_command, "--out", str(evaluation), "--scene", str(scene), "--target-appearance", "edited"],
        env,
        args.out.parent / f"splat_eval_{name}.log",
    )
    split, peaks = step_split(edited)
    return {
        "arm": arm,
        "seed": seed,
        "flags": flags,
        "seconds": {"edit": edit_seconds, "eval": eval_seconds},
        "step_ms": split,
        "step_total_ms": sum(split.values()),
        "peak_memory_gib": peaks["allocated"],
        "peak_reserved_gib": peaks["reserved"],
        "metrics": json.loads((evaluation / "metrics.json").read_text())["metrics"],
        "eval_folder": str(evaluation),
    }


def main() -> None:
    from ids_nerf.methods import SMALL_SPLATFACTO
    from ids_nerf.scenes import write_edit_scene
    from ids_nerf.testing.ns_commands import (
        make_offline_alexnet,
        offline_env,
        synthetic_train_command,
    )

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--size", type=int, default=32, help="image side of the scene")
    parser.add_argument("--views", type=int, default=24)
    parser.add_argument("--source-steps", type=int, default=1500)
    parser.add_argument("--edit-steps", type=int, default=120)
    parser.add_argument("--colour-lr", type=float, default=0.025, help="features_dc learning rate of the edit")
    parser.add_argument("--arms", nargs="+", default=["whole"], help=f"edits of the one source: {', '.join(ARMS)}")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0], help="--pipeline.seed of each arm's edits")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/splat_edit.json"))
    args = parser.parse_args()
    flags = {arm: arm_flags(arm) for arm in args.arms}  # a wrong arm stops before the source trains

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
    edits = [
        edit_and_measure(root, scene, source, env, args, device, arm, flags[arm], seed)
        for arm in args.arms
        for seed in args.seeds
    ]
    first = edits[0]
    result = {
        "device": args.device,
        "size": args.size,
        "views": args.views,
        "source_steps": args.source_steps,
        "edit_steps": args.edit_steps,
        "colour_lr": args.colour_lr,
        # the first edit's numbers at the top level too, where the single-edit runs (the GPU script) read them
        **{key: first[key] for key in ("step_ms", "step_total_ms", "peak_memory_gib", "peak_reserved_gib", "metrics")},
        "seconds": {**seconds, **first["seconds"]},
        "edits": edits,
    }
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    if len(edits) > 1:
        summary = table(edits)
        args.out.with_suffix(".md").write_text(summary + "\n")
        print(summary)


if __name__ == "__main__":
    main()
