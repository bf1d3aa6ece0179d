#!/usr/bin/env bash
# Every GPU benchmark in one prepared run (at most 9.5 minutes: give the device run timeout_s 600).
# Here first: bash benchmarks/fetch_gpu_wheels.sh; then the device tool runs
#   bash benchmarks/gpu.sh     (carry: .whl)
# and the results go into docs/performance.md with the card, the date and the commit.
# Each stage has its own time limit and log, so one that fails leaves the others' results.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-benchmarks/results/gpu}
WORK=/tmp/gpu-results   # logs and JSON; packed into $OUT/results.tar.gz after every stage (the device
mkdir -p "$OUT" "$WORK" # tool brings back at most 8 files)
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
export TORCH_CUDA_ARCH_LIST=9.0 MAX_JOBS=16   # gsplat's JIT build: Hopper only, all cores
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; git rev-parse HEAD 2>/dev/null; date -u; } \
    > "$WORK/machine.txt"
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
stage guidance 170 python3 benchmarks/guidance_step.py --model sd15-random --device cuda \
    --precisions fp32 fp16 bf16 --size 512 --repeats 10 --out "$WORK/guidance_step_gpu.json"
# 2. A whole ids-edit step (nerfacto, torch hash grid, 512x512 views, SD 1.5 architecture): time
#    split and peak memory.
stage edit_step 130 python3 benchmarks/edit_step.py --device cuda --size 512 --model sd15-random --steps 4 \
    --out "$WORK/edit_step_gpu.json"
# 3. gsplat: build its CUDA extension (first use compiles it), then a real ids-edit-splat run on a
#    64x64 synthetic scene, measured against the ground truth.
stage gsplat_build 150 python3 -c "from gsplat.cuda._backend import _C; print('gsplat CUDA extension:', _C)"
stage splat_edit 110 python3 benchmarks/splat_edit.py --device cuda --size 64 --source-steps 2000 \
    --edit-steps 300 --out "$WORK/splat/splat_edit_gpu.json"
echo "done: $OUT"
