"""The loop report says first whether its numbers can be trusted (issue 26 item 7), on a run folder
written by hand with the figures the field reports named: an AI labeler at 87.5% of 8 human pairs
whose two orders mostly disagree, a reward model at 100% of 3 held-out pairs whose audit pays for
padding 88% of the time, and a GRPO reward gain that came from the end-of-turn guard."""

from __future__ import annotations

import json
import re
from html import unescape
from pathlib import Path

from cai.core.rates import proportion
from cai.judge.health import HealthPolicy, JudgeHealth, Rate, assess
from cai.loop.report import loop_report
from cai.loop.trust import labeler_verdict, online_rl_verdict, reward_verdict


def _health(n: int, consistent: int, comparisons: int, longer: int, decided: int) -> dict:
    h = JudgeHealth(n=n, position=Rate(comparisons, consistent), length=Rate(decided, longer))
    return assess(h, HealthPolicy()).to_dict()


def _write(folder: Path, rel: str, data) -> None:
    path = folder / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, list):
        path.write_text("".join(json.dumps(r) + "\n" for r in data))
    else:
        path.write_text(json.dumps(data))


def build(run: Path, *, healthy: bool = False) -> Path:
    weak = _health(16, 15, 16, 8, 16) if healthy else _health(16, 2, 16, 14, 16)
    _write(run, "loop.json", {"stages": ["generate", "label", "humans", "mix", "reward", "grpo", "eval"],
                              "settings": {"models": {"policy": "smollm2-135m-instruct"}}})
    _write(run, "generate/summary.json", {"records": 8, "ok": 8, "failed": 0, "revised": 8})
    _write(run, "label/summary.json", {"pairs": 6, "position_consistency": 0.9375 if healthy else 0.125,
                                       "position_checked": 16, "judge_health": weak})
    _write(run, "humans/agreement.json", {"n": 8 if not healthy else 40, "accuracy": 0.875,
                                          "kappa": {"n": 8, "kappa": 0.75, "low": 0.26, "high": 1.0},
                                          "position_consistency": 0.9375 if healthy else 0.125,
                                          "position_checked": 8, "judge_health": weak})
    _write(run, "humans/pairs/data.jsonl", [{"prompt": "p"}] * 8)
    _write(run, "mix/mix.json", {"sources": {"human": {"human": True, "read": 8, "train": 7, "test": 1}},
                                 "splits": {"train": 7, "test": 1}})
    _write(run, "reward/summary.json", {"steps": 2, "final_loss": 0.6, "eval": {"all": {"n": 3, "accuracy": 1.0}}})
    _write(run, "eval/reward-model/summary.json", {"pairs": 34, "biases": [
        {"bias": "padding", "n": 17, "prefers_worse": proportion(15, 17), "mean_margin": {"value": -0.2, "ci": [-0.3, -0.1]}},
        {"bias": "flattery", "n": 17, "prefers_worse": proportion(3, 17), "mean_margin": {"value": 0.1, "ci": [0.0, 0.2]}}]})
    _write(run, "grpo/metrics.jsonl", [{"step": 1, "objective/reward_mean": 0.139, "objective/kl": 0.0},
                                       {"step": 2, "objective/reward_mean": 0.266, "objective/kl": 0.01}])
    _write(run, "grpo/summary.json", {
        "objective/reward_mean": {"start": 0.139, "end": 0.266},
        "gain_by_source": {"constitution": {"weight": 1.0, "start": 0.639, "end": 0.641, "change": 0.002,
                                            "weighted_change": 0.002},
                           "eos": {"weight": 1.0, "start": -0.5, "end": -0.375, "change": 0.125,
                                   "weighted_change": 0.125}},
        "reward_warnings": ["most of the reward's gain (+0.127) came from 'eos' (+0.125), not the constitution "
                            "(0.639 -> 0.641, +0.002)"]})
    _write(run, "eval/behavior/summary.json", {"results": [
        {"suite": "verbosity", "metric": "length ratio", "higher_is_better": False, "numeric": True, "probes": 8,
         "candidate": {"rate": {"value": 15.0, "ci": [12.0, 18.0], "n": 8}, "rated_by": "detector"},
         "baseline": {"rate": {"value": 11.0, "ci": [9.0, 13.0], "n": 8}},
         "diff": {"value": 4.0, "ci": [1.0, 7.0], "n": 8}, "change": "worse"}]})
    return run


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html)))


