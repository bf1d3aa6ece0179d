"""``ids-nerf identity-3d``: where a 3D edit loses identity, measured over the edit's course.

Every arm edits the same source (the demo's recipe: nerfacto, 600 steps, 512 rays) of the study's scene with
``ns-train``; each run saves a checkpoint every ``--save-every`` steps, and each named checkpoint is rendered
on the test views and measured (``ids-nerf eval``'s metrics) against the ground truth. The oracle arm is the
same edit fitted to the ground-truth edited training images (``--pipeline.oracle-images``): with exact
supervision, what the NeRF itself does to the neighbour, and what is left to the distillation.

Layout under ``--cache``: the study's scene and sources (``nerf_runs``), and
``identity/<case>/<arm>-<key>-s<seed>-n<steps>/`` per edit (its log, run folder, ``course.json``).
"""

from __future__ import annotations

import hashlib
import json
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import torch

from ids_nerf.console import format_seconds
from ids_nerf.errors import UserError
from ids_nerf.study import nerf_report
from ids_nerf.study.nerf_grid import EDIT_CASES, SourceRun
from ids_nerf.study.nerf_runs import STDOUT_LOCK, device_flags, scene_folder, study_env, train_source
from ids_nerf.workflow.runner import run_folder_args, run_ns_train

MASK = ("--pipeline.identity-mask", "score", "--pipeline.mask-threshold", "0.3")
DEMO_IDS = ("--pipeline.fpr-scale", "0.1")  # the demo's lambda for the exact-score model
DEMO_CFG_T = ("--pipeline.guidance-scale", "1", "--pipeline.max-step", "600")  # the demo's CFG and t range


def anchor(weight: float) -> Tuple[str, str]:
    """The anchor's flag, always given: an arm's cached runs must not change meaning with the default."""
    return ("--pipeline.identity-anchor", f"{weight:g}")


@dataclass(frozen=True)
class IdentityArm:
    """One way to edit: an ns-train method and its extra flags."""

    method: str
    flags: Tuple[str, ...]
    description: str
    oracle: bool = False
    region: bool = False
    """Add --pipeline.edit-region: the edited object's box (:func:`edited_object_region`)."""

    def key(self) -> str:
        """Part of the run's folder name: another method or flags never reuse a cached run."""
        identity = [self.method, self.flags, self.oracle] + ([REGION_FLOOR] if self.region else [])
        return hashlib.sha256(json.dumps(identity).encode()).hexdigest()[:8]


REGION_FLOOR = 0.03
"""Lowest z of the study's region boxes: just above the table's top (0.02), so the region holds no table."""


def edited_object_region(case: str) -> List[str]:
    """``--pipeline.edit-region`` of the object ``case`` edits: its box from ``ids-nerf scene-bounds`` (the
    blender-data parser leaves the scene's coordinates as they are), its floor raised to :data:`REGION_FLOOR`."""
    from ids_nerf.cli.scene_bounds import synthetic_object_boxes

    low, high = dict(synthetic_object_boxes())[EDIT_CASES[case].edited]
    low = [*low[:2], max(float(low[2]), REGION_FLOOR)]
    return ["--pipeline.edit-region", *(f"{float(v):.2f}" for v in [*low, *high])]


