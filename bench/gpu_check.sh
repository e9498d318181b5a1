#!/usr/bin/env bash
# GPU readiness check: one script, under 8 minutes on one NVIDIA GPU with 16 CPU cores.
#
#   1. the CUDA-only tests (pytest -k cuda: CPU/CUDA parity of every policy kind, STP, CSDP, the ES strategies
#      and an ES run with the policy on the GPU, tests/test_cuda.py among them);
#   2. the policy benchmark on CUDA (torch kernel) against the CPU (fused kernel, and torch on every core)
#      for P = 64 ... 16384, policy alone (bench_policy.py --skip-physics);
#   3. the whole ES loop on HalfCheetah-v5 with the policy on CUDA and the physics on every CPU core, beside
#      the same loop with the fused CPU kernel (bench_train_loop.py --device cuda);
#   4. where the machine has more than 2 cores, the loop matrix on 1 and all its cores (fused plastic,
#      HalfCheetah-v5, P = 64 and 1024, one env and one shard per core, 100-step episodes): the cost model
#      fitted on 1 core checked against the many-core cells (bench_loop_matrix.py).
#   5. where mujoco-warp is installed, MJWarp's physics against MuJoCo C on the tasks' models, 1024 worlds
#      (bench_mjwarp_parity.py; docs/gpu-physics.md).
#
# The steps share one deadline (GPU_CHECK_SECONDS, default 470 s): each runs under its own limit or what is
# left of the deadline, whichever is less, and a step with under 10 s left is skipped and counted as failed.
#
# Each step writes its JSON (or its log) under $OUT when set, else under a fresh temporary folder, and
# gpu_check.json sums them up. On a machine without CUDA (or with a CPU-only torch) it says so and exits 0.
#
#     bash bench/gpu_check.sh                    # python from PATH
#     PYTHON=.venv/bin/python OUT=/tmp/gpu bash bench/gpu_check.sh
#     GPU_CHECK_DRY_RUN=1 bash bench/gpu_check.sh   # the same steps on the CPU at P = 64 (checks the plumbing)
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
OUT_DIR=${OUT:-$(mktemp -d -t plasticrl-gpu-check-XXXXXX)}
mkdir -p "$OUT_DIR"
START=$(date +%s)
DEADLINE=$(( START + ${GPU_CHECK_SECONDS:-470} ))

cuda_line=$("$PY" - <<'EOF'
import torch
if torch.cuda.is_available():
    print("yes", torch.cuda.get_device_name(0))
elif torch.version.cuda is None:
    print("no", f"torch {torch.__version__} is a CPU-only build (install a CUDA wheel of the pinned version)")
else:
    print("no", f"torch {torch.__version__} (CUDA {torch.version.cuda}) sees no CUDA device")
EOF
)
DEVICE=cuda
POPS="64 256 1024 4096 16384"
LOOP_POP=1024
WORLDS=1024
if [[ -n "${GPU_CHECK_DRY_RUN:-}" ]]; then
    WORLDS=16
    cuda_line="yes (dry run on the CPU)"
    DEVICE=cpu
    POPS="64"
    LOOP_POP=64
fi
if [[ "$cuda_line" != yes* ]]; then
    echo "gpu_check: no CUDA here: ${cuda_line#no }; nothing to check (exit 0)"
    printf '{"cuda": false, "reason": "%s"}\n' "${cuda_line#no }" > "$OUT_DIR/gpu_check.json"
    exit 0
fi
echo "gpu_check: CUDA device: ${cuda_line#yes }; results in $OUT_DIR"
CORES=$(nproc)
(nvidia-smi || true) > "$OUT_DIR/nvidia-smi.txt" 2>&1
status=0

step() {  # step NAME SECONDS COMMAND...: run with a time limit, log to $OUT_DIR/NAME.log, remember failures
    local name=$1 limit=$2 left=$(( DEADLINE - $(date +%s) ))
    shift 2
    (( left < limit )) && limit=$left
    if (( limit < 10 )); then
        echo "gpu_check: $name SKIPPED (the deadline is ${left}s away)"
        status=1
        return
    fi
    echo "gpu_check: $name (limit ${limit}s, $(( $(date +%s) - START ))s so far)"
    if ! timeout "$limit" "$@" > "$OUT_DIR/$name.out" 2> "$OUT_DIR/$name.log"; then
        echo "gpu_check: $name FAILED (see $OUT_DIR/$name.log)"
        status=1
    fi
}

