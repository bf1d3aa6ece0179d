"""Suites: scenes x prompt pairs x methods x settings x seeds, expanded into edits, run as a batch, tabulated.

A suite file (see ``suites/``) looks like::

    output_dir: outputs/suites/synthetic
    scenes:
      ball:
        make: {size: 32, views: 24}        # a synthetic edit scene, written once; or path: data/blender/lego
        dataparser_args: [--alpha-color, None]
        prompts:
          blue: {source: "a red ball ...", target: "a blue ball ..."}
    methods: [ids-edit, dds-edit]
    settings:
      lambda-0.1: [--pipeline.fpr-scale, "0.1"]
    seeds: [0, 1, 2]
    edit_args: [--max-num-iterations, 120, --pipeline.diffusion-model, "exact:{scene}"]

``{scene}`` in any argument becomes the scene's folder. Each edit trains its own source (seeded like the edit)
unless its scene names a ``source_run`` to share.
"""

from __future__ import annotations

import csv
import io
import itertools
import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import yaml

from ids_nerf.errors import UserError
from ids_nerf.methods import EDIT_METHODS, METHOD_NAMES
from ids_nerf.workflow.batch import DONE, SKIPPED, BatchEdit, write_json_atomic
from ids_nerf.workflow.spec import EditSpec

SUITE_KEYS = {"name", "output_dir", "scenes", "methods", "settings", "seeds", "source_args", "edit_args"}
SCENE_KEYS = {"path", "make", "dataparser", "dataparser_args", "source_args", "edit_args", "source_run", "prompts"}
GROUP_LABELS = ("scene", "prompt", "method", "setting")
"""An aggregated row: one of each; its seeds give the mean and the spread."""


@dataclass
class SceneEntry:
    """A scene of a suite and the prompt pairs to edit it with."""

    name: str
    path: Path
    prompts: Dict[str, Dict[str, str]]
    make: Optional[Dict] = None
    """Arguments of ``write_edit_scene`` (size, views, seed): a synthetic scene written to ``path`` if absent."""
    dataparser: str = "blender-data"
    dataparser_args: List[str] = field(default_factory=list)
    source_args: List[str] = field(default_factory=list)
    edit_args: List[str] = field(default_factory=list)
    source_run: Optional[Path] = None


@dataclass
class Suite:
    """A parsed suite file."""

    name: str
    output_dir: Path
    scenes: List[SceneEntry]
    methods: List[str]
    settings: Dict[str, List[str]]
    seeds: List[int]
    source_args: List[str] = field(default_factory=list)
    edit_args: List[str] = field(default_factory=list)


def _mapping(value, where: str) -> dict:
    if not isinstance(value, dict) or not value:
        raise UserError(f"{where} must be a non-empty mapping")
    return value


def _args(value, where: str) -> List[str]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise UserError(f"{where} must be a list of arguments")
    return [str(a) for a in value]


def _unknown(raw: dict, known: set, where: str) -> None:
    unknown = sorted(set(raw) - known)
    if unknown:
        raise UserError(f"{where} has unknown keys {unknown}; known keys: {sorted(known)}")


def load_suite(path: Path) -> Suite:
    """Read and check a suite file; a bad one raises :class:`UserError` with one line. Relative paths in it are
    relative to the working directory, as in edit files."""
    if not path.is_file():
        raise UserError(f"suite file '{path}' does not exist")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise UserError(f"suite file '{path}' is not valid YAML ({type(err).__name__})") from err
    raw = _mapping(raw, f"suite file '{path}'")
    _unknown(raw, SUITE_KEYS, f"suite file '{path}'")
    methods = raw.get("methods") or ["ids-edit"]
    bad = [m for m in methods if m not in EDIT_METHODS]
    if bad:
        raise UserError(f"suite file '{path}': unknown methods {bad}; use some of {', '.join(METHOD_NAMES)}")
    settings = {str(k): _args(v, f"setting '{k}'") for k, v in (raw.get("settings") or {"default": []}).items()}
    seeds = raw.get("seeds", [0])
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) for s in seeds):
        raise UserError(f"suite file '{path}': seeds must be a list of integers, e.g. [0, 1, 2]")
    output_dir = Path(raw.get("output_dir") or Path("outputs") / "suites" / path.stem)
    scenes = [_scene(str(k), v, output_dir) for k, v in _mapping(raw.get("scenes"), "scenes").items()]
    return Suite(
        name=str(raw.get("name") or path.stem),
        output_dir=output_dir,
        scenes=scenes,
        methods=list(methods),
        settings=settings,
        seeds=seeds,
        source_args=_args(raw.get("source_args"), "source_args"),
        edit_args=_args(raw.get("edit_args"), "edit_args"),
    )


