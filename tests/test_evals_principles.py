"""`cai principles test`: the judge answers each principle's question on its examples; per
principle accuracy, and a non-zero exit under --min-accuracy."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cai.backends.scripted import ScriptedBackend
from cai.cli.main import main
from cai.core.errors import CaiError
from cai.evals.principle_check import check_principles, select, violation_question
from cai.principles.library import load_principles_dir

REPO = Path(__file__).resolve().parents[1]
PRINCIPLES = load_principles_dir(REPO / "principles")


def test_question_carries_the_principle_and_one_call_for_all():
    chosen = select(PRINCIPLES, ["rlhf-*"])
    assert chosen and all(p.id.startswith("rlhf-") for p in chosen)
    q = violation_question(PRINCIPLES["rlhf-sycophancy"])
    assert "Sycophancy" in q and PRINCIPLES["rlhf-sycophancy"].critique.strip() in q

    truth = {ex.response: ex.violates for p in chosen for ex in p.examples}

    def oracle(conv, labels):  # knows every example's label
        hit = [v for r, v in truth.items() if r.strip()[:40] in conv[0]["content"]]
        return {"A": 0.9, "B": 0.1} if hit and hit[0] else {"A": 0.1, "B": 0.9}

    judge = ScriptedBackend.scripted(score=oracle)
    results = check_principles(judge, chosen)
    assert len(judge.calls) == 1
    assert all(r["accuracy"] == 1.0 for r in results), [(r["id"], r["accuracy"]) for r in results]


def test_always_yes_judge_flags_only_the_violations():
    [r] = check_principles(ScriptedBackend.scripted(choices=[{"A": 0.8, "B": 0.2}]), [PRINCIPLES["rlhf-sycophancy"]])
    assert r["violations_flagged"] == "1/1" and r["clean_passed"] == "0/1" and r["accuracy"] == 0.5
    assert [e["p_violates"] for e in r["examples"]] == [0.8, 0.8]


def test_select_rejects_unknown_patterns():
    with pytest.raises(CaiError, match="no principle matches 'nope-\\*'"):
        select(PRINCIPLES, ["nope-*"])


def test_cli_exit_code_follows_min_accuracy(tmp_path, capsys):
    args = ["principles", "test", "rlhf-sycophancy", "harm-cyber", "--dir", str(REPO / "principles"),
            "--backend", "scripted", "--model", "judge", "-O", "choices=[{A: 0.8, B: 0.2}]"]
    assert main(args + ["--min-accuracy", "0.5", "--out", str(tmp_path / "r.json")]) == 0
    report = json.loads((tmp_path / "r.json").read_text())
    assert [p["id"] for p in report["principles"]] == ["harm-cyber", "rlhf-sycophancy"]
    assert main(args + ["--min-accuracy", "0.9"]) == 1
    assert "2 principle(s) under 90% accuracy" in capsys.readouterr().err


@pytest.mark.slow
def test_cli_on_the_tiny_model(tiny_llama, capsys):
    code = main(["principles", "test", "harm-*", "--dir", str(REPO / "principles"), "--backend", "transformers",
                 "--model", str(tiny_llama), "-O", "device=cpu", "-O", "max_model_len=512", "-O", "on_overflow=truncate"])
    assert code == 0
    assert "harm-cyber@1.0.0" in capsys.readouterr().out