ARMS: Dict[str, IdentityArm] = {
    "oracle": IdentityArm("dds-edit", (), "the source fitted to the ground-truth edited training views", True),
    "dds": IdentityArm("dds-edit", (), "DDS, as the edit runs today"),
    "ids": IdentityArm("ids-edit", DEMO_IDS, "IDS λ 0.1, as the demo runs today"),
    "dds-mask": IdentityArm("dds-edit", (*MASK, *anchor(10)), "DDS with the score's edit mask, anchor 10 outside it"),
    "ids-mask": IdentityArm("ids-edit", (*DEMO_IDS, *MASK, *anchor(10)), "IDS with the score's mask, anchor 10"),
    "dds-mask-w1": IdentityArm("dds-edit", (*MASK, *anchor(1)), "DDS, mask, anchor 1"),
    "ids-mask-w1": IdentityArm("ids-edit", (*DEMO_IDS, *MASK, *anchor(1)), "IDS, mask, anchor 1"),
    "ids-mask-gate": IdentityArm(
        "ids-edit", (*DEMO_IDS, *MASK, *anchor(0)), "IDS, the direction only cut outside the mask (anchor 0)"
    ),
    "ids-mask-w30": IdentityArm("ids-edit", (*DEMO_IDS, *MASK, *anchor(30)), "IDS, mask, anchor 30"),
    "ids-region-cut": IdentityArm(
        "ids-edit",
        (*DEMO_IDS, "--pipeline.region-cut", "True", "--pipeline.identity-anchor", "0"),
        "IDS, the edited object's box cuts samples outside it (the region before the mask)",
        region=True,
    ),
    "ids-region": IdentityArm(
        "ids-edit",
        (*DEMO_IDS, "--pipeline.identity-mask", "region", *anchor(10)),
        "IDS, the edited object's box as a mask per view and the anchor outside it",
        region=True,
    ),
    "ids-region-cfg1-t600": IdentityArm(
        "ids-edit",
        (*DEMO_IDS, "--pipeline.identity-mask", "region", *anchor(10), *DEMO_CFG_T),
        "IDS, the edited object's box as the mask, anchor 10, no CFG, t below 600 (the demo's settings)",
        region=True,
    ),
    "ids-cfg3": IdentityArm(
        "ids-edit", (*DEMO_IDS, "--pipeline.guidance-scale", "3"), "suspect CFG overshoot: CFG 3 instead of 7.5"
    ),
    "ids-mask-cfg3": IdentityArm(
        "ids-edit",
        (*DEMO_IDS, *MASK, *anchor(10), "--pipeline.guidance-scale", "3"),
        "IDS with the score's mask, anchor 10, CFG 3 (less overshoot on the edited object)",
    ),
    "ids-cfg1": IdentityArm("ids-edit", (*DEMO_IDS, "--pipeline.guidance-scale", "1"), "IDS without a mask, no CFG"),
    "ids-mask-cfg1": IdentityArm(
        "ids-edit",
        (*DEMO_IDS, *MASK, *anchor(10), "--pipeline.guidance-scale", "1"),
        "IDS with the score's mask, anchor 10, no CFG (the exact model's conditional score as it is)",
    ),
    "ids-mask-cfg1-t600": IdentityArm(
        "ids-edit",
        (*DEMO_IDS, *MASK, *anchor(10), "--pipeline.guidance-scale", "1", "--pipeline.max-step", "600"),
        "IDS with the score's mask, anchor 10, no CFG, t below 600 (where the posteriors blur views less)",
    ),
    "ids-cfg1-t600": IdentityArm(
        "ids-edit",
        (*DEMO_IDS, "--pipeline.guidance-scale", "1", "--pipeline.max-step", "600"),
        "IDS without a mask, no CFG, t below 600 (what the mask adds at the demo's settings)",
    ),
    "dds-mask-cfg1-t600": IdentityArm(
        "dds-edit",
        (*MASK, *anchor(10), "--pipeline.guidance-scale", "1", "--pipeline.max-step", "600"),
        "DDS with the score's mask, anchor 10, no CFG, t below 600 (the demo's settings)",
    ),
    "dds-mask-cfg1": IdentityArm(
        "dds-edit",
        (*MASK, *anchor(10), "--pipeline.guidance-scale", "1"),
        "DDS with the score's mask, anchor 10, no CFG",
    ),
    "ids-mask-lr3e-3": IdentityArm(
        "ids-edit",
        (*DEMO_IDS, *MASK, *anchor(10), *("--optimizers.fields.optimizer.lr", "3e-3")),
        "IDS with the score's mask, anchor 10, the field's rate 3e-3 instead of 1e-3 (a faster edited object)",
    ),
    "ids-frozen-mlp": IdentityArm(
        "ids-edit",
        (*DEMO_IDS, "--pipeline.frozen-modules", "field.mlp_head"),
        "suspect the shared colour MLP: it is frozen, only the hash grid and density move",
    ),
    "ids-sgd": IdentityArm(
        "ids-edit",
        (*DEMO_IDS, "--edit-optimizer", "sgd", "--sgd-lr-scale", "0.3"),
        "suspect Adam's per-parameter normalisation: plain SGD at 0.3x the rate",
    ),
    "ids-hold1": IdentityArm(
        "ids-edit", (*DEMO_IDS, "--pipeline.view-hold-steps", "1"), "suspect the view hold: a new view every step"
    ),
    "ids-hold8": IdentityArm("ids-edit", (*DEMO_IDS, "--pipeline.view-hold-steps", "8"), "view held 8 steps"),
    "ids-lr3e-4": IdentityArm(
        "ids-edit",
        (
            *DEMO_IDS,
            "--optimizers.fields.optimizer.lr",
            "3e-4",
            "--optimizers.proposal-networks.optimizer.lr",
            "3e-4",
        ),
        "suspect the learning rate: 3e-4 instead of 1e-3",
    ),
}
"""The arms the study knows; ``--arms`` picks among them."""