def _scene(name: str, raw, output_dir: Path) -> SceneEntry:
    raw = _mapping(raw, f"scene '{name}'")
    _unknown(raw, SCENE_KEYS, f"scene '{name}'")
    if ("path" in raw) == ("make" in raw):
        raise UserError(f"scene '{name}' needs either path (a dataset folder) or make (a synthetic scene's size)")
    prompts = _mapping(raw.get("prompts"), f"scene '{name}': prompts")
    for key, pair in prompts.items():
        if (
            not isinstance(pair, dict)
            or not str(pair.get("source", "")).strip()
            or not str(pair.get("target", "")).strip()
        ):
            raise UserError(f"scene '{name}': prompt pair '{key}' needs a non-empty source and target")
    make = raw.get("make")
    if make is not None:
        _mapping(make, f"scene '{name}': make")
        _unknown(make, {"size", "views", "seed"}, f"scene '{name}': make")
    return SceneEntry(
        name=name,
        path=Path(raw["path"]) if "path" in raw else output_dir / "scenes" / name,
        prompts={str(k): {"source": str(v["source"]), "target": str(v["target"])} for k, v in prompts.items()},
        make=make,
        dataparser=str(raw.get("dataparser", "blender-data")),
        dataparser_args=_args(raw.get("dataparser_args"), f"scene '{name}': dataparser_args"),
        source_args=_args(raw.get("source_args"), f"scene '{name}': source_args"),
        edit_args=_args(raw.get("edit_args"), f"scene '{name}': edit_args"),
        source_run=Path(raw["source_run"]) if raw.get("source_run") else None,
    )


def check_scenes(suite: Suite) -> None:
    """Refuse, before anything runs, a scene folder that is not there (and is not a synthetic one to make)."""
    for scene in suite.scenes:
        if scene.make is None and not scene.path.is_dir():
            raise UserError(f"scene '{scene.name}': folder '{scene.path}' does not exist; download or make it first")
        if scene.source_run is not None and not (scene.source_run / "config.yml").is_file():
            raise UserError(f"scene '{scene.name}': source_run '{scene.source_run}' holds no config.yml")


def make_scenes(suite: Suite) -> None:
    """Write the suite's synthetic scenes that are not there yet (here, before any edit: the workers share them)."""
    from ids_nerf.io import staged_output_dir
    from ids_nerf.scenes.edit_scene import write_edit_scene

    for scene in suite.scenes:
        if scene.make is not None and not (scene.path / "scene.json").is_file():
            print(f"Writing the synthetic scene '{scene.name}' to {scene.path}", flush=True)
            with staged_output_dir(scene.path, flag="output_dir") as staging:
                write_edit_scene(staging, **scene.make)


