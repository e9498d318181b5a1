#!/usr/bin/env bash
# GPU readiness check: one script, under 8 minutes on one NVIDIA GPU with 16 CPU cores.
#
#   1. the CUDA-only tests (pytest -k cuda: CPU/CUDA parity of the policy, STP, CSDP and the ES strategies);
#   2. the policy benchmark on CUDA (torch kernel) against the CPU (fused kernel, and torch on every core)
#      for P = 64 ... 16384, policy alone (bench_policy.py --skip-physics);
#   3. the whole ES loop on HalfCheetah-v5 with the policy on CUDA and the physics on every CPU core, beside
#      the same loop with the fused CPU kernel (bench_train_loop.py --device cuda).
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
if [[ -n "${GPU_CHECK_DRY_RUN:-}" ]]; then
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
    local name=$1 limit=$2
    shift 2
    echo "gpu_check: $name (limit ${limit}s, $(( $(date +%s) - START ))s so far)"
    if ! timeout "$limit" "$@" > "$OUT_DIR/$name.out" 2> "$OUT_DIR/$name.log"; then
        echo "gpu_check: $name FAILED (see $OUT_DIR/$name.log)"
        status=1
    fi
}

step cuda_tests 120 "$PY" -m pytest -q -p no:cacheprovider -k cuda tests
tail -n 3 "$OUT_DIR/cuda_tests.out"
step policy_cuda 120 "$PY" bench/bench_policy.py --device "$DEVICE" --kernel torch --skip-physics --population $POPS
step policy_cpu_fused 90 "$PY" bench/bench_policy.py --device cpu --kernel fused --skip-physics --population $POPS
step policy_cpu_torch 90 "$PY" bench/bench_policy.py --device cpu --kernel torch --torch-threads "$CORES" \
    --skip-physics --population $POPS
step loop_cuda 60 "$PY" bench/bench_train_loop.py --device "$DEVICE" --policies plastic_bcm_reward \
    --population "$LOOP_POP" --generations 3 --repeats 1 --ceiling-steps 100
step loop_cpu_fused 60 "$PY" bench/bench_train_loop.py --policies plastic_bcm_reward_fused \
    --population "$LOOP_POP" --generations 3 --repeats 1 --ceiling-steps 100

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
(out / "gpu_check.json").write_text(json.dumps(summary, indent=2))
print(json.dumps(summary, indent=2))
EOF
echo "gpu_check: done in $(( $(date +%s) - START ))s; status $status"
exit $status