def test_the_report_says_first_that_the_judge_is_not_to_be_trusted(tmp_path):
    html = loop_report(build(tmp_path / "run"))
    text = _text(html)
    trust, glance = text.index("Can these numbers be trusted?"), text.index("At a glance")
    assert trust < glance
    top = text[trust:glance]
    assert "The AI labeler (the judge, smollm2-135m-instruct) is not to be trusted" in top
    assert "position consistency 12.5% of 16 comparisons" in top
    assert "How an accuracy of 87.5% and these findings both hold" in top  # explained, not left side by side
    assert "Cohen's kappa 0.75 [0.26, 1.00]" in top
    assert "judge-health" in html and "AI labeler on people" in text  # JudgeHealth.html(), first
    # the reward model: the audit leads, the held-out accuracy says it rests on 3 pairs
    assert "audit fails: it pays for padding (88% of 17 pairs prefer the worse variant)" in top
    assert "too few to estimate" in text[glance:]
    # GRPO's gain split by source, with the run's warning
    assert "constitution +0.639 → +0.641" in top and "came from 'eos'" in top
    # behaviour lines carry direction, change and n
    assert "verbosity 15.000 → 15.000" not in text
    assert re.search(r"verbosity 11\.000 → 15\.000 \(lower is better; worse, n=8\)", text), text[glance:glance + 900]
    glance_text = text[glance:text.index("Stages")]
    assert "not to be trusted" in glance_text and "audit fails" in glance_text


def test_a_ppo_reward_rise_is_qualified_by_a_failing_audit(tmp_path):
    run = build(tmp_path / "run")
    (run / "grpo").rename(run / "ppo")
    (run / "ppo" / "summary.json").unlink()
    _write(run, "loop.json", {"stages": ["generate", "label", "humans", "mix", "reward", "ppo", "eval"]})
    text = _text(loop_report(run))
    assert "PPO's reward (0.139 → 0.266) is this model's score, so a rise in it may be bought" in text
    glance = text[text.index("At a glance"):text.index("Stages")]
    assert "the score of a reward model whose audit fails" in glance and "not evidence of a better policy" in glance


def test_a_healthy_labeler_is_not_called_untrusted(tmp_path):
    html = loop_report(build(tmp_path / "run", healthy=True))
    text = _text(html)
    assert "not to be trusted" not in text and "passed its checks" in text


def test_verdicts_on_missing_or_odd_files():
    assert labeler_verdict(None, None) is None and reward_verdict(None, None) is None
    assert online_rl_verdict({"gain_by_source": "x"}, "grpo") is None
    v = reward_verdict({"all": {"n": 2, "accuracy": 1.0}}, None)
    assert v["level"] == "warn" and "too few" in v["text"]
    v = labeler_verdict({"n": 3, "accuracy": 1.0}, None)  # 3 of 3: not shown better than chance
    assert v["trusted"] is False and "coin flip" in v["text"]


def test_terminal_lines_carry_the_same_verdicts():
    from cai.loop.console import brief

    line = brief("humans", {"import": {"written": 8}, "agreement": {"n": 8, "accuracy": 0.875,
                                                                   "position_consistency": 0.125, "position_checked": 8}})
    assert "87.5% of 8 pairs" in line and "not to be trusted" in line
    line = brief("eval", {"behavior": {"results": []}, "reward_model": {"biases": [{}], "verdict": {
        "status": "fails", "text": "pays for padding (88% of 17 pairs prefer the worse variant)"}}})
    assert "reward-model audit: fails: pays for padding" in line
    line = brief("grpo", {"steps": 2, "objective/reward_mean": {"start": 0.139, "end": 0.266},
                          "objective/kl": {"start": 0.0, "end": 0.01},
                          "gain_by_source": {"constitution": {"weight": 1.0, "start": 0.639, "end": 0.641,
                                                              "change": 0.002, "weighted_change": 0.002}},
                          "reward_warnings": ["most of the gain came from 'eos'"]})
    assert "constitution +0.639 → +0.641" in line and "came from 'eos'" in line
