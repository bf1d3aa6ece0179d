"""The edit's panel in the nerfstudio viewer: watch an edit and steer it while ``ns-train`` runs.

nerfstudio's viewer shows every :class:`~nerfstudio.viewer.viewer_elements.ViewerElement` it finds on the
pipeline and its modules, under "Custom Elements" in the control tab; the panel is such a module. It shows the
prompts, the step, the FPR distances, the direction norm and the strip (stored source | current render | one-step
target estimate), and takes changes of the target prompt, CFG scale, lambda and FPR steps, a pause, "save a
checkpoint now", "show source view" and "write ids-nerf compare".

Changes are checked when they are made (a refused one is named in the panel with its reason, and the
edit goes on with the old value) and applied by the pipeline at the start of the next step, never in the
middle of one. Each applied change is printed, appended with its step to ``steering.jsonl`` in the run
folder, and written to the run's ``config.yml``, so a resume continues with it. The panel exists only while
``ns-train`` edits (ns-viewer, ns-render and ns-eval build the pipeline in test mode, without it); without the
viewer (``--vis tensorboard``) nothing installs it and nothing changes.
"""

from __future__ import annotations

import base64
import io
import json
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import torch
import torch.nn.functional as F
from nerfstudio.utils.rich_utils import CONSOLE
from nerfstudio.viewer.viewer_elements import (
    ViewerButton,
    ViewerCheckbox,
    ViewerElement,
    ViewerNumber,
    ViewerText,
)
from PIL import Image
from torch import Tensor, nn

STEERABLE = ("target_prompt", "guidance_scale", "fpr_scale", "fpr_steps")
"""Pipeline settings the panel may change while the edit runs."""
MAX_FPR_STEPS = 20
"""More FPR steps than this per edit step is surely a typo (the paper uses 3; each costs a UNet pass)."""


def refusal(name: str, value: Any) -> Optional[str]:
    """Why ``value`` cannot become the setting ``name``, or None when it can."""
    if name == "target_prompt":
        return None if isinstance(value, str) and value.strip() else "the target prompt must not be empty"
    if not isinstance(value, (int, float)) or value != value:  # NaN
        return f"{name} must be a number"
    if name == "guidance_scale" and value < 0:
        return f"the CFG scale must be at least 0 (the paper's is 7.5), not {value}"
    if name == "fpr_scale" and value < 0:
        return f"lambda must be at least 0 (0.1 to 1 are usual), not {value}"
    if name == "fpr_steps" and (value != int(value) or not 0 <= value <= MAX_FPR_STEPS):
        return f"FPR steps must be a whole number from 0 to {MAX_FPR_STEPS} (0 is DDS), not {value}"
    return None


class ViewerMarkdown(ViewerElement[str]):
    """Read-only text (and images as data URLs) in the viewer's control panel."""

    def __init__(self, name: str, content: str = "") -> None:
        super().__init__(name)
        self.content = content

    def _create_gui_handle(self, viser_server) -> None:
        self.gui_handle = viser_server.gui.add_markdown(self.content)

    def install(self, viser_server) -> None:
        self._create_gui_handle(viser_server)

    def show(self, content: str) -> None:
        self.content = content
        if self.gui_handle is not None:
            self.gui_handle.content = content


def png_data_url(image: Tensor, height: int = 192) -> str:
    """``[3, H, W]`` in [0, 1] as a PNG data URL, scaled (nearest) to ``height`` pixels high."""
    width = max(1, round(image.shape[-1] * height / image.shape[-2]))
    scaled = F.interpolate(image[None].float().clamp(0, 1).cpu(), size=(height, width), mode="nearest")[0]
    pixels = (scaled.permute(1, 2, 0).numpy() * 255).round().astype("uint8")
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


class TrainerHooks:
    """What the panel asks of the trainer; set by it when the edit begins."""

    def __init__(self) -> None:
        self.run_dir: Optional[Path] = None
        self.step: Callable[[], int] = lambda: 0
        self.save_checkpoint: Callable[[], None] = lambda: None
        self.save_config: Callable[[], None] = lambda: None
        self.set_paused: Callable[[bool], None] = lambda paused: None


