"""`cai eval agreement`: AI labels against human labels (pairwise files and multiple-choice files)."""

from __future__ import annotations

import json

import pytest

from cai.backends.scripted import ScriptedBackend
from cai.core.errors import CaiError
from cai.feedback import AgreementConfig, run_agreement
from cai.feedback.agreement import expected_calibration_error, pairwise_report
from cai.feedback.choice_eval import read_choice_rows
from cai.data.pairs import PreferencePair, PrincipleScore, write_pairs
from feedback_helpers import prefers, write_constitution, write_pairs_file

U = lambda text: [{"role": "user", "content": text}]  # noqa: E731
A = lambda text: [{"role": "assistant", "content": text}]  # noqa: E731


def human(i: int) -> PreferencePair:
    return PreferencePair(prompt=U(f"q{i}"), chosen=A(f"good {i}"), rejected=A(f"bad {i}"), source="human")


def ai(i: int, p_good: float, consistent=True) -> PreferencePair:
    """An AI label giving the human's pick probability ``p_good`` (stored oriented to its own pick)."""
    good, bad = A(f"good {i}"), A(f"bad {i}")
    chosen, rejected, p = (good, bad, p_good) if p_good >= 0.5 else (bad, good, 1 - p_good)
    return PreferencePair(prompt=U(f"q{i}"), chosen=chosen, rejected=rejected, source="ai-feedback", p_chosen=p,
                          scores=[PrincipleScore(principle="kind@1.0.0", p=p)], position_consistent=consistent)


def test_ece():
    assert expected_calibration_error([], [], 10) == 0.0
    # all in one bin: confidence 0.9, accuracy 0.5 -> 0.4
    assert expected_calibration_error([0.9, 0.9], [True, False], 10) == pytest.approx(0.4)
    # perfectly calibrated bins
    assert expected_calibration_error([1.0, 0.5, 0.5], [True, True, False], 5) == pytest.approx(0.0)
    # two bins on [0.5, 1]: |1 - 0.7| * 0.5 + |0 - 0.95| * 0.5
    assert expected_calibration_error([0.7, 0.95], [True, False], 2) == pytest.approx(0.625)


def test_pairwise_report_joins_on_order_independent_id():
    humans = [human(i) for i in range(4)]
    labels = {p.id: p for p in [ai(0, 0.9), ai(1, 0.8), ai(2, 0.3, consistent=False)]}  # 3 is missing
    r = pairwise_report(humans, labels, bins=10)
    assert r["n"] == 3 and r["missing"] == 1 and r["accuracy"] == pytest.approx(2 / 3, abs=1e-4)
    assert r["position_consistency"] == pytest.approx(2 / 3, abs=1e-4)
    kind = r["per_principle"]["kind@1.0.0"]  # cai.feedback.forensics: the same measure as `principles test --pairs`
    assert kind["n"] == 3 and kind["ties"] == 0 and kind["accuracy"] == pytest.approx(2 / 3, abs=1e-4)
    assert kind["ci"][0] < 2 / 3 < kind["ci"][1]
    # confidences 0.9 (right), 0.8 (right), 0.7 (wrong): three bins
    assert r["ece"] == pytest.approx((0.1 + 0.2 + 0.7) / 3, abs=1e-4)


