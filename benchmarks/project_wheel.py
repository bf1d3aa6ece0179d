"""ids-nerf's own wheel for the GPU run: built here beside the others, installed there the same way.

    python benchmarks/project_wheel.py build [--dest .whl]     # replaces any ids_nerf-*.whl in DEST
    python benchmarks/project_wheel.py check SITE              # the install in SITE names pyproject's methods
    python benchmarks/project_wheel.py stand-in DIR            # a Python with this one's packages, no ids-nerf

nerfstudio finds ``ids-edit`` and the other methods through the ``nerfstudio.method_configs`` entry points
of an installed ids-nerf; the source tree on ``PYTHONPATH`` alone has none, and ``ns-train ids-edit``
then stops with "invalid choice". ``check`` reads the installed dist-info (what nerfstudio reads) and fails
in one line when it is missing or its methods are not pyproject.toml's (a wheel built before a method was
added or renamed). Uses the standard library and pip only, so it runs before anything is installed.

``stand-in`` makes what ``benchmarks/gpu.sh --cpu-smoke`` runs in, in place of the GPU image: a bare virtual
environment of the interpreter this Python's environment was made from (``DIR/venv``) and, for its
``PYTHONPATH``, ``DIR/packages``: links to this environment's packages less ids-nerf (its dist-info and
editable finder) and the ``.pth`` files (a ``PYTHONPATH`` folder's are not read; the GPU run's
``/tmp/site`` is such a folder too). Prints the stand-in's python.
"""

from __future__ import annotations

import argparse
import configparser
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GROUP = "nerfstudio.method_configs"


def pyproject_methods() -> dict:
    """The ``nerfstudio.method_configs`` entry points pyproject.toml declares: name -> object reference."""
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return dict(project["entry-points"][GROUP])


def installed_methods(site: Path) -> dict:
    """The same entry points as the ids-nerf dist-info in ``site`` declares them; empty when there is none."""
    found = sorted(site.glob("ids_nerf-*.dist-info/entry_points.txt"))
    if not found:
        return {}
    parser = configparser.ConfigParser(delimiters=("=",))
    parser.optionxform = str  # names are case-sensitive
    parser.read(found[-1])
    return dict(parser[GROUP]) if parser.has_section(GROUP) else {}


def build(dest: Path) -> Path:
    """Build the wheel from the tree into ``dest`` (no dependencies, no network), replacing older ones."""
    dest.mkdir(parents=True, exist_ok=True)
    for old in dest.glob("ids_nerf-*.whl"):
        old.unlink()
    with tempfile.TemporaryDirectory(prefix="ids-wheel-") as out:
        # built from a copy: setuptools writes ids_nerf.egg-info into the source folder, and one in the tree
        # would give a Python with the tree on its path ids-nerf's entry points without any install
        source = Path(out) / "source"
        shutil.copytree(ROOT / "ids_nerf", source / "ids_nerf", ignore=shutil.ignore_patterns("__pycache__"))
        for name in ("pyproject.toml", "README.md"):
            shutil.copy2(ROOT / name, source / name)
        command = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "--no-index"]
        result = subprocess.run([*command, "--wheel-dir", out, str(source)], capture_output=True, text=True)
        if result.returncode != 0:  # setuptools' warnings are long; shown only when the build fails
            raise SystemExit(f"error: building the ids-nerf wheel failed:\n{result.stdout}{result.stderr}")
        (wheel,) = Path(out).glob("ids_nerf-*.whl")
        return Path(wheel.replace(dest / wheel.name))


def stand_in(folder: Path) -> Path:
    """Make the stand-in Python in ``folder`` (see the module's docstring); returns its interpreter."""
    import sysconfig
    import venv

    left_out = ("ids_nerf", "ids-nerf", "__editable__", "__pycache__")
    venv.EnvBuilder(with_pip=False, symlinks=True).create(folder / "venv")
    packages = folder / "packages"
    packages.mkdir()
    for entry in sorted(Path(sysconfig.get_paths()["purelib"]).iterdir()):
        if not entry.name.startswith(left_out) and entry.suffix != ".pth":
            (packages / entry.name).symlink_to(entry)
    python = folder / "venv" / "bin" / "python"
    # as the smoke runs it: from the tree (gpu.sh's copy of it), the tree first on its path
    probe = "import importlib.metadata as m; print(*[d._path for d in m.distributions() if d.name == 'ids-nerf'])"
    tree = Path.cwd()
    env = {"PYTHONPATH": os.pathsep.join([str(tree), str(packages)])}
    found = subprocess.run([str(python), "-c", probe], env=env, cwd=tree, capture_output=True, text=True, check=True)
    if found.stdout.strip():
        raise SystemExit(f"error: the stand-in Python still finds an ids-nerf install ({found.stdout.strip()})")
    return python


def check(site: Path) -> str:
    """An error line when ``site`` lacks ids-nerf's dist-info or it names other methods; else ''."""
    wanted, found = pyproject_methods(), installed_methods(site)
    if not found:
        return (
            f"no ids-nerf install in {site}: nerfstudio would find no ids-edit method "
            "(build the wheel: python benchmarks/project_wheel.py build)"
        )
    if found != wanted:
        return (
            f"the ids-nerf install in {site} declares methods {sorted(found)}, pyproject.toml {sorted(wanted)}: "
            "rebuild the wheel (python benchmarks/project_wheel.py build)"
        )
    return ""


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("build").add_argument("--dest", type=Path, default=ROOT / ".whl")
    commands.add_parser("check").add_argument("site", type=Path)
    commands.add_parser("stand-in").add_argument("folder", type=Path)
    args = parser.parse_args(argv)
    if args.command == "build":
        print(f"built {build(args.dest)}")
        return 0
    if args.command == "stand-in":
        print(stand_in(args.folder))
        return 0
    error = check(args.site)
    if error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"ids-nerf install in {args.site}: methods {', '.join(sorted(pyproject_methods()))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
