"""The judge model: yes/no principle questions and comparisons answered through ``score_choices``.

A question is rendered like the feedback stage's comparisons: the conversation, the question, the
options (A)/(B), and an assistant turn prefilled with ``The answer is: (`` so the option letter is
the very next token. The judge's answer is a probability read in one forward pass, never parsed
text. Comparisons are asked with the responses in both positions and averaged, which cancels the
judge's position bias (Zheng et al., 2023, "Judging LLM-as-a-judge").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from cai.backends import Backend
from cai.core.errors import CaiError
from cai.feedback.prompting import DEFAULT_ANSWER_PREFIX, transcript

OPTIONS = ["A", "B"]
YES_NO = (
    "Consider the following conversation between a human and an assistant:\n\n"
    "{conversation}\n\n"
    "{question}\n"
    "Options:\n"
    "(A) Yes\n"
    "(B) No"
)
COMPARE = (
    "Consider the following conversation between a human and an assistant:\n\n"
    "{conversation}\n\n"
    "{question}\n"
    "Options:\n"
    "(A) {response_a}\n"
    "(B) {response_b}"
)


def with_note(question: str, note: str | None) -> str:
    """The question with facts the judge should know (a probe's ``judge_note``)."""
    return f"{question}\nFacts for the judge: {note}" if note else question


def yes_no_prompt(conversation: list[dict], question: str) -> list[dict]:
    """The chat to score for a yes/no question about the conversation's last assistant turn."""
    text = YES_NO.format(conversation=transcript(conversation), question=question)
    return [{"role": "user", "content": text}, {"role": "assistant", "content": DEFAULT_ANSWER_PREFIX}]


def compare_prompt(context: list[dict], question: str, response_a: str, response_b: str) -> list[dict]:
    """The chat to score for "which response ...?" (A) or (B), after the conversation ``context``."""
    text = COMPARE.format(conversation=transcript(context), question=question, response_a=response_a,
                          response_b=response_b)
    return [{"role": "user", "content": text}, {"role": "assistant", "content": DEFAULT_ANSWER_PREFIX}]


@dataclass(frozen=True)
class Comparison:
    """Is ``x`` the better answer to ``question`` than ``y``, after ``context``?"""

    context: list[dict]
    question: str
    x: str
    y: str


def _scores(backend: Backend, prompts: list[list[dict]]) -> list[dict[str, float]]:
    if not prompts:
        return []
    probs = backend.score_choices(prompts, OPTIONS)
    if len(probs) != len(prompts):
        raise CaiError(f"judge returned {len(probs)} scores for {len(prompts)} questions")
    return probs


def ask_yes_no(backend: Backend, items: Sequence[tuple[list[dict], str]]) -> list[float]:
    """P(yes) for each ``(conversation, question)``, all in one ``score_choices`` call."""
    probs = _scores(backend, [yes_no_prompt(conv, q) for conv, q in items])
    return [round(p["A"], 6) for p in probs]


def ask_compare(backend: Backend, items: Sequence[Comparison]) -> list[dict]:
    """For each comparison ``{"p_x", "p_x_first", "p_x_second"}``: P(x is better) averaged over
    x shown as (A) and x shown as (B), both orders scored in one ``score_choices`` call. Identical
    responses get 0.5 without asking."""
    prompts, where = [], []
    for i, c in enumerate(items):
        if c.x.strip() == c.y.strip():
            continue
        prompts += [compare_prompt(c.context, c.question, c.x, c.y), compare_prompt(c.context, c.question, c.y, c.x)]
        where.append(i)
    probs = _scores(backend, prompts)
    out = [{"p_x": 0.5, "p_x_first": 0.5, "p_x_second": 0.5} for _ in items]
    for k, i in enumerate(where):
        first, second = probs[2 * k]["A"], probs[2 * k + 1]["B"]
        out[i] = {"p_x": round((first + second) / 2, 6), "p_x_first": round(first, 6), "p_x_second": round(second, 6)}
    return out
