"""Rendering what the judge is asked: one set of templates for every shape. Pure functions, no model.

A *comparison* (pairwise) shows the conversation, a question (a principle's ``## Preference``, or a
plain question such as an evaluation's) and the two responses as options (A)/(B), rendered with
the constitution's ``preference`` template (or the default one). The default template ends with
the line ``The answer is: (``: that last line becomes the start of the assistant's turn (a
prefilled answer), so the option label is the model's very next token. A template whose last line
does not end in ``(`` is sent whole as the user's message. With an abstain option, a third line
``(C) ...`` follows the two responses. A server that cannot continue an assistant message (an
OpenAI-compatible server other than vLLM) gets the same question with the answer line replaced by
an instruction to reply with the label alone (the answer-first variant, applied by the ``openai``
backend: :func:`cai.backends.openai_choices.answer_first`), and the label's probability is read
from the first reply token's ``top_logprobs``.

A *rating* (pointwise) shows the conversation, a question about its last assistant turn, and the
scale's options ((A) Yes / (B) No, or (1) ... (5)), with the same prefilled answer line.

Few-shot demonstrations come first, as earlier turns (so every pair judged under one principle
shares that prefix, which a prefix-caching backend computes once). With chain-of-thought, the
assistant's turn starts with the CoT prompt; once the reasoning is generated, it is followed by
the answer line and scored.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from cai.principles.constitution import Constitution
from cai.principles.principle import Principle
from cai.principles.templates import DEFAULT_TEMPLATES, format_conversation, render

OPTIONS = ("A", "B")
ABSTAIN = "C"
DEFAULT_ANSWER_PREFIX = "The answer is: ("


@dataclass(frozen=True)
class Demo:
    """A worked comparison: a prompt, a better and a worse response."""

    prompt: list[dict]
    better: str
    worse: str


def split_answer_prefix(text: str) -> tuple[str, str | None]:
    """``(question, answer prefix)``: the last line is a prefix when it ends with ``(``."""
    head, sep, last = text.rpartition("\n")
    if sep and head.strip() and last.rstrip().endswith("("):
        return head.rstrip(), last.strip()
    return text, None


def principle_vars(p: Principle | None) -> dict:
    if p is None:
        return {"id": "", "version": "", "title": "", "tags": []}
    return {"id": p.id, "version": p.version, "title": p.title, "tags": list(p.tags)}


def transcript(prompt: list[dict]) -> str:
    """The conversation as the judge reads it (system messages are the policy's instructions, not
    part of what is judged)."""
    return format_conversation([m for m in prompt if m["role"] != "system"])


def preference_template(constitution: Constitution | None, principle: Principle | None) -> str:
    """The constitution's template for a principle's question; the default for a plain question."""
    if constitution is None or principle is None:
        return DEFAULT_TEMPLATES["preference"]
    return constitution.template("preference")


def render_question(constitution: Constitution | None, principle: Principle | None, prompt: list[dict],
                    response_a: str, response_b: str, question: str | None = None) -> tuple[str, str | None]:
    """``(question text, answer prefix)`` of one comparison; ``question`` overrides the principle's."""
    text = render(
        "preference", preference_template(constitution, principle),
        question=question if question is not None else principle.preference,
        conversation=transcript(prompt), response_a=response_a, response_b=response_b,
        principle=principle_vars(principle),
    )
    return split_answer_prefix(text)


def demos(constitution: Constitution, principle: Principle, k: int) -> list[Demo]:
    """Up to ``k`` worked comparisons: the principle's examples that violate it and come with a
    revision first (they match its question), then the constitution's exemplars."""
    out: list[Demo] = []
    for ex in principle.examples:
        if ex.violates and ex.revision and ex.revision.strip() != ex.response.strip():
            out.append(Demo([{"role": "user", "content": ex.prompt}], ex.revision.strip(), ex.response.strip()))
    for ex in constitution.spec.exemplars:
        demo = exemplar_demo([{"role": m.role, "content": m.content} for m in ex.messages])
        if demo is not None:
            out.append(demo)
    return out[:k]


def exemplar_demo(messages: list[dict]) -> Demo | None:
    """The comparison a critique/revision transcript teaches, or None for any other shape.

    The shape is a conversation (user first, turns alternating) whose last four turns are a
    critique request, the critique, a revision request and the revision:
    ``[user, assistant]* user, ANSWER, critique request, critique, revision request, REVISION``.
    The demo compares ANSWER (worse) with REVISION (better) after the conversation ANSWER replied
    to, so a multi-turn exemplar (question, answer, follow-up, answer, ...) keeps its follow-up
    question instead of pairing the first question with the revision of the second answer.
    System messages are the policy's instructions and are left out.
    """
    turns = [m for m in messages if m["role"] != "system"]
    if len(turns) < 6 or len(turns) % 2:
        return None
    if any(m["role"] != ("user" if i % 2 == 0 else "assistant") for i, m in enumerate(turns)):
        return None
    answer, revision = turns[-5]["content"].strip(), turns[-1]["content"].strip()
    if not answer or not revision or answer == revision:
        return None
    return Demo([dict(m) for m in turns[:-5]], revision, answer)


def demo_messages(constitution: Constitution | None, principle: Principle | None, k: int) -> list[dict]:
    """The demonstrations as chat turns. The better response alternates between (B) and (A), so
    the examples teach no position preference."""
    if constitution is None or principle is None or k == 0:
        return []
    messages: list[dict] = []
    for i, demo in enumerate(demos(constitution, principle, k)):
        better_first = i % 2 == 1
        a, b = (demo.better, demo.worse) if better_first else (demo.worse, demo.better)
        question, prefix = render_question(constitution, principle, demo.prompt, a, b)
        letter = "A" if better_first else "B"
        messages += [{"role": "user", "content": question},
                     {"role": "assistant", "content": f"{prefix or DEFAULT_ANSWER_PREFIX}{letter})"}]
    return messages


def comparison(constitution: Constitution | None, principle: Principle | None, prompt: list[dict],
               response_a: str, response_b: str, few_shot: list[dict], cot_prompt: str | None = None, *,
               question: str | None = None, abstain: str | None = None) -> tuple[list[dict], str]:
    """``(conversation, answer prefix)``: the conversation to score (or, with ``cot_prompt``, to
    generate the reasoning from), and the line that introduces the option label. ``abstain``
    adds the option ``(C) <abstain>`` after the two responses."""
    text, prefix = render_question(constitution, principle, prompt, response_a, response_b, question)
    if abstain is not None:
        text = f"{text}\n({ABSTAIN}) {abstain}"
    messages = list(few_shot) + [{"role": "user", "content": text}]
    if cot_prompt is not None:
        return messages + [{"role": "assistant", "content": cot_prompt}], prefix or DEFAULT_ANSWER_PREFIX
    if prefix is not None:
        messages.append({"role": "assistant", "content": prefix})
    return messages, prefix or ""


def after_reasoning(conversation: list[dict], reasoning: str, answer_prefix: str) -> list[dict]:
    """The CoT conversation with its reasoning written out, ending in the answer prefix."""
    *head, turn = conversation
    text = f"{turn['content']} {reasoning.strip()}\n{answer_prefix}"
    return head + [{"role": "assistant", "content": text}]


# --------------------------------------------------------------------------- pointwise

RATING = (
    "Consider the following conversation between a human and an assistant:\n\n"
    "{conversation}\n\n"
    "{question}\n"
    "Options:\n"
    "{options}"
)
"""The pointwise question: the conversation (ending in the response judged), the question, and
the scale's options, one ``(label) meaning`` line each. The answer line is prefilled."""


def with_note(question: str, note: str | None) -> str:
    """The question with facts the judge should know (a probe's ``judge_note``)."""
    return f"{question}\nFacts for the judge: {note}" if note else question


def rating_prompt(conversation: list[dict], question: str, options: list[tuple[str, str]],
                  template: str = RATING) -> list[dict]:
    """The chat to score for a question about the conversation's last assistant turn."""
    lines = "\n".join(f"({label}) {meaning}" for label, meaning in options)
    text = template.format(conversation=transcript(conversation), question=question, options=lines)
    return [{"role": "user", "content": text}, {"role": "assistant", "content": DEFAULT_ANSWER_PREFIX}]


def principle_rating_question(p: Principle, ask: str) -> str:
    """A principle as a question about one response: its title, description and critique request
    (or its preference question when it has no critique), then ``ask``."""
    parts = [f"Principle: {p.title}."]
    if p.description:
        parts.append(p.description.strip())
    if p.critique:
        parts.append(f"What to check: {p.critique.strip()}")
    elif p.preference:
        parts.append(f"The principle asks: {p.preference.strip()}")
    parts.append(ask)
    return "\n".join(parts)


def template_hash(*sources: str) -> str:
    """sha256 (first 16 hex digits) of the template sources a judgement was rendered with."""
    h = hashlib.sha256()
    for s in sources:
        h.update(s.encode())
        h.update(b"\0")
    return h.hexdigest()[:16]
