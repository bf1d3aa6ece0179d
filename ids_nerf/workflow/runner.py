"""Running edits through nerfstudio's own ``ns-train`` (no second training loop)."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

from ids_nerf.console import Stages, with_all_warnings
from ids_nerf.errors import UserError
from ids_nerf.workflow.spec import EditSpec, load_spec


def ns_train() -> List[str]:
    """The ``ns-train`` of this Python environment; without the script (nerfstudio installed with
    ``pip --target``), its module run by this Python."""
    beside = Path(sys.executable).parent / "ns-train"
    if beside.exists():
        return [str(beside)]
    try:
        import nerfstudio.scripts.train  # noqa: F401
    except ImportError:
        raise UserError("nerfstudio is not installed in this environment; run make install") from None
    return [sys.executable, "-m", "nerfstudio.scripts.train"]


STEP_LINE = re.compile(r"^(\d+) \(\d+(?:\.\d+)?%\)")
"""A line of nerfstudio's local writer with ``--logging.local-writer.max-log-size 0``: ``300 (50.00%) ...``."""
PROGRESS_ARGS = ["--logging.local-writer.enable", "True", "--logging.local-writer.max-log-size", "0"]
"""Make ns-train print one plain line per logged step, which :func:`run_ns_train` reads for its progress."""
NERFSTUDIO_DEFAULT_STEPS = 30000


def run_folder_args(output_dir: Path, experiment: str, timestamp: str, progress: bool = True) -> List[str]:
    """ns-train flags that put a run in ``output_dir/experiment/<method>/timestamp`` and log to tensorboard
    only (no viewer); with ``progress`` the local writer prints the step lines :func:`run_ns_train` reads,
    without it the local writer is off."""
    writer = PROGRESS_ARGS if progress else ["--logging.local-writer.enable", "False"]
    location = ["--output-dir", str(output_dir), "--experiment-name", experiment, "--timestamp", timestamp]
    return [*location, "--vis", "tensorboard", *writer]


Progress = Optional[Callable[[int, int], None]]
"""Called with (step, steps) as ns-train reports its steps."""


def run_ns_train(
    args: Sequence[str],
    log: Path,
    env: Optional[Dict[str, str]] = None,
    progress: Progress = None,
    launcher: Optional[Sequence[str]] = None,
) -> None:
    """Run ``ns-train args``, its whole output going to ``log``; ``progress(step, steps)`` is called for each
    step line it prints (see :data:`PROGRESS_ARGS`). A failure raises with the log's telling line.
    ``launcher`` replaces the command that starts ns-train (default :func:`ns_train`)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    steps = _max_iterations(args)
    # lines as they come, and every warning: the log is the full record
    child_env = {**with_all_warnings(dict(os.environ if env is None else env)), "PYTHONUNBUFFERED": "1"}
    with (
        open(log, "w") as out,
        subprocess.Popen(
            [*(launcher or ns_train()), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=child_env,
            text=True,
        ) as child,
    ):
        try:
            for line in child.stdout:
                out.write(line)
                match = STEP_LINE.match(line.strip())
                if match and progress is not None:
                    progress(int(match.group(1)), steps)
        except BaseException:
            _stop(child)  # Ctrl-C reaches ns-train too, but a cancelled Ray task interrupts only this process
            raise
        code = child.wait()
    if code != 0:
        lines = [line for line in log.read_text().splitlines() if line.strip()]
        errors = [line for line in lines if "error" in line.lower()]
        raise UserError(f"ns-train {args[0]} failed ({(errors or lines or ['no output'])[-1].strip()}); log: {log}")


def _stop(child: subprocess.Popen, grace_s: float = 10.0) -> None:
    """End ``child``: terminate, and kill it if it is still there after ``grace_s``."""
    child.terminate()
    try:
        child.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()


def _max_iterations(args: Sequence[str]) -> int:
    values = [args[i + 1] for i, arg in enumerate(args[:-1]) if arg == "--max-num-iterations"]
    return int(values[-1]) if values else NERFSTUDIO_DEFAULT_STEPS


def existing_source(spec: EditSpec) -> Optional[Path]:
    """``spec.source_run``, or the source run an earlier call trained for this spec, or None."""
    if spec.source_run is not None:
        return spec.source_run
    run = spec.output_dir / spec.name / spec.source_method / "source"
    return run if any((run / "nerfstudio_models").glob("*.ckpt")) else None


def train_source(spec: EditSpec, env: Optional[Dict[str, str]] = None, progress: Progress = None) -> Path:
    """The source run: ``spec.source_run``, an earlier one of this spec, or a newly trained one."""
    existing = existing_source(spec)
    if existing is not None:
        return existing
    run = spec.output_dir / spec.name / spec.source_method / "source"
    args = [
        spec.source_method,
        *run_folder_args(spec.output_dir, spec.name, "source"),
        *spec.source_args,
        spec.dataparser,
        "--data",
        str(spec.scene),
        *spec.dataparser_args,
    ]
    run_ns_train(args, spec.output_dir / spec.name / "source.log", env, progress)
    return run


def edit_log(spec: EditSpec, stamp: str) -> Path:
    """Where ns-train's output of the edit run ``stamp`` of ``spec`` is kept."""
    return spec.output_dir / spec.name / f"{spec.method}-{stamp}.log"


