"""What the project's own commands show a person: stages with progress, and no third-party noise.

Known deprecation and platform warnings of nerfstudio, torch and the libraries under them repeat for every
command and say nothing a user can act on. ``third_party_warnings_to`` sends those (and only those) to a log
file (in the worker processes nerfstudio starts, they are ignored); every other warning, the project's
own included, reaches the console as usual. Nothing is changed globally: the filter lives for one
``with`` block.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import time
import warnings
from pathlib import Path
from typing import Dict, Iterator, Optional, TextIO

KNOWN_THIRD_PARTY_WARNINGS = (
    "`torch.cuda.amp.custom_fwd(args...)` is deprecated",  # nerfstudio's activations
    "`torch.cuda.amp.custom_bwd(args...)` is deprecated",
    "`torch.cuda.amp.GradScaler(args...)` is deprecated",  # nerfstudio's trainer
    "torch.cuda.amp.GradScaler is enabled",  # "but CUDA is not available"
    "Using a non-tuple sequence for multidimensional indexing is deprecated",  # nerfstudio's cameras
    "`torch.jit.script` is deprecated",
    "This DataLoader will create",  # nerfstudio's data loaders on a small machine
    "Converting a tensor with requires_grad=True to a scalar",  # nerfstudio's writer
    "TypedStorage is deprecated",
    "Arguments other than a weight enum or `None` for 'weights' are deprecated",  # torchvision via LPIPS
    "The parameter 'pretrained' is deprecated",
)
"""How these warnings begin (none contains a comma or a colon, so they also fit ``PYTHONWARNINGS``)."""
THIRD_PARTY_FILE = re.compile(r"[\\/](site-packages|dist-packages)[\\/](?!ids_nerf[\\/])")
"""A warning counts as third-party only when it is raised from an installed package other than ours."""


def is_known_third_party(message: Warning | str, filename: str) -> bool:
    return bool(THIRD_PARTY_FILE.search(filename)) and str(message).startswith(KNOWN_THIRD_PARTY_WARNINGS)


IGNORED_IN_WORKERS = ",".join(f"ignore:{text}" for text in KNOWN_THIRD_PARTY_WARNINGS)


def with_all_warnings(env: Dict[str, str]) -> Dict[str, str]:
    """``env`` for a command whose output goes to a log file (ns-train's): without the ignores that
    :func:`third_party_warnings_to` put in ``PYTHONWARNINGS``, so its log keeps every warning."""
    value = env.get("PYTHONWARNINGS", "")
    if not value.startswith(IGNORED_IN_WORKERS):
        return dict(env)
    rest = value[len(IGNORED_IN_WORKERS) :].lstrip(",")
    cleaned = {k: v for k, v in env.items() if k != "PYTHONWARNINGS"}
    return {**cleaned, "PYTHONWARNINGS": rest} if rest else cleaned


@contextlib.contextmanager
def third_party_warnings_to(log: Optional[Path]) -> Iterator[None]:
    """Within the block, known third-party warnings are appended to ``log`` (dropped when None) instead
    of being printed; all other warnings are shown as before."""
    shown = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        if not is_known_third_party(message, filename):
            return shown(message, category, filename, lineno, file, line)
        if log is not None:
            log.parent.mkdir(parents=True, exist_ok=True)
            with open(log, "a") as out:
                out.write(warnings.formatwarning(message, category, filename, lineno, line))
        return None

    # worker processes that nerfstudio starts (data loaders) do not inherit ``showwarning``, only the
    # environment: there the same warnings are ignored, by their first words
    previous = os.environ.get("PYTHONWARNINGS")
    if not (previous or "").startswith(IGNORED_IN_WORKERS):  # nested blocks add them once
        os.environ["PYTHONWARNINGS"] = IGNORED_IN_WORKERS + ("," + previous if previous else "")
    warnings.showwarning = show
    try:
        yield
    finally:
        warnings.showwarning = shown
        if previous is None:
            os.environ.pop("PYTHONWARNINGS", None)
        else:
            os.environ["PYTHONWARNINGS"] = previous


def format_seconds(seconds: float) -> str:
    seconds = max(0, round(seconds))
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"


class Stages:
    """Numbered stages on the console, e.g. ``[2/4] source nerfacto: step 300/600 (50%), about 1 min 10 s
    left``; ``stream`` None keeps them silent. On a terminal the progress line is redrawn in place;
    elsewhere (a log, CI) it is printed each time another tenth of the stage is done."""

    def __init__(self, total: int, stream: Optional[TextIO] = sys.stdout) -> None:
        self.total, self.stream = total, stream
        self.number = 0
        self.name = ""
        self.started = time.time()
        self.first_progress = 0.0  # set at the first progress line, so start-up is not in the rate
        self.first_fraction = 0.0
        self.printed_tenths = -1
        self.live = stream is not None and stream.isatty()

    def start(self, name: str) -> None:
        self.number += 1
        self.name = name
        self.started = time.time()
        self.first_progress, self.first_fraction = 0.0, 0.0
        self.printed_tenths = -1
        self._emit(f"[{self.number}/{self.total}] {name} ...", final=not self.live)

    def progress(self, step: int, steps: int) -> None:
        fraction = min(1.0, step / max(1, steps))
        now = time.time()
        if not self.first_progress:  # the rate is measured from the first step seen: start-up excluded
            self.first_progress, self.first_fraction = now, fraction
        text = f"[{self.number}/{self.total}] {self.name}: step {step}/{steps} ({fraction:.0%})"
        if fraction > self.first_fraction and now > self.first_progress:
            rate = (now - self.first_progress) / (fraction - self.first_fraction)
            text += f", about {format_seconds(rate * (1 - fraction))} left"
        tenths = int(fraction * 10)
        if self.live:
            self._emit(text, final=False)
        elif tenths > self.printed_tenths:
            self.printed_tenths = tenths
            self._emit(text, final=True)

    def done(self, detail: str = "") -> None:
        took = format_seconds(time.time() - self.started)
        self._emit(
            f"[{self.number}/{self.total}] {self.name}: done in {took}" + (f" ({detail})" if detail else ""), final=True
        )

    def _emit(self, text: str, final: bool) -> None:
        if self.stream is None:
            return
        if self.live:
            self.stream.write("\r\x1b[2K" + text + ("\n" if final else ""))
        else:
            self.stream.write(text + "\n")
        self.stream.flush()
