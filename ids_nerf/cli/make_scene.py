"""``ids-nerf make-scene DIR``."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import List

import tyro

from ids_nerf.errors import UserError
from ids_nerf.io import staged_output_dir
from ids_nerf.scenes.edit_scene import DEFAULT_APPEARANCES, write_edit_scene


@dataclass
class MakeScene:
    """Write a synthetic edit scene with ground truth, made offline in seconds.

    A red ball and a green box on a table, in Blender format (train on it with `ns-train ... blender-data --data
    DIR`), plus the same views with one object edited (the ball blue, golden or a cube, or the box striped) under
    appearances/, object masks under masks/ and z-depth under depth/. scene.json holds the captions and conventions.
    """

    folder: tyro.conf.Positional[Path]
    """Folder to create; must not exist or be empty."""
    size: int = 64
    """Image width and height in pixels."""
    views: int = 40
    """Training views; val and test get max(2, views // 8) views each."""
    seed: int = 0
    """Seed of the camera poses; the same arguments give byte-identical files."""
    appearances: List[str] = field(default_factory=lambda: list(DEFAULT_APPEARANCES))
    """Appearances to write (source is always written): edited (blue ball), golden (golden ball),
    striped-box (yellow stripes on the box: a texture edit next to the ball), cube (a red cube in the ball's
    place: a structure-changing edit, with its own masks under appearance_masks/)."""

    def main(self) -> Path:
        if self.size < 8:
            raise UserError(f"--size must be at least 8, not {self.size}")
        if self.views < 1:
            raise UserError(f"--views must be at least 1, not {self.views}")
        with staged_output_dir(self.folder, flag="folder") as staging:
            write_edit_scene(staging, size=self.size, views=self.views, seed=self.seed, appearances=self.appearances)
        print(f"Edit scene written to {self.folder}")
        return self.folder
