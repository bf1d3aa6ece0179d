"""Run a nerfstudio console script with splatfacto on the CPU rasterizer of ``tests.gsplat_cpu``.

``python -m tests.ns_cpu_splat ns-train splatfacto ...`` runs the real ``ns-train`` (or ``ns-render``,
``ns-eval``, ...) with its own argument parsing; only rasterization is swapped, in this process.
"""

import os
import sys
from importlib.metadata import entry_points

os.environ.setdefault("TORCHDYNAMO_DISABLE", "1")  # splatfacto compiles get_viewmat; eager is faster for tests

from tests.gsplat_cpu import use_cpu_rasterizer  # noqa: E402


def main() -> None:
    if len(sys.argv) < 2:
        raise SystemExit("usage: python -m tests.ns_cpu_splat <ns-command> [args...]")
    (script,) = entry_points(group="console_scripts", name=sys.argv[1])
    sys.argv = sys.argv[1:]
    with use_cpu_rasterizer():
        script.load()()


if __name__ == "__main__":
    main()
