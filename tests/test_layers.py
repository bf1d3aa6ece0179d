"""The package's layers (docs/index.md, "Layers"): each imports only from the layers below it, lazy
imports inside functions included, so that the math never depends on nerfstudio and no glue leaks down."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "ids_nerf"
FOUNDATION = {"errors", "io", "console", "images", "methods"}
ALLOWED = {
    "foundation": FOUNDATION,
    "core": {"core"},
    "scenes": FOUNDATION | {"scenes"},
    "data": FOUNDATION | {"data"},
    "guidance": FOUNDATION | {"core", "scenes", "guidance"},
    "image_editing": FOUNDATION | {"core", "guidance", "image_editing"},
    "nerfstudio": FOUNDATION | {"core", "guidance", "nerfstudio"},
    "evaluation": FOUNDATION | {"scenes", "guidance", "nerfstudio", "evaluation"},
    "workflow": FOUNDATION | {"evaluation", "scenes", "workflow"},
}
"""What each layer may import of ids_nerf; ``demo``, ``cli``, ``study`` (IDS against DDS, in 2D and through
ns-train) and ``testing`` (what the tests and the benchmarks share) sit on top and may import anything."""
TOP = {"demo", "cli", "study", "testing", "__init__"}
NERFSTUDIO_FREE = {"foundation", "core", "scenes", "data", "guidance", "image_editing"}
"""Layers that never import the nerfstudio library."""


def _layer(path: Path) -> str:
    part = path.relative_to(PACKAGE).parts[0].removesuffix(".py")
    return "foundation" if part in FOUNDATION else part


def _imports(path: Path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module
        elif isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)


def test_each_layer_imports_only_the_layers_below_it():
    broken = []
    for path in sorted(PACKAGE.rglob("*.py")):
        layer = _layer(path)
        if layer in TOP:
            continue
        for module in _imports(path):
            top, _, rest = module.partition(".")
            if top == "ids_nerf" and rest:
                used = rest.split(".")[0]
                used = "foundation" if used in FOUNDATION else used
                allowed = {"foundation" if a in FOUNDATION else a for a in ALLOWED[layer]}
                if used not in allowed:
                    broken.append(f"{path.relative_to(PACKAGE)} ({layer}) imports ids_nerf.{rest}")
            if top == "nerfstudio" and layer in NERFSTUDIO_FREE:
                broken.append(f"{path.relative_to(PACKAGE)} ({layer}) imports {module}")
    assert not broken, "\n".join(broken)


def test_every_module_belongs_to_a_layer():
    layers = {_layer(path) for path in PACKAGE.rglob("*.py")}
    assert layers <= set(ALLOWED) | TOP, layers - set(ALLOWED)


def test_no_edit_path_uses_the_testing_module():
    """The CPU stand-in rasterizer must never reach an edit: only the study (on a CPU without CUDA) uses it."""
    users = [
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if _layer(path) not in ("testing", "study") and any(m.startswith("ids_nerf.testing") for m in _imports(path))
    ]
    assert not users, users
