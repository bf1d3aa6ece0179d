"""Build gsplat's CUDA extension (its JIT compiler runs at first import) and fail unless it loaded.

    python -m benchmarks.gsplat_build        # the GPU run's part 2, before benchmarks.splat_edit

gsplat leaves ``gsplat.cuda._backend._C`` None, and only prints a warning, when it finds no CUDA toolkit;
splatfacto then fails later, at its first rasterization. A timeout that stops the build half-way leaves
no extension either (the next import starts the build again from scratch). So this exits 1, with one
line, whenever ``_C`` is None, and prints the build's seconds when it loaded.
"""

from __future__ import annotations

import importlib
import sys
import time


def extension_error(backend) -> str:
    """Why the backend module ``backend`` (``gsplat.cuda._backend``) has no extension; '' when it has one."""
    if getattr(backend, "_C", None) is None:
        return "gsplat's CUDA extension did not load (_C is None: no CUDA toolkit found, or its build failed)"
    return ""


def main() -> int:
    started = time.perf_counter()
    backend = importlib.import_module("gsplat.cuda._backend")
    error = extension_error(backend)
    if error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    where = getattr(backend._C, "__file__", backend._C)
    print(f"gsplat CUDA extension: {where} ({time.perf_counter() - started:.1f} s, build included)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
