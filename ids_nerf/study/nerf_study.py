"""``ids-nerf study-3d``: IDS against DDS on whole scenes, through the real ns-train, with identity measured
object by object. Writes its section of docs/results-nerf.md and one figure per backbone and edit."""

from __future__ import annotations

import itertools
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List

from ids_nerf.console import format_seconds
from ids_nerf.core.defaults import MAX_STEP
from ids_nerf.errors import UserError
from ids_nerf.study import nerf_report as report
from ids_nerf.study.nerf_grid import (
    BACKBONES,
    EDIT_CASES,
    EditRun,
    SourceRun,
    arms,
    optimizer_flags,
    settings_label,
)
from ids_nerf.study.nerf_runs import (
    STDOUT_LOCK,
    is_done,
    renders,
    run_edit,
    scene_folder,
    step_diagnostics,
    study_env,
    train_source,
)

DEFAULTS = {
    "sources": 2,
    "seeds": 3,
    "fpr_scales": [0.01, 0.1, 1.0],
    "backbones": ["nerfacto", "splatfacto"],
    "edits": ["blue-ball", "striped-box"],
}
"""The settings below which a run calls itself reduced in its report (the issue's minimum grid)."""


@dataclass
class NerfStudy:
    """IDS against DDS on whole scenes: edits through ns-train on the synthetic scene with the exact-score
    model, several sources and seeds, identity measured per object; writes a report section and figures.

    Every source training and every edit is cached under --cache (keyed by all its settings): a rerun with
    the same settings only rewrites the report, and a larger run reuses what a smaller one made.
    """

    out: Path = Path("docs/results-nerf.md")
    """Markdown file whose study section (between its markers) is replaced; created if absent."""
    figures: Path = Path("docs/figures")
    """Folder for the figures (nerf-study-<backbone>-<edit>.png), linked from the report."""
    cache: Path = Path("outputs/nerf-study")
    """Folder for the scene, the source runs and the edit runs (reused between runs)."""
    backbones: List[str] = field(default_factory=lambda: list(DEFAULTS["backbones"]))
    """nerfacto and/or splatfacto (without CUDA, splatfacto renders with the tests' CPU stand-in)."""
    edits: List[str] = field(default_factory=lambda: list(DEFAULTS["edits"]))
    """blue-ball (the ball's colour) and/or striped-box (a texture on the box beside the ball)."""
    sources: int = 2
    """Independently trained sources per backbone (training seeds 0, 1, ...)."""
    seeds: int = 3
    """Edit seeds per source and setting (--pipeline.seed: view order, timesteps, noise)."""
    fpr_scales: List[float] = field(default_factory=lambda: list(DEFAULTS["fpr_scales"]))
    """IDS's FPR step sizes lambda (N = 3 steps); DDS always runs as the control."""
    guidance_scale: float = 7.5
    """CFG scale of every edit."""
    max_step: int = MAX_STEP
    """Largest timestep every edit draws (--pipeline.max-step; the paper's 949). The exact-score model's
    demo edits below 600, where its posteriors blend views less (docs/results-nerf.md)."""
    identity_mask: str = "none"
    """--pipeline.identity-mask of every edit: none, or score (the score model's edit mask, the anchor of
    --pipeline.identity-anchor's default outside it), as the exact-score model's demo edits."""
    compare_paper_settings: bool = False
    """Also run the first optimizer's edits at the paper's settings (CFG 7.5, t < 949, no mask) and compare
    the settings above against them, paired by source and seed. Needs settings that differ from the paper's."""
    optimizers: List[str] = field(default_factory=lambda: ["adam", "sgd:0.3"])
    """Edit optimizers: adam (default, eps 1e-15), adam-eps:E, sgd:S (SGD at S times Adam's rates). The
    first is the baseline; the others run on --alt-optimizer-backbones and --alt-optimizer-scales only.
    sgd:0.3 is SGD at lr 3e-4 on nerfacto's fields: at 1e-2 (sgd:10) these edits diverged, at 1e-3 and
    3e-3 one probe leaked twice as much as Adam (results-nerf.md)."""
    alt_optimizer_backbones: List[str] = field(default_factory=lambda: ["nerfacto"])
    """Backbones on which the non-baseline optimizers run."""
    alt_optimizer_scales: List[float] = field(default_factory=lambda: [0.1])
    """IDS lambdas the non-baseline optimizers run (DDS always), to keep the study within its time."""
    edit_steps: int = 60
    """Steps of every edit (the same budget for every method). 60 keeps the whole study near two hours on
    2 CPU cores; the demo's 120 move the ball further (docs/results-nerf.md)."""
    nerfacto_source_steps: int = 600
    """Steps of each nerfacto source training (512 rays a step)."""
    splatfacto_source_steps: int = 600
    """Steps of each splatfacto source training (the demo's 1500 take about 15 minutes on 2 CPU cores with
    the stand-in rasterizer; 500 gave 27 dB outside the edit in the CPU splat test)."""
    size: int = 32
    """Image side of the scene in pixels."""
    views: int = 16
    """Training views of the scene (test views: max(2, views // 8)); every edit renders and stores all of them
    once at its start."""
    scene_seed: int = 0
    """Seed of the scene's cameras."""
    model: str = "exact"
    """The score model: exact (the scene's exact-score model) or learned:default / learned:FOLDER (the learned
    verification model, docs/verification.md). Give the learned model its own --out, --figures and --cache, so
    that the exact model's report is kept."""
    jobs: int = 1
    """Trainings and edits run at once, each ns-train with (CPU cores / jobs) threads unless OMP_NUM_THREADS
    is set. On the 2-core CPU machine 2 jobs finished about 1.45x the edits per hour of 1. The report lists
    the edits in the same order; their numbers move with the thread count as with any rerun (float sums)."""

    def main(self) -> Path:
        self.check()
        start = time.time()
        # absolute, because the runs' config.yml files keep the paths they were given (a relative
        # one opens only from the folder the study ran in)
        self.cache = self.cache.resolve()
        self.cache.mkdir(parents=True, exist_ok=True)
        env = self.thread_env(study_env(self.cache))
        scene = scene_folder(self.cache, self.size, self.views, self.scene_seed)
        plan = self.plan(f"{self.size}px-{self.views}v-s{self.scene_seed}")
        results, seconds, cached = [], [], 0
        with ThreadPoolExecutor(self.jobs) as pool:
            try:
                # the sources first, so that no two edits start training the same one
                needed = _sources([edit for edit in plan if not is_done(self.cache, edit)])
                list(pool.map(lambda source: train_source(self.cache, scene, source, env), needed))
                running = [pool.submit(run_edit, self.cache, scene, edit, env) for edit in plan]
                for index, (edit, job) in enumerate(zip(plan, running), 1):
                    outcome = job.result()  # in plan order, so the report does not depend on --jobs
                    results.append((edit, {**outcome.metrics, **step_diagnostics(self.cache, edit)}))
                    seconds.append(outcome.edit_seconds + outcome.eval_seconds)  # as measured when it ran
                    cached += outcome.cached
                    with STDOUT_LOCK:
                        print(self.progress_line(index, len(plan), edit, outcome), flush=True)
            except BaseException:
                pool.shutdown(wait=True, cancel_futures=True)  # the edits already running finish; no new ones
                raise
        section = self.section(results, seconds, cached, time.time() - start, scene)
        document = self.out.read_text() if self.out.is_file() else "# NeRF-level results\n"
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.out.write_text(report.replace_section(document, section))
        print(f"Study written to {self.out} ({format_seconds(time.time() - start)})")
        return self.out

    def check(self) -> None:
        """Refuse bad settings in one line before anything runs."""
        for name, given, known in (
            ("--backbones", self.backbones + self.alt_optimizer_backbones, BACKBONES),
            ("--edits", self.edits, EDIT_CASES),
        ):
            unknown = [value for value in given if value not in known]
            if unknown:
                raise UserError(f"{name}: unknown {', '.join(unknown)}; known: {', '.join(known)}")
        if min(self.sources, self.seeds, self.edit_steps, self.jobs) < 1:
            raise UserError("--sources, --seeds, --edit-steps and --jobs must be at least 1")
        if not self.optimizers:
            raise UserError("--optimizers needs at least one optimizer, e.g. adam")
        for spec in self.optimizers:
            optimizer_flags(spec, BACKBONES["nerfacto"])  # a bad spec fails here, in one line
        if self.identity_mask not in ("none", "score") or not 0 < self.max_step <= 1000:
            raise UserError("--identity-mask must be none or score, and --max-step in 1..1000")
        if self.compare_paper_settings and not settings_label(self.guidance_scale, self.max_step, self.identity_mask):
            raise UserError(
                "--compare-paper-settings compares other settings with the paper's: give --guidance-scale, "
                "--max-step or --identity-mask a value other than 7.5, 949 or none"
            )
        if any(scale <= 0 for scale in self.fpr_scales + self.alt_optimizer_scales):
            raise UserError("FPR scales (lambda) must be positive; DDS runs anyway")

    def thread_env(self, env: Dict[str, str]) -> Dict[str, str]:
        """``env`` with each job's share of the cores as its OMP_NUM_THREADS (jobs that each take all the
        cores slow one another down)."""
        if self.jobs == 1 or "OMP_NUM_THREADS" in env:
            return env
        return {**env, "OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 1) // self.jobs))}

    def plan(self, scene_key: str) -> List[EditRun]:
        """Every edit of the study, grouped so that each source is trained once, before its edits."""
        edits = []
        for backbone, source_seed in itertools.product(self.backbones, range(self.sources)):
            steps = self.nerfacto_source_steps if backbone == "nerfacto" else self.splatfacto_source_steps
            source = SourceRun(backbone, source_seed, steps, scene_key)
            for case, optimizer in itertools.product(self.edits, self.optimizers):
                baseline = optimizer == self.optimizers[0]
                if not baseline and backbone not in self.alt_optimizer_backbones:
                    continue
                for arm in arms(self.fpr_scales if baseline else self.alt_optimizer_scales):
                    for seed in range(self.seeds):
                        edit = EditRun(
                            source,
                            case,
                            arm,
                            optimizer,
                            seed,
                            self.edit_steps,
                            self.guidance_scale,
                            self.model,
                            self.max_step,
                            self.identity_mask,
                        )
                        if baseline and self.compare_paper_settings:
                            edits.append(edit.at_paper_settings())  # the control, listed before its edit
                        edits.append(edit)
        return edits

    @staticmethod
    def progress_line(index: int, total: int, edit: EditRun, outcome) -> str:
        case = EDIT_CASES[edit.case]
        target = outcome.metrics.get(f"target_psnr_{case.edited}", float("nan"))
        leak = outcome.metrics.get(f"leak_{case.neighbour}", float("nan"))
        took = "cached" if outcome.cached else f"{outcome.edit_seconds:.0f} s + eval {outcome.eval_seconds:.0f} s"
        return (
            f"[{index}/{total}] {edit.source.backbone} source {edit.source.seed} {edit.case} {edit.variant} "
            f"{edit.arm.label} seed {edit.seed}: {case.edited} {target:.2f} dB, leak into {case.neighbour} "
            f"{leak:.4f} ({took})"
        )

    def reduced(self) -> List[str]:
        """How this run falls short of the issue's minimum grid (empty: it does not)."""
        notes = []
        if self.sources < DEFAULTS["sources"]:
            notes.append(f"{self.sources} source(s) instead of {DEFAULTS['sources']}")
        if self.seeds < DEFAULTS["seeds"]:
            notes.append(f"{self.seeds} seed(s) instead of {DEFAULTS['seeds']}")
        for key in ("fpr_scales", "backbones", "edits"):
            missing = [str(v) for v in DEFAULTS[key] if v not in getattr(self, key)]
            if missing:
                notes.append(f"without {key.replace('_', ' ')} {', '.join(missing)}")
        return notes

    def section(self, results, seconds: List[float], cached: int, total: float, scene: Path) -> str:
        """The markdown section: setup, tables, comparisons, findings, figures."""
        from ids_nerf.study.nerf_setup import setup_text

        figures = self.write_figures(results, scene)
        ids_dds = report.ids_vs_dds(results)
        optimizer = report.optimizer_comparisons(results, self.optimizers[0])
        parts = [
            setup_text(self, seconds, cached, total, figures),
            "### Means over sources and seeds (± sample sd)",
            "",
        ]
        parts += [report.means_table(results), "", "### IDS - DDS, paired by source and seed", ""]
        parts += [COMPARISON_NOTE, "", report.comparison_table(ids_dds, "optimizer, settings"), ""]
        parts += ["What it shows (computed from the table above):", ""]
        parts += report.findings(ids_dds, "IDS", "DDS") or ["- no IDS/DDS pairs"]
        if optimizer:
            parts += ["", f"### Optimizers against {self.optimizers[0]}, paired by source and seed", ""]
            parts += [report.comparison_table(optimizer, "optimizer, settings"), ""]
            parts += report.findings(optimizer, "the optimizer", self.optimizers[0])
        settings = report.settings_comparisons(results)
        if settings:
            parts += ["", "### These settings against the paper's (CFG 7.5, t < 949, no mask), paired", ""]
            parts += [SETTINGS_NOTE, "", report.comparison_table(settings, "optimizer, settings"), ""]
            parts += report.findings(settings, "these settings", "the paper's")
        parts += ["", "### Inside the edits: what FPR does and what reaches the NeRF", "", DIAGNOSTICS_NOTE, ""]
        parts += [report.diagnostics_table(results)]
        return "\n".join(parts) + "\n"

    def write_figures(self, results, scene: Path) -> Dict[str, Path]:
        """One figure per backbone and edit: the first source and seed, the baseline optimizer."""
        from ids_nerf.scenes.edit_scene import edited_object, read_scene_info

        info = read_scene_info(scene)
        written = {}
        for backbone, case in itertools.product(self.backbones, self.edits):
            shown = [
                edit
                for edit, _ in results
                if (edit.source.backbone, edit.case, edit.optimizer) == (backbone, case, self.optimizers[0])
                and edit.source.seed == 0
                and edit.seed == 0
            ]
            chosen = {}  # the paper's settings first, then DDS before IDS by lambda
            for edit in sorted(shown, key=lambda e: (e.settings != "", not e.arm.is_dds, e.arm.fpr_scale or 0.0)):
                saved = renders(self.cache, edit)
                if saved is not None:
                    label = edit.arm.label + (f" ({edit.settings})" if edit.settings else "")
                    chosen[label] = {**saved, "ids": _masks(scene)}
            path = self.figures / f"nerf-study-{backbone}-{case}.png"
            edited_id = edited_object(info, EDIT_CASES[case].appearance)
            if report.figure(chosen, case, dict(info["objects"]), edited_id, path) is not None:
                written[f"{backbone}, {case}"] = path
        return written


DIAGNOSTICS_NOTE = (
    "Read from each edit's tensorboard log (every 10th step), mean over the logged steps, then mean ± sd over "
    "the edits. The posterior distance is ||z_src - z_0|t(z_src)|| in latent units, the quantity FPR lowers "
    "(for DDS the unrefined one); the direction is the one the distillation loss sends to the NeRF; the latent "
    "change is the mean |z_render - z_src|, how far the render has moved from its stored source latent."
)
SETTINGS_NOTE = (
    "Each cell: the same method, source and edit seed at these settings minus at the paper's (same view order "
    "and noise seed; the timesteps differ where the largest one does), per source with its 95% Student-t "
    "interval, then across sources; verdicts as above."
)
COMPARISON_NOTE = (
    "Each cell: mean of IDS - DDS over the edit seeds of one source (same seed = same view order, timesteps and "
    "noise for both), with its 95% Student-t interval; across sources: the interval of the per-source means "
    "(sources are the independent replicates). Verdict: **win** or **loss** when every source's interval "
    "excludes 0 on the same side (for the leak, lower is better), **mixed** when sources disagree, **tie** otherwise."
)


def _masks(scene: Path):
    """The test views' object ids, ``[V, H, W]`` int64."""
    import torch

    from ids_nerf.scenes.edit_scene import read_masks

    return torch.from_numpy(read_masks(scene, "test").astype("int64"))


def _sources(plan: List[EditRun]) -> List[SourceRun]:
    """The plan's source trainings, each once, in plan order."""
    return list(dict.fromkeys(edit.source for edit in plan))
