"""Batches of edits: one function runs one edit, executors decide where (here, in turn; or on Ray).

Each edit's outcome is a JSON record written atomically to ``<output_dir>/edit-results/<key>.json``, where the key
hashes the spec's content (not the name of the file it came from). A rerun skips the edits whose record says
``done``; failed ones run again. Outputs live under each spec's ``output_dir``: with Ray on several machines that
folder must be on a filesystem every machine sees at the same path.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import sys
import time
import traceback
import uuid
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable, Dict, List, Optional, Protocol, Sequence

from ids_nerf.console import Stages
from ids_nerf.workflow.spec import EditSpec

RESULTS_DIR = "edit-results"
"""The folder under a spec's ``output_dir`` that holds one record per edit, named by the edit's key."""
DONE, FAILED, SKIPPED = "done", "failed", "skipped"


@dataclass
class BatchEdit:
    """One edit of a batch: the spec with absolute paths, and labels that say where it sits in a suite."""

    spec: EditSpec
    labels: Dict[str, str] = field(default_factory=dict)
    """e.g. scene, prompt, method, setting, seed; copied into the record for the suite's table."""

    @property
    def key(self) -> str:
        return edit_key(self.spec)

    @property
    def record_path(self) -> Path:
        return self.spec.output_dir / RESULTS_DIR / f"{self.key}.json"


def absolute(spec: EditSpec) -> EditSpec:
    """``spec`` with its paths made absolute here: a Ray worker's working directory is not the caller's."""
    source_run = spec.source_run.resolve() if spec.source_run is not None else None
    return replace(spec, scene=spec.scene.resolve(), source_run=source_run, output_dir=spec.output_dir.resolve())


