"""The prepared GPU run's own parts, on the CPU: its command line, the project's wheel and install check,
the stand-in Python the smoke runs in, and the gsplat stage's verdict."""

import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from benchmarks import gsplat_build, project_wheel

ROOT = Path(__file__).resolve().parents[2]


def _gpu_sh(*args: str, root: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(root / "benchmarks" / "gpu.sh"), *args], capture_output=True, text=True)


@pytest.mark.parametrize("args", [(), ("3",), ("1", "2"), ("--cpu-smoke",)])
def test_gpu_sh_refuses_a_bad_part_in_one_line(args):
    result = _gpu_sh(*args)
    assert result.returncode == 2
    assert result.stderr == "usage: bash benchmarks/gpu.sh [--cpu-smoke] 1|2\n" and result.stdout == ""


def test_gpu_sh_without_the_project_wheel_stops_before_installing(tmp_path):
    (tmp_path / "benchmarks").mkdir()
    shutil.copy(ROOT / "benchmarks" / "gpu.sh", tmp_path / "benchmarks")
    (tmp_path / ".whl").mkdir()
    result = _gpu_sh("1", root=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: no ids-nerf wheel in .whl: run bash benchmarks/fetch_gpu_wheels.sh here and carry .whl"
    ]


def _install(wheel_dir: Path, site: Path) -> None:
    command = [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile"]
    subprocess.run([*command, "--target", str(site), *map(str, wheel_dir.glob("*.whl"))], check=True)


def test_the_built_wheel_declares_pyprojects_methods_and_a_stale_one_is_refused(tmp_path, capsys):
    egg_info = ROOT / "ids_nerf.egg-info"  # an editable install (make test's) may have left one: it must not change
    before = egg_info.stat().st_mtime_ns if egg_info.exists() else None
    wheel = project_wheel.build(tmp_path / "wheels")
    assert wheel.name == "ids_nerf-0.1.0-py3-none-any.whl"
    assert (egg_info.stat().st_mtime_ns if egg_info.exists() else None) == before  # built from a copy
    site = tmp_path / "site"
    _install(wheel.parent, site)
    assert project_wheel.installed_methods(site) == project_wheel.pyproject_methods()
    assert "ids-edit" in project_wheel.pyproject_methods()
    assert project_wheel.main(["check", str(site)]) == 0

    (entry_points,) = site.glob("ids_nerf-*.dist-info/entry_points.txt")
    entry_points.write_text(entry_points.read_text().replace("ids-edit-splat =", "ids-edit-gsplat ="))
    assert project_wheel.main(["check", str(site)]) == 1
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "rebuild the wheel" in error[0] and "ids-edit-gsplat" in error[0]
    assert project_wheel.main(["check", str(tmp_path / "empty")]) == 1
    assert "no ids-nerf install" in capsys.readouterr().err


@pytest.mark.slow
def test_the_stand_in_finds_ids_edit_only_through_the_installed_wheel(tmp_path, monkeypatch):
    """What the GPU run would hit: the tree on the path finds no ids-edit method; with the wheel
    installed the way gpu.sh installs it, ns-train knows the method."""
    # the tree as the device tool copies it (gpu.sh's smoke too): without the egg-info an editable install leaves
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "ids_nerf").symlink_to(ROOT / "ids_nerf")
    monkeypatch.chdir(tree)
    python = project_wheel.stand_in(tmp_path / "stand-in")
    packages = tmp_path / "stand-in" / "packages"
    assert not (packages / "__editable___ids_nerf_0_1_0_finder.py").exists()
    site = tmp_path / "site"

    def ns_train(*args: str) -> subprocess.CompletedProcess:
        env = {"PYTHONPATH": f"{tree}:{site}:{packages}", "HOME": str(tmp_path), "OMP_NUM_THREADS": "1"}
        command = [str(python), "-m", "ids_nerf.testing.ns_run", "ns-train", *args]
        return subprocess.run(command, env=env, cwd=tree, capture_output=True, text=True, timeout=300)

    without = ns_train("ids-edit")
    assert without.returncode == 2 and "Unrecognized options: ids-edit" in without.stdout + without.stderr
    _install(project_wheel.build(tmp_path / "wheels").parent, site)
    with_wheel = ns_train("ids-edit", "--help")
    assert with_wheel.returncode == 0 and "usage: ns-train ids-edit" in with_wheel.stdout


def test_the_gsplat_stage_fails_without_the_extension(monkeypatch, capsys):
    assert gsplat_build.extension_error(SimpleNamespace(_C=object())) == ""
    monkeypatch.setitem(sys.modules, "gsplat.cuda._backend", SimpleNamespace(_C=None))
    assert gsplat_build.main() == 1
    error = capsys.readouterr().err.strip().splitlines()
    assert error == [f"error: {gsplat_build.extension_error(SimpleNamespace(_C=None))}"]
    assert "_C is None" in error[0]