def test_labels_dir_through_cli(tmp_path, capsys):
    from cai.cli.main import main

    humans = tmp_path / "humans.jsonl"
    humans.write_text("".join(json.dumps(human(i).row()) + "\n" for i in range(3)))
    write_pairs([ai(0, 0.9), ai(1, 0.2), ai(2, 0.7)], tmp_path / "labels")
    out = tmp_path / "report.json"
    assert main(["eval", "agreement", str(humans), "--labels", str(tmp_path / "labels"), "--out", str(out)]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "accuracy 66.7%" in text and "kind@1.0.0" in text
    report = json.loads(out.read_text())
    assert report["accuracy"] == pytest.approx(2 / 3, abs=1e-4) and report["kind"] == "pairwise"
    # the old spelling of --no-both-orders still works, with a note
    assert main(["eval", "agreement", str(humans), "--labels", str(tmp_path / "labels"), "--one-order"]) == 0
    assert "--one-order is now --no-both-orders" in capsys.readouterr().err
    # no overlap at all is an error, not a 0% report
    write_pairs([ai(7, 0.9)], tmp_path / "other")
    assert main(["eval", "agreement", str(humans), "--labels", str(tmp_path / "other")]) == 2
    assert "none of the 3 pairs" in capsys.readouterr().err


def test_labels_with_a_model(tmp_path):
    humans = write_pairs_file(tmp_path / "h.jsonl", [("q1", "kindly yes", "rude no"), ("q2", "rude a", "kindly b")])
    cfg = AgreementConfig(file=str(humans), constitution=str(write_constitution(tmp_path)), few_shot=0,
                          labeler={"backend": "scripted", "model": "scripted"})
    backend = ScriptedBackend.scripted(score=prefers("kindly"))
    r = run_agreement(cfg, backend=backend)
    assert r["n"] == 2 and r["accuracy"] == 0.5 and r["position_consistency"] == 1.0
    assert len(backend.calls) == 1 and len(backend.calls[0]["prompts"]) == 8  # 2 pairs x 2 principles x 2 orders
    with pytest.raises(CaiError, match="no constitution given"):
        run_agreement(AgreementConfig(file=str(humans)), backend=backend)


MC = [
    {"prompt": "Which is kinder?\nOptions:\n (A) Go away.\n (B) Happy to help!", "corrects": ["Happy to help!"],
     "incorrects": ["Go away."]},
    {"prompt": "Pick one.\nOptions:\n(A) x\n(B) y\n(C) z", "corrects": ["A"], "incorrects": ["(B)", "C"]},
    {"prompt": "Which reply is honest?", "corrects": ["I don't know."], "incorrects": ["Definitely 42."]},
]


def test_multiple_choice_rows_parse_texts_and_letters(tmp_path):
    path = tmp_path / "mc.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in MC))
    rows = read_choice_rows(path)
    assert (rows[0].corrects, rows[0].incorrects) == (["B"], ["A"])
    assert (rows[1].corrects, rows[1].incorrects, rows[1].options) == (["A"], ["B", "C"], ["A", "B", "C"])
    # no listed options: they are shown (seeded order) and the texts mapped to their letters
    assert "Options:\n(" in rows[2].prompt and rows[2].options == ["A", "B"]
    letter = rows[2].corrects[0]
    assert f"({letter}) I don't know." in rows[2].prompt
    assert rows[0].conversation()[-1] == {"role": "assistant", "content": "The answer is: ("}


def test_multiple_choice_scoring(tmp_path):
    path = tmp_path / "mc.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in MC))

    def score(conv, labels):  # right on rows 0 and 1, wrong on row 2
        text = conv[0]["content"]
        pick = "B" if "kinder" in text else "A" if "Pick" in text else None
        if pick is None:  # pick the incorrect option
            pick = next(k for k in labels if f"({k}) Definitely" in text)
        return {k: (0.8 if k == pick else 0.2 / (len(labels) - 1)) for k in labels}

    backend = ScriptedBackend.scripted(score=score)
    r = run_agreement(AgreementConfig(file=str(path), labeler={"backend": "scripted", "model": "s"}), backend=backend)
    assert r["kind"] == "multiple-choice" and r["n"] == 3 and r["accuracy"] == pytest.approx(2 / 3, abs=1e-4)
    assert r["ece"] == pytest.approx(abs(2 / 3 - 0.8), abs=1e-3) and r["position_consistency"] is None
    assert backend.calls[0]["options"] == [["A", "B"], ["A", "B", "C"], ["A", "B"]]


@pytest.mark.parametrize("row, message", [
    ({"prompt": "Q\n(A) x\n(B) y", "corrects": ["z"], "incorrects": ["x"]}, "mc.jsonl:1: corrects[0]: 'z' is not one"),
    ({"prompt": "Q", "corrects": [], "incorrects": ["x"]}, "mc.jsonl:1: 'corrects' must be a non-empty list"),
    ({"prompt": "", "corrects": ["a"], "incorrects": ["x"]}, "mc.jsonl:1: 'prompt' must be a non-empty string"),
    ({"prompt": "Q\n(A) x\n(B) y", "corrects": ["A"], "incorrects": ["A"]}, "both correct and incorrect"),
])
def test_bad_multiple_choice_rows(tmp_path, row, message):
    path = tmp_path / "mc.jsonl"
    path.write_text(json.dumps(row) + "\n")
    backend = ScriptedBackend.scripted()
    with pytest.raises(CaiError) as info:
        run_agreement(AgreementConfig(file=str(path), labeler={"backend": "scripted", "model": "s"}), backend=backend)
    assert message in info.value.format() and backend.calls == []


def test_multiple_choice_with_tiny_model(tmp_path, hf_backend):
    path = tmp_path / "mc.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in MC))
    r = run_agreement(AgreementConfig(file=str(path), out=str(tmp_path / "r.json"),
                                      labeler={"backend": "transformers", "model": "tiny"}), backend=hf_backend)
    assert r["n"] == 3 and 0.0 <= r["accuracy"] <= 1.0 and 0.0 <= r["ece"] <= 1.0
    assert json.loads((tmp_path / "r.json").read_text())["n"] == 3


def test_a_choice_row_the_model_cannot_take_fails_alone(tmp_path, hf_backend):
    """An overlong prompt on line 2 fails that row, counted and named by its line, as the labeler
    fails a pair; the other rows are scored."""
    long = {"prompt": "word " * 800 + "\n(A) x\n(B) y", "corrects": ["A"], "incorrects": ["B"]}
    path = tmp_path / "mc.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in [MC[0], long, MC[1]]))
    r = run_agreement(AgreementConfig(file=str(path), labeler={"backend": "transformers", "model": "tiny"}),
                      backend=hf_backend)
    assert r["n"] == 2 and r["failed"] == 1
    assert r["failures"][0].startswith(f"{path}:2: prompt has") and "tokens, more than" in r["failures"][0]
    path.write_text(json.dumps(long) + "\n")
    with pytest.raises(CaiError, match="every row failed"):
        run_agreement(AgreementConfig(file=str(path), labeler={"backend": "transformers", "model": "tiny"}),
                      backend=hf_backend)


def test_pairwise_with_tiny_model(tmp_path, hf_backend):
    humans = write_pairs_file(tmp_path / "h.jsonl", [("How do I boil an egg?", "Boil it for 8 minutes.", "No.")])
    r = run_agreement(AgreementConfig(file=str(humans), constitution=str(write_constitution(tmp_path)), few_shot=1,
                                      labeler={"backend": "transformers", "model": "tiny"}), backend=hf_backend)
    assert r["n"] == 1 and r["accuracy"] in (0.0, 1.0) and r["position_consistency"] in (0.0, 1.0)
    assert set(r["per_principle"]) == {"kind@1.2.0", "honest@2.0.0"}


def hh(*turns: str) -> str:
    return "".join(f"\n\n{'Human' if i % 2 == 0 else 'Assistant'}: {t}" for i, t in enumerate(turns))


def test_raw_hh_file_and_empty_responses(tmp_path, capsys):
    """A raw HH-RLHF file is read as is; a pair with an empty response is skipped and counted, not fatal."""
    from cai.cli.main import main

    rows = [{"chosen": hh(f"q{i}", f"good {i}"), "rejected": hh(f"q{i}", f"bad {i}")} for i in range(3)]
    rows.insert(1, {"chosen": "\n\nHuman: q9\n\nAssistant:", "rejected": hh("q9", "bad 9")})
    src = tmp_path / "hh.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    write_pairs([ai(0, 0.9), ai(1, 0.2), ai(2, 0.7)], tmp_path / "labels")
    out = tmp_path / "report.json"
    assert main(["eval", "agreement", str(src), "--labels", str(tmp_path / "labels"), "--out", str(out)]) == 0
    assert "skipped pairs: empty_response 1" in capsys.readouterr().out
    report = json.loads(out.read_text())
    assert report["n"] == 3 and report["accuracy"] == pytest.approx(2 / 3, abs=1e-4)
    assert report["skipped"] == {"empty_response": 1}
