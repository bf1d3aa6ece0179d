"""Writing result folders so that nothing already written is lost or half-overwritten."""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path
from typing import Iterator

from ids_nerf.errors import UserError


def check_output_free(out: Path, flag: str = "--out") -> None:
    """Refuse an output folder that already holds anything."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"output '{out}' already exists and is not empty; pass another {flag} or remove it")


@contextlib.contextmanager
def staged_output_dir(out: Path, flag: str = "--out", replace: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling folder and move it to ``out`` only when the block succeeds.

    A failed or interrupted run leaves ``out`` as it was (absent or empty) and removes its partial files.
    ``replace``: ``out`` may hold an earlier result (the caller has checked what it is); it is swapped for the
    new one only when the block succeeds, and kept whole otherwise.
    """
    if not replace:
        check_output_free(out, flag)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.parent / f".{out.name}.partial-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        yield staging
        if replace and out.exists():
            old = out.parent / f".{out.name}.replaced-{os.getpid()}"
            shutil.rmtree(old, ignore_errors=True)
            out.rename(old)  # two renames: ``out`` is never half old, half new
            staging.rename(out)
            shutil.rmtree(old, ignore_errors=True)
            return
        check_output_free(out, flag)  # someone may have written there meanwhile
        if out.exists():
            out.rmdir()
        staging.rename(out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
