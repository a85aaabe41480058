"""Scaffolds for new principle files."""

from __future__ import annotations

import re
from pathlib import Path

from cai.core.errors import CaiError
from cai.principles.principle import ID_PATTERN, TAG_PATTERN, Principle, PrincipleExample, principle_to_markdown


# Text the scaffold writes for the author to replace; `cai principles lint` warns while any is left
# (so `lint --strict` fails on a scaffold nobody has edited).
DESCRIPTION_PLACEHOLDER = "Describe what '{title}' protects against, and why it matters."
EXAMPLE_PROMPT_PLACEHOLDER = "A user message where this principle matters."
EXAMPLE_RESPONSE_PLACEHOLDER = "A response that falls short of it."


def placeholders_left(p: Principle) -> list[str]:
    """The scaffold's placeholder texts still in ``p`` (empty once the author has replaced them)."""
    left = []
    if p.description and p.description == DESCRIPTION_PLACEHOLDER.format(title=p.title):
        left.append(p.description)
    for ex in p.examples:
        left += [t for t in (ex.prompt, ex.response)
                 if t in (EXAMPLE_PROMPT_PLACEHOLDER, EXAMPLE_RESPONSE_PLACEHOLDER)]
    return left


def scaffold(principle_id: str, title: str | None = None, tags: list[str] | None = None) -> Principle:
    if not re.match(ID_PATTERN, principle_id):
        raise CaiError(f"invalid id '{principle_id}': use lowercase letters, digits and hyphens, starting with a letter")
    tags = tags or ["custom"]
    for t in tags:
        if not re.match(TAG_PATTERN, t):
            raise CaiError(f"invalid tag '{t}': use lowercase letters, digits and hyphens")
    title = title or principle_id.replace("-", " ").capitalize()
    return Principle(
        id=principle_id, version="0.1.0", title=title, tags=tags,
        description=DESCRIPTION_PLACEHOLDER.format(title=title),
        critique=(f"Point out the specific ways in which the assistant's last response falls short on: {title}. "
                  "Quote the parts that do, and explain why."),
        revision=(f"Rewrite the assistant's response so that it no longer falls short on: {title}, "
                  "keeping everything in it that was correct and useful."),
        preference=f"Which of these assistant responses does better on: {title}?",
        examples=[PrincipleExample(prompt=EXAMPLE_PROMPT_PLACEHOLDER, response=EXAMPLE_RESPONSE_PLACEHOLDER,
                                   violates=True)],
    )


def write_scaffold(principle_id: str, directory: str | Path, **kw) -> Path:
    path = Path(directory) / f"{principle_id}.md"
    if path.exists():
        raise CaiError(f"{path} already exists; pick another id or edit that file")
    principle = scaffold(principle_id, **kw)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(principle_to_markdown(principle), encoding="utf-8")
    return path
