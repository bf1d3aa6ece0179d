"""Running edits through nerfstudio's own ``ns-train`` (no second training loop)."""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence

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


def run_ns_train(args: Sequence[str], log: Path, env: Optional[Dict[str, str]] = None) -> None:
    """Run ``ns-train args``, its output going to ``log``; a failure raises with the log's last line."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as out:
        code = subprocess.run([*ns_train(), *args], stdout=out, stderr=subprocess.STDOUT, env=env).returncode
    if code != 0:
        lines = [line for line in log.read_text().splitlines() if line.strip()]
        errors = [line for line in lines if "error" in line.lower()]
        raise UserError(f"ns-train {args[0]} failed ({(errors or lines or ['no output'])[-1].strip()}); log: {log}")


def train_source(spec: EditSpec, env: Optional[Dict[str, str]] = None) -> Path:
    """The source run: ``spec.source_run``, an earlier one of this spec, or a newly trained one."""
    if spec.source_run is not None:
        return spec.source_run
    run = spec.output_dir / spec.name / spec.source_method / "source"
    if any((run / "nerfstudio_models").glob("*.ckpt")):
        return run
    args = [
        spec.source_method, "--output-dir", str(spec.output_dir), "--experiment-name", spec.name,
        "--timestamp", "source", "--vis", "tensorboard", *spec.source_args,
        spec.dataparser, "--data", str(spec.scene), *spec.dataparser_args,
    ]
    run_ns_train(args, spec.output_dir / spec.name / "source.log", env)
    return run


def run_edit(spec: EditSpec, source: Path, env: Optional[Dict[str, str]] = None) -> Path:
    """The edit itself, in a new timestamped run folder; returns it."""
    stamp = time.strftime("%Y-%m-%d_%H%M%S")
    args = [
        spec.method, "--output-dir", str(spec.output_dir), "--experiment-name", spec.name, "--timestamp", stamp,
        "--vis", "tensorboard", "--load-dir", str(source / "nerfstudio_models"),
        "--pipeline.source-prompt", spec.source_prompt, "--pipeline.target-prompt", spec.target_prompt,
        *spec.edit_args, spec.dataparser, "--data", str(spec.scene), *spec.dataparser_args,
    ]
    run_ns_train(args, spec.output_dir / spec.name / f"{spec.method}-{stamp}.log", env)
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


def run_spec(spec: EditSpec, env: Optional[Dict[str, str]] = None, evaluate: bool = True) -> EditResult:
    """Source (if needed), edit, evaluation; a failure is recorded in the result, not raised."""
    from ids_nerf.evaluation.evaluate import evaluate_runs, ground_truth_appearance

    start = time.time()
    result = EditResult(spec.name)
    try:
        spec.validate()
        result.source_run = train_source(spec, env)
        result.edit_run = run_edit(spec, result.source_run, env)
        if evaluate:
            report = evaluate_runs(
                result.source_run / "config.yml", result.edit_run / "config.yml", result.edit_run / "eval",
                scene=spec.scene, target_appearance=ground_truth_appearance(spec.scene, spec.target_prompt),
                source_prompt=spec.source_prompt, target_prompt=spec.target_prompt,
            )
            result.metrics = report.headline()
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
        results.append(run_spec(spec, env))
        print(results[-1].summary(), flush=True)
    return results
