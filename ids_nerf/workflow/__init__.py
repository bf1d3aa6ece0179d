"""Scripted edits: YAML edit files run through ns-train, callable from Python and ``ids-nerf run``.

>>> from ids_nerf.workflow import run_files  # doctest: +SKIP
>>> results = run_files(["configs/lego-gold.yaml", "configs/fern-autumn.yaml"])  # doctest: +SKIP
"""

from ids_nerf.workflow.runner import EditResult, run_files, run_spec
from ids_nerf.workflow.spec import EditSpec, load_spec

__all__ = ["EditResult", "EditSpec", "load_spec", "run_files", "run_spec"]
