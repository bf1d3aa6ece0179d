"""Plain SGD for an edit, as the alternative to nerfstudio's Adam.

nerfstudio's Adam (eps 1e-15) divides each gradient by its own running magnitude, so any non-zero
gradient, however tiny, moves its parameter by about the learning rate: what a score-distillation edit
barely touches still drifts (docs/results-nerf.md). SGD moves each parameter in proportion to its
gradient. ``--edit-optimizer sgd`` swaps every parameter group's optimizer for SGD; the schedulers stay.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Type

import torch
from nerfstudio.engine.optimizers import OptimizerConfig


@dataclass
class SGDOptimizerConfig(OptimizerConfig):
    """torch.optim.SGD with momentum; ``eps`` (inherited) is unused."""

    _target: Type = field(default_factory=lambda: torch.optim.SGD)
    momentum: float = 0.0
    """Heavy-ball momentum in [0, 1); 0 is plain gradient descent."""

    def setup(self, params) -> torch.optim.Optimizer:
        return torch.optim.SGD(params, lr=self.lr, momentum=self.momentum)


def sgd_groups(optimizers: Dict[str, Any], lr_scale: float, momentum: float = 0.0) -> Dict[str, Any]:
    """A copy of nerfstudio's ``{group: {"optimizer": ..., "scheduler": ...}}`` with every optimizer
    replaced by SGD at ``lr_scale`` times the group's learning rate (the groups keep their ratios, which
    matter for splatfacto's means against its colours) and the same gradient clipping."""
    return {
        name: {
            **group,
            "optimizer": SGDOptimizerConfig(
                lr=group["optimizer"].lr * lr_scale, max_norm=group["optimizer"].max_norm, momentum=momentum
            ),
        }
        for name, group in optimizers.items()
    }
