"""``ids-nerf suite --executor ray``: a local Ray with 2 workers runs real (tiny) edits to the end, one setting failing
on purpose; the rerun skips the finished edits; the aggregated table is the per-edit metrics' mean and spread."""

import json
import statistics

import pytest

from tests.nerfstudio.conftest import BIN, run

pytestmark = pytest.mark.slow
pytest.importorskip("ray")

SUITE = """
output_dir: {out}
scenes:
  ball:
    path: {scene}
    source_run: {source_run}  # shared: the test times the batch, not four source trainings
    prompts:
      blue: {{source: a red ball, target: a blue ball}}
methods: [ids-edit]
settings:
  ok: []
  broken: [--pipeline.fpr-scale, not-a-number]  # ns-train refuses it: the edit that fails
seeds: [0, 1]
edit_args: [--max-num-iterations, 2, --pipeline.diffusion-model, {model}]
"""


def suite_command(path):
    return [str(BIN / "ids-nerf"), "suite", str(path), "--executor", "ray", "--workers", "2"]


def test_a_suite_runs_on_a_local_ray_and_a_rerun_skips_what_is_done(
    workspace, source_run, ns_env, tiny_sd_dir, tmp_path
):
    out = tmp_path / "out"
    path = tmp_path / "suite.yaml"
    path.write_text(SUITE.format(out=out, scene=workspace / "scene", source_run=source_run, model=tiny_sd_dir))

    # a guard against a hang, not a speed test: under load on 2 cores the first pass took over 600 s
    first = run(suite_command(path), ns_env, timeout=1200)
    assert first.returncode == 2, first.stdout[-3000:] + first.stderr[-3000:]
    lines = first.stdout.splitlines()
    assert "Ray: 4 edits, 1 CPU and 0 GPU each" in lines
    failed = [line for line in lines if ": FAILED: " in line]
    assert len(failed) == 2 and all("fpr-scale" in line and "(log: " in line for line in failed)
    assert "Batch finished: 2 done, 0 skipped (done before), 2 failed" in lines
    assert "2 of 4 edits failed" in first.stderr

    table = json.loads((out / "table.json").read_text())
    ok = next(row for row in table["aggregated"] if row["setting"] == "ok")
    runs = sorted(out.glob("ball-blue-ids-edit-ok-s*/ids-edit/*"))
    assert len(runs) == 2 and ok["succeeded"] == 2
    per_edit = [json.loads((r / "eval" / "metrics.json").read_text())["metrics"] for r in runs]
    for metric in ("mask_iou", "background_psnr"):
        values = [m[metric] for m in per_edit if metric in m]
        if len(values) == 2:
            assert ok[f"{metric}_mean"] == pytest.approx(statistics.fmean(values))
            assert ok[f"{metric}_std"] == pytest.approx(statistics.stdev(values))
    assert "mask_iou_mean" in ok

    again = run(suite_command(path), ns_env, timeout=1200)
    assert again.returncode == 2
    assert "Batch finished: 0 done, 2 skipped (done before), 2 failed" in again.stdout.splitlines()
    assert sorted(out.glob("ball-blue-ids-edit-ok-s*/ids-edit/*")) == runs  # no edit ran twice
