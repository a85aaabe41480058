"""The walk-throughs page (docs/walkthroughs.md, from the README until issue 27), run as written: its
``<!-- walkthrough -->`` bash blocks,
one after the other in one shell, in an empty folder, with ``MODEL`` set to the tiny test model.

The three workflows a newcomer tries with a CSV of their own: a principle of their own on their own
prompts; a spreadsheet of human preferences mixed with AI labels into a reward model that scores
new responses; the loop on their own prompts, a block changed and the loop rerun."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PAGE = REPO / "docs" / "walkthroughs.md"


def walkthrough_blocks(text: str) -> list[str]:
    """The bash blocks that follow a ``<!-- walkthrough -->`` line."""
    return re.findall(r"<!-- walkthrough -->\n```bash\n(.*?)```", text, flags=re.S)


def test_the_readme_has_the_three_walkthrough_blocks():
    blocks = walkthrough_blocks(PAGE.read_text(encoding="utf-8"))
    assert len(blocks) == 3
    joined = "\n".join(blocks)
    for command in ("cai generate", "cai humans import", "cai train reward", "cai score", "cai run loop.yaml"):
        assert command in joined


@pytest.mark.slow
def test_the_readme_walkthrough_runs_as_written(tiny_llama, tmp_path):
    script = "set -euo pipefail\n" + "\n".join(walkthrough_blocks(PAGE.read_text(encoding="utf-8")))
    env = {**os.environ, "MODEL": str(tiny_llama), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "COLUMNS": "80",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    proc = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    root = tmp_path / "my-cai"
    # 1: the constitution selects the user's principle and a shipped one; generate wrote a record per prompt
    assert "no-spoilers@1.0.0" in log and "harm-high-stakes-advice@" in log
    assert len((root / "runs" / "generate" / "records.jsonl").read_text().splitlines()) == 4
    # 2: the spreadsheet's raters are kept; the reward model scored both new responses
    humans = [json.loads(line) for line in (root / "data" / "human" / "data.jsonl").read_text().splitlines()]
    assert sorted(h["labeler"] for h in humans) == ["ana", "ana", "ben", "ben"]
    scored = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith('{"prompt"')]
    assert len(scored) == 2 and all("reward" in r for r in scored)
    # 3: the loop ran, and after the change only reward and what follows it were redone
    assert (root / "runs" / "loop" / "report.html").is_file()
    assert re.search(r"reward\s+redo\s+changed: config max_steps", log)
    assert "4 stage(s) run, 5 skipped" in log
    assert "{'loss'" not in log and "note:" not in log  # plain log lines; nothing in an old spelling
