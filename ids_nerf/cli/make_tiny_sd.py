"""``ids-nerf make-tiny-sd DIR``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import tyro

from ids_nerf.guidance.tiny import make_tiny_sd
from ids_nerf.io import staged_output_dir


@dataclass
class MakeTinySD:
    """Write a Stable Diffusion folder with tiny random weights (about 6 MB), made offline.

    It loads like a real checkpoint (--model DIR / --pipeline.diffusion-model DIR) and is meant for
    tests and trying the tools without weights: its scores are random, its edits meaningless.
    """

    folder: tyro.conf.Positional[Path]
    """Folder to create; must not exist or be empty."""
    seed: int = 0
    """Seed of the random weights."""

    def main(self) -> Path:
        with staged_output_dir(self.folder, flag="folder") as staging:
            make_tiny_sd(staging, seed=self.seed)
        print(f"Tiny Stable Diffusion written to {self.folder}")
        return self.folder
