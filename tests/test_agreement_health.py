"""`cai eval agreement` qualifies a judge on human pairs: Cohen's kappa, and judge health with the
length bias beside the people's own rate of choosing the longer response (issue 26, item 1)."""

from __future__ import annotations

import json

import pytest

from cai.backends.scripted import ScriptedBackend
from cai.core.errors import CaiError
from cai.feedback import AgreementConfig, run_agreement
from cai.feedback.agreement import cohens_kappa
from feedback_helpers import write_constitution, write_pairs_file

# people chose the concise answer every time; the longer one is a padded restatement
ROWS = [(f"How do I fix a flat tyre on bike {i}?", f"Patch the tube {i}.",
         f"Patch the tube {i}. To be thorough and complete, let me restate that: patch the tube, which is the part "
         f"inside the tyre, and then you will have fixed it, as I said, by patching the tube {i}.") for i in range(12)]


def longer_wins(conv, labels):
    """A judge that always votes for the longer response (whichever position it is in)."""
    text = conv[-1]["content"] if conv[-1]["role"] == "user" else conv[-2]["content"]
    a, b = text.split("(A)")[-1].split("(B)")[0], text.split("(B)")[-1]
    longer_a = len(a) > len(b)
    return {"A": 0.9 if longer_a else 0.1, "B": 0.1 if longer_a else 0.9, "_mass": 0.95}


def test_kappa():
    assert cohens_kappa([True, False, True, False], [True, False, True, False])["kappa"] == 1.0
    assert cohens_kappa([True, False, True, False], [False, True, False, True])["kappa"] == -1.0
    k = cohens_kappa([True, True, False, False, True, False], [True, False, False, True, True, False])
    assert k["kappa"] == pytest.approx((4 / 6 - 0.5) / 0.5, abs=1e-4) and k["low"] < k["kappa"] < k["high"]
    assert cohens_kappa([], [])["kappa"] is None
    one = cohens_kappa([True, False], [True, False])
    assert one["high"] > one["low"]  # never zero-width


def test_length_bias_beside_people(tmp_path, capsys):
    from cai.cli.main import main

    pairs = write_pairs_file(tmp_path / "humans.jsonl", ROWS)
    cfg = AgreementConfig(file=str(pairs), constitution=str(write_constitution(tmp_path)), few_shot=0,
                          labeler={"backend": "scripted", "model": "s"}, principles_per_pair="all",
                          out=str(tmp_path / "agreement.json"))
    r = run_agreement(cfg, backend=ScriptedBackend.scripted(score=longer_wins))
    assert r["accuracy"] == 0.0 and r["kappa"]["kappa"] < 0
    h = r["judge_health"]
    assert h["length_bias"]["n"] == 12 and h["length_bias"]["k"] == 12
    assert h["human_length_rate"]["n"] == 12 and h["human_length_rate"]["k"] == 0
    assert h["status"] == "weak" and any("length bias" in x for x in h["reasons"])
    assert set(h["per_principle"]) == {"kind@1.2.0", "honest@2.0.0"}
    assert h["per_principle"]["kind@1.2.0"]["human_length_rate"]["k"] == 0
    assert json.loads((tmp_path / "agreement.json").read_text())["judge_health"] == h
    # the terminal: kappa and health, people's rate beside the judge's
    from cai.cli.evaluate import _print_report

    _print_report(r, None)
    out = " ".join(capsys.readouterr().out.split())
    assert "Cohen's kappa" in out and "labeler health: weak" in out
    assert "people chose the longer one in 0.0% of 12 pairs" in out


def test_failed_judgements_counted_and_error_policy(tmp_path):
    pairs = write_pairs_file(tmp_path / "humans.jsonl", ROWS)
    base = dict(file=str(pairs), constitution=str(write_constitution(tmp_path)), few_shot=0,
                labeler={"backend": "scripted", "model": "s"}, principles_per_pair="all", min_label_mass=0.1)
    away = ScriptedBackend.scripted(choices=[{"A": 0.9, "B": 0.1, "_mass": 1e-20}])
    with pytest.raises(CaiError, match=r"every judgement failed: 12 of 12 pairs \(below_label_mass 12\)"):
        run_agreement(AgreementConfig(**base), backend=away)
    some = ScriptedBackend.scripted(score=lambda conv, labels: {"A": 0.7, "B": 0.3, "_mass": 1e-20 if "bike 3?" in json.dumps(conv) else 0.9})
    r = run_agreement(AgreementConfig(**base), backend=some)
    assert r["failed"] == 1 and r["missing"] == 0 and r["n"] == 11 and r["failures"][0].startswith("humans.jsonl:4:")
    with pytest.raises(CaiError, match="labeler health: unhealthy"):
        half = ScriptedBackend.scripted(score=lambda conv, labels: {"A": 0.7, "B": 0.3, "_mass": 1e-20 if "bike 1" in json.dumps(conv) else 0.9})
        run_agreement(AgreementConfig(**base, judge_health="error"), backend=half)
