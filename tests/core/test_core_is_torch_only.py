import subprocess
import sys


def test_core_imports_neither_nerfstudio_nor_diffusers():
    code = (
        "import sys, ids_nerf.core; "
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in {'nerfstudio', 'diffusers', 'transformers'}); "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