@dataclass
class IdentityStudy:
    """Each arm's course over an edit's steps on the study's scene, beside the oracle's."""

    cache: Path = Path("outputs/identity-cache")
    """Scene, sources and edits; a rerun with the same settings reuses what is there."""
    out: Path = Path("docs/results-nerf.md")
    """The report: its identity-3d section (between its own markers) is replaced, the rest kept."""
    edits: List[str] = field(default_factory=lambda: ["blue-ball", "striped-box"])
    """Edit cases (``nerf_grid.EDIT_CASES``)."""
    arms: List[str] = field(default_factory=lambda: ["oracle", "dds", "ids", "dds-mask", "ids-mask"])
    """Arms, by name (:data:`ARMS`)."""
    steps: int = 600
    """Edit steps of every run (the default ns-train edit runs 3000)."""
    checkpoints: List[int] = field(default_factory=lambda: [60, 120, 300, 600])
    """Steps measured; each at most --steps and a multiple of --save-every, or --steps itself."""
    save_every: int = 60
    """ns-train's --steps-per-save for the runs."""
    seeds: int = 1
    """Edit seeds per arm (view order, timesteps, noise)."""
    source_steps: int = 600
    """Steps of the source nerfacto (the demo's)."""
    source_seed: int = 0
    """``--machine.seed`` of the source's training (the demo trains its own with 42). Edits of a source other
    than seed 0's are cached under ``identity/source-<seed>/``."""
    size: int = 32
    """Image side of the scene in pixels (the demo's)."""
    views: int = 24
    """Training views (the demo's)."""
    jobs: int = 1
    """Edits run at once, each with (CPU cores / jobs) threads."""
    section: str = "course"
    """Name of the report's section this run replaces (several studies can share one report)."""

    def main(self) -> Path:
        self.check()
        start = time.time()
        self.cache = self.cache.resolve()
        env = study_env(self.cache)
        if self.jobs > 1 and "OMP_NUM_THREADS" not in env:
            env["OMP_NUM_THREADS"] = str(max(1, (torch.get_num_threads() or 1) // self.jobs))
        scene = scene_folder(self.cache, self.size, self.views, 0)
        recipe = SourceRun("nerfacto", self.source_seed, self.source_steps, f"{self.size}px-{self.views}v-s0")
        source = train_source(self.cache, scene, recipe, env)
        plan = [(case, arm, seed) for case in self.edits for arm in self.arms for seed in range(self.seeds)]
        with ThreadPoolExecutor(self.jobs) as pool:
            courses = list(pool.map(lambda job: self.run(scene, source, *job, env), plan))
        section = self.report_section(plan, courses, time.time() - start)
        document = self.out.read_text() if self.out.is_file() else "# Identity in 3D\n"
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.out.write_text(nerf_report.replace_section(document, section, *markers(self.section)))
        print(f"Identity study written to {self.out} ({format_seconds(time.time() - start)})")
        return self.out

    def check(self) -> None:
        unknown = [a for a in self.arms if a not in ARMS] + [e for e in self.edits if e not in EDIT_CASES]
        if unknown:
            raise UserError(f"unknown arm or edit {unknown}; arms: {', '.join(ARMS)}; edits: {', '.join(EDIT_CASES)}")
        bad = [c for c in self.checkpoints if c < 1 or c > self.steps or (c % self.save_every and c != self.steps)]
        if bad or self.save_every < 1 or min(self.seeds, self.jobs, self.source_steps) < 1:
            raise UserError(
                f"checkpoints {bad} cannot be measured: each must be a multiple of --save-every ({self.save_every}) "
                f"or --steps ({self.steps}); --seeds and --jobs at least 1"
            )

    def run(self, scene: Path, source: Path, case: str, arm_name: str, seed: int, env) -> Dict[int, Dict[str, float]]:
        """One edit's course: ``{step: metrics}``, from the cache or run and measured now."""
        arm, appearance = ARMS[arm_name], EDIT_CASES[case].appearance
        base = f"{arm_name}-{arm.key()}-s{seed}"
        root = self.cache / "identity" / (f"source-{self.source_seed}" if self.source_seed else "") / case
        cached = self.cached_course(root, base, arm.method, source, scene, appearance)
        if cached is not None:
            return cached
        folder = root / f"{base}-n{self.steps}"
        saved = folder / "course.json"
        captions = json.loads((scene / "scene.json").read_text())["appearances"]
        oracle = ["--pipeline.oracle-images", str(scene / "appearances" / appearance / "train")] if arm.oracle else []
        region = edited_object_region(case) if arm.region else []
        args = [
            arm.method,
            *run_folder_args(folder, "edit", "edit"),
            "--load-dir",
            str(source / "nerfstudio_models"),
            "--pipeline.source-prompt",
            captions["source"],
            "--pipeline.target-prompt",
            captions[appearance],
            *device_flags(),
            "--max-num-iterations",
            str(self.steps),
            "--steps-per-save",
            str(self.save_every),
            "--save-only-latest-checkpoint",
            "False",
            "--pipeline.seed",
            str(seed),
            "--pipeline.diffusion-model",
            f"exact:{scene}",
            "--pipeline.log-images-every",
            "0",
            *arm.flags,
            *oracle,
            *region,
            "blender-data",
            "--data",
            str(scene),
            "--alpha-color",
            "None",
        ]
        begin = time.time()
        run_ns_train(args, folder / "edit.log", env)
        seconds = time.time() - begin
        metrics = measure_course(
            source, folder / "edit" / arm.method / "edit", scene, appearance, self.checkpoints, self.steps
        )
        saved.write_text(json.dumps({"steps": self.steps, "seconds": seconds, "metrics": metrics}, indent=1))
        with STDOUT_LOCK:
            print(f"{case} {arm_name} seed {seed}: {format_seconds(seconds)}", flush=True)
        return {int(k): v for k, v in metrics.items()}

    def cached_course(
        self, root: Path, base: str, method: str, source: Path, scene: Path, appearance: str
    ) -> Optional[Dict[int, Dict[str, float]]]:
        """The course of this arm and seed's cached run of ``--steps``, or ``None``. Checkpoints it saved
        but did not measure are measured now, so a run stopped after a checkpoint still serves the steps it
        reached. Runs are in ``<base>-n<steps>``; ``<base>`` alone is the 300-step layout of before."""
        for folder in (root / f"{base}-n{self.steps}", root / base):
            saved = folder / "course.json"
            course = json.loads(saved.read_text()) if saved.is_file() else {}
            if course.get("steps") != self.steps:
                continue
            run = folder / "edit" / method / "edit"
            missing = [step for step in self.checkpoints if str(step) not in course["metrics"]]
            if any(not checkpoint_file(run, step, self.steps).is_file() for step in missing):
                continue
            if missing:
                course["metrics"].update(measure_course(source, run, scene, appearance, missing, self.steps))
                saved.write_text(json.dumps(course, indent=1))
            return {int(k): v for k, v in course["metrics"].items()}
        return None

    def report_section(self, plan, courses, seconds: float) -> str:
        """The report: per edit, a table of arms against checkpoints (edited object to target | neighbour
        against the source, dB; mean over seeds), then each arm's distance to the oracle."""
        lines = [
            f"Written by `ids-nerf identity-3d --edits {' '.join(self.edits)} --arms {' '.join(self.arms)} "
            f"--steps {self.steps} --seeds {self.seeds}"
            + (f" --source-seed {self.source_seed}" if self.source_seed else "")
            + f"` in {format_seconds(seconds)} (cached runs count no time). "
            f"Scene {self.size} px, {self.views} training views, the demo's source recipe (nerfacto, "
            f"{self.source_steps} steps"
            + (f", trained with seed {self.source_seed}" if self.source_seed else "")
            + "); "
            "test views. Each cell: edited object vs the ground-truth target \\| neighbour vs the source (PSNR, "
            f"dB), mean over {self.seeds} seed(s){' ± their sample sd' * (self.seeds > 1)}. "
            "The checkpoint of step s has had s + 1 updates (the last: s).",
            "",
        ]
        for case in self.edits:
            c = EDIT_CASES[case]

            def values(arm: str, step: int) -> Tuple[List[float], List[float]]:
                """Per seed, in seed order: the edited object to target and the neighbour kept."""
                picked = [course for (pc, pa, _), course in zip(plan, courses) if pc == case and pa == arm]
                return (
                    [m[step][f"target_psnr_{c.edited}"] for m in picked],
                    [m[step][f"identity_psnr_{c.neighbour}"] for m in picked],
                )

            header = "| arm | " + " | ".join(f"step {s}" for s in self.checkpoints) + " |"
            rule = "| --- |" + " --- |" * len(self.checkpoints)
            lines += [f"### {case}: {c.description} ({c.edited} to target \\| {c.neighbour} kept)", "", header, rule]
            for arm in self.arms:
                cells = [" \\| ".join(map(_spread, values(arm, step))) for step in self.checkpoints]
                lines.append(f"| {arm}: {ARMS[arm].description} | " + " | ".join(cells) + " |")
            if "oracle" in self.arms:
                paired = " (paired by seed: each seed's edit against the oracle of the same seed)" * (self.seeds > 1)
                lines += [
                    "",
                    f"Against the oracle at the same step (dB, edit - oracle; {c.edited} \\| {c.neighbour}){paired}:",
                ]
                lines += ["", header, rule]
                for arm in (a for a in self.arms if a != "oracle"):
                    gaps = []
                    for step in self.checkpoints:
                        edit, oracle = values(arm, step), values("oracle", step)
                        gaps.append(
                            " \\| ".join(
                                _spread([e - o for e, o in zip(edit[i], oracle[i])], signed=True) for i in (0, 1)
                            )
                        )
                    lines.append(f"| {arm} | " + " | ".join(gaps) + " |")
            others = [a for a in self.arms if a != "oracle"]
            if len(others) > 1:
                lines += ["", *self.equal_target_table(others, values, header, rule, c.edited, c.neighbour)]
            lines.append("")
        return "\n".join(lines)

    def equal_target_table(self, arms, values, header: str, rule: str, edited: str, neighbour: str) -> List[str]:
        """Each arm's neighbour against the first arm's at the same edited-object PSNR: per seed, the first
        arm's course of that seed read at the PSNR this arm reached (:func:`at_equal_target`)."""
        reference = arms[0]
        lines = [
            f"At equal target, against {reference} (dB, {neighbour} of the arm - {neighbour} of {reference} "
            f"where {reference}'s course reached the arm's {edited} PSNR; linear between {reference}'s "
            "checkpoints, '-' where a seed's PSNR lies outside its course):",
            "",
            header,
            rule,
        ]
        courses = {  # per seed: [(edited, neighbour)] at each checkpoint, in step order
            arm: list(zip(*(zip(*values(arm, step)) for step in self.checkpoints))) for arm in arms
        }
        for arm in arms[1:]:
            cells = []
            for k in range(len(self.checkpoints)):
                gaps = []
                for seed, course in enumerate(courses[arm]):
                    target, kept = course[k]
                    there = at_equal_target(courses[reference][seed], target)
                    gaps.append(None if there is None else kept - there)
                cells.append("-" if None in gaps else _spread(gaps, signed=True))
            lines.append(f"| {arm} | " + " | ".join(cells) + " |")
        return lines


def at_equal_target(course: Sequence[Tuple[float, float]], target: float) -> Optional[float]:
    """The neighbour's PSNR along ``course`` (``(edited, neighbour)`` PSNRs at its checkpoints, in step order)
    where the edited object's PSNR was ``target``: linear between the first two consecutive checkpoints that
    bracket it; None when no pair does (no extrapolation)."""
    for (e0, n0), (e1, n1) in zip(course, course[1:]):
        if min(e0, e1) <= target <= max(e0, e1):
            return n0 if e1 == e0 else n0 + (target - e0) / (e1 - e0) * (n1 - n0)
    return None


def _spread(values: Sequence[float], signed: bool = False) -> str:
    """The mean, and with several seeds their sample sd: ``20.49 ± 0.31``."""
    mean = f"{_mean(values):+.2f}" if signed else f"{_mean(values):.2f}"
    return f"{mean} ± {statistics.stdev(values):.2f}" if len(values) > 1 else mean


def markers(section: str) -> Tuple[str, str]:
    """The comments around a report section of ``identity-3d``."""
    return f"<!-- identity-3d:{section}:begin -->", f"<!-- identity-3d:{section}:end -->"


def _mean(values: Sequence[float]) -> float:
    return statistics.fmean(values) if values else float("nan")


def checkpoint_file(run: Path, step: int, steps: int) -> Path:
    """The checkpoint of ``step``: nerfstudio names the last one by the loop's last index (``steps - 1``)."""
    index = steps - 1 if step == steps else step
    return run / "nerfstudio_models" / f"step-{index:09d}.ckpt"


def measure_course(
    source: Path, run: Path, scene: Path, appearance: str, steps: Sequence[int], length: int
) -> Dict[str, Dict[str, float]]:
    """``ids-nerf eval``'s test-view metrics of ``run``, an edit of ``length`` steps, at each of ``steps``
    (the run opened once, each checkpoint loaded in turn); each step's eval folder (grid.png, metrics.md)
    under ``run/eval-<step>``."""
    from ids_nerf.evaluation.evaluate import evaluate_runs
    from ids_nerf.nerfstudio.compare import open_run, render_cameras, render_run_views

    with STDOUT_LOCK, _quiet():
        source_renders = render_run_views(source / "config.yml", "test", with_geometry=True)
        pipeline = open_run(run / "config.yml")
        out = {}
        for step in steps:
            state = torch.load(checkpoint_file(run, step, length), map_location="cpu", weights_only=False)
            pipeline.load_pipeline(state["pipeline"], state["step"])
            renders = render_cameras(pipeline, "test", list(range(len(source_renders))), with_geometry=True)
            report = evaluate_runs(
                source / "config.yml",
                run / "config.yml",
                run / f"eval-{step}",
                scene=scene,
                target_appearance=appearance,
                source_renders=source_renders,
                edited_renders=renders,
            )
            out[str(step)] = report.metrics
    return out


def _quiet():
    import contextlib
    import io

    return contextlib.redirect_stdout(io.StringIO())
