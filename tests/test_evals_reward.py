"""`cai eval reward-model`: controlled pairs from the suites, per-bias preference for the worse
variant and margins, the length-reward correlation, and a reward model `cai train reward` wrote."""

from __future__ import annotations

import json

import pytest

from cai.cli.main import main
from cai.evals.reward_audit import BIASES, FILLER, FLATTERY, REFUSAL, audit, controlled_pairs
from cai.evals.suites import load_suites
from cai.data.pairs import PreferencePair, write_pairs


def words(convs):
    return [float(len(c[-1]["content"].split())) for c in convs]


def test_controlled_pairs_change_one_thing():
    pairs = controlled_pairs(load_suites())
    assert {p["bias"] for p in pairs} == set(BIASES)
    for p in pairs:
        assert p["prompt"] and p["prompt"][-1]["role"] == "user" and p["better"] != p["worse"]
        if p["bias"] == "padding":
            assert p["worse"] == p["better"] + FILLER
        if p["bias"] == "flattery":
            assert p["worse"] == FLATTERY + p["better"]
        if p["bias"] == "refuses-safe":
            assert p["worse"] == REFUSAL and p["suite"] == "over-refusal"
        if p["bias"] == "agrees-false-claim":
            assert "you're right" in p["worse"]
    # multi-turn escalations whose earlier replies would be generated are left out
    assert not any(p["probe"] == "escalation-chemistry" for p in pairs)
    assert any(p["probe"] == "escalation-roleplay-extremism" for p in pairs)


def test_length_loving_reward_is_caught():
    summary, pairs, lengths, rewards = audit(words, load_suites(), n_boot=300)
    by = {b["bias"]: b for b in summary["biases"]}
    for bias in ("padding", "flattery", "hedging"):
        assert by[bias]["prefers_worse"]["value"] == 1.0 and by[bias]["mean_margin"]["value"] < 0
    assert by["refuses-safe"]["prefers_worse"]["value"] == 0.0  # the refusal is shorter
    assert summary["length_reward"]["pearson"] == pytest.approx(1.0)
    assert summary["length_reward"]["spearman"] == pytest.approx(1.0)
    assert len(lengths) == len(rewards) == summary["responses"] < 2 * len(pairs)  # each response scored once


def test_margin_sign_follows_better_minus_worse():
    def hates_sorry(convs):
        return [-1.0 if "sorry" in c[-1]["content"].lower() else 1.0 for c in convs]

    summary, *_ = audit(hates_sorry, load_suites(["over-refusal"]), n_boot=200)
    [b] = [b for b in summary["biases"] if b["bias"] == "refuses-safe"]
    assert b["prefers_worse"]["value"] == 0.0 and b["mean_margin"]["value"] == 2.0


@pytest.mark.slow
def test_audit_of_a_reward_model_trained_to_love_padding(tmp_path, tiny_llama):
    """`cai train reward` on pairs whose chosen answer is padded; the audit must find the padding bias."""
    pairs = []
    for i in range(48):
        answer = f"The answer to question {i} is {i * 7 % 13}."
        pairs.append(PreferencePair(prompt=[{"role": "user", "content": f"Question {i}?"}],
                                    chosen=[{"role": "assistant", "content": answer + FILLER}],
                                    rejected=[{"role": "assistant", "content": answer}], source="human"))
    write_pairs(pairs, tmp_path / "data")
    rm = tmp_path / "rm"
    assert main(["train", "reward", "--data", str(tmp_path / "data"), "--model", str(tiny_llama), "--out", str(rm),
                 "--max-steps", "12", "--batch-size", "8", "--learning-rate", "1e-3"]) == 0
    out = tmp_path / "audit"
    assert main(["eval", "reward-model", str(rm), "--out", str(out), "--suites", "verbosity",
                 "--max-length", "256"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    by = {b["bias"]: b for b in summary["biases"]}
    assert by["padding"]["prefers_worse"]["value"] >= 0.8, by["padding"]
    # control: the untrained model (the same base, a fresh head) pays far less for the padding
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, set_seed

    from cai.train.score import score_conversations

    set_seed(0)
    base = AutoModelForSequenceClassification.from_pretrained(str(tiny_llama), num_labels=1, dtype=torch.float32).eval()
    tok = AutoTokenizer.from_pretrained(str(tiny_llama))
    before, *_ = audit(lambda convs: score_conversations(base, tok, convs), load_suites(["verbosity"]), n_boot=200)
    untrained = next(b for b in before["biases"] if b["bias"] == "padding")["mean_margin"]["value"]
    assert abs(untrained) < abs(by["padding"]["mean_margin"]["value"]) / 2, (untrained, by["padding"])
    rows = [json.loads(x) for x in (out / "pairs.jsonl").read_text().splitlines()]
    assert all(r["margin"] == pytest.approx(r["r_better"] - r["r_worse"]) for r in rows)
    html = (out / "report.html").read_text()
    assert html.count("<svg") == 3 and "padding" in html


def test_cli_reward_model_missing_folder(tmp_path, capsys):
    assert main(["eval", "reward-model", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 2
    assert "no such reward model" in capsys.readouterr().err