def expand(suite: Suite) -> List[BatchEdit]:
    """Every combination as an edit, named ``scene-prompt-method-setting-sSEED``, with the seed as both
    trainings' ``--machine.seed``."""
    edits = []
    for scene, method, (setting, setting_args), seed in itertools.product(
        suite.scenes, suite.methods, suite.settings.items(), suite.seeds
    ):
        for prompt, pair in scene.prompts.items():
            fill = _filler(scene.path)
            seeded = ["--machine.seed", str(seed)]
            spec = EditSpec(
                name=f"{scene.name}-{prompt}-{method}-{setting}-s{seed}",
                scene=scene.path,
                source_prompt=pair["source"],
                target_prompt=pair["target"],
                dataparser=scene.dataparser,
                dataparser_args=fill(scene.dataparser_args),
                source_run=scene.source_run,
                source_method=EDIT_METHODS[method],
                source_args=fill([*suite.source_args, *scene.source_args, *seeded]),
                method=method,
                edit_args=fill([*suite.edit_args, *scene.edit_args, *setting_args, *seeded]),
                output_dir=suite.output_dir,
            )
            labels = dict(scene=scene.name, prompt=prompt, method=method, setting=setting, seed=str(seed))
            edits.append(BatchEdit(spec, labels))
    return sorted(edits, key=lambda e: e.spec.name)


def _filler(scene: Path):
    return lambda args: [a.replace("{scene}", str(scene.resolve())) for a in args]


def _spread(values: List[float]) -> float:
    """The sample standard deviation over seeds; NaN for a single value (no spread to measure)."""
    return statistics.stdev(values) if len(values) > 1 else math.nan


def aggregate(records: Sequence[dict]) -> List[dict]:
    """One row per scene, prompt, method and setting: how many of its edits succeeded, and each metric's mean
    and spread (sample std) over their seeds. Failed edits count in ``edits`` but give no metrics."""
    groups: Dict[tuple, List[dict]] = {}
    for record in records:
        groups.setdefault(tuple(record["labels"][k] for k in GROUP_LABELS), []).append(record)
    rows = []
    for group, members in groups.items():
        good = [r for r in members if r.get("status") in (DONE, SKIPPED)]
        row = dict(zip(GROUP_LABELS, group), edits=len(members), succeeded=len(good))
        for metric in sorted({m for r in good for m in r.get("metrics", {})}):
            values = [r["metrics"][metric] for r in good if metric in r.get("metrics", {})]
            row[f"{metric}_mean"], row[f"{metric}_std"] = statistics.fmean(values), _spread(values)
        rows.append(row)
    return rows


def per_edit(records: Sequence[dict]) -> List[dict]:
    """One row per edit: its labels, status and metrics (the aggregated table's inputs)."""
    rows = []
    for record in records:
        status = DONE if record.get("status") == SKIPPED else record.get("status") or "not run"
        row = {**record["labels"], "name": record["name"], "status": status, **(record.get("metrics") or {})}
        rows.append({**row, "error": record.get("error") or ""})
    return rows


def markdown(rows: List[dict]) -> str:
    columns = list(dict.fromkeys(k for row in rows for k in row))
    lines = ["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(_cell(row.get(c, "")) for c in columns) + " |")
    return "\n".join(lines) + "\n"


def _cell(value) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value).replace("|", "/")


def write_tables(suite: Suite, records: Sequence[dict]) -> Path:
    """``table.md`` (aggregated rows, then the per-edit rows), ``table.json`` and two CSVs in the suite's folder,
    each written atomically; returns the markdown's path."""
    aggregated, edits = aggregate(records), per_edit(records)
    out = suite.output_dir
    write_json_atomic(out / "table.json", {"suite": suite.name, "aggregated": aggregated, "edits": edits})
    text = f"# Suite {suite.name}\n\nMean and spread (sample std) over seeds:\n\n{markdown(aggregated)}\n"
    text += f"Per edit:\n\n{markdown(edits)}"
    _write_text_atomic(out / "table.md", text)
    _write_text_atomic(out / "table.csv", _csv(aggregated))
    _write_text_atomic(out / "edits.csv", _csv(edits))
    return out / "table.md"


def _csv(rows: List[dict]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(dict.fromkeys(k for row in rows for k in row)))
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def _write_text_atomic(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text)
    temporary.replace(path)
