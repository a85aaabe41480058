"""benchmarks/grpo.py at tiny size: both figures print (GRPO step time per reward, with ratios;
pointwise vs groupwise cost and agreement with the human labels, with n). No time is asserted."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.train]
REPO = Path(__file__).resolve().parent.parent


def test_grpo_benchmark_runs_at_tiny_size():
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "grpo.py"), "--steps", "1", "--warmup", "1",
                           "--hidden", "64", "--layers", "1", "--k", "2", "--batch-size", "4",
                           "--max-completion-length", "4", "--max-model-len", "512"],
                          cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    for name in ("constant", "reward-model", "constitution"):
        assert re.search(rf"{name}\s+[\d.]+ s\s+[\d.]+x constant", out), out
    assert re.search(r"judge overhead: [\d.]+x the trainer alone, [\d.]+x the reward model", out), out
    for mode in ("pointwise", "groupwise"):
        assert re.search(rf"{mode}\s+[\d.]+\s+[\d.]+\s+[\d.]+ \(n=8\)", out), out
    assert re.search(r"groupwise/pointwise cost per completion: [\d.]+x", out), out
