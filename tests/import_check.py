"""Asserting that importing a module does not pull in heavy or forbidden packages."""

import subprocess
import sys


def assert_imports_none_of(module: str, forbidden: set) -> None:
    """Import ``module`` in a fresh interpreter; fail if any top-level package in ``forbidden`` got loaded."""
    code = (
        f"import sys, {module}; "
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {sorted(forbidden)!r}); "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
