"""Smoke test of ``benchmarks/generate_scale.py --also sample,label,mix`` at tiny sizes: every
command runs at both sizes, in several chunks, and its line of ratios is printed (the plain
generate case is in test_benchmarks.py)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "generate_scale.py"


@pytest.mark.slow  # ~25 s: eight fresh processes
def test_generate_scale_also_measures_sample_label_and_mix(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    done = subprocess.run([sys.executable, str(SCRIPT), "--small", "20", "--factor", "2", "--chunk-size", "8",
                           "--rounds", "1", "--also", "sample,label,mix"],
                          cwd=tmp_path, capture_output=True, text=True, env=env, timeout=900)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-3000:]
    for command, wrote in (("generate", r"\d+/\d+ sft/pref"), ("sample", "40 pairs"), ("label", "40 labels"),
                           ("mix", r"\d+/\d+ train/test")):
        assert re.search(rf"^{command}\s+40\s+[\d.]+\s+[\d.]+\s+[\d.]+\s+{wrote}$", out, re.M), out[-3000:]
    assert re.search(r"peak RSS 40 / 20 prompts: [\d.]+x", out)
    for command, items in (("sample", "prompts"), ("label", "pairs"), ("mix", "pairs")):
        assert re.search(rf"^{command}: peak RSS 40 / 20 {items}: [\d.]+x \(goal <= 1.2x\); CPU per item [\d.]+ ms",
                         out, re.M), out[-3000:]


def test_generate_scale_refuses_an_unknown_command(tmp_path):
    done = subprocess.run([sys.executable, str(SCRIPT), "--small", "2", "--also", "sample,train"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and "--also: unknown command(s) train" in done.stderr
