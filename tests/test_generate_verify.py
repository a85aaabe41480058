"""`cai generate --verify`: the feedback model judges each revision against what it revised (both
orders, through cai.judge); P(revision ≻ draft) is on the step and the record, is the exported
pair's p_chosen, keeps pairs below min_p out of the preferences (and the SFT row with
verify_sft), and equals `cai label`'s number for the same pair and principle."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cai.backends.scripted import ScriptedBackend
from cai.data.pairs import read_pairs
from cai.data.store import iter_records
from cai.sl import GenerateConfig, run_generate
from sl_helpers import EchoCritic

REPO = Path(__file__).resolve().parents[1]


class EchoJudge(EchoCritic):
    """EchoCritic that also scores choices with ``score`` (a scripted scorer) and records them."""

    def __init__(self, score, **kw):
        super().__init__(**kw)
        self.scorer = ScriptedBackend.scripted(score=score)

    def score_choices(self, prompts, options):
        self.calls.append(("score", len(prompts)))
        return self.scorer.score_choices(prompts, options)


def prefers_kinder(strength: float, follows: float = 0.9):
    """P(option holding 'kinder answer') = strength, whichever position it is shown in; asked
    whether a response follows its principle (pointwise YES/NO), P(Yes) = ``follows``."""

    def score(conv, labels):
        question = next(m["content"] for m in reversed(conv) if m["role"] == "user")
        if "Does the assistant's last response follow this principle?" in question:
            return {"A": follows, "B": 1 - follows}
        a_text = question.split("Options:\n")[-1].split("(B)")[0]
        return {"A": strength, "B": 1 - strength} if "kinder answer" in a_text else {"A": 1 - strength, "B": strength}

    return score


def write_prompts(path: Path, n: int) -> Path:
    with open(path, "w") as fh:
        for i in range(n):
            fh.write(json.dumps({"prompt": f"Question number {i}: how should I treat my neighbour?"}) + "\n")
    return path


def config(tmp_path, **kw) -> GenerateConfig:
    data = dict(constitution=str(REPO / "constitution" / "harmless.yaml"), prompts=str(write_prompts(tmp_path / "p.jsonl", 3)),
                out=str(tmp_path / "run"), policy={"backend": "transformers", "model": "echo"}, rounds=1, verify=True,
                flush_seconds=None)  # fixed chunks: one judge call per step
    data.update(kw)
    return GenerateConfig.model_validate(data)


def test_verify_stores_p_and_sets_p_chosen(tmp_path):
    backend = EchoJudge(prefers_kinder(0.8))
    summary = run_generate(config(tmp_path), backends=(backend, backend))
    # one score call per step, every record's both orders in it; then one for the ratings (YES/NO)
    assert [n for c, n in backend.calls if c == "score"] == [3 * 2, 3]
    for r in iter_records(tmp_path / "run"):
        [step] = r.steps
        assert step.p_better == pytest.approx(0.8) and step.position_consistent is True
        v = r.verification
        assert v.p_chosen == pytest.approx(0.8) and v.principles == [step.principle] and v.kept
        assert v.judge["orders"] == "both" and v.judge["constitution"] == "harmless@1.0.0"
    pairs = list(read_pairs(tmp_path / "run" / "preferences"))
    assert len(pairs) == 3 and all(p.p_chosen == pytest.approx(0.8) for p in pairs)
    assert json.loads(pairs[0].provenance)["verification"]["p_chosen"] == pytest.approx(0.8)
    assert summary["verify"]["judged"] == 3 and summary["verify"]["better"] == 3
    assert summary["revision_not_better"] == 0 and summary["verify"]["interval"][1] == 1.0
    from rich.console import Console

    from cai.sl.show import render_record

    console = Console(width=200, record=True)
    console.print(render_record(next(iter(iter_records(tmp_path / "run")))))
    shown = console.export_text()
    assert "judge: P(better than what it revised) 0.800" in shown and "P(final ≻ draft) 0.800" in shown


def test_below_min_p_fails_the_record_unless_kept(tmp_path):
    """Issue 26: 11 SFT rows were exported while the judge found 5 revisions better. A revision the
    judge does not find better fails its record (out of SFT and preferences), with the check and why
    on the record; keep_unverified is the old behaviour (record ok, flagged, SFT row kept)."""
    backend = EchoJudge(prefers_kinder(0.3))  # the judge prefers the draft
    summary = run_generate(config(tmp_path, min_p=0.5), backends=(backend, backend))
    assert summary["exports"]["preferences"] == 0 and summary["exports"]["sft"] == 0
    assert summary["ok"] == 0 and summary["failures"] == {"not-better-than-draft": 3}
    assert summary["checks_failed"] == {"not-better-than-draft": 3}
    assert summary["revision_not_better"] == 3 and summary["verify"]["better"] == 0
    r = next(iter(iter_records(tmp_path / "run")))
    assert r.status == "failed" and r.steps[0].revision and r.verification.p_chosen == pytest.approx(0.3)
    [check] = r.checks
    assert check.name == "not-better-than-draft" and "0.300 < min_p 0.5" in check.why
    # keep_unverified: the record stays ok and flagged; its SFT row is exported, its pair is not
    summary = run_generate(config(tmp_path, min_p=0.5, keep_unverified=True, out=str(tmp_path / "kept")),
                           backends=(backend, backend))
    assert summary["exports"]["preferences"] == 0 and summary["exports"]["sft"] == 3 and summary["ok"] == 3
    assert summary["flags"]["revision-not-better"] == 3 and summary["flags"]["not-better-than-draft"] == 3
    r = next(iter(iter_records(tmp_path / "kept")))
    assert r.final != r.draft and not r.verification.kept and r.checks[0].name == "not-better-than-draft"
    # ... and with verify_sft the SFT row goes too
    summary = run_generate(config(tmp_path, min_p=0.5, keep_unverified=True, verify_sft=True,
                                  out=str(tmp_path / "run2")), backends=(backend, backend))
    assert summary["exports"]["sft"] == 0
    # min_p None keeps every pair, with the judge's (low) p_chosen
    summary = run_generate(config(tmp_path, min_p=None, out=str(tmp_path / "run3")), backends=(backend, backend))
    assert summary["exports"]["preferences"] == 3 and summary["revision_not_better"] == 0
    assert all(p.p_chosen == pytest.approx(0.3) for p in read_pairs(tmp_path / "run3" / "preferences"))


def test_two_rounds_judge_final_against_draft(tmp_path):
    backend = EchoJudge(prefers_kinder(0.9))
    run_generate(config(tmp_path, rounds=2), backends=(backend, backend))
    scores = [n for c, n in backend.calls if c == "score"]
    # round 1: 3 records x 2 orders; round 2's revision equals round 1's (the same echo), so it is
    # not asked; then final vs draft under both principles: 3 records x 2 principles x 2 orders
    assert scores == [6, 3 * 2 * 2, sum(len(set(r.principles)) for r in iter_records(tmp_path / "run"))]
    r = next(iter(iter_records(tmp_path / "run")))
    assert len(r.steps) == 2 and len(r.verification.principles) == 2
    assert r.steps[1].p_better == pytest.approx(0.5)


def test_feedback_model_and_no_verify(tmp_path):
    policy = EchoCritic()
    judge = EchoJudge(prefers_kinder(0.7))
    run_generate(config(tmp_path, feedback={"backend": "transformers", "model": "judge-m"}),
                 backends=(policy, policy, judge))
    assert not any(c == "score" for c, _ in policy.calls)
    r = next(iter(iter_records(tmp_path / "run")))
    assert r.verification.p_chosen == pytest.approx(0.7)
    pair = next(iter(read_pairs(tmp_path / "run" / "preferences")))
    assert pair.labeler == "echo"  # the judge backend's model name (EchoCritic's config)
    run_generate(config(tmp_path, verify=False, out=str(tmp_path / "plain")), backends=(policy, policy))
    assert next(iter(iter_records(tmp_path / "plain"))).verification is None
    assert all(p.p_chosen == 1.0 for p in read_pairs(tmp_path / "plain" / "preferences"))


def test_verification_equals_the_labelers_number(tmp_path):
    """The same pair and principle through `cai label` gives the same probability."""
    import judge_cases
    from cai.feedback import LabelOptions, Labeler
    from cai.principles.constitution import load_constitution

    backend = EchoJudge(judge_cases.hashed_score)  # prompt-sensitive: any change in the question shows
    run_generate(config(tmp_path), backends=(backend, backend))
    constitution = load_constitution(REPO / "constitution" / "harmless.yaml")
    labeler = Labeler(constitution, backend.scorer, LabelOptions())  # defaults: both orders, few_shot 2
    pairs = list(read_pairs(tmp_path / "run" / "preferences", ))
    records = {r.id: r for r in iter_records(tmp_path / "run")}
    assert pairs
    for pair in pairs:
        r = records[pair.record_id]
        [principle] = [p for p in constitution.principles if p.ref == r.steps[0].principle]
        labeler.principles = lambda _pair, p=principle: [p]
        [labeled] = labeler.label([pair])
        p_revision = labeled.p_chosen if labeled.chosen_text == r.final else 1 - labeled.p_chosen
        assert p_revision == pytest.approx(r.verification.p_chosen, abs=1e-12)
        assert p_revision == pytest.approx(pair.p_chosen, abs=1e-12)


VERIFIED = {"records": 8, "ok": 7, "failed": 1, "revised": 6, "failures": {"empty-draft": 1}, "flags": {},
            "exports": {"sft": 7, "preferences": 4},
            "verify": {"judged": 6, "better": 4, "better_rate": 0.6667, "interval": [0.3, 0.9032], "mean_p": 0.61,
                       "not_better": 2, "min_p": 0.5, "position_consistency": 0.5}}


def test_loop_line_and_report_show_the_judged_revisions(tmp_path):
    from cai.loop.console import brief
    from cai.loop.report import loop_figures, write_loop_report

    line = brief("generate", VERIFIED)
    assert line == "8 records, 6 revised, 1 failed, judge: 4 of 6 revisions better (30%-90%), 2 kept out"
    assert brief("generate", {k: v for k, v in VERIFIED.items() if k != "verify"}) == "8 records, 6 revised, 1 failed"
    gen = tmp_path / "RUN" / "generate"
    gen.mkdir(parents=True)
    (gen / "summary.json").write_text(json.dumps(VERIFIED))
    (gen / "stage.json").write_text(json.dumps({"stage": "generate", "status": "done", "seconds": 1.0,
                                                "summary": VERIFIED}))
    page = Path(write_loop_report(tmp_path / "RUN")).read_text()
    assert "judge: 4 of 6 revisions better than their drafts (66.7% of 6 revisions (95% CI" in page
    assert "2 kept out (min_p 0.5)" in page
    figures = loop_figures(tmp_path / "RUN")
    assert figures["generate"]["verified"] == 6 and figures["generate"]["judge_better"] == 4