def edit_key(spec: EditSpec) -> str:
    """A short hash of what the edit does: every field but ``output_dir`` (where the record itself lives),
    paths resolved. Renaming or moving the edit file keeps the key; changing a prompt or an argument changes it."""
    content = {k: str(v) if isinstance(v, Path) else v for k, v in asdict(absolute(spec)).items()}
    content.pop("output_dir")
    text = json.dumps(content, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def write_json_atomic(path: Path, data: dict) -> None:
    """Write ``data`` to a temporary sibling and rename it over ``path``: readers (a rerun, the suite's table, a
    process on another machine) see the old file or the whole new one, never a half-written one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    with open(temporary, "w") as out:
        json.dump(data, out, indent=2)
        out.flush()
        os.fsync(out.fileno())
    os.replace(temporary, path)


def read_record(path: Path) -> Optional[dict]:
    """The record at ``path``, or None if there is none (or it cannot be read: then the edit runs again)."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def is_done(edit: BatchEdit) -> bool:
    """Whether the edit's record says done and its run folder is still there (removing it runs the edit again)."""
    record = read_record(edit.record_path)
    if record is None or record.get("status") != DONE:
        return False
    return record.get("edit_run") is not None and Path(record["edit_run"]).is_dir()


LOG_IN_MESSAGE = re.compile(r"log: (\S+)$")


def with_device_of_this_worker(spec: EditSpec) -> EditSpec:
    """Without a visible CUDA device (a CPU machine, or a Ray task that claimed no GPU, which Ray hides them
    from), nerfstudio's default device would fail: run on the CPU unless the spec names a device itself."""
    import torch

    if torch.cuda.is_available():
        return spec

    def on_cpu(args: List[str]) -> List[str]:
        return args if "--machine.device-type" in args else ["--machine.device-type", "cpu", *args]

    return replace(spec, source_args=on_cpu(spec.source_args), edit_args=on_cpu(spec.edit_args))


def run_one(edit: BatchEdit, show_stages: bool = False) -> dict:
    """Run one edit (source training when the spec names none, the edit, its evaluation) and write its record.

    The one function both executors call, here or in a Ray worker. Never raises for a failed edit: the record
    says ``failed`` with a one-line error and the log to read. An interrupt (Ctrl-C, a cancelled Ray task)
    writes nothing, so the edit runs again next time. ``show_stages`` prints each stage and its progress.
    """
    from ids_nerf.workflow.runner import run_spec

    start = time.time()
    record = {"key": edit.key, "name": edit.spec.name, "labels": edit.labels, "host": socket.gethostname()}
    record["spec"] = {k: str(v) if isinstance(v, Path) else v for k, v in asdict(edit.spec).items()}
    try:
        stages = Stages(3, stream=sys.stdout if show_stages else None)
        result = run_spec(with_device_of_this_worker(edit.spec), stages=stages)
        error = result.error
        record.update(source_run=_str(result.source_run), edit_run=_str(result.edit_run), metrics=result.metrics)
        log = None
    except Exception as err:  # any crash of one edit must not end the batch; the traceback goes to a log
        error = f"{type(err).__name__}: {str(err).strip().splitlines()[0] if str(err).strip() else ''}"
        log = edit.spec.output_dir / edit.spec.name / f"crash-{edit.key}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text(traceback.format_exc())
    if error:
        found = LOG_IN_MESSAGE.search(error)
        log = Path(found.group(1)) if found else log
        error = LOG_IN_MESSAGE.sub("", error).rstrip("; ") if found else error
    record.update(status=FAILED if error else DONE, error=error, log=_str(log), seconds=round(time.time() - start, 1))
    write_json_atomic(edit.record_path, record)
    return record


def _str(path: Optional[Path]) -> Optional[str]:
    return None if path is None else str(path)


class Executor(Protocol):
    """Runs edits and hands each record to ``on_record`` as it arrives (in any order)."""

    def run(self, edits: Sequence[BatchEdit], on_record: Callable[[dict], None]) -> None: ...


class LocalExecutor:
    """One edit after another in this process: what ``ids-nerf run`` always did."""

    def run(self, edits: Sequence[BatchEdit], on_record: Callable[[dict], None]) -> None:
        for edit in edits:
            print(f"Edit '{edit.spec.name}': {edit.spec.method} of {edit.spec.scene}", flush=True)
            on_record(run_one(edit, show_stages=True))


@dataclass
class BatchSummary:
    """The records of a batch, in the order of its edits, and what became of each."""

    records: List[dict]
    interrupted: bool = False

    def count(self, status: str) -> int:
        return sum(r.get("status") == status for r in self.records)

    @property
    def not_run(self) -> List[dict]:
        return [r for r in self.records if r.get("status") is None]

    def line(self) -> str:
        text = f"{self.count(DONE)} done, {self.count(SKIPPED)} skipped (done before), {self.count(FAILED)} failed"
        if self.not_run:
            text += f", {len(self.not_run)} not run"
        return ("Batch interrupted: " if self.interrupted else "Batch finished: ") + text


def record_line(record: dict) -> str:
    """One line per edit: what it gave or why it failed and where its log is."""
    name, status = record["name"], record.get("status")
    if status == FAILED:
        return f"{name}: FAILED: {record['error']}" + (f" (log: {record['log']})" if record.get("log") else "")
    shown = ", ".join(f"{k} {v:.3f}" for k, v in (record.get("metrics") or {}).items() if isinstance(v, float))
    took = "done before" if status == SKIPPED else f"done in {record.get('seconds', 0):.0f} s"
    return f"{name}: {took}, run {record.get('edit_run')}" + (f"; {shown}" if shown else "")


def unique(edits: Sequence[BatchEdit]) -> List[BatchEdit]:
    """``edits`` without repeats of the same key (the same edit named twice runs once)."""
    seen, kept = set(), []
    for edit in edits:
        if edit.key not in seen:
            seen.add(edit.key)
            kept.append(edit)
    return kept


def run_batch(edits: Sequence[BatchEdit], executor: Executor, refused: Sequence[dict] = ()) -> BatchSummary:
    """Run the edits not done before on ``executor``, a line each as they finish, and a summary line at the end.
    ``refused``: records of edits that failed before they could run (a bad edit file), counted as failed.

    Ctrl-C stops the batch: finished edits keep their records, the rest run on the next call."""
    edits = unique(edits)
    records = {e.key: {"key": e.key, "name": e.spec.name, "labels": e.labels} for e in edits}
    for record in refused:
        print(record_line(record), flush=True)
    todo = []
    for edit in edits:
        if is_done(edit):
            records[edit.key] = {**read_record(edit.record_path), "status": SKIPPED}
            print(record_line(records[edit.key]), flush=True)
        else:
            todo.append(edit)
    summary = BatchSummary([])

    def on_record(record: dict) -> None:
        records[record["key"]] = record
        print(record_line(record), flush=True)

    try:
        if todo:
            executor.run(todo, on_record)
    except KeyboardInterrupt:
        summary.interrupted = True
    summary.records = [*refused, *(records[e.key] for e in edits)]
    print(summary.line(), flush=True, file=sys.stdout)
    return summary
