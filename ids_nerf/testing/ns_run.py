"""Run a console script (``ns-train``, ``ns-render``, ``ids-nerf``, ...) in this Python interpreter.

    python -m ids_nerf.testing.ns_run ns-train splatfacto ...

The script is looked up by its entry point, so this works where packages were installed with
``pip --target`` and no ``bin/`` scripts exist (the GPU machine). Without a CUDA device, splatfacto
rasterizes with the dense CPU stand-in of :mod:`ids_nerf.testing.gsplat_cpu`; with one, nothing is swapped.
"""

import os
import sys
from importlib.metadata import entry_points

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TORCHDYNAMO_DISABLE", "1")  # splatfacto compiles get_viewmat; eager is faster for tests

from ids_nerf.testing.gsplat_cpu import use_cpu_rasterizer  # noqa: E402


def main() -> None:
    if len(sys.argv) < 2:
        raise SystemExit("usage: python -m ids_nerf.testing.ns_run <console-script> [args...]")
    (script,) = entry_points(group="console_scripts", name=sys.argv[1])
    sys.argv = sys.argv[1:]
    with use_cpu_rasterizer():
        script.load()()


if __name__ == "__main__":
    main()
