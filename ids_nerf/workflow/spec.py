"""Edit specifications: one YAML file describes a whole edit (see ``configs/``)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import List, Optional

import yaml

from ids_nerf.errors import UserError
from ids_nerf.methods import EDIT_METHODS, METHOD_NAMES


@dataclass
class EditSpec:
    """An edit as ``ids-nerf run`` executes it: source training if needed, the edit, the evaluation."""

    name: str
    """Run name: runs go to ``output_dir/name/<method>/<timestamp>``."""
    scene: Path
    """The dataset folder (ns-train's --data)."""
    source_prompt: str
    target_prompt: str
    dataparser: str = "blender-data"
    """ns-train dataparser subcommand, e.g. blender-data or nerfstudio-data."""
    dataparser_args: List[str] = field(default_factory=list)
    source_run: Optional[Path] = None
    """An existing source run folder (with config.yml); None: train one (or reuse an earlier one)."""
    source_method: str = "nerfacto"
    """nerfacto for ids-edit, dds-edit and ids-edit-small; splatfacto for ids-edit-splat and dds-edit-splat."""
    source_args: List[str] = field(default_factory=list)
    method: str = "ids-edit"
    edit_args: List[str] = field(default_factory=list)
    output_dir: Path = Path("outputs")

    def validate(self) -> None:
        if self.method not in EDIT_METHODS:
            raise UserError(f"{self.name}: unknown method '{self.method}'; use one of {', '.join(METHOD_NAMES)}")
        expected = EDIT_METHODS[self.method]
        if self.source_run is None and self.source_method != expected:
            raise UserError(f"{self.name}: {self.method} edits {expected} scenes; set source_method: {expected}")
        if not self.source_prompt.strip() or not self.target_prompt.strip():
            raise UserError(f"{self.name}: source_prompt and target_prompt must not be empty")
        if not self.scene.is_dir():
            raise UserError(f"{self.name}: scene folder '{self.scene}' does not exist; download or make it first")
        if self.source_run is not None and not (self.source_run / "config.yml").is_file():
            raise UserError(f"{self.name}: source_run '{self.source_run}' holds no config.yml")


def load_spec(path: Path) -> EditSpec:
    """Read and check one YAML edit file; bad files raise :class:`UserError` with one line."""
    if not path.is_file():
        raise UserError(f"edit file '{path}' does not exist")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise UserError(f"edit file '{path}' is not valid YAML ({type(err).__name__})") from err
    if not isinstance(raw, dict):
        raise UserError(f"edit file '{path}' must hold a mapping of keys such as name, scene, prompts")
    known = {f.name for f in fields(EditSpec)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise UserError(f"edit file '{path}' has unknown keys {unknown}; known keys: {sorted(known)}")
    missing = sorted(k for k in ("name", "scene", "source_prompt", "target_prompt") if not raw.get(k))
    if missing:
        raise UserError(f"edit file '{path}' lacks {missing}")
    for key in ("scene", "source_run", "output_dir"):
        if raw.get(key) is not None:
            raw[key] = Path(raw[key])
    for key in ("dataparser_args", "source_args", "edit_args"):
        raw[key] = [str(a) for a in (raw.get(key) or [])]
    return EditSpec(**raw)
