"""``ids-nerf demo`` / ``make demo``: a real edit, offline, in minutes on a CPU.

It makes a synthetic scene (a red ball and a green box on a table), trains a reduced nerfacto on the
source appearance, edits it with ids-edit towards "a blue ball ..." scored by the exact-score model of
that scene (or by Stable Diffusion when ``--model`` names one that is available), evaluates the edit
against the ground-truth blue ball and prints the table.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import List, Literal, Optional

import torch

from ids_nerf.console import Stages, format_seconds, third_party_warnings_to
from ids_nerf.core.defaults import GUIDANCE_SCALE, MAX_STEP
from ids_nerf.errors import UserError
from ids_nerf.io import check_output_free
from ids_nerf.methods import (
    CPU_NERFACTO,
    METHOD_NAMES,
    RANDOM_BACKGROUND,
    SMALL_SPLATFACTO,
    SPLAT_EDIT_COLOUR_LR,
    for_device,
)

MethodName = Literal[METHOD_NAMES]
EXACT_MODEL_MAX_STEP = 600
"""The exact model's edits draw t below this: above it the posteriors blend other poses' views, and the ball
reached the oracle 3 dB sooner without them (docs/results-nerf.md, "CFG's overshoot")."""


def device_args() -> List[str]:
    return [] if torch.cuda.is_available() else ["--machine.device-type", "cpu"]


def offline_torch_home(out: Path) -> Optional[str]:
    """nerfacto builds LPIPS with torchvision's AlexNet, downloading it if absent. Offline without
    the real weights, point TORCH_HOME at an untrained stand-in so nerfacto can be built; our eval
    then skips LPIPS (it checks the weights' hash) and says so. Returns the folder, or None."""
    from ids_nerf.evaluation.metrics import alexnet_weights_path, write_untrained_alexnet

    if alexnet_weights_path().is_file():
        return None
    home = out / "torch-home"
    write_untrained_alexnet(home)
    return str(home)


@dataclass
class Demo:
    """Make a scene, train its source, edit it with IDS, evaluate against the ground truth."""

    out: Path = Path("outputs/demo")
    """Folder for the scene and the runs; must not exist or be empty."""
    model: str = "exact"
    """exact: the scene's exact-score model (offline); learned: the learned verification model shipped with the
    package (learned:default; learned:FOLDER for another; offline, docs/verification.md); or a Stable Diffusion
    hub id / folder."""
    method: MethodName = "ids-edit"
    """The edit; the splat methods train a splatfacto source and need CUDA (gsplat)."""
    size: int = 32
    """Image side of the scene in pixels."""
    views: int = 24
    """Training views."""
    source_steps: Optional[int] = None
    """Steps of the source training; default 600 for nerfacto, 1500 for splatfacto."""
    source_rays: int = 512
    """Rays per nerfacto step."""
    edit_steps: int = 120
    """ids-edit steps."""
    seed: int = 0
    """Scene seed."""
    oracle: bool = True
    """Also run the oracle: the same source fitted to the ground-truth edited training views with the edit's
    own optimizer, rate, steps and views; the table then puts the edit beside what the NeRF can reach."""
    guidance_scale: Optional[float] = None
    """The edit's CFG scale (--pipeline.guidance-scale). None: 1 with the exact model, whose conditional score
    is exact, so that CFG above 1 aims the edit past the target (docs/results-nerf.md, "CFG's overshoot");
    the paper's 7.5 with Stable Diffusion."""
    max_step: Optional[int] = None
    """The edit's largest timestep (--pipeline.max-step, exclusive, at most 1000). None: 600 with the exact
    model, whose posteriors above it blend the training views of other poses (the same section); the paper's
    949 with Stable Diffusion."""
    identity_mask: Literal["none", "score"] = "score"
    """The edit's --pipeline.identity-mask: score changes only where the prompts' predictions differ and holds
    the rest to the source (docs/results-nerf.md, "Identity in 3D"); none: the edit as without a mask."""

    @property
    def splat(self) -> bool:
        return self.method.endswith("-splat")

    def main(self):
        from ids_nerf.scenes.edit_scene import write_edit_scene
        from ids_nerf.workflow.runner import run_spec

        if self.splat and not torch.cuda.is_available():
            raise UserError(
                f"{self.method} needs a CUDA device: gsplat rasterizes on CUDA only; "
                "on this machine try --method ids-edit"
            )
        check_output_free(self.out)
        start = time.time()
        stages = Stages(5 if self.oracle else 4)
        print(
            f"ids-nerf demo: a synthetic scene, a source {'splatfacto' if self.splat else 'nerfacto'} "
            f"({self.source_steps_or_default()} steps), an {self.method} edit ({self.edit_steps} steps) scored by "
            f"{self.model_description()}, its evaluation. Into {self.out}/"
        )
        stages.start(f"scene: {self.views} views of {self.size}x{self.size} pixels")
        scene = write_edit_scene(self.out / "scene", size=self.size, views=self.views, seed=self.seed)
        stages.done(str(scene))
        spec = self.edit_spec(scene)
        # the runs' own logs keep everything; the console keeps only what a person reads
        env = self.environment()
        with third_party_warnings_to(self.out / "runs" / spec.name / "warnings.log"):
            result = run_spec(spec, env, stages=stages)
            if result.error:
                raise UserError(result.error)
            if self.oracle:
                self.run_oracle(spec, scene, result, stages, env)
        self.print_summary(result, time.time() - start)
        return result

    def run_oracle(self, spec, scene: Path, result, stages: Stages, env: dict) -> None:
        """The oracle edit of the demo's source, evaluated; its table beside the edit's in eval/oracle.md."""
        import contextlib
        import dataclasses

        from ids_nerf.evaluation.evaluate import evaluate_runs
        from ids_nerf.scenes.edit_scene import read_scene_info
        from ids_nerf.workflow.runner import edit_log, run_edit

        appearance = read_scene_info(scene)["edited"]
        images = ["--pipeline.oracle-images", str(scene / "appearances" / appearance / "train")]
        # a run folder of its own, so runs/<name>/<method>/ holds the edit alone
        oracle = dataclasses.replace(spec, name=f"{spec.name}-oracle", edit_args=[*spec.edit_args, *images])
        stages.start("oracle: the source fitted to the ground-truth edited views, as the edit runs")
        run = run_edit(oracle, result.source_run, env, stages.progress)
        with open(run.parent.parent / f"eval-{run.name}.log", "w") as log, contextlib.redirect_stdout(log):
            report = evaluate_runs(
                result.source_run / "config.yml", run / "config.yml", run / "eval", scene, appearance
            )
        stages.done(f"log: {edit_log(oracle, run.name)}")
        edited = json.loads((result.edit_run / "eval" / "metrics.json").read_text())["metrics"]
        (result.edit_run / "eval" / "oracle.md").write_text(oracle_table(edited, report.metrics, run))

    @property
    def pixel_space(self) -> bool:
        """A verification model (exact or learned): offline, in pixel space, at lambda 0.1."""
        return self.model in ("exact", "learned") or self.model.startswith("learned:")

    def model_description(self) -> str:
        names = {"exact": "the exact-score model", "learned": "the learned verification model"}
        return names.get(self.model, self.model)

    def diffusion_model(self, scene: Path) -> str:
        """The edit's --pipeline.diffusion-model."""
        return {"exact": f"exact:{scene}", "learned": "learned:default"}.get(self.model, self.model)

    def edit_guidance_scale(self) -> float:
        if self.guidance_scale is not None:
            return self.guidance_scale
        return 1.0 if self.model == "exact" else GUIDANCE_SCALE

    def edit_max_step(self) -> int:
        if self.max_step is not None:
            return self.max_step
        return EXACT_MODEL_MAX_STEP if self.model == "exact" else MAX_STEP

    def source_steps_or_default(self) -> int:
        return self.source_steps or (1500 if self.splat else 600)

    def environment(self) -> dict:
        """The commands' environment: offline for the exact model, and an AlexNet stand-in if needed."""
        env = dict(os.environ)
        if self.pixel_space:
            env.setdefault("HF_HUB_OFFLINE", "1")  # nothing to download: never wait on the network
        torch_home = offline_torch_home(self.out)
        if torch_home is not None:
            env["TORCH_HOME"] = os.environ["TORCH_HOME"] = torch_home
            print(
                "      No real AlexNet weights in the torch cache: nerfacto gets an untrained stand-in, "
                "LPIPS is skipped."
            )
        return env

    def edit_spec(self, scene: Path):
        """The demo's edit as an edit file would describe it: the scene's captions as prompts."""
        from ids_nerf.scenes.edit_scene import read_scene_info
        from ids_nerf.workflow.spec import EditSpec

        captions = read_scene_info(scene)["appearances"]
        source_model = (
            SMALL_SPLATFACTO
            if self.splat
            else [
                *CPU_NERFACTO,
                *RANDOM_BACKGROUND,
                "--pipeline.datamanager.train-num-rays-per-batch",
                str(self.source_rays),
            ]
        )
        return EditSpec(
            name="demo",
            scene=scene,
            source_prompt=captions["source"],
            target_prompt=captions["edited"],
            dataparser_args=["--alpha-color", "None"],
            source_method="splatfacto" if self.splat else "nerfacto",
            source_args=[
                *device_args(),
                "--max-num-iterations",
                str(self.source_steps_or_default()),
                *for_device(source_model, torch.cuda.is_available()),
            ],
            method=self.method,
            edit_args=[
                *device_args(),
                "--max-num-iterations",
                str(self.edit_steps),
                "--pipeline.diffusion-model",
                self.diffusion_model(scene),
                # lambda 0.1 rather than the paper's 1 (tuned for SD latents): best with the exact-score
                # model at CFG 7.5, in 2D and on the NeRF (docs/results*.md); the learned model shares its pixels
                *(["--pipeline.fpr-scale", "0.1"] if self.pixel_space else []),
                "--pipeline.guidance-scale",
                f"{self.edit_guidance_scale():g}",
                "--pipeline.max-step",
                str(self.edit_max_step()),
                *(SPLAT_EDIT_COLOUR_LR if self.splat else []),
                *(["--pipeline.identity-mask", self.identity_mask] if self.identity_mask != "none" else []),
            ],
            output_dir=self.out / "runs",
        )

    @staticmethod
    def print_summary(result, seconds: float) -> None:
        """The metrics table and what to open."""
        eval_dir = result.edit_run / "eval"
        print()
        print((eval_dir / "metrics.md").read_text())
        if (eval_dir / "oracle.md").is_file():
            print((eval_dir / "oracle.md").read_text())
        print(f"Demo finished in {format_seconds(seconds)}. Open:")
        print(f"  {eval_dir / 'grid.png'}  (a row per test view: source | edited | ground-truth target | difference)")
        print(f"  {eval_dir / 'metrics.md'}  (the table above)")
        if (eval_dir / "oracle.md").is_file():
            print(f"  {eval_dir / 'oracle.md'}  (the edit beside the oracle)")
        print(f"  logs:       {result.edit_run.parent.parent}/*.log")
        print(f"  view it:    ns-viewer --load-config {result.edit_run / 'config.yml'}")


ORACLE_ROWS = ("target_psnr_", "identity_psnr_", "leak_")
"""The per-region metrics the oracle table compares (``ids_nerf.evaluation.regions``)."""


def oracle_table(edited: dict, oracle: dict, oracle_run: Path) -> str:
    """Markdown: each region metric of the edit beside the oracle's, and the difference."""
    lines = [
        "| region metric (test views) | edit | oracle | edit - oracle |",
        "| --- | --- | --- | --- |",
    ]
    for key, value in edited.items():
        if key.startswith(ORACLE_ROWS) and key in oracle and not math.isnan(value):
            lines.append(f"| {key} | {value:.3f} | {oracle[key]:.3f} | {value - oracle[key]:+.3f} |")
    note = (
        "PSNR in dB; leak: mean absolute colour change (0-1). The oracle is the same source fitted to the "
        f"ground-truth edited training views with the edit's own settings: {oracle_run}"
    )
    return "\n".join(lines + ["", note]) + "\n"
