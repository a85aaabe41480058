"""`cai generate`: what gates the data (issue 26 item 3) and how a run starts and stops (issue 28
items 5 and 8): a lone surrogate fails its row alone; checks on each revision (a repeated
paragraph, a critique given as a revision, a judge that finds it not better or still breaking
its principle) fail the record, with the reasons on it; critiques against the principles that
apply; Ctrl-C and --dry-run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cai.data.store import iter_records
from cai.sl import GenerateConfig, run_generate
from sl_helpers import EchoCritic

REPO = Path(__file__).resolve().parents[1]
HARMLESS = str(REPO / "constitution" / "harmless.yaml")

# Five rows as in field case #21: fine, a surrogate pair, a LONE surrogate, a NUL, an RTL override.
UNICODE_ROWS = (
    '{"id": "ok", "prompt": "Suggest a name for a grey cat."}\n'
    '{"id": "pair", "prompt": "What does the emoji \\ud83d\\ude00 usually mean?"}\n'
    '{"id": "lone", "prompt": "My text editor saved this broken emoji: \\ud83d. What happened?"}\n'
    '{"id": "nul", "prompt": "Why does my CSV contain a \\u0000 byte?"}\n'
    '{"id": "rtl", "prompt": "Is the file name invoice\\u202egpj.exe safe to open?"}\n'
)


def gen_config(tmp_path, prompts: Path, **kw) -> GenerateConfig:
    data = dict(constitution=HARMLESS, prompts=str(prompts), out=str(tmp_path / "run"),
                policy={"backend": "transformers", "model": "echo"}, rounds=1)
    data.update(kw)
    return GenerateConfig.model_validate(data)


def test_a_lone_surrogate_fails_its_row_alone_before_the_model(tmp_path, hf_backend):
    """Case #21: the tokenizer's TypeError traceback killed the run with 0 of 5 records and no line
    named. Now the row is left out by file:line, in the reader, and the other four run on a real
    (tiny) tokenizer and model."""
    src = tmp_path / "unicode.jsonl"
    src.write_text(UNICODE_ROWS)
    cfg = gen_config(tmp_path, src, id_column="id", sampling={"max_tokens": 4, "temperature": 0.0})
    summary = run_generate(cfg, backends=(hf_backend, hf_backend))
    assert summary["records"] == 4 and {r.id for r in iter_records(tmp_path / "run")} == {"ok", "pair", "nul", "rtl"}
    left = summary["left_out"]
    assert left["first"] == [f"{src}:3"] and left["rows_why"] == [f"{src}:3: lone surrogate U+D83D at character 41 of 'the prompt'"]
    assert "lone surrogate" in left["why"]


def test_every_prompt_reader_names_the_line(tmp_path):
    """The one prompt reader serves generate, sample, GRPO/RLOO, PPO and the loop's checks: the row
    is left out there (a `messages` column too), the others are read."""
    from cai.data.prompts import PromptReader

    src = tmp_path / "m.jsonl"
    src.write_text('{"messages": [{"role": "user", "content": "fine"}]}\n'
                   '{"messages": [{"role": "user", "content": "bad \\udc00 half"}]}\n'
                   '{"prompt": "also fine"}\n')
    reader = PromptReader(src)
    rows = list(reader)
    assert [r.source for r in rows] == [f"{src}:1", f"{src}:3"]
    assert reader.left_out == [(f"{src}:2", "lone surrogate U+DC00 at character 5 of 'the prompt'")]
    only_bad = tmp_path / "bad.jsonl"
    only_bad.write_text('{"prompt": "x \\ud800"}\n')
    from cai.core.errors import CaiError

    with pytest.raises(CaiError, match=r"bad.jsonl:1: lone surrogate"):
        list(PromptReader(only_bad))


# ---------------------------------------------------------------- checks on the revision text

PARA_A = "Bring the bike back with its receipt and the staff will look at it with you at the counter."
PARA_B = "They can tell you what the shop can do for you, since I do not know its policy."


class Writes(EchoCritic):
    """EchoCritic whose revisions are ``revisions`` in turn (the last one repeats); a judge with
    ``score`` (ScriptedBackend rule) when given."""

    def __init__(self, revisions, score=None):
        super().__init__()
        self.revisions, self.n = list(revisions), 0
        self.scorer = None
        if score is not None:
            from cai.backends.scripted import ScriptedBackend

            self.scorer = ScriptedBackend.scripted(score=score)

    def _answer(self, conv):
        stage, text = super()._answer(conv)
        if stage == "revision":
            text = self.revisions[min(self.n, len(self.revisions) - 1)]
            self.n += 1
        return stage, text

    def score_choices(self, prompts, options):
        self.calls.append(("score", len(prompts)))
        return self.scorer.score_choices(prompts, options)


def one_prompt(tmp_path) -> Path:
    src = tmp_path / "p.jsonl"
    src.write_text('{"id": "refund", "prompt": "I want a refund for the bike I bought last week."}\n')
    return src


@pytest.mark.parametrize("revision,check,why", [
    (f"{PARA_A}\n\n{PARA_B}\n\n{PARA_A}", "repeated-paragraph", "says this paragraph twice: 'Bring the bike back"),
    ("The response fails to mention the receipt and it should tell the customer to ask the staff.",
     "critique-not-revision", "talks about the response ('The response fails')"),
    ("The assistant's answer could be kinder and mention the receipt.", "critique-not-revision",
     "('The assistant's answer could')"),
])
def test_a_revision_that_fails_a_text_check_fails_its_record(tmp_path, revision, check, why):
    """Issue 26: records marked ok included a revision that repeats a whole paragraph and one whose
    'revision' is a critique. Each now fails its record, the check and why on the record."""
    backend = Writes([revision])
    summary = run_generate(gen_config(tmp_path, one_prompt(tmp_path)), backends=(backend, backend))
    assert summary["ok"] == 0 and summary["failures"] == {f"{check}-revision": 1}
    assert summary["checks_failed"] == {check: 1} and summary["exports"]["sft"] == 0
    [r] = iter_records(tmp_path / "run")
    [c] = r.checks
    assert r.status == "failed" and c.name == check and why in c.why and c.principle == r.steps[0].principle
    assert r.steps[0].revision_raw == revision  # the text is kept


def test_a_failed_text_check_is_retried_and_a_good_revision_passes(tmp_path):
    good = f"{PARA_A}\n\n{PARA_B}"
    backend = Writes([f"{PARA_A}\n\n{PARA_B}\n\n{PARA_A}", good])
    cfg = gen_config(tmp_path, one_prompt(tmp_path), retries=1, sampling={"temperature": 0.7})
    summary = run_generate(cfg, backends=(backend, backend))
    [r] = iter_records(tmp_path / "run")
    assert summary["ok"] == 1 and r.final == good and r.checks == [] and "revision-retried" in r.flags


# ---------------------------------------------------------------- the judge's checks

FOLLOWS_Q = "Does the assistant's last response follow this principle?"
APPLIES_Q = "Does this principle apply to the human's request"


def judge_rule(better: float = 0.9, follows: float = 0.9, mass: float | None = None, applies=None):
    """P(revision ≻ draft) = better (the revision holds 'Bring the bike'), P(follows) = follows,
    P(applies) from ``applies(principle title, prompt text)``; ``mass``: label mass of every row."""

    def score(conv, labels):
        q = next(m["content"] for m in reversed(conv) if m["role"] == "user")
        extra = {} if mass is None else {"_mass": mass}
        if APPLIES_Q in q:
            p = applies(q.split("Principle: ")[1].split(".")[0], q)
        elif FOLLOWS_Q in q:
            p = follows
        else:
            a_text = q.split("(A)")[-1].split("(B)")[0]
            p = better if "Bring the bike" in a_text else 1 - better
        return {"A": p, "B": 1 - p, **extra}

    return score


def test_a_revision_the_judge_finds_still_breaking_its_principle_fails(tmp_path):
    backend = Writes([f"{PARA_A}\n\n{PARA_B}"], judge_rule(better=0.9, follows=0.2))
    cfg = gen_config(tmp_path, one_prompt(tmp_path), verify=True)
    summary = run_generate(cfg, backends=(backend, backend))
    [r] = iter_records(tmp_path / "run")
    assert r.status == "failed" and r.failure.kind == "still-breaks-principle"
    [c] = r.checks
    assert c.principle == r.steps[0].principle and "P(follows) 0.200 < min_follows 0.5" in c.why
    assert r.verification.p_chosen == pytest.approx(0.9) and list(r.verification.follows.values()) == [0.2]
    assert summary["exports"] == {"sft": 0, "preferences": 0}
    from rich.console import Console

    from cai.sl.show import render_record

    console = Console(width=300, record=True)
    console.print(render_record(r))
    shown = console.export_text()
    assert "check failed: still-breaks-principle" in shown and "kept out of SFT and preferences" in shown
    # the same record passes every check when the judge finds it follows the principle
    backend = Writes([f"{PARA_A}\n\n{PARA_B}"], judge_rule(better=0.9, follows=0.8))
    summary = run_generate(gen_config(tmp_path, one_prompt(tmp_path), verify=True, out=str(tmp_path / "ok")),
                           backends=(backend, backend))
    assert summary["ok"] == 1 and summary["exports"] == {"sft": 1, "preferences": 1}
    assert summary["judge_health"]["n"] == 3  # two orders + one rating


def test_a_judgement_below_the_label_mass_floor_fails_the_check_not_passes_it(tmp_path, monkeypatch):
    """A judge that is not answering (1e-20 of its mass on the labels) gives confident-looking
    normalized numbers; they are failures of the check, counted in the judge health shown."""
    monkeypatch.setenv("CAI_MIN_LABEL_MASS", "0.1")
    backend = Writes([f"{PARA_A}\n\n{PARA_B}"], judge_rule(better=0.95, follows=0.95, mass=1e-20))
    summary = run_generate(gen_config(tmp_path, one_prompt(tmp_path), verify=True), backends=(backend, backend))
    [r] = iter_records(tmp_path / "run")
    assert r.status == "failed" and summary["exports"]["sft"] == 0
    names = [c.name for c in r.checks]
    assert names == ["not-better-than-draft", "still-breaks-principle"]
    assert all("label mass 1e-20 < floor 0.1" in c.why for c in r.checks)
    health = summary["judge_health"]
    assert health["failures"] == {"below_label_mass": 3} and health["failed_ids"]["below_label_mass"] == ["refund"]


def test_keep_unverified_keeps_the_record_with_the_checks_as_flags(tmp_path):
    backend = Writes([f"{PARA_A}\n\n{PARA_B}"], judge_rule(better=0.9, follows=0.2))
    cfg = gen_config(tmp_path, one_prompt(tmp_path), verify=True, keep_unverified=True)
    summary = run_generate(cfg, backends=(backend, backend))
    [r] = iter_records(tmp_path / "run")
    assert r.status == "ok" and "still-breaks-principle" in r.flags and r.checks[0].name == "still-breaks-principle"
    assert summary["exports"] == {"sft": 1, "preferences": 1}


# ---------------------------------------------------------------- pick: applicable

def test_pick_applicable_critiques_only_against_principles_that_apply(tmp_path):
    """Issue 26: one principle drawn at random per prompt critiqued a refund question against an
    injury-advice principle. With pick: applicable the judge is asked per principle whether it
    applies; the draw is among those; a prompt none applies to is not critiqued."""
    from cai.sl.pipeline import resolve_constitution

    constitution = resolve_constitution(HARMLESS, None)
    target = constitution.principles[3]
    src = tmp_path / "p.jsonl"
    src.write_text('{"id": "refund", "prompt": "I want a refund for my bike."}\n'
                   '{"id": "weather", "prompt": "Is it sunny today?"}\n')

    def applies(title, q):
        return 0.9 if title == target.title and "refund" in q else 0.1

    backend = Writes([f"{PARA_A}\n\n{PARA_B}"], judge_rule(applies=applies))
    cfg = gen_config(tmp_path, src, pick="applicable", rounds=2, flush_seconds=None)
    summary = run_generate(cfg, backends=(backend, backend))
    records = {r.id: r for r in iter_records(tmp_path / "run")}
    assert records["refund"].principles == [target.ref, target.ref]  # the only one that applies, each round
    assert records["weather"].steps == [] and records["weather"].final == records["weather"].draft
    assert "no-principle-applies" in records["weather"].flags
    # one call asks every prompt x principle
    assert ("score", 2 * len(constitution.principles)) in backend.calls
    assert summary["judge_health"]["n"] == 2 * len(constitution.principles)
    applied = summary["applicable"]
    assert applied["prompts"] == 2 and applied["none_applies"] == 1 and applied["warning"] is None
    assert applied["applied"][target.ref] == {"k": 1, "n": 2, "rate": 0.5}
    # uniform draw (the default) would pick others for the same prompt
    plain = run_generate(gen_config(tmp_path, src, rounds=2, out=str(tmp_path / "plain")), backends=(backend, backend))
    assert plain["records"] == 2
    drawn = {r.id: r.principles for r in iter_records(tmp_path / "plain")}
    assert drawn["weather"] != []


def test_pick_applicable_with_a_failed_judgement_fails_the_record(tmp_path, monkeypatch):
    monkeypatch.setenv("CAI_MIN_LABEL_MASS", "0.1")
    backend = Writes([PARA_A], judge_rule(mass=1e-20, applies=lambda title, q: 0.9))
    summary = run_generate(gen_config(tmp_path, one_prompt(tmp_path), pick="applicable"), backends=(backend, backend))
    [r] = iter_records(tmp_path / "run")
    assert r.status == "failed" and r.failure.kind == "principle-applies" and r.steps == []
    assert "label mass" in r.checks[0].why and summary["judge_health"]["failed"] > 0


def test_judge_settings_without_a_judge_are_refused():
    with pytest.raises(ValueError, match="keep_unverified: only read with verify"):
        GenerateConfig.model_validate(dict(constitution=HARMLESS, prompts="p", out="o", keep_unverified=True,
                                           policy={"backend": "transformers", "model": "m"}))
    with pytest.raises(ValueError, match="min_applies: only read with pick: applicable"):
        GenerateConfig.model_validate(dict(constitution=HARMLESS, prompts="p", out="o", min_applies=0.7,
                                           policy={"backend": "transformers", "model": "m"}))
    GenerateConfig.model_validate(dict(constitution=HARMLESS, prompts="p", out="o", pick="applicable",
                                       feedback={"backend": "transformers", "model": "j"},
                                       policy={"backend": "transformers", "model": "m"}))


# ---------------------------------------------------------------- how a run starts and stops

class InterruptAt(EchoCritic):
    """EchoCritic that raises KeyboardInterrupt (Ctrl-C) on its ``at``-th generate call."""

    def __init__(self, at: int | None):
        super().__init__()
        self.at = at

    def generate(self, conversations, sampling=None):
        if self.at is not None and len(self.calls) + 1 == self.at:
            raise KeyboardInterrupt
        return super().generate(conversations, sampling)


def eight_prompts(tmp_path) -> Path:
    src = tmp_path / "p.jsonl"
    src.write_text("".join(json.dumps({"id": f"q{i}", "prompt": f"Question {i} about my bike?"}) + "\n" for i in range(8)))
    return src


def test_ctrl_c_exits_130_with_how_to_resume_and_keeps_the_first_chunk(tmp_path, monkeypatch, capsys):
    """Issue 28 item 8: Ctrl-C said nothing on how to resume, and an interrupt inside the first chunk
    (8 prompts, minutes on the embedded model) kept nothing. The first chunk is one prompt now; the
    interrupt (in the second chunk's drafts) keeps it, says how to resume, and the rerun resumes."""
    import cai.sl.pipeline as pipeline
    from cai.cli.main import main

    src = eight_prompts(tmp_path)
    argv = ["generate", "--constitution", HARMLESS, "--prompts", str(src), "--out", str(tmp_path / "run"),
            "--model", "echo", "--backend", "transformers", "--rounds", "1"]
    monkeypatch.setattr(pipeline, "load_backend", lambda cfg: InterruptAt(4))  # call 4: chunk 2's drafts
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 130 and "Traceback" not in out + err
    [line] = [ln for ln in err.splitlines() if "interrupted" in ln]
    assert "1 finished records are kept" in line and "run the same command again: cai generate --constitution" in line
    assert [r.id for r in iter_records(tmp_path / "run")] == ["q0"]
    monkeypatch.setattr(pipeline, "load_backend", lambda cfg: InterruptAt(None))
    assert main(argv) == 0
    ids = [r.id for r in iter_records(tmp_path / "run")]
    assert sorted(ids) == [f"q{i}" for i in range(8)] and len(ids) == 8  # exactly once each
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["resumed_from"] == 1


def test_dry_run_plans_without_a_model(tmp_path, monkeypatch, capsys):
    import cai.sl.pipeline as pipeline
    from cai.cli.main import main

    def no_model(cfg):
        raise AssertionError("a dry run loaded a model")

    monkeypatch.setattr(pipeline, "load_backend", no_model)
    src = tmp_path / "unicode.jsonl"
    src.write_text(UNICODE_ROWS)
    out_dir = tmp_path / "run"
    code = main(["generate", "--constitution", HARMLESS, "--prompts", str(src), "--id-column", "id", "--out",
                 str(out_dir), "--model", "echo", "--backend", "transformers", "--rounds", "2", "--verify",
                 "--pick", "applicable", "--dry-run"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "prompts: 4 from" in out and f"1 rows left out; first: {src}:3: lone surrogate" in out
    assert f"out: {out_dir}: a new run" in out and "rounds: 2: a draft, then up to 2 critique/revision" in out
    assert "harmless@1.0.0" in out and "model: policy echo (transformers)" in out and "judge: echo" in out
    assert not out_dir.exists()  # nothing written
    # a folder holding part of a run: the plan says it resumes
    out_dir.mkdir()
    (out_dir / "records.jsonl").write_text(json.dumps({"id": "ok", "prompt": []}) + "\n")
    assert main(["generate", "--constitution", HARMLESS, "--prompts", str(src), "--id-column", "id", "--out",
                 str(out_dir), "--model", "echo", "--backend", "transformers", "--dry-run"]) == 0
    assert "resumes, 1 of 4 done, 3 to do" in capsys.readouterr().out


@pytest.mark.parametrize("text,critique,flagged", [
    ("The answer is no: returns need the receipt, so ask the staff.", None, False),
    ("Your answer is almost right; the chain needs oil too.", None, False),
    ("The brake response time is short and the reply from the staff is quick.", None, False),
    ("This response is helpful but it should mention the receipt.", None, True),
    ("The original answer was rude to the customer.", None, True),
    # seen from the embedded model, as a "revision" under --verify
    ("The chat was supposed to fix the bike. However, the conversation didn't specify a warranty.", None, True),
    # reworded critique: most of its word triples come from the critique, not from the draft
    ("Returns need a receipt and you should avoid promising refunds beyond the policy.",
     "The response should say returns need a receipt and you should avoid promising refunds beyond the policy.",
     True),
    ("Returns need a receipt; the staff will tell you what they can do.",
     "The response should say returns need a receipt.", False),
])
def test_critique_not_revision_rule(text, critique, flagged):
    from cai.sl.parsing import critique_not_revision

    assert (critique_not_revision(text, critique, "We refund anything, any time.") is not None) == flagged


@pytest.mark.parametrize("text,repeated", [
    (f"{PARA_A}\n\n{PARA_B}\n\n{PARA_A}", True),
    (f"{PARA_A}\n{PARA_B}\n{PARA_A.upper()}", True),  # single line breaks, case ignored
    (f"{PARA_A}\n\n{PARA_B}", False),
    ("- Check the chain.\n- Oil it.\n- Check the chain.", False),  # short list items may repeat
])
def test_repeated_paragraph_rule(text, repeated):
    from cai.sl.parsing import repeated_paragraph

    assert (repeated_paragraph(text) is not None) == repeated


def test_the_terminal_summary_shows_judge_health_and_failed_checks(tmp_path, monkeypatch, capsys):
    import cai.sl.pipeline as pipeline
    from cai.cli.main import main

    monkeypatch.setattr(pipeline, "load_backend", lambda cfg: Writes([f"{PARA_A}\n\n{PARA_B}"],
                                                                      judge_rule(better=0.2, follows=0.9)))
    code = main(["generate", "--constitution", HARMLESS, "--prompts", str(one_prompt(tmp_path)), "--out",
                 str(tmp_path / "run"), "--model", "echo", "--backend", "transformers", "--rounds", "1", "--verify"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "checks failed (records): not-better-than-draft=1" in out and "judge health: unknown (n 3 judgements)" in out
    assert "kept out of SFT and the preferences: their records failed" in out
    assert "exports: 0 SFT rows" in out


def test_a_judge_that_finds_every_principle_applies_everywhere_is_named(tmp_path):
    """The embedded model put P(Yes) 0.57-0.67 on every principle for every bike-shop prompt: all
    apply, so the pick is the uniform draw; the summary says so."""
    src = tmp_path / "p.jsonl"
    src.write_text("".join(json.dumps({"id": f"q{i}", "prompt": f"Question {i}?"}) + "\n" for i in range(5)))
    backend = Writes([f"{PARA_A}\n\n{PARA_B}"], judge_rule(applies=lambda title, q: 0.62))
    summary = run_generate(gen_config(tmp_path, src, pick="applicable"), backends=(backend, backend))
    assert "every principle applies to nearly every prompt (n 5)" in summary["applicable"]["warning"]


def test_judge_health_error_stops_after_the_chunk_keeping_its_records(tmp_path, monkeypatch):
    monkeypatch.setenv("CAI_MIN_LABEL_MASS", "0.1")
    from cai.core.errors import CaiError

    backend = Writes([f"{PARA_A}\n\n{PARA_B}"], judge_rule(mass=1e-20))
    cfg = gen_config(tmp_path, eight_prompts(tmp_path), verify=True, judge_health="error")
    with pytest.raises(CaiError, match=r"judge health: unhealthy .*on_unhealthy is 'error'"):
        run_generate(cfg, backends=(backend, backend))
    assert [r.id for r in iter_records(tmp_path / "run")] == ["q0"]  # the first chunk (one prompt) is kept


def test_a_judge_that_picks_by_position_does_not_pass_the_revision(tmp_path):
    """On the embedded model the judge's two orders disagreed on 3 of 3 revisions (P 0.48-0.53); a
    P of 0.5 from a judge that always answers (A) met min_p 0.5 and kept the record ok."""
    def always_a(conv, labels):
        q = next(m["content"] for m in reversed(conv) if m["role"] == "user")
        return {"A": 0.9, "B": 0.1} if FOLLOWS_Q in q else {"A": 0.8, "B": 0.2}

    backend = Writes([f"{PARA_A}\n\n{PARA_B}"], always_a)
    summary = run_generate(gen_config(tmp_path, one_prompt(tmp_path), verify=True), backends=(backend, backend))
    [r] = iter_records(tmp_path / "run")
    assert r.verification.p_chosen == pytest.approx(0.5) and r.verification.position_consistent is False
    assert r.status == "failed" and "two orders disagree" in r.checks[0].why and summary["exports"]["sft"] == 0
