"""The setup paragraph of the 3D study's report: what ran, how long it took, and whether it is reduced."""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path
from typing import Dict, List

from ids_nerf.console import format_seconds
from ids_nerf.core.defaults import GUIDANCE_SCALE, MAX_STEP, MIN_STEP
from ids_nerf.study.nerf_grid import EDIT_CASES


def command_line(study) -> str:
    """The ``ids-nerf study-3d`` command that reproduces ``study``'s grid (with its ``--jobs``)."""

    def many(values) -> str:
        return " ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in values)

    return (
        f"ids-nerf study-3d --backbones {many(study.backbones)} --edits {many(study.edits)} "
        f"--sources {study.sources} --seeds {study.seeds} --fpr-scales {many(study.fpr_scales)} "
        f"--optimizers {many(study.optimizers)} --alt-optimizer-backbones {many(study.alt_optimizer_backbones)} "
        f"--alt-optimizer-scales {many(study.alt_optimizer_scales)} --edit-steps {study.edit_steps} "
        f"--nerfacto-source-steps {study.nerfacto_source_steps} "
        f"--splatfacto-source-steps {study.splatfacto_source_steps} --size {study.size} --views {study.views}"
        + (f" --guidance-scale {study.guidance_scale:g}" if study.guidance_scale != GUIDANCE_SCALE else "")
        + (f" --max-step {study.max_step}" if study.max_step != MAX_STEP else "")
        + (f" --identity-mask {study.identity_mask}" if study.identity_mask != "none" else "")
        + (" --compare-paper-settings" if study.compare_paper_settings else "")
        + (f" --model {study.model}" if study.model != "exact" else "")
        + (f" --jobs {study.jobs}" if study.jobs > 1 else "")
    )


def _link(path: Path, document: Path) -> str:
    return os.path.relpath(path, document.parent)


def _and(parts: List[str]) -> str:
    return ", ".join(parts[:-1]) + " and " + parts[-1] if len(parts) > 1 else "".join(parts)


def edits_text(edits: List[str]) -> str:
    """The edits that ran, each with what it changes: only those, so a one-edit study says one edit."""
    return _and([f"{name} ({EDIT_CASES[name].description})" for name in edits])


def neighbours_text(edits: List[str]) -> str:
    """Which object is each edit's neighbour, for the edits that ran."""
    return ", ".join(f"the {EDIT_CASES[name].neighbour} for {name}" for name in edits)


def sources_text(study) -> str:
    """Each backbone that ran and its source recipe; the others are not named."""
    recipes = {
        "nerfacto": f"nerfacto {study.nerfacto_source_steps} steps (the demo's reduced nerfacto)",
        "splatfacto": f"splatfacto {study.splatfacto_source_steps} steps (the demo's small splatfacto; without "
        "CUDA through the tests' CPU stand-in rasterizer)",
    }
    return _and([recipes[name] for name in study.backbones])


def setup_text(study, seconds: List[float], cached: int, total: float, figures: Dict[str, Path]) -> str:
    """The section's head: title, reduced-run warning, command, setup, times, figure links. ``seconds``:
    each edit's edit + evaluation time as measured when it ran; ``cached`` of them came from the cache."""
    lines = ["## IDS against DDS on whole scenes (`ids-nerf study-3d`)", ""]
    reduced = study.reduced()
    if reduced:
        lines += [f"**A reduced run** ({'; '.join(reduced)}): its numbers rank nothing on their own.", ""]
    origin = "every edit came from the cache" if cached == len(seconds) else f"{len(seconds) - cached} edits ran now"
    timing = (
        f"{origin}; the {len(seconds)} edits took a median {statistics.median(seconds):.0f} s each (edit + "
        f"evaluation) and {format_seconds(sum(seconds))} in all when they ran"
        if seconds
        else "no edits"
    )
    lines += [
        f"Regenerated on {time.strftime('%Y-%m-%d')} (took {format_seconds(total)} on this machine's CPU; "
        f"{timing}; source trainings count in the total only) by:",
        "",
        "```bash",
        command_line(study),
        "```",
        "",
        f"- Scene: `make-scene --size {study.size} --views {study.views} --seed {study.scene_seed} "
        f"--appearances edited striped-box`; edits: {edits_text(study.edits)}. Score model: "
        + ("the scene's exact-score model" if study.model == "exact" else f"`{study.model}`")
        + f", CFG {study.guidance_scale:g}, t in [{MIN_STEP}, {study.max_step}); "
        + (
            "the score's edit mask with the anchor outside it (`--pipeline.identity-mask score`); "
            if study.identity_mask == "score"
            else ""
        )
        + (
            f"each edit of {study.optimizers[0]} ran at the paper's settings too (CFG {GUIDANCE_SCALE:g}, t < "
            f"{MAX_STEP}, no mask) as its control; "
            if study.compare_paper_settings
            else ""
        )
        + f"IDS with N = 3 FPR steps; the same {study.edit_steps} edit steps for every method.",
        f"- Sources: {study.sources} per backbone, trained independently (`--machine.seed` 0, 1, ...): "
        f"{sources_text(study)}. Edit seeds {', '.join(map(str, range(study.seeds)))} (`--pipeline.seed`) on each.",
        f"- Optimizers: {', '.join(study.optimizers)}"
        + (
            f"; the first is the edits' default and runs everywhere, the others on "
            f"{', '.join(study.alt_optimizer_backbones)} with DDS and IDS lambda "
            f"{', '.join(f'{s:g}' for s in study.alt_optimizer_scales)}."
            if len(study.optimizers) > 1
            else "."
        ),
        "- Measured on the test views with `ids-nerf eval` (columns below): the edited object against the "
        f"ground-truth target; the neighbour ({neighbours_text(study.edits)}), the table and the "
        "background each against the source render; the leak is the mean absolute colour change inside the "
        "neighbour (0-1 scale). PSNR is capped at 100 dB.",
        "",
    ]
    if figures:
        links = ", ".join(f"[{name}]({_link(path, study.out)})" for name, path in figures.items())
        lines += [
            f"Figures (source 0, seed 0, {study.optimizers[0]}; rows = test views; under each image the edited "
            f"object's PSNR to the target | the neighbour's PSNR to the source): {links}.",
            "",
        ]
    return "\n".join(lines)
