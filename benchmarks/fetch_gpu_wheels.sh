#!/usr/bin/env bash
# Download (here, where PyPI answers) the wheels that the GPU machine lacks into .whl/ (git-ignored), and
# build ids-nerf's own beside them (nerfstudio finds the ids-edit methods through its entry points); the
# device runs carry them: run(command="bash benchmarks/gpu.sh 1", carry=[".whl"]), then part 2.
# The GPU image (Python 3.12, torch 2.11) has torch, transformers, accelerate, jaxtyping, safetensors,
# torchmetrics, tensorboard, rich, opencv, imageio and more (device/KINDS.md). Missing: diffusers for the
# guidance benchmark; nerfstudio with what it imports, and gsplat (built there by its own JIT
# compiler), for the edit-step and splat benchmarks. About 29 MB together. VENV=path takes the versions from
# another virtual environment than .venv.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .whl
VENV=${VENV:-.venv}
version() { "$VENV/bin/python" -c "import importlib.metadata as m; print(m.version('$1'))"; }
SAME_AS_HERE="diffusers nerfstudio gsplat nerfacc tyro docstring_parser viser websockets msgspec splines
    pyquaternion pytorch-msssim torch_fidelity rawpy tensorly appdirs defusedxml dill multiprocess pathos ppft
    truststore PySocks"
specs=()
for name in $SAME_AS_HERE; do specs+=("$name==$(version "$name")"); done
# fpsample: the version here has no Python 3.12 wheel; 0.3.3 has the function splatfacto's datamanager uses
specs+=("fpsample==0.3.3" importlib_metadata zipp)
platforms=()
for n in 5 17 27 28; do platforms+=(--platform "manylinux_2_${n}_x86_64"); done
python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    "${platforms[@]}" --platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform any -d .whl "${specs[@]}"
"$VENV/bin/python" benchmarks/project_wheel.py build --dest .whl
ls -la .whl && du -sh .whl
