"""benchmarks/ray_batch.py runs as a module, like the other benchmarks, and leaves sys.path alone."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_importing_the_benchmark_leaves_sys_path_alone():
    before = list(sys.path)
    sys.modules.pop("benchmarks.ray_batch", None)
    import benchmarks.ray_batch  # noqa: F401

    assert sys.path == before


def test_it_runs_as_a_module_from_the_checkout():
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.ray_batch", "--help"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "python -m benchmarks.ray_batch" in result.stdout
