#!/usr/bin/env bash
# The GPU benchmarks as two prepared device runs, each under BUDGET (285 s) with its install: give each
# run timeout_s 300, carry .whl, the first before the second (docs/performance.md, "How to run").
#   bash benchmarks/gpu.sh 1    what matters most: the guidance step, the memory plan's diffusion estimate
#                               against CUDA's reserved peak, one real ids-edit step at 512 (time, memory)
#   bash benchmarks/gpu.sh 2    gsplat's CUDA extension (its JIT build), then the real ids-edit-splat run
# Here first: bash benchmarks/fetch_gpu_wheels.sh (the wheels the GPU image lacks, ids-nerf's own among
# them), then bash benchmarks/gpu.sh --cpu-smoke 1 and 2. Results go into docs/performance.md with the
# card, the date and the commit. Each stage has its own time limit and log, so one that fails leaves the
# others' results.
#
# --cpu-smoke runs the same stages here, on the CPU with the smallest sizes, and installs the project the
# same way: ids-nerf's wheel, built from the tree now (into .whl, which the GPU run carries), with pip
# --target, into a Python that has .venv's packages but no ids-nerf (its editable install left out). A
# wheel nerfstudio finds no method in fails here as it would there ("invalid choice"). It leaves its
# stand-in Python in /tmp/ids-smoke-*.
# VENV=path names another virtual environment than .venv as the source of those packages.
set -uo pipefail
cd "$(dirname "$0")/.."
usage="usage: bash benchmarks/gpu.sh [--cpu-smoke] 1|2"
SMOKE=0
if [ "${1:-}" = "--cpu-smoke" ]; then SMOKE=1; shift; fi
if [ $# -ne 1 ] || { [ "$1" != 1 ] && [ "$1" != 2 ]; }; then echo "$usage" >&2; exit 2; fi
PART=$1
BUDGET=${BUDGET:-285}  # seconds for the whole run: a stage's limit is cut to what is left of it
install() {  # install PYTHON SITE WHEEL...: unpack the wheels into SITE, as the device tool's notes say
    local python=$1 site=$2; shift 2
    "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" "$@"
}
if [ $SMOKE = 1 ]; then
    VENV=${VENV:-.venv}
    [ -x "$VENV/bin/python" ] || { echo "error: no $VENV/bin/python: run make install, or set VENV" >&2; exit 2; }
    VENV=$(cd "$VENV" && pwd)
    "$VENV/bin/python" benchmarks/project_wheel.py build --dest .whl || exit 1
    OUT=${OUT:-$PWD/benchmarks/results/gpu-smoke}
    # the tree as the device tool sends it (tracked and untracked files git does not ignore, and .whl),
    # so that no egg-info of an editable install gives the stand-in ids-nerf's entry points
    STAND_IN=$(mktemp -d /tmp/ids-smoke-XXXXXX)
    mkdir "$STAND_IN/tree"
    git ls-files -co --exclude-standard -z | xargs -0 cp --parents -t "$STAND_IN/tree" || exit 1
    cp -r .whl "$STAND_IN/tree/"
    cd "$STAND_IN/tree" || exit 1
    # the stand-in for the GPU image: .venv's packages without ids-nerf (benchmarks/project_wheel.py)
    PY=$("$VENV/bin/python" benchmarks/project_wheel.py stand-in "$STAND_IN") || exit 1
    SITE=$STAND_IN/site
    export PYTHONPATH=$STAND_IN/packages
    install "$PY" "$SITE" .whl/ids_nerf-*.whl || exit 1
    export PYTHONPATH=$PWD:$SITE:$STAND_IN/packages
    DEVICE=cpu MODEL=tiny SIZE=32 PRECISIONS=fp32 PLAN_PRECISION=fp32 EDIT_STEPS=2
    SPLAT="--size 16 --views 4 --source-steps 20 --edit-steps 3"
else
    PY=python3 SITE=/tmp/site
    if ! compgen -G ".whl/ids_nerf-*.whl" > /dev/null; then
        echo "error: no ids-nerf wheel in .whl: run bash benchmarks/fetch_gpu_wheels.sh here and carry .whl" >&2; exit 2
    fi
    install "$PY" "$SITE" .whl/*.whl || exit 1
    # the tree first: its code is what is measured; the wheel adds the dist-info nerfstudio finds methods in
    export PYTHONPATH=$PWD:$SITE TORCH_CUDA_ARCH_LIST=9.0 MAX_JOBS=16  # gsplat's JIT build: Hopper, all cores
    DEVICE=cuda MODEL=sd15-random SIZE=512 PRECISIONS="bf16 fp16 fp32" PLAN_PRECISION=fp16 EDIT_STEPS=4
    SPLAT="--size 64 --source-steps 2000 --edit-steps 300"
    OUT=${OUT:-benchmarks/results/gpu}
fi
"$PY" benchmarks/project_wheel.py check "$SITE" || exit 1
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
WORK=$(mktemp -d)  # logs and JSON, packed into $OUT/results-$PART.tar.gz after every stage (the device
mkdir -p "$OUT"    # tool brings back at most 8 files)
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || echo "no GPU";
  git rev-parse HEAD 2>/dev/null; date -u; echo "part $PART, install done after $SECONDS s"; } > "$WORK/machine.txt"
cat "$WORK/machine.txt"
stage() {  # stage NAME SECONDS COMMAND...: run with a limit (cut to what is left of BUDGET), log, note the outcome
    local name=$1 limit=$2; shift 2
    local left=$((BUDGET - SECONDS)) start=$SECONDS
    if [ "$left" -lt "$limit" ]; then limit=$left; fi
    if [ "$limit" -le 0 ]; then
        echo "$name: not run, no time left of the $BUDGET s" | tee -a "$WORK/stages.txt"; return 1
    fi
    timeout "$limit" "$@" > "$WORK/$name.log" 2>&1
    local rc=$?
    echo "$name: exit $rc after $((SECONDS - start)) s (limit $limit s)" | tee -a "$WORK/stages.txt"
    tail -n 25 "$WORK/$name.log"
    tar czf "$OUT/results-$PART.tar.gz" -C "$WORK" . && cp "$WORK/stages.txt" "$OUT/stages-$PART.txt"
    return $rc
}
failed=0
if [ "$PART" = 1 ]; then
    # 1. The guidance step: IDS (N=3), Jacobian-free IDS and DDS against the straightforward reference
    #    loop, SD 1.5's architecture with random weights at 512x512; bf16 (the goal's) first, then fp16 and
    #    fp32, each saved when done.
    # shellcheck disable=SC2086
    stage guidance 110 "$PY" -m benchmarks.guidance_step --model $MODEL --device $DEVICE --precisions $PRECISIONS \
        --size $SIZE --repeats 10 --out "$WORK/guidance_step.json" || failed=1
    # 2. The memory plan's diffusion estimate against CUDA's reserved peak: the measured margin (issue 24).
    stage memory_plan 40 "$PY" -m benchmarks.memory_plan --model $MODEL --device $DEVICE --sizes $SIZE \
        --precision $PLAN_PRECISION --out "$WORK/memory_plan.json" || failed=1
    # 3. A whole ids-edit step (nerfacto, torch hash grid, 512x512 views, SD 1.5 architecture): time split,
    #    peak memory, and the memory plan's line beside them.
    stage edit_step 120 "$PY" -m benchmarks.edit_step --device $DEVICE --size $SIZE --model $MODEL --steps $EDIT_STEPS \
        --out "$WORK/edit_step.json" || failed=1
else
    # 1. gsplat's CUDA extension: its JIT compiler at first import (12.5 minutes on this project's 2 cores,
    #    the longest file 81 s). Fails when the extension did not load. The smoke has no CUDA: it skips it
    #    and splatfacto rasterizes with the CPU stand-in.
    if [ "$DEVICE" = cuda ]; then
        stage gsplat_build 170 "$PY" -m benchmarks.gsplat_build || failed=1
    fi
    # 2. A real ids-edit-splat run on a 64x64 synthetic scene, measured against the ground truth; only
    #    with the extension (without it the run fails at its first rasterization).
    if [ $failed = 0 ]; then
        # shellcheck disable=SC2086
        stage splat_edit 100 "$PY" -m benchmarks.splat_edit --device $DEVICE $SPLAT --out "$WORK/splat/splat_edit.json" \
            || failed=1
    else
        echo "splat_edit: not run, gsplat's extension did not load" | tee -a "$WORK/stages.txt"
    fi
fi
tar czf "$OUT/results-$PART.tar.gz" -C "$WORK" . && cp "$WORK/stages.txt" "$OUT/stages-$PART.txt"
echo "part $PART done after $SECONDS s: $OUT/results-$PART.tar.gz"
exit $failed
