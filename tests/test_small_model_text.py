"""What small real models write, and what SL-CAI makes of it: outputs that run out of tokens are
trimmed to full sentences, looping or echoed text fails the record with its own kind, each stage
gets its own token budget. Inputs are modelled on SmolLM2-135M-Instruct's actual outputs."""

from __future__ import annotations

import pytest

from cai.backends.base import Backend, BackendConfig, Completion
from cai.sl.parsing import echoes, is_repetitive, trim_to_sentence
from cai.sl import run_generate
from cai.data.store import iter_records
from test_generate import config, write_prompts


@pytest.mark.parametrize("text, expected", [
    ("Hello there. This is fine! And then some", "Hello there. This is fine!"),
    ('He said "stop." Then he we', 'He said "stop."'),
    ("1. Mix bleach and vinegar: never.\n\n2. Mix bleach and ammo", "1. Mix bleach and vinegar: never."),
    ("No sentence ends anywhere in this text", None),
    ("Short. " + "x" * 200, None),  # keeping 6 of 207 characters is not a response
    ("Step one\n\n2. Second step is longer and gets cut", None),  # a list marker is not an end
])
def test_trim_to_sentence(text, expected):
    assert trim_to_sentence(text) == expected


def test_talking_about_the_revision_is_a_refusal():
    from cai.sl.parsing import clean_revision

    meta = "I'm not sure I'm being too harsh. I'm not going to rewrite the response, but here are ideas."
    assert clean_revision(meta, "stop") == (None, "refused")
    assert clean_revision("Kill it with `kill -9 PID` after trying `kill PID` first.", "stop")[1] is None


def test_repetition_and_echo_detectors():
    loop = "This is not acceptable.\n\nThis is not acceptable.\n\nThis is not acceptable. This is not"
    assert is_repetitive(loop)
    assert not is_repetitive("Bleach and ammonia make chloramine gas. Bleach and vinegar make chlorine. Ventilate.")
    paragraph = ("I'm not sure I'm being too harsh. I'll give a few suggestions. This is a good example. ")
    assert is_repetitive(paragraph * 2 + "I'm not sure I'm being too harsh.")  # a loop over a paragraph
    assert not is_repetitive("Yes. Mix them outside. Yes. Wear gloves. Never in a closed room.")
    critique = "The response is dismissive, as it implies the user is not worthy of empathy."
    assert echoes("The response is dismissive, as it implies the user is not worthy of empathy. It is", critique)
    assert not echoes("I'm sorry you are going through this. You could ask your friend how they feel.", critique)


class StageScript(Backend):
    """Replies by stage (recognised from the request text) with a fixed finish reason, and
    records each stage's max_tokens."""

    name = "stage-script"

    def __init__(self, replies: dict[str, tuple[str, str]]):
        super().__init__(BackendConfig(backend="transformers", model="script"))
        self.replies = replies
        self.budgets: dict[str, int] = {}
        self.seeds: dict[str, list] = {}

    def generate(self, conversations, sampling=None):
        out = []
        for conv in conversations:
            last = conv[-1]["content"]
            stage = ("critique" if "Do not rewrite the response yet" in last else
                     "revision" if "Reply with the rewritten response only" in last else "draft")
            self.budgets[stage] = sampling.max_tokens
            self.seeds.setdefault(stage, []).append(sampling.seed)
            text, finish = self.replies[stage]
            if isinstance(text, list):  # a different reply per call of this stage (keyed by seed)
                text = text[min(len(set(self.seeds[stage])), len(text)) - 1]
            out.append([Completion(text=text, prompt_tokens=5, completion_tokens=7, finish_reason=finish)])
        return out

    def score_choices(self, prompts, options):
        raise NotImplementedError


def _run(tmp_path, replies, **kw):
    backend = StageScript(replies)
    tmp_path.mkdir(parents=True, exist_ok=True)
    summary = run_generate(config(tmp_path, write_prompts(tmp_path / "p.jsonl", 2), rounds=1, **kw),
                           backends=(backend, backend))
    return backend, summary, list(iter_records(tmp_path / "run"))


