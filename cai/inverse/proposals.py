"""Asking a model which principles would explain a choice, and reading its answer. Pure functions.

The first step of inverse CAI (Findeis et al. 2024): for each pair, show the conversation, both
responses and which one people preferred, and ask for up to ``k`` short principles of the form
"Select the response that ...". Which response is shown first is a seeded coin per pair, so the
proposer learns nothing from position. Rendering and parsing are separate from generation; only
the backend touches a model.

:func:`parse_proposals` reads any line that holds "Select the response that ..." (numbered,
bulleted, quoted or in bold), keeps its words from "Select" on, tidies spacing and the full stop,
and drops lines too short or too long to be a principle and repeats. An answer with no such line
is *unparseable* and is counted by the stage.
"""

from __future__ import annotations

import random
import re

from cai.data.pairs import PreferencePair
from cai.judge.templates import transcript

LEAD = "Select the response that"
MIN_WORDS, MAX_WORDS = 2, 40  # words after the lead-in
PROPOSE = (
    "Consider the following conversation between a human and an assistant:\n\n"
    "{conversation}\n\n"
    "Two possible next responses of the assistant:\n"
    "(A) {response_a}\n"
    "(B) {response_b}\n\n"
    "A person preferred response ({preferred}).\n"
    "Write up to {k} short principles that would explain this choice, one per line, each starting "
    "with \"Select the response that\". Say what sets the preferred response apart, in general words "
    "that would fit other conversations too."
)
PREFILL = f"1. {LEAD}"
"""The start of the proposer's answer (a prefilled assistant turn that the model continues)."""
_LINE = re.compile(r"select\s+the\s+response\s+that\s+(.+)", re.IGNORECASE)


def preferred_first(pair: PreferencePair, seed: int) -> bool:
    """Whether the preferred response is shown as (A): a seeded coin per pair."""
    return random.Random(f"{seed}:propose:{pair.id}").random() < 0.5


def render_proposal(pair: PreferencePair, k: int, seed: int = 0) -> list[dict]:
    """The conversation that asks for up to ``k`` principles explaining ``pair``'s choice. The
    assistant's turn is prefilled with :data:`PREFILL`, so even a small model starts its answer
    in the form asked for; the answer parsed is ``PREFILL + completion``."""
    first = preferred_first(pair, seed)
    a, b = (pair.chosen_text, pair.rejected_text) if first else (pair.rejected_text, pair.chosen_text)
    text = PROPOSE.format(conversation=transcript([m.model_dump() for m in pair.prompt]), response_a=a,
                          response_b=b, preferred="A" if first else "B", k=k)
    return [{"role": "user", "content": text}, {"role": "assistant", "content": PREFILL}]


def normalize(body: str) -> str | None:
    """A principle from the words after the lead-in, or None when it cannot be one."""
    body = re.sub(r"[*_`\"]+", "", body)
    body = re.sub(r"\s+", " ", body).strip().rstrip(".;:,!").strip()
    words = body.split()
    if not MIN_WORDS <= len(words) <= MAX_WORDS:
        return None
    return f"{LEAD} {body}."


def parse_proposals(text: str, k: int) -> list[str]:
    """Up to ``k`` distinct principles from a proposer's answer, in the order written."""
    out: list[str] = []
    seen: set[str] = set()
    for line in text.splitlines():
        m = _LINE.search(line)
        if not m:
            continue
        principle = normalize(m.group(1))
        if principle is None or principle.lower() in seen:
            continue
        seen.add(principle.lower())
        out.append(principle)
        if len(out) == k:
            break
    return out
