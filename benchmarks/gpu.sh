#!/usr/bin/env bash
# Every GPU benchmark in one prepared run (< 8 minutes on an H100), results under $OUT.
# Here first: bash benchmarks/fetch_gpu_wheels.sh; then the device tool runs
#   bash benchmarks/gpu.sh     (carry: .whl)
# and the results go into docs/performance.md with the card, the date and the commit.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-benchmarks/results}
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; git rev-parse HEAD 2>/dev/null; date -u; } \
    > "$OUT/machine.txt"
cat "$OUT/machine.txt"
# The guidance step: IDS (N=3), Jacobian-free IDS and DDS against the straightforward reference loop,
# SD 1.5's architecture at 512x512, fp32 / fp16 / bf16.
timeout 360 python3 benchmarks/guidance_step.py --model sd15-random --device cuda --precisions fp32 fp16 bf16 \
    --size 512 --repeats 20 --out "$OUT/guidance_step_gpu.json" 2>&1 | tee "$OUT/guidance_step_gpu.log"
# The whole ids-edit step needs nerfstudio, which the GPU image lacks and whose wheels are too large
# to carry within the 64 MiB limit with its dependencies: run it where nerfstudio is installed with
#   python benchmarks/edit_step.py --device cuda --size 512
echo "done: $OUT"
