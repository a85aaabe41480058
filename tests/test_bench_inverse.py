"""Smoke tests of benchmarks/inverse_votes.py and benchmarks/inverse_scaling.py at tiny sizes: they
run and print the figures the README quotes (no time is asserted)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
TINY = ["--hidden", "64", "--layers", "1", "--device", "cpu"]


def run(script: str, *args: str, tmp_path: Path) -> str:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           "TMPDIR": str(tmp_path)}
    done = subprocess.run([sys.executable, str(REPO / script), *args], cwd=tmp_path, capture_output=True, text=True,
                          env=env, timeout=600)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-3000:]
    return out


@pytest.mark.slow
def test_inverse_votes_benchmark(tmp_path):
    out = run("benchmarks/inverse_votes.py", "--pairs", "2", "--principles", "2", "--max-tokens", "3", *TINY,
              tmp_path=tmp_path)
    assert re.search(r"2 pairs x 2 principles = 4 votes", out)
    assert re.search(r"JSON verdicts .* \d+/4 parsed", out)
    assert re.search(r"log-prob votes per second / JSON votes per second: [\d.]+x", out)


@pytest.mark.slow
def test_inverse_scaling_benchmark(tmp_path):
    out = run("benchmarks/inverse_scaling.py", "--principles", "1,2", "--pairs", "1", "--repeats", "1", *TINY,
              tmp_path=tmp_path)
    rows = re.findall(r"^\s+(\d+)\s+(\d+)\s+(\d+)\s+[\d.]+\s+[\d.]+\s+[\d.]+x\s+(\d+)%\s+(\d+)%", out, re.M)
    assert [(p, n) for p, n, *_ in rows] == [("1", "1"), ("2", "1")]
    p2 = rows[1]
    assert int(p2[3]) > int(p2[4])  # the pair-first layout shares more of each prompt across principles
    assert re.search(r"ms per vote at 2x1 / at 1x1 \(pair-first\): [\d.]+x", out)
