"""``ids-nerf run`` on a real edit file: the edit through ns-train, then the evaluation."""

import json

import pytest

from tests.nerfstudio.conftest import BIN, run

pytestmark = pytest.mark.slow


def test_run_command_reports_each_edit(workspace, source_run, ns_env, tiny_sd_dir, tmp_path):
    spec = tmp_path / "ball.yaml"
    spec.write_text(
        f"name: ball\nscene: {workspace / 'scene'}\nsource_run: {source_run}\n"
        "source_prompt: a red ball\ntarget_prompt: a blue ball\n"
        f"edit_args: [--machine.device-type, cpu, --max-num-iterations, 2, --pipeline.diffusion-model, {tiny_sd_dir}]\n"
        f"output_dir: {tmp_path / 'out'}\n"
    )
    result = run([str(BIN / "ids-nerf"), "run", str(tmp_path / "missing.yaml"), str(spec)], ns_env)
    assert result.returncode == 2
    summaries = [line for line in result.stdout.splitlines() if line.startswith(("missing: ", "ball: "))]
    assert len(summaries) == 2, result.stdout[-2000:]
    assert summaries[0].startswith("missing: FAILED") and summaries[1].startswith("ball: done in")
    assert "1 of 2 edits failed: missing" in result.stderr
    # each stage with its progress and log, as the demo shows them
    assert "[1/3] source nerfacto (an existing run): done in" in result.stdout
    assert "[2/3] edit with ids-edit: done in" in result.stdout
    assert "[3/3] evaluation of the test views: done" in result.stdout
    runs = list((tmp_path / "out" / "ball" / "ids-edit").iterdir())
    assert len(runs) == 1
    metrics = json.loads((runs[0] / "eval" / "metrics.json").read_text())
    assert 0 <= metrics["metrics"]["mask_iou"] <= 1
    assert any("no ground-truth target" in n for n in metrics["notices"])
    assert (runs[0] / "eval" / "grid.png").is_file()
