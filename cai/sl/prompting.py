"""Rendering the conversations each SL-CAI stage sends to a model. Pure functions of the record."""

from __future__ import annotations

from cai.principles.constitution import Constitution
from cai.principles.principle import Principle
from cai.data.records import Record
from cai.principles.templates import format_conversation, render

# Appended to the critique request when the run may skip revisions the critique finds unneeded.
VERDICT_INSTRUCTION = (
    "End your critique with one line: 'Verdict: revise' if the response should change, "
    "or 'Verdict: ok' if it needs no change."
)


def _principle_vars(p: Principle) -> dict:
    return {"id": p.id, "version": p.version, "title": p.title, "tags": list(p.tags)}


def exemplar_messages(constitution: Constitution) -> list[dict]:
    """Few-shot critique/revision transcripts, as prior turns of the conversation."""
    out: list[dict] = []
    for ex in constitution.spec.exemplars:
        out += [{"role": m.role, "content": m.content} for m in ex.messages if m.role != "system"]
    return out


def draft_conversation(record: Record) -> list[dict]:
    return [m.model_dump() for m in record.prompt]


def _with_exemplars(prompt: list[dict], exemplars: list[dict]) -> list[dict]:
    """Put few-shot turns after any system message and before the user's prompt."""
    head = [m for m in prompt[:1] if m["role"] == "system"]
    return head + exemplars + prompt[len(head):]


def critique_request(constitution: Constitution, principle: Principle, record: Record, response: str,
                     ask_verdict: bool) -> str:
    text = render(
        "critique", constitution.template("critique"), request=principle.critique,
        principle=_principle_vars(principle), response=response,
        conversation=format_conversation([m.model_dump() for m in record.prompt]),
    )
    return f"{text}\n\n{VERDICT_INSTRUCTION}" if ask_verdict else text


def revision_request(constitution: Constitution, principle: Principle, record: Record, response: str,
                     critique: str) -> str:
    return render(
        "revision", constitution.template("revision"), request=principle.revision, critique=critique,
        principle=_principle_vars(principle), response=response,
        conversation=format_conversation([m.model_dump() for m in record.prompt]),
    )


def critique_conversation(record: Record, exemplars: list[dict], response: str, request: str) -> list[dict]:
    prompt = _with_exemplars(draft_conversation(record), exemplars)
    return prompt + [{"role": "assistant", "content": response}, {"role": "user", "content": request}]


def revision_conversation(critique_conv: list[dict], critique: str, request: str) -> list[dict]:
    return critique_conv + [{"role": "assistant", "content": critique}, {"role": "user", "content": request}]
