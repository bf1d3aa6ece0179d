"""Reading nerfstudio checkpoints safely and telling users what is wrong with a --load-dir."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Optional

import numpy as np
import torch

from ids_nerf.errors import UserError

try:  # numpy 2 renamed numpy.core to numpy._core
    from numpy._core.multiarray import scalar as _numpy_scalar
except ImportError:
    from numpy.core.multiarray import scalar as _numpy_scalar

# What nerfstudio 1.1.5 checkpoints pickle besides tensors: np.float64 learning rates
# (optimizer param_groups, scheduler _last_lr), i.e. numpy scalars and their dtypes.
_NUMPY_GLOBALS = [_numpy_scalar, np.dtype] + [type(np.dtype(t)) for t in (np.float64, np.float32, np.int64)]


def allow_nerfstudio_checkpoints() -> None:
    """Let ``torch.load``'s default ``weights_only=True`` read nerfstudio 1.1.5 checkpoints.

    They hold numpy scalars (in the optimizer and scheduler states), which torch >= 2.6 refuses.
    Allow-listing just those numpy types is the narrow fix: arbitrary code still cannot run at load.
    """
    add = getattr(torch.serialization, "add_safe_globals", None)
    if add is not None:
        add(_NUMPY_GLOBALS)


def latest_checkpoint(load_dir: Optional[Path], step: Optional[int] = None) -> Path:
    """The checkpoint ``step-XXXXXXXXX.ckpt`` in ``load_dir`` (the latest unless ``step`` is given)."""
    if load_dir is None:
        raise UserError(
            "no --load-dir given; point it at the source run's checkpoints, "
            "e.g. --load-dir outputs/lego/nerfacto/<run>/nerfstudio_models"
        )
    if not load_dir.is_dir():
        raise UserError(f"--load-dir '{load_dir}' is not a folder; pass the source run's nerfstudio_models folder")
    steps = sorted(int(p.stem.split("-")[1]) for p in load_dir.glob("step-*.ckpt") if p.stem.split("-")[1].isdigit())
    if not steps:
        raise UserError(
            f"--load-dir '{load_dir}' holds no step-*.ckpt checkpoint; train the source first "
            "(ns-train nerfacto ...) and pass its nerfstudio_models folder"
        )
    chosen = steps[-1] if step is None else step
    if chosen not in steps:
        raise UserError(f"--load-step {step} not found in '{load_dir}'; it has steps {steps}")
    return load_dir / f"step-{chosen:09d}.ckpt"


def load_checkpoint(path: Path) -> Dict[str, Any]:
    """``torch.load`` with the narrow allow-list above (no ``weights_only=False``)."""
    allow_nerfstudio_checkpoints()
    try:
        state = torch.load(path, map_location="cpu")
    except Exception as err:  # a truncated file raises anything from EOFError to RuntimeError
        raise UserError(
            f"checkpoint '{path}' cannot be read ({type(err).__name__}); pass an intact nerfstudio checkpoint"
        ) from err
    if not isinstance(state, dict) or "pipeline" not in state or "step" not in state:
        raise UserError(
            f"'{path}' is not a nerfstudio checkpoint (no pipeline state); pass a run's nerfstudio_models folder"
        )
    return state


def model_state(pipeline_state: Dict[str, Any]) -> Dict[str, Any]:
    """The model's entries of a pipeline state dict, without the ``_model.`` / DDP ``module.`` prefixes."""
    prefix = "_model."
    out = {}
    for key, value in pipeline_state.items():
        key = key[len("module.") :] if key.startswith("module.") else key
        if key.startswith(prefix):
            out[key[len(prefix) :]] = value
    return out
