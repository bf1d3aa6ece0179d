"""The 3D study's report: tables of means and spreads, paired IDS - DDS differences per source with
confidence intervals, verdicts in words, and one labeled figure per backbone and edit."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch

from ids_nerf.study.nerf_grid import EDIT_CASES, Arm, EditRun
from ids_nerf.study.statistics import Interval, across_units, mean_sd, paired_differences, t_interval

BEGIN, END = "<!-- nerf-study:begin -->", "<!-- nerf-study:end -->"
"""The report's section in docs/results-nerf.md lies between these lines; a rerun replaces only it."""


@dataclass(frozen=True)
class Measure:
    """A number the report shows: its label, how it is read from an edit's metrics, which way is better."""

    label: str
    key: Callable[[str], str]
    """Metric key for an edit case name (the regions differ by case)."""
    higher_is_better: bool = True
    digits: int = 2


MEASURES = {
    "target": Measure("edited object to target, PSNR (dB)", lambda c: f"target_psnr_{EDIT_CASES[c].edited}"),
    "neighbour": Measure("neighbour vs source, PSNR (dB)", lambda c: f"identity_psnr_{EDIT_CASES[c].neighbour}"),
    "leak": Measure(
        "leak into the neighbour (mean abs. change, 0-1)",
        lambda c: f"leak_{EDIT_CASES[c].neighbour}",
        higher_is_better=False,
        digits=4,
    ),
    "table": Measure("table vs source, PSNR (dB)", lambda c: "identity_psnr_table"),
    "background": Measure("background vs source, PSNR (dB)", lambda c: "identity_psnr_background"),
    "outside": Measure("all but the edited object vs source, PSNR (dB)", lambda c: "background_psnr"),
    "iou": Measure("mask IoU", lambda c: "mask_iou", digits=3),
    "depth": Measure("median depth change (objects)", lambda c: "depth_error_objects_median", False, digits=3),
}
DIAGNOSTIC_COLUMNS = {
    "diag_fpr_distance_before": "posterior distance before FPR",
    "diag_fpr_distance_after": "after FPR (DDS: unrefined)",
    "diag_direction_norm_first": "direction norm, first step",
    "diag_direction_norm_last": "last logged step",
    "diag_latent_change": "latent change from the source",
}
"""Inside the edits (``nerf_runs.step_diagnostics``): means over the logged steps, then over the edits."""
TABLE_MEASURES = ("target", "neighbour", "leak", "table", "background", "iou", "depth")
PAIRED_MEASURES = ("target", "neighbour", "leak", "outside")


Results = List[Tuple[EditRun, Dict[str, float]]]
"""Each edit with its metrics."""


def _value(metrics: Dict[str, float], measure: str, case: str) -> float:
    value = metrics.get(MEASURES[measure].key(case))
    return float("nan") if value is None else float(value)


def _groups(results: Results) -> Dict[Tuple[str, str, str], Dict[Arm, Results]]:
    """(backbone, case, variant: the optimizer and any non-paper settings) -> arm -> its edits, in order."""
    groups: Dict[Tuple[str, str, str], Dict[Arm, Results]] = {}
    for edit, metrics in results:
        key = (edit.source.backbone, edit.case, edit.variant)
        groups.setdefault(key, {}).setdefault(edit.arm, []).append((edit, metrics))
    return groups


def _by_pair(runs: Results, measure: str) -> Dict[Tuple[int, int], float]:
    """(source seed, edit seed) -> the measure: the pairing key of two arms."""
    return {(e.source.seed, e.seed): _value(m, measure, e.case) for e, m in runs}


def _cell(values: Sequence[float], digits: int) -> str:
    finite = [v for v in values if not math.isnan(v)]
    if not finite:
        return "-"
    mean, sd = mean_sd(finite)
    return f"{mean:.{digits}f}" + ("" if math.isnan(sd) else f" ± {sd:.{digits}f}")


def means_table(results: Results) -> str:
    """One row per backbone, edit, optimizer and method: mean ± sample sd over sources and seeds."""
    header = ["backbone", "edit", "optimizer, settings", "method", "n"] + [MEASURES[m].label for m in TABLE_MEASURES]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for (backbone, case, optimizer), arms in _groups(results).items():
        for arm, runs in arms.items():
            cells = [_cell([_value(m, k, case) for _, m in runs], MEASURES[k].digits) for k in TABLE_MEASURES]
            lines.append(
                f"| {backbone} | {case} | {optimizer} | {arm.label} | {len(runs)} | " + " | ".join(cells) + " |"
            )
    return "\n".join(lines)


