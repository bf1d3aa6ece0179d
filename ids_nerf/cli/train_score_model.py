"""``ids-nerf train-score-model OUT``."""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from pathlib import Path

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
    settings: tyro.conf.OmitArgPrefixes[TrainingSettings] = field(default_factory=TrainingSettings)
    """The training's settings (flags without a prefix: --scenes, --steps, ...)."""
    overwrite: bool = False
    """Replace OUT when it holds a learned score model already (its training set is reused when it matches)."""

    def command(self) -> str:
        """The command that repeats this run, every option spelled out."""
        args = ["ids-nerf", "train-score-model", str(self.out)]
        for name in TrainingSettings.__dataclass_fields__:
            value = getattr(self.settings, name)
            flag = "--" + name.replace("_", "-")
            if isinstance(value, tuple):
                args += [flag, *map(str, value)]
            else:
                args += [flag, str(value)]
        if self.overwrite:
            args.append("--overwrite")
        return shlex.join(args)

    def main(self) -> dict:
        record = train_score_model(self.out, self.settings, self.command(), overwrite=self.overwrite)
        print(
            f"Learned score model written to {self.out} ({record['steps_done']} steps, final loss "
            f"{record['final_loss']:.4f}); use it as --model learned:{self.out}"
        )
        return record
