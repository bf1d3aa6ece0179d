"""Batches without nerfstudio: ``run_spec`` replaced by a stand-in, so the bookkeeping is tested in milliseconds."""

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ids_nerf.cli.main import main
from ids_nerf.errors import UserError
from ids_nerf.workflow import runner
from ids_nerf.workflow.batch import BatchEdit, LocalExecutor, edit_key, run_batch
from ids_nerf.workflow.runner import EditResult
from ids_nerf.workflow.spec import EditSpec


def spec(tmp_path, name="ball", target="a blue ball", **fields):
    return EditSpec(name, tmp_path, "a red ball", target, output_dir=tmp_path / "out", **fields)


def test_the_key_follows_the_content_not_the_file_or_the_output(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    key = edit_key(spec(tmp_path))
    assert edit_key(EditSpec("ball", Path("."), "a red ball", "a blue ball", output_dir=Path("elsewhere"))) == key
    assert edit_key(spec(tmp_path, target="a green ball")) != key
    assert edit_key(spec(tmp_path, edit_args=["--max-num-iterations", "3"])) != key


@pytest.fixture
def fake_run_spec(monkeypatch, tmp_path):
    """``run_spec`` as a stand-in: an edit whose target says 'crash' raises, 'fail' fails, 'stop' is Ctrl-C."""
    calls = []

    def run_spec(spec, env=None, evaluate=True, stages=None):
        calls.append(spec.name)
        if "crash" in spec.target_prompt:
            raise RuntimeError("out of memory\nmore detail")
        if "stop" in spec.target_prompt:
            raise KeyboardInterrupt
        if "fail" in spec.target_prompt:
            return EditResult(spec.name, error=f"ns-train ids-edit failed (bad flag); log: {tmp_path / 'e.log'}")
        (tmp_path / spec.name).mkdir(exist_ok=True)
        return EditResult(spec.name, edit_run=tmp_path / spec.name, metrics={"psnr": float(len(spec.name))})

    monkeypatch.setattr(runner, "run_spec", run_spec)
    return calls


def edits(tmp_path, *targets):
    return [BatchEdit(spec(tmp_path, name=f"e{i}", target=t), {"seed": str(i)}) for i, t in enumerate(targets)]


def test_a_failing_edit_is_one_line_with_its_log_and_the_rest_go_on(tmp_path, fake_run_spec, capsys):
    batch = edits(tmp_path, "a blue ball", "fail", "crash", "a green ball")
    summary = run_batch(batch, LocalExecutor())
    assert [r["status"] for r in summary.records] == ["done", "failed", "failed", "done"]
    out = capsys.readouterr().out
    assert f"e1: FAILED: ns-train ids-edit failed (bad flag) (log: {tmp_path / 'e.log'})" in out
    crash_log = tmp_path / "out" / "e2" / f"crash-{batch[2].key}.log"
    assert f"e2: FAILED: RuntimeError: out of memory (log: {crash_log})" in out
    assert "Traceback" in crash_log.read_text()
    assert out.strip().splitlines()[-1] == "Batch finished: 2 done, 0 skipped (done before), 2 failed"
    record = json.loads(batch[0].record_path.read_text())
    assert record["status"] == "done" and record["metrics"] == {"psnr": 2.0} and record["labels"] == {"seed": "0"}
    assert not list(batch[0].record_path.parent.glob(".*tmp"))  # written through a temporary file, renamed


def test_a_rerun_skips_the_done_edits_and_retries_the_failed(tmp_path, fake_run_spec, capsys):
    run_batch(edits(tmp_path, "a blue ball", "fail"), LocalExecutor())
    fake_run_spec.clear()
    summary = run_batch(edits(tmp_path, "a blue ball", "fail"), LocalExecutor())
    assert fake_run_spec == ["e1"]
    assert summary.line() == "Batch finished: 0 done, 1 skipped (done before), 1 failed"
    assert "e0: done before" in capsys.readouterr().out
    (tmp_path / "e0").rmdir()  # its run folder removed: the edit runs again
    fake_run_spec.clear()
    run_batch(edits(tmp_path, "a blue ball"), LocalExecutor())
    assert fake_run_spec == ["e0"]


def test_ctrl_c_stops_the_batch_and_records_nothing_for_the_interrupted_edit(tmp_path, fake_run_spec):
    batch = edits(tmp_path, "a blue ball", "stop", "a green ball")
    summary = run_batch(batch, LocalExecutor())
    assert summary.interrupted and fake_run_spec == ["e0", "e1"]
    assert summary.line() == "Batch interrupted: 1 done, 0 skipped (done before), 0 failed, 2 not run"
    assert batch[0].record_path.is_file() and not batch[1].record_path.exists()


def test_an_interrupted_ns_train_stops_its_child(tmp_path, monkeypatch):
    # a cancelled Ray task is interrupted alone (no Ctrl-C reaches its child): the child must be ended with it
    pid_file = tmp_path / "pid"
    script = (
        f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); "
        "print('1 (50.00%)', flush=True); time.sleep(60)"
    )
    monkeypatch.setattr(runner, "ns_train", lambda: [sys.executable, "-c", script])

    def interrupt(step, steps):
        raise KeyboardInterrupt

    start = time.time()
    with pytest.raises(KeyboardInterrupt):
        runner.run_ns_train(["ids-edit"], tmp_path / "log", progress=interrupt)
    assert time.time() - start < 20
    pid = int(pid_file.read_text())
    assert subprocess.run(["ps", "-p", str(pid), "-o", "stat="], capture_output=True, text=True).stdout.strip() in (
        "",
        "Z",
    )


def test_run_refuses_what_cannot_work_with_one_line(tmp_path, monkeypatch, capsys):
    edit = tmp_path / "e.yaml"
    edit.write_text(f"name: e\nscene: {tmp_path}\nsource_prompt: a\ntarget_prompt: b\noutput_dir: out\n")
    assert main(["run", str(edit), "--workers", "2"]) == 2
    assert "--workers only apply with --executor ray" in capsys.readouterr().err
    pytest.importorskip("ray")
    assert main(["run", str(edit), "--executor", "ray", "--address", "auto"]) == 2
    assert "output_dir 'out' is relative; with --address" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    assert main(["run", str(edit), "--executor", "ray"]) == 2
    assert capsys.readouterr().err.strip() == (
        "ids-nerf: error: --executor ray needs Ray: install the extra with pip install 'ids-nerf[ray]'"
    )


def test_ray_refuses_two_edits_that_would_share_a_folder(tmp_path):
    from ids_nerf.workflow.ray_executor import RayExecutor

    same_name = [BatchEdit(spec(tmp_path, target=t)) for t in ("a blue ball", "a green ball")]
    with pytest.raises(UserError, match="two different edits are both named 'ball'"):
        RayExecutor().run(same_name, print)


def test_the_local_executor_never_imports_ray():
    probe = (
        "import sys\n"
        "from ids_nerf.cli.run_edits import ExecutorOptions\n"
        "ExecutorOptions().make([])\n"
        "assert 'ray' not in sys.modules, 'ray imported'\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_a_ray_that_does_not_start_is_one_line():
    from types import SimpleNamespace

    from ids_nerf.workflow.ray_executor import RayExecutor

    def init(**options):
        raise Exception("The current node timed out during startup.\nmore")

    with pytest.raises(UserError, match=r"^Ray did not start on this machine \(The current node timed out during"):
        RayExecutor(workers=2)._init(SimpleNamespace(init=init))
