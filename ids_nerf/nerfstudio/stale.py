"""Noticing an edit that changes nothing.

An edit whose optimizers hold other tensors than the model's parameters (the instruct-gs2gs pitfall),
whose learning rates are 0, whose parameters are frozen or whose gradient is zero runs to the end and
leaves the scene as it was. Renders are what the user sees, so the watch compares each view's render
with that view's first render in this run; if after some steps none has moved, the edit stops.
"""

from __future__ import annotations

from typing import Dict, Optional

import torch
from torch import Tensor

STALE_HINT = (
    "check that the optimizers hold the model's parameters and their learning rates are above 0, that the "
    "parameters require grad, that the prompts differ and --pipeline.loss-scale is above 0 "
    "(--pipeline.stale-check-steps 0 turns this check off)"
)


class StaleEditWatch:
    """Largest pixel change of the edit's renders from each view's first render in this run.

    ``observe`` is called with every edit render, before the step's update. The first render of each
    view seen in the first ``after_steps`` steps is kept (on the CPU, half precision); a later render of
    the same view is compared with it. At the first step at least ``after_steps`` after the run's first
    that has had a comparison, the verdict is given once: a message when the largest change is below
    ``threshold``, else None, and the kept renders are freed.
    """

    def __init__(self, after_steps: int, threshold: float) -> None:
        self.after_steps = after_steps
        self.threshold = threshold
        self.first_step: Optional[int] = None
        self.first_renders: Dict[int, Tensor] = {}
        self.largest_change: Optional[float] = None
        self.done = after_steps <= 0

    def observe(self, step: int, view: int, image: Tensor) -> Optional[str]:
        """Record ``image`` (the render of ``view`` at ``step``); a one-line message if the edit is stale."""
        if self.done:
            return None
        if self.first_step is None:
            self.first_step = step
        elapsed = step - self.first_step
        first = self.first_renders.get(view)
        if first is None:
            if elapsed < self.after_steps:
                self.first_renders[view] = image.detach().to("cpu", torch.float16)
        else:
            change = float((image.detach().cpu().float() - first.float()).abs().max())
            self.largest_change = change if self.largest_change is None else max(self.largest_change, change)
        if elapsed < self.after_steps or self.largest_change is None:
            return None
        self.done = True
        self.first_renders.clear()
        if self.largest_change >= self.threshold:
            return None
        return (
            f"the edit has not changed the scene: after {elapsed} steps no render differs from the same view's "
            f"first render by {self.threshold:g} or more (largest change {self.largest_change:.1e}); {STALE_HINT}"
        )