def run_edit(spec: EditSpec, source: Path, env: Optional[Dict[str, str]] = None, progress: Progress = None) -> Path:
    """The edit itself, in a new timestamped run folder; returns it."""
    stamp = time.strftime("%Y-%m-%d_%H%M%S")
    args = [
        spec.method,
        *run_folder_args(spec.output_dir, spec.name, stamp),
        "--load-dir",
        str(source / "nerfstudio_models"),
        "--pipeline.source-prompt",
        spec.source_prompt,
        "--pipeline.target-prompt",
        spec.target_prompt,
        *spec.edit_args,
        spec.dataparser,
        "--data",
        str(spec.scene),
        *spec.dataparser_args,
    ]
    run_ns_train(args, edit_log(spec, stamp), env, progress)
    return spec.output_dir / spec.name / spec.method / stamp


@dataclass
class EditResult:
    """What one edit produced; ``error`` is set instead when it failed."""

    name: str
    source_run: Optional[Path] = None
    edit_run: Optional[Path] = None
    metrics: Dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    error: Optional[str] = None

    def summary(self) -> str:
        if self.error:
            return f"{self.name}: FAILED: {self.error}"
        shown = ", ".join(f"{k} {v:.3f}" for k, v in self.metrics.items() if isinstance(v, float))
        return f"{self.name}: done in {self.seconds:.0f} s, run {self.edit_run}" + (f"; {shown}" if shown else "")


def run_spec(
    spec: EditSpec, env: Optional[Dict[str, str]] = None, evaluate: bool = True, stages: Optional[Stages] = None
) -> EditResult:
    """Source (if needed), edit, evaluation; a failure is recorded in the result, not raised. With
    ``stages``, each of the three is shown as a stage with its progress (three stages are counted)."""
    from ids_nerf.evaluation.evaluate import evaluate_runs, ground_truth_appearance

    stages = stages or Stages(3, stream=None)
    start = time.time()
    result = EditResult(spec.name)
    try:
        spec.validate()
        trained = existing_source(spec) is None
        stages.start(f"source {spec.source_method}" + ("" if trained else " (an existing run)"))
        result.source_run = train_source(spec, env, stages.progress)
        stages.done(f"log: {spec.output_dir / spec.name / 'source.log'}" if trained else str(result.source_run))
        stages.start(f"edit with {spec.method}")
        result.edit_run = run_edit(spec, result.source_run, env, stages.progress)
        stages.done(f"log: {edit_log(spec, result.edit_run.name)}")
        if evaluate:
            stages.start("evaluation of the test views")
            eval_log = result.edit_run.parent.parent / f"eval-{result.edit_run.name}.log"
            with open(eval_log, "w") as log, contextlib.redirect_stdout(log):  # nerfstudio's loading chatter
                report = evaluate_runs(
                    result.source_run / "config.yml",
                    result.edit_run / "config.yml",
                    result.edit_run / "eval",
                    scene=spec.scene,
                    target_appearance=ground_truth_appearance(spec.scene, spec.target_prompt),
                    source_prompt=spec.source_prompt,
                    target_prompt=spec.target_prompt,
                )
            result.metrics = report.headline()
            stages.done(f"log: {eval_log}")
    except UserError as err:
        result.error = str(err)
    result.seconds = time.time() - start
    return result


def run_files(paths: Sequence[Path], env: Optional[Dict[str, str]] = None) -> List[EditResult]:
    """Run each edit file in turn; a failed one is reported and the rest still run."""
    results = []
    for path in paths:
        try:
            spec = load_spec(Path(path))
        except UserError as err:
            results.append(EditResult(Path(path).stem, error=str(err)))
            print(results[-1].summary(), flush=True)
            continue
        print(f"Edit '{spec.name}': {spec.method} of {spec.scene}", flush=True)
        results.append(run_spec(spec, env, stages=Stages(3)))
        print(results[-1].summary(), flush=True)
    return results