class EditPanel(nn.Module):
    """The viewer's panel of an edit (a module without parameters, so that the viewer finds its elements)."""

    def __init__(self, config, image_every: int = 10) -> None:
        super().__init__()
        self.image_every = image_every
        self.hooks = TrainerHooks()
        self._pending: Dict[str, Any] = {}
        self._lock = threading.Lock()
        self.last_view: Optional[int] = None
        self.source_view: Callable[[int], Tensor] = lambda index: torch.zeros(3, 1, 1)

        def queue(name):
            return lambda element: self.request(name, element.value, element)

        # the viewer lists elements by attribute name, so three groups keep related controls together
        self.see, self.steer, self.tools = nn.Module(), nn.Module(), nn.Module()
        self.see.status = ViewerMarkdown("status", "**IDS edit**: starting ...")
        self.see.strip = ViewerMarkdown("strip", "")
        self.steer.target_prompt = ViewerText(
            "Target prompt", config.target_prompt, cb_hook=queue("target_prompt"), hint="applied at the next step"
        )
        self.steer.guidance_scale = ViewerNumber(
            "CFG scale", float(config.guidance_scale), cb_hook=queue("guidance_scale")
        )
        self.steer.fpr_scale = ViewerNumber("Lambda (FPR step)", float(config.fpr_scale), cb_hook=queue("fpr_scale"))
        self.steer.fpr_steps = ViewerNumber("FPR steps N", int(config.fpr_steps), cb_hook=queue("fpr_steps"))
        self.steer.verdict = ViewerMarkdown("verdict", "")
        self.tools.pause = ViewerCheckbox("Pause edit", False, cb_hook=lambda e: self.hooks.set_paused(e.value))
        self.tools.save_now = ViewerButton("Save checkpoint now", cb_hook=lambda _: self._save_now())
        self.tools.show_source = ViewerButton("Show source view", cb_hook=lambda _: self._show_source())
        self.tools.write_compare = ViewerButton("Write ids-nerf compare", cb_hook=lambda _: self._write_compare())
        self._current = {name: getattr(config, name) for name in STEERABLE}

    @property
    def installed(self) -> bool:
        """Whether a viewer shows the panel (not with ``--vis tensorboard``)."""
        return self.see.status.gui_handle is not None

    @property
    def verdict(self) -> str:
        """The panel's last word on a change or a button: what was done, or what was refused and why."""
        return self.steer.verdict.content

    def _tell(self, text: str) -> None:
        self.steer.verdict.show(text)

    # ---- changes, asked from the viewer's thread ---------------------------------------------------
    def request(self, name: str, value: Any, element: Optional[ViewerElement] = None) -> Optional[str]:
        """Queue ``value`` for ``name`` for the next step; a refused value is named in the panel and the
        element shows the value in force again. Returns the refusal, or None."""
        if name == "fpr_steps" and isinstance(value, float) and value == int(value):
            value = int(value)
        reason = refusal(name, value)
        if reason is not None:
            self._tell(f"Refused: {reason}; the edit goes on with {self._current[name]!r}.")
            if element is not None:
                element.value = self._current[name]
            return reason
        if value != self._current[name]:
            with self._lock:
                self._pending[name] = value
            self._tell(f"{name} = {value!r} from the next step on.")
        return None

    # ---- between steps, in the training thread -----------------------------------------------------
    def apply(self, pipeline, step: int) -> None:
        """Apply the queued changes to ``pipeline`` before ``step``; log and save those that took."""
        with self._lock:
            pending, self._pending = self._pending, {}
        changes = []
        for name, value in pending.items():
            if name == "target_prompt":
                try:
                    pipeline.guidance.embed_prompt(value)
                except Exception as err:  # the model's own refusal (an unknown caption, ...), shown as it is
                    self._tell(f"Refused: {str(err).splitlines()[0]}; the edit goes on with the old prompt.")
                    self.steer.target_prompt.value = self._current[name]
                    continue
            if name == "guidance_scale":
                pipeline.guidance.guidance_scale = value
            changes.append({"step": step, "setting": name, "old": self._current[name], "new": value})
            setattr(pipeline.config, name, value)
            self._current[name] = value
        if changes:
            self._record(changes)

    def _record(self, changes: List[dict]) -> None:
        for change in changes:
            CONSOLE.print(
                f"Edit steered at step {change['step']}: {change['setting']} {change['old']!r} -> {change['new']!r}"
            )
        if self.hooks.run_dir is not None:
            with (self.hooks.run_dir / "steering.jsonl").open("a") as log:
                log.writelines(json.dumps(change) + "\n" for change in changes)
        self.hooks.save_config()

    def after_step(self, pipeline, step: int, index: int, metrics: Dict[str, Any], strip: Callable[[], Tensor]) -> None:
        """Show the step's numbers; every ``image_every`` steps also the strip (only when installed)."""
        self.last_view = index
        if not self.installed:
            return
        fpr = metrics.get("ids/fpr_distance_before")
        fpr_text = f"{fpr:.3f} → {metrics['ids/fpr_distance_after']:.3f}" if fpr is not None else "no FPR (DDS)"
        self.see.status.show(
            f"**IDS edit**, step {step}, view {index}  \n"
            f"source: *{pipeline.config.source_prompt}*  \n"
            f"target: *{pipeline.config.target_prompt}*  \n"
            f"FPR distance: {fpr_text}  \n"
            f"direction norm: {metrics['ids/direction_norm']:.4f}"
        )
        if self.image_every and step % self.image_every == 0:
            self.see.strip.show(f"source | render | target estimate  \n![strip]({png_data_url(strip())})")

    # ---- buttons -------------------------------------------------------------------------------------
    def _save_now(self) -> None:
        self.hooks.save_checkpoint()
        self._tell(f"Saved a checkpoint at step {self.hooks.step()}.")

    def _show_source(self) -> None:
        if self.last_view is None:
            self._tell("No view edited yet.")
            return
        image = self.source_view(self.last_view)
        self.see.strip.show(f"stored source render of view {self.last_view}  \n![source]({png_data_url(image)})")

    def _write_compare(self) -> None:
        """Save a checkpoint, then render source | edited from it in a separate process."""
        if self.hooks.run_dir is None:
            return
        self.hooks.save_checkpoint()
        step = self.hooks.step()
        out = self.hooks.run_dir / f"compare-step-{step:06d}"
        log = (self.hooks.run_dir / f"compare-step-{step:06d}.log").open("w")
        command = [sys.executable, "-m", "ids_nerf.cli", "compare", "--edited", str(self.hooks.run_dir / "config.yml")]
        subprocess.Popen([*command, "--out", str(out)], stdout=log, stderr=subprocess.STDOUT)
        self._tell(f"Writing ids-nerf compare of step {step} to {out} (log: {log.name}).")