# most telling first: if the deadline cuts the list short, what is left out is the least needed
step cuda_tests 120 "$PY" -m pytest -q -p no:cacheprovider -k cuda tests
tail -n 3 "$OUT_DIR/cuda_tests.out"
step policy_cuda 90 "$PY" bench/bench_policy.py --device "$DEVICE" --kernel torch --skip-physics --population $POPS
# one batched env at 400-step episodes (the same work per step as 1000, the loop's three generations sooner)
step loop_cuda 75 "$PY" bench/bench_train_loop.py --device "$DEVICE" --policies plastic_bcm_reward \
    --population "$LOOP_POP" --generations 3 --repeats 1 --ceiling-steps 100 --episode-steps 400
# numba compiles the fused kernel on its first use and caches it beside the source: on the first GPU run
# (2026-12-04) the first fused step ran out of its time, most likely on that compile, so compile it here,
# untimed, before the steps that time it
step fused_compile 120 "$PY" bench/bench_policy.py --device cpu --kernel fused --skip-physics --population 64 \
    --steps 30
step policy_cpu_fused 90 "$PY" bench/bench_policy.py --device cpu --kernel fused --skip-physics --population $POPS
step loop_cpu_fused 75 "$PY" bench/bench_train_loop.py --policies plastic_bcm_reward_fused \
    --population "$LOOP_POP" --generations 3 --repeats 1 --ceiling-steps 100 --episode-steps 400
if (( CORES > 2 )); then
    MATRIX_POPS="64 1024"
    [[ -n "${GPU_CHECK_DRY_RUN:-}" ]] && MATRIX_POPS="64"
    step loop_matrix 150 "$PY" bench/bench_loop_matrix.py --envs HalfCheetah-v5 --populations $MATRIX_POPS \
        --threads 1 "$CORES" --policies plastic_fused --generations 2 --episode-steps 100 --ceiling-steps 50 \
        --skip-memory
fi
step policy_cpu_torch 60 "$PY" bench/bench_policy.py --device cpu --kernel torch --torch-threads "$CORES" \
    --skip-physics --population $POPS
# GPU physics, where mujoco-warp is installed (not a dependency; docs/gpu-physics.md): MJWarp against MuJoCo C
if "$PY" -c "import mujoco_warp" >/dev/null 2>&1; then
    step mjwarp_parity 90 "$PY" bench/bench_mjwarp_parity.py --worlds "$WORLDS"
fi

"$PY" - "$OUT_DIR" "$status" "$(( $(date +%s) - START ))" <<'EOF'
import json
import os
import sys
from pathlib import Path

out, status, seconds = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])


def load(name):
    try:
        return json.loads((out / f"{name}.out").read_text())
    except (OSError, ValueError):
        return None


summary = {"cuda": True, "dry_run_on_cpu": bool(os.environ.get("GPU_CHECK_DRY_RUN")), "all_steps_passed": status == 0, "seconds": seconds, "policy_ms_per_control_step": {}}
for name in ("policy_cuda", "policy_cpu_fused", "policy_cpu_torch"):
    report = load(name)
    if report:
        summary["policy_ms_per_control_step"][name] = {
            r["population"]: round(r["policy_ms_per_control_step"], 3) for r in report["results"]}
for name in ("loop_cuda", "loop_cpu_fused"):
    report = load(name)
    if report:
        (row,) = report["results"].values()
        summary[name] = {k: row[k] for k in ("whole_loop_over_ceiling_median", "whole_loop_steps_per_s_median")}
parity = load("mjwarp_parity")
if parity and "results" in parity:
    summary["mjwarp_physics_steps_per_s"] = {r["task"]: r["warp_physics_steps_per_s"] for r in parity["results"]}
matrix = load("loop_matrix")
if matrix:
    summary["loop_matrix_cost_model"] = matrix["cost_model"]
(out / "gpu_check.json").write_text(json.dumps(summary, indent=2))
print(json.dumps(summary, indent=2))
EOF
echo "gpu_check: done in $(( $(date +%s) - START ))s; status $status"
exit $status
