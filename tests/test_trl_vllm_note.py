"""TRL 1.16 warns that it supports vLLM 0.22-0.31 each time it checks for vLLM (five times a GRPO
run); cai does not use TRL's vLLM generation, so the warning is filtered and said once, as a note."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytest.importorskip("trl")
pytest.importorskip("vllm")

CHECKS = "from trl.import_utils import is_vllm_available\nfor _ in range(5):\n    is_vllm_available()\n"


def _stderr(code: str) -> str:
    out = subprocess.run([sys.executable, "-W", "always", "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return out.stderr


@pytest.mark.train
@pytest.mark.slow
def test_trl_vllm_range_warning_becomes_one_note():
    bare = _stderr(CHECKS)  # without cai: TRL's own warning, once per check
    if "TRL currently supports vLLM versions" not in bare:
        pytest.skip("this TRL/vLLM pair is inside TRL's range: nothing to silence")
    assert bare.count("TRL currently supports vLLM versions") == 5
    err = _stderr("import cai.train\nfrom cai.core.errors import quiet_trl_vllm_range, require\n"
                  "require('trl', extra='train', purpose='x')\nquiet_trl_vllm_range()\nquiet_trl_vllm_range()\n"
                  + CHECKS)  # what cai train grpo|rloo does
    assert "TRL currently supports vLLM versions" not in err
    assert err.count("note: TRL names vLLM 0.22-0.31") == 1
    quiet = _stderr("import cai.train\nfrom cai.core.errors import require\n"
                    "require('trl', extra='train', purpose='x')\n" + CHECKS)  # sft, dpo, reward: nothing to say
    assert "TRL currently supports vLLM versions" not in quiet and "note:" not in quiet
