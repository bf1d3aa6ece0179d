#!/usr/bin/env bash
# Download (here, where PyPI answers) the wheels that the GPU machine lacks into .whl/ (git-ignored);
# the device run carries them: run(command="bash benchmarks/gpu.sh", carry=[".whl"]).
# The GPU image has torch, transformers, accelerate, jaxtyping, safetensors; diffusers is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .whl
python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform any -d .whl \
    "diffusers==$(.venv/bin/python -c 'import diffusers; print(diffusers.__version__)')" importlib_metadata zipp
ls -la .whl