def diagnostics_table(results: Results) -> str:
    """One row per backbone, edit, optimizer and method: the step diagnostics, mean ± sd over the edits."""
    header = ["backbone", "edit", "optimizer, settings", "method", *DIAGNOSTIC_COLUMNS.values()]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for (backbone, case, optimizer), arms in _groups(results).items():
        for arm, runs in arms.items():
            cells = [_cell([m.get(key, float("nan")) for _, m in runs], 3) for key in DIAGNOSTIC_COLUMNS]
            lines.append(f"| {backbone} | {case} | {optimizer} | {arm.label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def combined_verdict(per_source: Sequence[Interval], higher_is_better: bool) -> str:
    """win / loss when every source's interval says so, mixed when sources disagree, tie otherwise."""
    verdicts = {interval.verdict(higher_is_better) for interval in per_source}
    if verdicts == {"win"} or verdicts == {"loss"}:
        return verdicts.pop()
    return "mixed" if {"win", "loss"} <= verdicts else "tie"


@dataclass(frozen=True)
class Comparison:
    """treated - control on one measure: per source intervals over the seeds, and across sources."""

    group: Tuple[str, str, str]
    treated: Arm
    control: Arm
    measure: str
    per_source: Dict[int, Interval]
    overall: Interval

    @property
    def verdict(self) -> str:
        return combined_verdict(list(self.per_source.values()), MEASURES[self.measure].higher_is_better)


def compare(group, treated: Tuple[Arm, Results], control: Tuple[Arm, Results], measure: str) -> Comparison:
    differences = paired_differences(_by_pair(treated[1], measure), _by_pair(control[1], measure))
    per_source = {source: t_interval(values) for source, values in differences.items()}
    return Comparison(group, treated[0], control[0], measure, per_source, across_units(differences))


def ids_vs_dds(results: Results) -> List[Comparison]:
    """Every IDS arm against DDS, per group and paired measure."""
    comparisons = []
    for group, arms in _groups(results).items():
        dds = next(((arm, runs) for arm, runs in arms.items() if arm.is_dds), None)
        if dds is None:
            continue
        for arm, runs in arms.items():
            if not arm.is_dds:
                comparisons += [compare(group, (arm, runs), dds, measure) for measure in PAIRED_MEASURES]
    return comparisons


def optimizer_comparisons(results: Results, baseline: str) -> List[Comparison]:
    """Each other optimizer against ``baseline``, same backbone, edit, settings, method, sources and seeds."""
    return comparisons_against(results, lambda edit: replace(edit, optimizer=baseline))


def settings_comparisons(results: Results) -> List[Comparison]:
    """Each edit at non-paper settings against the same edit at the paper's (``EditRun.at_paper_settings``)."""
    return comparisons_against(results, lambda edit: edit.at_paper_settings())


def comparisons_against(results: Results, control: Callable[[EditRun], EditRun]) -> List[Comparison]:
    """Each group against the group of its edits' ``control``, arm by arm and paired by source and seed;
    groups that are their own control, or whose control did not run, are left out."""
    groups = _groups(results)
    comparisons = []
    for (backbone, case, variant), arms in groups.items():
        first_edit = next(iter(arms.values()))[0][0]
        base_variant = control(first_edit).variant
        base = groups.get((backbone, case, base_variant))
        if base_variant == variant or base is None:
            continue
        for arm, runs in arms.items():
            if arm in base:
                for measure in ("target", "outside", "leak"):
                    comparisons.append(compare((backbone, case, variant), (arm, runs), (arm, base[arm]), measure))
    return comparisons


def comparison_table(comparisons: List[Comparison], first_column: str) -> str:
    sources = sorted({s for c in comparisons for s in c.per_source})
    header = ["backbone", "edit", first_column, "method", "measure"]
    header += [f"source {s}" for s in sources] + ["across sources", "verdict"]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for c in comparisons:
        digits = MEASURES[c.measure].digits
        cells = [c.per_source[s].text(digits) if s in c.per_source else "-" for s in sources]
        backbone, case, optimizer = c.group
        lines.append(
            f"| {backbone} | {case} | {optimizer} | {c.treated.label} | {MEASURES[c.measure].label} | "
            + " | ".join(cells)
            + f" | {c.overall.text(digits)} | **{c.verdict}** |"
        )
    return "\n".join(lines)


def findings(comparisons: List[Comparison], treated_name: str, control_name: str) -> List[str]:
    """Plain lines: per group, where the treated arms win, tie, lose or are mixed against the control."""
    lines = []
    groups: Dict[Tuple[str, str, str], List[Comparison]] = {}
    for c in comparisons:
        groups.setdefault(c.group, []).append(c)
    for (backbone, case, optimizer), items in groups.items():
        tally = {v: [f"{c.treated.label} on {c.measure}" for c in items if c.verdict == v] for v in ("win", "loss")}
        ties = sum(c.verdict in ("tie", "mixed") for c in items)
        words = f"- {backbone}, {case}, {optimizer}: {treated_name} against {control_name}"
        words += f" wins {len(tally['win'])}, loses {len(tally['loss'])}, ties {ties} of {len(items)} comparisons"
        details = [f"wins: {', '.join(tally['win'])}"] if tally["win"] else []
        details += [f"loses: {', '.join(tally['loss'])}"] if tally["loss"] else []
        lines.append(words + (f" ({'; '.join(details)})." if details else "."))
    return lines


def figure(
    renders: Dict[str, Dict[str, torch.Tensor]], case: str, names: Dict[str, int], edited_id: int, path: Path
) -> Optional[Path]:
    """Rows = test views; columns = source, each edit of ``renders`` (column label -> renders, in its order),
    ground truth; under each image the edited object's PSNR to the target and the neighbour's PSNR to the
    source (dB). Returns the file, or None without renders."""
    from ids_nerf.evaluation.regions import region_metrics
    from ids_nerf.images import labeled_grid

    if not renders:
        return None
    first = next(iter(renders.values()))
    edited_name, neighbour = EDIT_CASES[case].edited, EDIT_CASES[case].neighbour
    rows, captions = [], []
    for view in range(first["source"].shape[0]):
        source, target, ids = first["source"][view], first["target"][view], first["ids"][view]
        row, caption = [source], [_caption(region_metrics(source, source, target, ids, edited_id, names), case, True)]
        for saved in renders.values():
            image = saved["edited"][view]
            row.append(image)
            caption.append(_caption(region_metrics(image, source, target, ids, edited_id, names), case, False))
        rows.append(row + [target])
        captions.append(caption + [""])
    # the figure font may lack Greek letters: spell lambda out
    columns = ["source"] + [label.replace("λ=", "lambda ") for label in renders] + ["ground truth"]
    note = f"{edited_name}: PSNR to target | {neighbour}: PSNR to source (dB)"
    grid = labeled_grid(rows, columns, [f"view {i}" for i in range(len(rows))], captions, tile=160)
    path.parent.mkdir(parents=True, exist_ok=True)
    _with_footer(grid, note).save(path)
    return path


def _caption(values: Dict[str, float], case: str, is_source: bool) -> str:
    edited, neighbour = EDIT_CASES[case].edited, EDIT_CASES[case].neighbour
    target = values[f"source_target_psnr_{edited}" if is_source else f"target_psnr_{edited}"]
    identity = values.get(f"identity_psnr_{neighbour}", float("nan"))
    return f"{target:.1f} | {identity:.1f}" if not is_source else f"{target:.1f} | -"


def _with_footer(image, text: str):
    from PIL import Image, ImageDraw

    from ids_nerf.images import _font

    font = _font(14)
    canvas = Image.new("RGB", (image.width, image.height + 24), "white")
    canvas.paste(image, (0, 0))
    ImageDraw.Draw(canvas).text((6, image.height + 4), text, fill="black", font=font)
    return canvas


def replace_section(document: str, section: str, begin: str = BEGIN, end: str = END) -> str:
    """``document`` with the text between the ``begin`` and ``end`` markers (default the 3D study's)
    replaced by ``section``; without the markers, the section goes after the title (the first line)."""
    block = f"{begin}\n{section.strip()}\n{end}"
    if begin in document and end in document:
        head, rest = document.split(begin, 1)
        return head + block + rest.split(end, 1)[1]
    title, _, body = document.partition("\n")
    return f"{title}\n\n{block}\n\n{body.lstrip()}" if title else block + "\n"
