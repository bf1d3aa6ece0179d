#!/usr/bin/env bash
# Every GPU benchmark in one prepared run (at most 580 s of stages: give the device run timeout_s 600).
# Here first: bash benchmarks/fetch_gpu_wheels.sh; then the device tool runs
#   bash benchmarks/gpu.sh     (carry: .whl)
# and the results go into docs/performance.md with the card, the date and the commit.
# Each stage has its own time limit and log, so one that fails leaves the others' results.
#
# `bash benchmarks/gpu.sh --cpu-smoke` runs the same stages here, on the CPU with .venv's Python and
# the smallest sizes, to catch a broken command line before a GPU session is spent on it.
set -uo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = "--cpu-smoke" ]; then
    PY=.venv/bin/python DEVICE=cpu MODEL=tiny SIZE=32 PRECISIONS=fp32 PLAN_PRECISION=fp32 SPLAT="--size 16 --views 4 --source-steps 20 --edit-steps 3"
    OUT=${OUT:-benchmarks/results/gpu-smoke}
else
    PY=python3 DEVICE=cuda MODEL=sd15-random SIZE=512 PRECISIONS="fp32 fp16 bf16" PLAN_PRECISION=fp16
    SPLAT="--size 64 --source-steps 2000 --edit-steps 300"
    OUT=${OUT:-benchmarks/results/gpu}
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
        .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site:$PWD TORCH_CUDA_ARCH_LIST=9.0 MAX_JOBS=16  # gsplat's JIT build: Hopper, all cores
fi
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
WORK=$(mktemp -d)  # logs and JSON, packed into $OUT/results.tar.gz after every stage (the device tool
mkdir -p "$OUT"    # brings back at most 8 files)
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || echo "no GPU";
  git rev-parse HEAD 2>/dev/null; date -u; } > "$WORK/machine.txt"
cat "$WORK/machine.txt"
stage() {  # stage NAME SECONDS COMMAND...: run with a limit, log to $WORK/NAME.log, note the outcome
    local name=$1 limit=$2; shift 2
    local start=$SECONDS
    timeout "$limit" "$@" > "$WORK/$name.log" 2>&1
    local rc=$?
    echo "$name: exit $rc after $((SECONDS - start)) s" | tee -a "$WORK/stages.txt"
    tail -n 25 "$WORK/$name.log"
    tar czf "$OUT/results.tar.gz" -C "$WORK" . && cp "$WORK/stages.txt" "$OUT/"
}
# 1. The guidance step: IDS (N=3), Jacobian-free IDS and DDS against the straightforward reference
#    loop, SD 1.5's architecture with random weights at 512x512, fp32 / fp16 / bf16.
# shellcheck disable=SC2086
stage guidance 150 $PY -m benchmarks.guidance_step --model $MODEL --device $DEVICE --precisions $PRECISIONS \
    --size $SIZE --repeats 10 --out "$WORK/guidance_step.json"
# 2. The memory plan's diffusion estimate against CUDA's allocator peak (issue 14, item 4).
# shellcheck disable=SC2086
stage memory_plan 40 $PY -m benchmarks.memory_plan --model $MODEL --device $DEVICE --sizes $SIZE \
    --precision $PLAN_PRECISION
# 3. gsplat: build its CUDA extension (its JIT compiler, at first use; here on 2 cores it took 12.5
#    minutes, the longest file 81 s), then a real ids-edit-splat run on a 64x64 synthetic scene,
#    measured against the ground truth.
if [ "$DEVICE" = cuda ]; then
    stage gsplat_build 180 $PY -c "from gsplat.cuda._backend import _C; print('gsplat CUDA extension:', _C)"
fi
# shellcheck disable=SC2086
stage splat_edit 110 $PY -m benchmarks.splat_edit --device $DEVICE $SPLAT --out "$WORK/splat/splat_edit.json"
# 4. A whole ids-edit step (nerfacto, torch hash grid, 512x512 views, SD 1.5 architecture): time
#    split and peak memory.
stage edit_step 100 $PY -m benchmarks.edit_step --device $DEVICE --size $SIZE --model $MODEL --steps 4 \
    --out "$WORK/edit_step.json"
echo "done: $OUT/results.tar.gz"
