"""Judge health in `cai principles test --pairs` and `cai principles propose` (issue 26, item 1):
length bias beside the people's own rate in the terminal, JSON and HTML, a weak-judge warning in
the HTML, failed votes counted, and propose with nothing selected printing no accuracy."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cai.backends.scripted import ScriptedBackend
from cai.core.errors import CaiError
from cai.inverse import PrincipleTestConfig, ProposeConfig, run_principle_test, run_propose
from cai.principles.principle import Principle, principle_to_markdown
from feedback_helpers import write_pairs_file

SCRIPTED = {"backend": "scripted", "model": "scripted"}
# people chose the concise answer; the other one pads it out
ROWS = [(f"Does the shop fit tubeless tyres on bike {i}?", f"Yes, {i} minutes.",
         f"Yes, we do fit them, and to be complete about it: the fitting of tubeless tyres on bike {i} is a service "
         f"that we do offer here at the shop, and it takes about {i} minutes.") for i in range(12)]


def responses(conv) -> tuple[str, str]:
    text = next(m["content"] for m in reversed(conv) if m["role"] == "user")
    a = text.split("(A) ", 1)[1].split("\n(B) ", 1)[0]
    b = text.split("\n(B) ", 1)[1].split("\n\n", 1)[0]
    return a, b


def longer_wins(conv, labels):
    a, b = responses(conv)
    pa = 0.9 if len(a) > len(b) else 0.1
    row = {"A": pa, "B": 1 - pa, "_mass": 0.95}
    if "C" in labels:
        row["C"] = 0.05
    return row


def library(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    p = Principle(id="concise-answer", version="1.0.0", title="Concise", tags=["t"],
                  preference="Which response answers <b>concisely</b>?")
    (folder / "concise-answer.md").write_text(principle_to_markdown(p))
    return folder


def test_principles_test_shows_length_bias_beside_people(tmp_path, capsys):
    from cai.cli.principles_pairs import print_principles
    from rich.console import Console

    pairs = write_pairs_file(tmp_path / "pairs.jsonl", ROWS)
    cfg = PrincipleTestConfig(pairs=str(pairs), judge=SCRIPTED, principles_dir=str(library(tmp_path / "p")),
                              out=str(tmp_path / "out"), n_boot=200)
    report = run_principle_test(cfg, backend=ScriptedBackend.scripted(score=longer_wins))
    h = report["judge_health"]
    # 12 concise-answer votes + 12 no-principle votes, all for the longer response; people: never
    assert (h["length_bias"]["n"], h["length_bias"]["k"]) == (24, 24)
    assert (h["human_length_rate"]["n"], h["human_length_rate"]["k"]) == (24, 0)
    assert h["status"] == "weak" and any("length bias" in r for r in h["reasons"])
    assert h["label_mass"]["n"] == 24 and h["label_mass"]["min"] == pytest.approx(0.95)
    assert set(h["per_principle"]) == {"concise-answer@1.0.0", "(no principle)"}
    assert json.loads((tmp_path / "out" / "report.json").read_text())["judge_health"] == h
    page = (tmp_path / "out" / "report.html").read_text()
    assert "Warning: the judge is weak" in page and "Judge health" in page and "length bias" in page
    assert page.index("Warning: the judge is weak") < page.index("Principles, by strength")
    print_principles(report, Console(width=200))
    out = " ".join(capsys.readouterr().out.split())
    assert "warning: judge health: weak" in out and "people chose the longer one in 0.0% of 24" in out


def test_failed_votes_are_counted_never_votes(tmp_path):
    pairs = write_pairs_file(tmp_path / "pairs.jsonl", ROWS)
    cfg = dict(pairs=str(pairs), judge=SCRIPTED, principles_dir=str(library(tmp_path / "p")), n_boot=200,
               min_label_mass=0.1)

    def away_on_3(conv, labels):
        row = longer_wins(conv, labels)
        if "bike 3?" in json.dumps(conv):
            row["_mass"] = 1e-20
        return row

    report = run_principle_test(PrincipleTestConfig(**cfg), backend=ScriptedBackend.scripted(score=away_on_3))
    assert report["pairs"] == 11 and report["failed"] == 1
    assert report["failed_pairs"][0]["origin"] == "pairs.jsonl:4" and "label mass" in report["failed_pairs"][0]["reason"]
    assert report["judge_health"]["failures"] == {"below_label_mass": 1}
    away = ScriptedBackend.scripted(choices=[{"A": 0.9, "B": 0.1, "C": 0.0, "_mass": 1e-20}])
    with pytest.raises(CaiError, match="every pair failed: pairs.jsonl:1: label mass"):
        run_principle_test(PrincipleTestConfig(**cfg), backend=away)


def test_propose_with_nothing_selected_prints_no_accuracy(tmp_path, capsys):
    pairs = write_pairs_file(tmp_path / "pairs.jsonl", ROWS * 2)
    proposer = ScriptedBackend.scripted(replies=[" is shorter.\n2. Select the response that is polite."])

    def abstains(conv, labels):  # every principle "does not apply"; the no-principle judge has no preference
        return {"A": 0.05, "B": 0.05, "C": 0.9, "_mass": 0.9} if "C" in labels else {"A": 0.5, "B": 0.5, "_mass": 0.9}

    cfg = ProposeConfig(pairs=str(pairs), proposer=SCRIPTED, out=str(tmp_path / "prop"), n=2, test_size=0.3,
                        n_boot=200)
    s = run_propose(cfg, backend=proposer, judge=ScriptedBackend.scripted(score=abstains))
    assert s["selected"] == [] and s["held_out"]["nothing_selected"] and "selected" not in s["held_out"]
    html = (tmp_path / "prop" / "report.html").read_text()
    assert "No principle was selected" in html and "Judge health" in html
    assert s["judge_health"]["n"] > 0 and "50.0%" not in html.split("Held-out pairs")[1].split("<h2>")[0]
