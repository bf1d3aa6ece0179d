"""Real nerfstudio commands run offline on the CPU, for the tests and the benchmarks."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Optional, Sequence

from ids_nerf.methods import CPU_NERFACTO
from ids_nerf.workflow.runner import run_folder_args

NS_RUN = [sys.executable, "-m", "ids_nerf.testing.ns_run"]
"""Runs a console script in this Python; splatfacto gets the CPU stand-in rasterizer where there is no CUDA."""


def ns_command(name: str) -> list:
    """The command for console script ``name``: the installed script beside this Python, or, where
    there is none (packages installed with ``pip --target``), ``python -m ids_nerf.testing.ns_run name``."""
    script = Path(sys.executable).parent / name
    return [str(script)] if script.exists() else [*NS_RUN, name]


def synthetic_train_command(
    root: Path, scene: Path, method: str, timestamp: str, steps: int, *args: str, device: str = "cpu"
) -> list:
    """``ns-train method`` (through :data:`NS_RUN`) on the synthetic edit scene ``scene`` (blender-data,
    alpha kept); the run lands in ``root/out/scene/<method>/<timestamp>``. ``args`` go before the dataparser."""
    common = [
        "--machine.device-type",
        device,
        *run_folder_args(root / "out", "scene", timestamp, progress=False),
        "--max-num-iterations",
        str(steps),
    ]
    return [*NS_RUN, "ns-train", method, *common, *args, "blender-data", "--data", str(scene), "--alpha-color", "None"]


def edit_command(
    method: str,
    scene: Path,
    load_dir,
    model,
    output_dir: Path,
    experiment: str,
    timestamp: str,
    steps: int,
    *args: str,
    prompts=("a red ball and a green box", "a blue ball and a green box"),
    device: str = "cpu",
) -> list:
    """``ns-train method`` (an edit method, e.g. ids-edit) of the Blender-format ``scene``, offline, logging to
    tensorboard only: ``load_dir`` is the source's ``nerfstudio_models`` (None leaves --load-dir out),
    ``model`` the ``--pipeline.diffusion-model``, ``prompts`` (source, target). The run lands in
    ``output_dir/experiment/method/timestamp``; ``args`` go last, before the dataparser."""
    return [
        *ns_command("ns-train"),
        method,
        "--machine.device-type",
        device,
        *run_folder_args(output_dir, experiment, timestamp, progress=False),
        "--max-num-iterations",
        str(steps),
        *(["--load-dir", str(load_dir)] if load_dir is not None else []),
        "--pipeline.source-prompt",
        prompts[0],
        "--pipeline.target-prompt",
        prompts[1],
        "--pipeline.diffusion-model",
        str(model),
        *args,
        "blender-data",
        "--data",
        str(scene),
    ]


def splat_edit_args(scene: Path, load_dir: Path, guidance_scene: Path, colour_lr: float) -> list:
    """ids-edit-splat's flags for the synthetic scene: its captions as prompts, the exact-score model of
    ``guidance_scene``, lambda 0.1 (as in the demo: the exact model's best, docs/results.md), and the
    colour rate ``colour_lr`` (splatfacto's 0.0025 is sized for thousands of steps; short edits need more)."""
    from ids_nerf.scenes.edit_scene import read_scene_info

    captions = read_scene_info(scene)["appearances"]
    return [
        "--load-dir",
        str(load_dir),
        "--pipeline.source-prompt",
        captions["source"],
        "--pipeline.target-prompt",
        captions["edited"],
        "--pipeline.diffusion-model",
        f"exact:{guidance_scene}",
        "--pipeline.fpr-scale",
        "0.1",
        "--optimizers.features-dc.optimizer.lr",
        str(colour_lr),
    ]


def make_offline_alexnet(torch_home: Path) -> Path:
    """Save an untrained AlexNet where torchvision looks for its weights, so nerfacto's LPIPS builds offline.

    Point ``TORCH_HOME`` at ``torch_home``; torchvision loads the cached file without checking its hash. LPIPS
    values computed with it are meaningless. Returns the checkpoint file.
    """
    from ids_nerf.evaluation.metrics import write_untrained_alexnet

    return write_untrained_alexnet(torch_home)


def offline_env(torch_home: Path) -> dict:
    """A copy of ``os.environ`` with ``TORCH_HOME`` set and every hub lookup switched off."""
    return {**os.environ, "TORCH_HOME": str(torch_home), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def train_source_nerfacto(
    scene: Path, output_dir: Path, env: dict, steps: int = 4, *extra: str, dataparser: Optional[Sequence[str]] = None
) -> Path:
    """Train nerfacto on a Blender-format ``scene`` for ``steps`` iterations with the real ``ns-train`` on the CPU.

    The config is cut down for speed (:data:`~ids_nerf.methods.CPU_NERFACTO`, 256 rays a batch); the
    checkpoint is written once, at the end; ``extra`` flags go after these. ``env`` must hold ``TORCH_HOME``
    with an offline AlexNet (see :func:`make_offline_alexnet`). Returns the run folder that holds ``config.yml``
    and ``nerfstudio_models/``. ``dataparser``: the dataparser subcommand and its flags, instead of blender-data
    of ``scene``.
    """
    if "TORCH_HOME" not in env:
        raise ValueError("env needs TORCH_HOME pointing at a folder made by make_offline_alexnet")
    run_env = {**env, "HF_HUB_OFFLINE": "1"}
    command = [
        *ns_command("ns-train"),
        "nerfacto",
        "--machine.device-type",
        "cpu",
        *run_folder_args(output_dir, "scene", "src", progress=False),
        "--max-num-iterations",
        str(steps),
        "--steps-per-save",
        "1000000",
        *CPU_NERFACTO,
        "--pipeline.datamanager.train-num-rays-per-batch",
        "256",
        "--pipeline.datamanager.eval-num-rays-per-batch",
        "256",
        "--pipeline.model.eval-num-rays-per-chunk",
        "1024",
        *extra,
        *(dataparser or ["blender-data", "--data", str(scene)]),
    ]
    result = subprocess.run(command, env=run_env, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"ns-train failed ({result.returncode}):\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
    run_dir = Path(output_dir) / "scene" / "nerfacto" / "src"
    if not (run_dir / "config.yml").is_file() or not any((run_dir / "nerfstudio_models").glob("*.ckpt")):
        raise RuntimeError(f"ns-train left no config.yml or checkpoint in {run_dir}:\n{result.stdout[-4000:]}")
    return run_dir
