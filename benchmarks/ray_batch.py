"""Wall time of one batch of tiny CPU edits on a local Ray with 1 worker and with 2 (each edit: its own source
nerfacto, the ids-edit or dds-edit, the evaluation), and the ratio. A benchmark to read, not a timed test.

    python -m benchmarks.ray_batch                 # 4 edits on a 16x16 synthetic scene
    python -m benchmarks.ray_batch --seeds 3 --workers 1 2 4

Each run gets a fresh output folder, so nothing is skipped. The load average is printed beside the times:
on a machine shared with other jobs the ratio says as much about them as about Ray.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SUITE = """
output_dir: {out}
scenes:
  ball:
    path: {scene}
    dataparser_args: [--alpha-color, None]
    prompts:
      blue: {{source: "a red ball and a green box on a table", target: "a blue ball and a green box on a table"}}
methods: [ids-edit, dds-edit]
settings:
  lambda-0.1: [--pipeline.fpr-scale, "0.1"]
seeds: {seeds}
source_args: [
  --max-num-iterations, {source_steps}, --steps-per-save, 1000000,
  --pipeline.datamanager.train-num-rays-per-batch, 256,
  --pipeline.model.implementation, torch, --pipeline.model.log2-hashmap-size, 15,
  --pipeline.model.proposal-net-args-list.0.log2-hashmap-size, 15,
  --pipeline.model.proposal-net-args-list.1.log2-hashmap-size, 15,
  --steps-per-eval-batch, 0, --steps-per-eval-image, 0, --steps-per-eval-all-images, 0,
]
edit_args: [--max-num-iterations, {edit_steps}, --pipeline.diffusion-model, "exact:{{scene}}"]
"""


def timed_suite(root: Path, scene: Path, workers: int, args, env: dict) -> float:
    """Seconds that ``ids-nerf suite --executor ray --workers N`` takes end to end (Ray's start-up included)."""
    out = root / f"workers-{workers}"
    suite = root / f"suite-{workers}.yaml"
    seeds = list(range(args.seeds))
    suite.write_text(
        SUITE.format(out=out, scene=scene, seeds=seeds, source_steps=args.source_steps, edit_steps=args.edit_steps)
    )
    command = [
        sys.executable,
        "-m",
        "ids_nerf.cli",
        "suite",
        str(suite),
        "--executor",
        "ray",
        "--workers",
        str(workers),
    ]
    start = time.time()
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    seconds = time.time() - start
    if result.returncode != 0:
        raise SystemExit(f"the suite failed with {workers} workers:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--seeds", type=int, default=2, help="edits = 2 methods x this many seeds")
    parser.add_argument("--size", type=int, default=16)
    parser.add_argument("--source-steps", type=int, default=20)
    parser.add_argument("--edit-steps", type=int, default=5)
    args = parser.parse_args()

    from ids_nerf.evaluation.metrics import write_untrained_alexnet
    from ids_nerf.scenes.edit_scene import write_edit_scene

    with tempfile.TemporaryDirectory(prefix="ray-batch-") as tmp:
        root = Path(tmp)
        scene = write_edit_scene(root / "scene", size=args.size, views=4)
        write_untrained_alexnet(root / "torch-home")  # nerfacto builds LPIPS; offline it needs a stand-in
        env = {**os.environ, "TORCH_HOME": str(root / "torch-home"), "HF_HUB_OFFLINE": "1"}
        # Ray kills tasks above 95 % of the machine's memory, whoever uses it; on a shared machine that would
        # time other people's jobs, so the benchmark lets it go to 98 % (RAY_memory_usage_threshold overrides)
        env.setdefault("RAY_memory_usage_threshold", "0.98")
        # Ray's workers import ids_nerf themselves: from this checkout, as the driver does under python -m
        env["PYTHONPATH"] = os.pathsep.join(
            filter(None, [str(Path(__file__).resolve().parent.parent), env.get("PYTHONPATH")])
        )
        edits = 2 * args.seeds
        print(
            f"{edits} edits ({args.source_steps} source steps, {args.edit_steps} edit steps, {args.size}px), "
            f"{os.cpu_count()} CPUs"
        )
        times = {}
        for workers in args.workers:
            load = os.getloadavg()[0]
            times[workers] = timed_suite(root, scene, workers, args, env)
            print(f"  {workers} worker(s): {times[workers]:6.1f} s   (load average before: {load:.1f})", flush=True)
        base = times[args.workers[0]]
        for workers in args.workers[1:]:
            print(f"  {args.workers[0]} vs {workers} workers: {base / times[workers]:.2f}x")


if __name__ == "__main__":
    main()
