"""Edits as Ray tasks: each claims its CPUs and GPUs; Ray starts locally, or joins a cluster by its address.

Ray is an optional extra (``pip install 'ids-nerf[ray]'``), imported only here and only when used. A cluster's
machines must share the output folders (the same path everywhere) and have ids-nerf installed.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Callable, Dict, Optional, Sequence

from ids_nerf.errors import UserError
from ids_nerf.workflow.batch import BatchEdit, run_one

FORWARDED_ENV = ("PYTHONPATH", "TORCH_HOME", "HF_HOME", "HF_HUB_CACHE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
"""Variables of this shell that the edits need on the workers too (where ids-nerf and the weights are found)."""
LOCAL_OBJECT_STORE_BYTES = 256 * 2**20
"""A local Ray's shared-memory store: records are a few kB, so the default (30 % of RAM) would only be held idle."""
CANCEL_GRACE_S = 30.0
"""How long a cancelled edit gets to stop its ns-train (terminate, then kill) before Ray is shut down."""


def import_ray():
    """Ray, or one line saying how to install it."""
    try:
        import ray
    except ImportError:
        raise UserError("--executor ray needs Ray: install the extra with pip install 'ids-nerf[ray]'") from None
    return ray


@dataclass
class RayExecutor:
    """Each edit one Ray task with ``num_cpus=cpus_per_edit`` and ``num_gpus=gpus_per_edit``."""

    address: Optional[str] = None
    """A running cluster ("auto", or host:port of its head); None starts Ray on this machine for the batch."""
    gpus_per_edit: Optional[float] = None
    """GPUs each edit claims; None: 1 where the cluster has GPUs, else 0 (the edits then run on CPUs)."""
    cpus_per_edit: float = 1
    workers: Optional[int] = None
    """Local Ray only: how many edits run at once (Ray gets workers * cpus_per_edit CPUs); None: as many as fit."""

    def run(self, edits: Sequence[BatchEdit], on_record: Callable[[dict], None]) -> None:
        refuse_shared_folders(edits)
        ray = import_ray()
        started_here = not ray.is_initialized()
        if started_here:
            self._init(ray)
        try:
            gpus = self._gpus(ray.cluster_resources())
            print(f"Ray: {len(edits)} edits, {self.cpus_per_edit:g} CPU and {gpus:g} GPU each", flush=True)
            task = ray.remote(run_one).options(num_cpus=self.cpus_per_edit, num_gpus=gpus, max_retries=0)
            pending = {task.remote(edit): edit for edit in edits}
            self._collect(ray, pending, on_record)
        finally:
            if started_here:
                ray.shutdown()

    def _init(self, ray) -> None:
        env = {name: os.environ[name] for name in FORWARDED_ENV if name in os.environ}
        options: Dict = dict(runtime_env={"env_vars": env}, log_to_driver=False)  # each edit writes its own logs
        if self.address is not None:
            try:
                ray.init(address=self.address, **options)
            except ConnectionError as err:
                raise UserError(f"cannot reach the Ray cluster at {self.address} ({err})") from None
            return
        if self.workers is not None:
            options["num_cpus"] = math.ceil(self.workers * self.cpus_per_edit)
        try:
            ray.init(include_dashboard=False, object_store_memory=LOCAL_OBJECT_STORE_BYTES, **options)
        except Exception as err:  # Ray raises a bare Exception when its processes start too slowly (a busy machine)
            first = (str(err).strip().splitlines() or [type(err).__name__])[0]
            raise UserError(
                f"Ray did not start on this machine ({first}); try again, or use --executor local"
            ) from None

    def _gpus(self, resources: Dict[str, float]) -> float:
        """The GPUs each task claims; refuses a claim beyond the cluster's GPUs (the tasks would wait forever)."""
        available = resources.get("GPU", 0)
        if self.gpus_per_edit is None:
            return 1.0 if available else 0.0
        if self.gpus_per_edit > available:
            raise UserError(
                f"--gpus-per-edit {self.gpus_per_edit:g} but the Ray cluster has {available:g} GPUs; "
                "pass --gpus-per-edit 0 to run the edits on CPUs"
            )
        return self.gpus_per_edit

    @staticmethod
    def _collect(ray, pending: Dict, on_record: Callable[[dict], None]) -> None:
        """Hand over records as tasks finish; on Ctrl-C cancel the rest (each stops its ns-train) and re-raise."""
        try:
            while pending:
                finished, _ = ray.wait(list(pending), num_returns=1)
                edit = pending.pop(finished[0])
                try:
                    on_record(ray.get(finished[0]))
                except ray.exceptions.RayError as err:  # the worker died (out of memory, a lost node)
                    on_record(_lost(edit, err))
        except KeyboardInterrupt:
            for ref in pending:
                ray.cancel(ref)  # KeyboardInterrupt in the task: run_ns_train stops its child, nothing is recorded
            ray.wait(list(pending), num_returns=len(pending), timeout=CANCEL_GRACE_S)
            raise


def refuse_shared_folders(edits: Sequence[BatchEdit]) -> None:
    """Two different edits with one name and output_dir would train their source into one folder at the same
    time (one after the other, as the local executor runs them, the second reuses the first's source)."""
    seen: Dict[tuple, BatchEdit] = {}
    for edit in edits:
        folder = (edit.spec.output_dir, edit.spec.name)
        if folder in seen:
            raise UserError(
                f"two different edits are both named '{edit.spec.name}' in {edit.spec.output_dir}; "
                "on Ray they would run at once in one folder: rename one"
            )
        seen[folder] = edit


def _lost(edit: BatchEdit, err: Exception) -> dict:
    """A record for an edit whose task died without writing one (not saved: it runs again next time)."""
    first = (str(err).strip().splitlines() or [""])[0]
    return {
        "key": edit.key,
        "name": edit.spec.name,
        "labels": edit.labels,
        "status": "failed",
        "error": f"{type(err).__name__}: {first}",
        "log": "Ray's worker logs (/tmp/ray/session_latest/logs on the worker's machine)",
    }