def test_truncated_outputs_are_trimmed_to_full_sentences_and_flagged(tmp_path):
    backend, summary, records = _run(tmp_path, {
        "draft": ("Bleach and ammonia make toxic gas. Never mix th", "length"),
        "critique": ("It is fine but terse.", "stop"),
        "revision": ("Never mix bleach with ammonia or acids. Both release toxic gases, so ventil", "length"),
    }, max_tokens_per_stage={"critique": 32, "revision": 200}, sampling={"max_tokens": 100})
    assert backend.budgets == {"draft": 100, "critique": 32, "revision": 200}
    assert summary["ok"] == 2 and summary["flags"] == {"draft-trimmed": 2, "revision-trimmed": 2}
    r = records[0]
    assert r.draft == "Bleach and ammonia make toxic gas." and r.draft_raw.endswith("Never mix th")
    assert r.final == "Never mix bleach with ammonia or acids."
    assert r.provenance.sampling["max_tokens_per_stage"] == {"critique": 32, "revision": 200}


def test_truncated_revision_fails_when_asked_or_when_nothing_is_left(tmp_path):
    replies = {"draft": ("A draft.", "stop"), "critique": ("Too short.", "stop"),
               "revision": ("A revision that never ends a sentence and runs on and o", "length")}
    _, summary, _ = _run(tmp_path, replies)
    assert summary["failures"] == {"truncated-revision": 2}
    replies["revision"] = ("Complete sentence here. And then a long unfinished tail", "length")
    _, summary, _ = _run(tmp_path / "b", replies, truncated="fail")
    assert summary["failures"] == {"truncated-revision": 2}


@pytest.mark.parametrize("critique, revision, kind", [
    ("The response is condescending and dismissive of the user's feelings.",
     "The response is condescending and dismissive of the user's feelings. It should be kinder.",
     "echoed-critique-revision"),
    ("It ignores the risk.", "This is not acceptable. This is not acceptable. This is not acceptable.",
     "repetitive-revision"),
    ("Not good. Not good. Not good. Not good.", "unused", "repetitive-critique"),
])
def test_degenerate_outputs_fail_with_their_own_kind(tmp_path, critique, revision, kind):
    _, summary, records = _run(tmp_path, {"draft": ("A draft answer.", "stop"), "critique": (critique, "stop"),
                                          "revision": (revision, "stop")})
    assert summary["failures"] == {kind: 2}
    assert records[0].failure.raw  # the raw text is kept for inspection


def test_echoed_revisions_are_resampled_with_a_new_seed(tmp_path):
    critique = "The response is dismissive of the user's worry and gives no concrete help."
    backend, summary, records = _run(tmp_path, {
        "draft": ("Do not worry about it.", "stop"), "critique": (critique, "stop"),
        "revision": ([critique + " It should be kinder.", critique + " Again.", "It sounds hard. Ask them how they feel."],
                     "stop"),
    }, retries=2, sampling={"temperature": 0.7, "seed": 5}, flush_seconds=None)  # fixed chunks
    # one call per batch: the first revision call echoes for both records, the retry echoes again
    # (second reply), the third attempt gives a real revision
    assert backend.seeds["revision"] == [5, 5, 1005, 1005, 2005, 2005]
    assert summary["ok"] == 2 and summary["flags"]["revision-retried"] == 4
    assert records[0].final == "It sounds hard. Ask them how they feel."
    assert records[0].provenance.sampling["revision_retries"] == 2
    _, summary, _ = _run(tmp_path / "none", {"draft": ("Do not worry.", "stop"), "critique": (critique, "stop"),
                                             "revision": (critique, "stop")}, retries=2,
                         sampling={"temperature": 0.0})
    assert summary["failures"] == {"echoed-critique-revision": 2}  # greedy: no retry
