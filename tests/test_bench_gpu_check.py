"""benchmarks/gpu_check.sh (and benchmarks/gpu_check.py, which it runs) at tiny size on the CPU: the fallback path
a machine without CUDA takes. The CUDA path itself runs only on a GPU machine (see the script)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.train]
REPO = Path(__file__).resolve().parent.parent


def test_gpu_check_cpu_fallback_runs_every_check(tmp_path):
    env = dict(os.environ, OUT=str(tmp_path), PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    proc = subprocess.run(["bash", str(REPO / "benchmarks" / "gpu_check.sh"), "--tiny"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "gpu check passed" in proc.stdout
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    assert report["tiny"] is True and report["device"] == "cpu" and report["model_params"] > 0
    assert report["backend"]["probabilities_ok"] and report["backend"]["generate_tokens"] > 0
    for trainer in ("grpo", "rloo"):
        assert report[trainer]["steps"] == 2 and report[trainer]["finite"] and report[trainer]["step_s"] > 0
    assert 0 < report["grpo"]["judge_share"] < 1
    assert (tmp_path / "gpu_check.log").exists()
