"""bench/gpu_check.sh on a machine without CUDA: says so, writes why, exits 0."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "gpu_check.sh"


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA: the script would run its checks")
def test_gpu_check_without_cuda_says_so_and_exits_zero(tmp_path):
    env = {**os.environ, "PYTHON": sys.executable, "OUT": str(tmp_path)}
    env.pop("GPU_CHECK_DRY_RUN", None)
    proc = subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "no CUDA here" in proc.stdout
    written = json.loads((tmp_path / "gpu_check.json").read_text())
    assert written["cuda"] is False
    expected = "CPU-only build" if torch.version.cuda is None else "sees no CUDA device"
    assert expected in written["reason"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gpu_check.json"]  # no benchmark ran
