"""Running the 3D study's trainings and edits through the real ``ns-train``, with a cache.

Layout under the cache folder (every name a key of what made it, so a rerun with the same settings finds
it and one with other settings never does):

    scene-<size>px-<views>v-s<seed>/        the synthetic scene (ids-nerf make-scene, with striped-box)
    sources/<backbone>-<key>/run/<backbone>/source/
                                             a source run (config.yml, nerfstudio_models/)
    edits/<key>/edit/<method>/edit/          an edit run; in edits/<key>/ also its log, eval/, result.json
                                             (metrics and times) and renders.pt (test views, for figures)
    torch-home/                              an untrained AlexNet stand-in, only if the real one is absent

Edits are evaluated in-process with ``ids-nerf eval``'s ``evaluate_runs`` on the test views.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator, List, Optional

import torch

from ids_nerf.study.nerf_grid import EDIT_CASES, SCENE_APPEARANCES, EditRun, SourceRun
from ids_nerf.workflow.runner import ns_train, run_folder_args, run_ns_train


@dataclass
class EditOutcome:
    """What one edit gave: the test-view metrics (``ids-nerf eval``'s keys) and its times in seconds."""

    metrics: Dict[str, float]
    edit_seconds: float
    eval_seconds: float
    cached: bool = False


def scene_folder(cache: Path, size: int, views: int, seed: int) -> Path:
    """The study's scene under ``cache``, written on first use (deterministic: same arguments, same files)."""
    from ids_nerf.io import staged_output_dir
    from ids_nerf.scenes.edit_scene import write_edit_scene

    folder = cache / f"scene-{size}px-{views}v-s{seed}"
    if not (folder / "scene.json").is_file():
        with staged_output_dir(folder) as staging:
            write_edit_scene(staging, size=size, views=views, seed=seed, appearances=SCENE_APPEARANCES)
    return folder


def needs_stand_in(backbone: str) -> bool:
    """splatfacto without CUDA: gsplat cannot rasterize, the tests' dense CPU rasterizer must."""
    return backbone == "splatfacto" and not torch.cuda.is_available()


def _stand_in_module():
    from ids_nerf.testing import gsplat_cpu

    return gsplat_cpu


def launcher(backbone: str) -> List[str]:
    """The command that starts ns-train for ``backbone``: the stand-in's runner on a CPU-only splatfacto."""
    if needs_stand_in(backbone):
        return [sys.executable, "-m", "ids_nerf.testing.ns_run", "ns-train"]
    return ns_train()


@contextlib.contextmanager
def renderer(backbone: str) -> Iterator[None]:
    """In-process rendering (the evaluation) with the CPU stand-in where ``launcher`` uses it."""
    if needs_stand_in(backbone):
        with _stand_in_module().use_cpu_rasterizer():
            yield
    else:
        yield


def device_flags() -> List[str]:
    return [] if torch.cuda.is_available() else ["--machine.device-type", "cpu"]


def _data(scene: Path) -> List[str]:
    return ["blender-data", "--data", str(scene), "--alpha-color", "None"]


def source_dir(cache: Path, source: SourceRun) -> Path:
    return cache / "sources" / f"{source.backbone}-{source.key()}"


def train_source(cache: Path, scene: Path, source: SourceRun, env: Dict[str, str]) -> Path:
    """The source run of ``source``: from the cache, or trained now. Returns the run folder."""
    folder = source_dir(cache, source)
    method = source.backbone  # the source methods are nerfstudio's own, named like the backbones
    run = folder / "run" / method / "source"  # nerfstudio's output_dir/experiment/method/timestamp
    if any((run / "nerfstudio_models").glob("*.ckpt")):
        return run
    args = [method, *run_folder_args(folder, "run", "source"), *source.args(device_flags()), *_data(scene)]
    run_ns_train(args, folder / "source.log", env, launcher=launcher(source.backbone))
    return run


def edit_dir(cache: Path, edit: EditRun) -> Path:
    return cache / "edits" / edit.key()


def is_done(cache: Path, edit: EditRun) -> bool:
    """Whether ``edit`` ran and was evaluated before (its result is in the cache)."""
    return (edit_dir(cache, edit) / "result.json").is_file()


STDOUT_LOCK = threading.Lock()
"""Held while :func:`evaluate` swaps the process's stdout and rasterizer, so that study threads neither
print into the swallowed output nor render with another thread's rasterizer; printers take it too."""


def run_edit(cache: Path, scene: Path, edit: EditRun, env: Dict[str, str]) -> EditOutcome:
    """Train (if needed) the edit's source, run the edit and evaluate it; cached by the edit's key."""
    folder = edit_dir(cache, edit)
    result_file = folder / "result.json"
    if is_done(cache, edit):
        saved = json.loads(result_file.read_text())
        return EditOutcome(saved["metrics"], saved["edit_seconds"], saved["eval_seconds"], cached=True)
    source = train_source(cache, scene, edit.source, env)
    captions = json.loads((scene / "scene.json").read_text())["appearances"]
    case = EDIT_CASES[edit.case]
    args = [
        edit.method,
        *run_folder_args(folder, "edit", "edit"),
        "--load-dir",
        str(source / "nerfstudio_models"),
        "--pipeline.source-prompt",
        captions["source"],
        "--pipeline.target-prompt",
        captions[case.appearance],
        *edit.args(device_flags(), edit.diffusion_model(scene)),
        *_data(scene),
    ]
    start = time.time()
    run_ns_train(args, folder / "edit.log", env, launcher=launcher(edit.source.backbone))
    edit_seconds = time.time() - start
    start = time.time()
    report = evaluate(source, folder / "edit" / edit.method / "edit", scene, case.appearance, edit.source.backbone)
    eval_seconds = time.time() - start
    torch.save({k: torch.stack(v) for k, v in report.renders.items()}, folder / "renders.pt")
    payload = {"metrics": report.metrics, "edit_seconds": edit_seconds, "eval_seconds": eval_seconds}
    result_file.write_text(json.dumps({**payload, "edit": repr(edit)}, indent=1))
    return EditOutcome(report.metrics, edit_seconds, eval_seconds)


def evaluate(source: Path, edited: Path, scene: Path, appearance: str, backbone: str):
    """``ids-nerf eval`` of one edit (test views), quietly, keeping the renders for the figures. The source's
    renders are made once per source and kept beside it (``test-renders.pt``)."""
    from ids_nerf.evaluation.evaluate import evaluate_runs
    from ids_nerf.nerfstudio.compare import render_run_views

    saved = source / "test-renders.pt"
    with STDOUT_LOCK, renderer(backbone), contextlib.redirect_stdout(io.StringIO()):  # nerfstudio's chatter
        if not saved.is_file():
            torch.save(render_run_views(source / "config.yml", "test", with_geometry=True), saved)
        return evaluate_runs(
            source / "config.yml",
            edited / "config.yml",
            edited.parent.parent.parent / "eval",
            scene=scene,
            target_appearance=appearance,
            keep_renders=True,
            source_renders=torch.load(saved),
        )


def renders(cache: Path, edit: EditRun) -> Optional[Dict[str, torch.Tensor]]:
    """The saved test-view renders of a finished edit (source, edited, target ``[V, 3, H, W]``), or None."""
    path = edit_dir(cache, edit) / "renders.pt"
    return torch.load(path) if path.is_file() else None


def study_env(cache: Path) -> Dict[str, str]:
    """The edits' environment: offline, and an AlexNet stand-in where the real weights are absent (nerfacto
    builds LPIPS at start-up; the evaluation then skips LPIPS and says so)."""
    from ids_nerf.demo import offline_torch_home

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    torch_home = offline_torch_home(cache)
    if torch_home is not None:
        env["TORCH_HOME"] = os.environ["TORCH_HOME"] = torch_home  # the in-process evaluation too
    return env


DIAGNOSTICS = ("ids/fpr_distance_before", "ids/fpr_distance_after", "ids/direction_norm", "ids/latent_change")
"""Scalars every edit step logs (``IDSEditPipeline.edit_step``) that say why IDS and DDS differ: the
posterior distance ``||z_src - z_0|t||`` before and after FPR (DDS logs only the unrefined one, as
"after"), the norm of the direction that reaches the NeRF, and how far the render's latent has moved."""


def step_diagnostics(cache: Path, edit: EditRun) -> Dict[str, float]:
    """Means over the logged steps (every 10th: nerfstudio's steps-per-log) of :data:`DIAGNOSTICS`, and the
    direction norm's first and last logged values, read from the run's tensorboard log; keys
    ``diag_<name>``. Empty when the log is gone."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = edit_dir(cache, edit) / "edit" / edit.method / "edit"
    if not any(run.glob("events.out.tfevents.*")):
        return {}
    events = EventAccumulator(str(run), size_guidance={"scalars": 0})
    events.Reload()
    tags = set(events.Tags()["scalars"])
    out = {}
    for tag in DIAGNOSTICS:
        logged = f"Train Metrics Dict/{tag}"  # nerfstudio's name for a metric the step returns
        if logged not in tags:
            continue
        values = [event.value for event in sorted(events.Scalars(logged), key=lambda e: e.step)]
        name = tag.split("/")[1]
        out[f"diag_{name}"] = sum(values) / len(values)
        if tag == "ids/direction_norm":
            out[f"diag_{name}_first"], out[f"diag_{name}_last"] = values[0], values[-1]
    return out
