"""``ids-nerf run EDIT.yaml [...]``: scripted edits, one after another here or as a batch on Ray."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Literal, Optional

import tyro

from ids_nerf.errors import UserError


@dataclass
class ExecutorOptions:
    """Where the edits run: here, one after another, or as Ray tasks (a local Ray, or a cluster)."""

    executor: Literal["local", "ray"] = "local"
    """local: one edit after another in this process. ray: each edit a Ray task (needs pip install 'ids-nerf[ray]')."""
    address: Optional[str] = None
    """Ray only: the cluster to join ("auto", or HEAD_IP:6379); omitted, Ray starts on this machine. Outputs must
    then be on a filesystem that every machine mounts at the same absolute path."""
    gpus_per_edit: Optional[float] = None
    """Ray only: GPUs each edit claims (e.g. 1, or 0.5 for two small edits a GPU); default 1 where the cluster
    has GPUs, else 0 (the edits run on CPUs)."""
    cpus_per_edit: float = 1
    """Ray only: CPUs each edit claims."""
    workers: Optional[int] = None
    """Local Ray only: how many edits run at once; default as many as the CPUs and GPUs allow."""

    def make(self, output_dirs: List[Path]):
        """The executor these options describe; refuses what cannot work (one line)."""
        from ids_nerf.workflow.batch import LocalExecutor

        if self.executor == "local":
            given = [f for f, v in (("--address", self.address), ("--workers", self.workers)) if v is not None]
            if given:
                raise UserError(f"{', '.join(given)} only apply with --executor ray")
            return LocalExecutor()
        from ids_nerf.workflow.ray_executor import RayExecutor, import_ray

        import_ray()  # a missing Ray is reported before anything runs
        if self.address is not None:
            if self.workers is not None:
                raise UserError("--workers is for a local Ray; a cluster's size is set where its nodes start")
            relative = [str(d) for d in output_dirs if not d.is_absolute()]
            if relative:
                raise UserError(
                    f"output_dir '{relative[0]}' is relative; with --address the workers on other machines need "
                    "an absolute path on a filesystem they all share"
                )
        if self.workers is not None and self.workers < 1:
            raise UserError(f"--workers must be at least 1, not {self.workers}")
        if self.cpus_per_edit <= 0 or (self.gpus_per_edit is not None and self.gpus_per_edit < 0):
            raise UserError("--cpus-per-edit must be positive and --gpus-per-edit at least 0")
        return RayExecutor(self.address, self.gpus_per_edit, self.cpus_per_edit, self.workers)


@dataclass
class RunEdits:
    """Run edit files (see configs/): source training if needed, the edit, the evaluation, a summary
    line each. A failed edit does not stop the rest; an edit whose result is recorded as done (same content,
    whatever its file's name) is skipped. Results: <output_dir>/edit-results/<key>.json."""

    files: tyro.conf.Positional[List[Path]]
    """Edit files (YAML), e.g. configs/lego-gold.yaml."""
    batch: tyro.conf.OmitArgPrefixes[ExecutorOptions] = field(default_factory=ExecutorOptions)
    """Where the edits run (--executor, --address, --gpus-per-edit, --cpus-per-edit, --workers)."""

    def main(self):
        from ids_nerf.workflow.batch import BatchEdit, absolute, run_batch
        from ids_nerf.workflow.spec import load_spec

        specs, refused = [], []
        for path in self.files:
            try:
                specs.append((path, load_spec(Path(path))))
            except UserError as err:  # a bad file is one failed edit; the others still run
                refused.append({"key": str(path), "name": Path(path).stem, "status": "failed", "error": str(err)})
        executor = self.batch.make([spec.output_dir for _, spec in specs])
        summary = run_batch([BatchEdit(absolute(spec), {"file": str(path)}) for path, spec in specs], executor, refused)
        raise_for(summary)
        return summary


def raise_for(summary) -> None:
    """Exit non-zero after an interrupt (130, as shells do for Ctrl-C) or with failed edits (2)."""
    if summary.interrupted:
        raise SystemExit(130)
    failed = [r["name"] for r in summary.records if r.get("status") == "failed"]
    if failed:
        raise UserError(f"{len(failed)} of {len(summary.records)} edits failed: {', '.join(failed)}")
