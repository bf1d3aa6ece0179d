"""``ids-nerf train-score-model OUT``."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Tuple

import tyro

from ids_nerf.guidance.learned_training import TrainingSettings, train_score_model


@dataclass
class TrainScoreModel:
    """Train the learned score model (a verification instrument, not a replacement for Stable Diffusion).

    A small text-conditioned pixel-space diffusion model, trained offline on renders of random ball-and-box scenes
    that never include the evaluation scene's layout; load it with --model learned:OUT. The folder gets the model,
    the rendered training set (training-set/) and training.json (the command, versions, losses, file hashes).
    """

    out: tyro.conf.Positional[Path]
    """Model folder to create; must not exist or be empty (see --overwrite)."""
    scenes: int = 2000
    """Random scenes to render (at least 1)."""
    views_per_scene: int = 8
    """Camera views per scene (at least 1): radius 4, elevations 15-60 degrees, as the evaluation scene's."""
    size: int = 32
    """Image side in pixels, the model's native size; at least 8 and a multiple of 2^(len(channels) - 1)."""
    steps: int = 20000
    """Optimizer steps (at least 1); fewer when --minutes runs out first."""
    batch_size: int = 64
    """Images per step (at least 1)."""
    lr: float = 2e-4
    """AdamW learning rate (> 0)."""
    seed: int = 0
    """Seed of the scenes, cameras, initial weights and batches; the same seed on the same device repeats a run."""
    caption_dropout: float = 0.15
    """Share of training captions replaced by the empty one, in [0, 1): the unconditional model CFG needs."""
    minutes: Optional[float] = None
    """Time budget in minutes (> 0), rendering included: training stops when it is spent and the model is saved
    (at least one step is done). None: no budget."""
    channels: Tuple[int, ...] = (32, 64, 64)
    """UNet block widths, multiples of 32; each block after the first halves the resolution."""
    layers_per_block: int = 2
    """ResNet layers per UNet block (at least 1)."""
    caption_dim: int = 64
    """Width of the caption encoder's word vectors and the UNet's cross-attention (a multiple of 4)."""
    log_every: int = 50
    """Steps per logged mean loss in training.json (at least 1)."""
    device: str = "auto"
    """auto (cuda when there is one, else cpu), cpu, or cuda[:N]."""
    overwrite: bool = False
    """Replace OUT when it holds a learned score model already (its training set is reused when it matches)."""

    def settings(self) -> TrainingSettings:
        names = TrainingSettings.__dataclass_fields__
        return TrainingSettings(**{name: getattr(self, name) for name in names})

    def command(self) -> str:
        """The command that repeats this run, every option spelled out."""
        args = ["ids-nerf", "train-score-model", str(self.out)]
        for name in TrainingSettings.__dataclass_fields__:
            value = getattr(self, name)
            flag = "--" + name.replace("_", "-")
            if isinstance(value, tuple):
                args += [flag, *map(str, value)]
            else:
                args += [flag, str(value)]
        if self.overwrite:
            args.append("--overwrite")
        return shlex.join(args)

    def main(self) -> dict:
        record = train_score_model(self.out, self.settings(), self.command(), overwrite=self.overwrite)
        print(
            f"Learned score model written to {self.out} ({record['steps_done']} steps, final loss "
            f"{record['final_loss']:.4f}); use it as --model learned:{self.out}"
        )
        return record
