"""Rendering the comparison prompts the feedback model scores. Pure functions, no model.

A comparison shows the conversation, a principle's preference question and the two responses as
options (A)/(B), rendered with the constitution's ``preference`` template. The default template
ends with the line ``The answer is: (``: that last line becomes the start of the assistant's turn
(a prefilled answer), so the option label is the model's very next token. A template whose last
line does not end in ``(`` is sent whole as the user's message.

Few-shot demonstrations come first, as earlier turns (so every pair judged under one principle
shares that prefix, which vLLM's prefix cache computes once). With chain-of-thought, the
assistant's turn starts with the CoT prompt; once the reasoning is generated, it is followed by
the answer line and scored.
"""

from __future__ import annotations

from dataclasses import dataclass

from cai.principles.constitution import Constitution
from cai.principles.principle import Principle
from cai.principles.templates import format_conversation, render

OPTIONS = ("A", "B")
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


def principle_vars(p: Principle) -> dict:
    return {"id": p.id, "version": p.version, "title": p.title, "tags": list(p.tags)}


def transcript(prompt: list[dict]) -> str:
    """The conversation as the feedback model reads it (system messages are the policy's
    instructions, not part of what is judged)."""
    return format_conversation([m for m in prompt if m["role"] != "system"])


def render_question(constitution: Constitution, principle: Principle, prompt: list[dict],
                    response_a: str, response_b: str) -> tuple[str, str | None]:
    text = render(
        "preference", constitution.template("preference"), question=principle.preference,
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


def demo_messages(constitution: Constitution, principle: Principle, k: int) -> list[dict]:
    """The demonstrations as chat turns. The better response alternates between (B) and (A), so
    the examples teach no position preference."""
    messages: list[dict] = []
    for i, demo in enumerate(demos(constitution, principle, k)):
        better_first = i % 2 == 1
        a, b = (demo.better, demo.worse) if better_first else (demo.worse, demo.better)
        question, prefix = render_question(constitution, principle, demo.prompt, a, b)
        letter = "A" if better_first else "B"
        messages += [{"role": "user", "content": question},
                     {"role": "assistant", "content": f"{prefix or DEFAULT_ANSWER_PREFIX}{letter})"}]
    return messages


def comparison(constitution: Constitution, principle: Principle, prompt: list[dict], response_a: str,
               response_b: str, few_shot: list[dict], cot_prompt: str | None = None) -> tuple[list[dict], str]:
    """``(conversation, answer prefix)``: the conversation to score (or, with ``cot_prompt``, to
    generate the reasoning from), and the line that introduces the option label."""
    question, prefix = render_question(constitution, principle, prompt, response_a, response_b)
    messages = list(few_shot) + [{"role": "user", "content": question}]
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

