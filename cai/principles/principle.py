"""Principles: one Markdown file each, YAML front matter plus named sections.

```
---
id: harm-privacy
version: 1.0.0
title: Privacy and personal data
tags: [harmless, privacy]
weight: 1.0            # optional
---
Optional prose describing the principle.

## Critique            # the critique request
## Revision            # the revision request
## Preference          # the comparison question for AI pairwise feedback
## Examples            # optional: one ```yaml block, a list of {prompt, response, violates, ...}
```
A principle needs Critique and Revision (used for SL-CAI), or Preference (RL-CAI), or all three.
"""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from cai.core.diagnostics import PATTERN_HINTS, Diagnostic, did_you_mean, unknown_key_diagnostics, validation_diagnostics
from cai.core.files import read_text_file
from cai.core.yamlutil import line_for, parse_yaml_diagnostics

ID_PATTERN = r"^[a-z][a-z0-9]*(?:-[a-z0-9]+)*$"
TAG_PATTERN = r"^[a-z0-9][a-z0-9-]*$"
VERSION_PATTERN = r"^\d+\.\d+\.\d+(?:[-+][0-9A-Za-z.-]+)?$"
PATTERN_HINTS.update({
    ID_PATTERN: "a valid id: lowercase letters, digits and single hyphens, starting with a letter",
    VERSION_PATTERN: "a semantic version such as 1.0.0",
})

FRONT_MATTER_KEYS = ("id", "version", "title", "tags", "weight")
SECTIONS = ("Critique", "Revision", "Preference", "Examples")
SECTION_FIELDS = {"Critique": "critique", "Revision": "revision", "Preference": "preference"}


class PrincipleExample(BaseModel):
    """A demonstration and test case: does this response violate the principle?"""

    model_config = ConfigDict(extra="forbid")

    prompt: str = Field(min_length=1, description="The user's message.")
    response: str = Field(min_length=1, description="An assistant response to judge.")
    violates: bool = Field(description="Whether the response violates the principle.")
    critique: str | None = Field(default=None, description="A model critique of the response.")
    revision: str | None = Field(default=None, description="A response that fixes the problems.")


class Principle(BaseModel):
    """One principle: the requests a model follows to critique, revise and compare responses."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=ID_PATTERN, description="Stable id; equals the file name stem.")
    version: str = Field(pattern=VERSION_PATTERN, description="Semantic version, e.g. 1.0.0.")
    title: str = Field(min_length=1, description="Short human-readable title.")
    tags: list[str] = Field(min_length=1, description="Tags constitutions select by.")
    weight: float = Field(default=1.0, gt=0, description="Relative sampling weight.")
    description: str = Field(default="", description="Prose before the first section.")
    critique: str | None = Field(default=None, description="The critique request (## Critique).")
    revision: str | None = Field(default=None, description="The revision request (## Revision).")
    preference: str | None = Field(
        default=None, description="The comparison question for AI feedback (## Preference)."
    )
    examples: list[PrincipleExample] = Field(default_factory=list, description="## Examples.")

    @model_validator(mode="after")
    def _check(self) -> "Principle":
        for tag in self.tags:
            if not re.match(TAG_PATTERN, tag):
                raise ValueError(f"tag '{tag}' must be lowercase letters, digits and hyphens")
        if (self.critique is None) != (self.revision is None):
            missing = "Revision" if self.revision is None else "Critique"
            raise ValueError(f"missing section '## {missing}' (Critique and Revision go together)")
        if self.critique is None and self.preference is None:
            raise ValueError("needs sections '## Critique' and '## Revision', or '## Preference'")
        return self

    @property
    def ref(self) -> str:
        """``id@version``: how provenance names this principle."""
        return f"{self.id}@{self.version}"

    def normalized(self) -> dict:
        """The content that defines this principle (what the constitution hash covers)."""
        return self.model_dump(mode="json")


# --------------------------------------------------------------------------- parsing


class ParsedFile:
    """A principle file split into front matter and sections, with line numbers."""

    def __init__(self) -> None:
        self.front: dict = {}
        self.front_lines: dict[tuple, int] = {}
        self.description = ""
        self.sections: dict[str, str] = {}
        self.section_lines: dict[str, int] = {}
        self.section_raw: dict[str, list[str]] = {}  # unstripped body lines, from heading + 1


# CommonMark fences: an opening fence is 3+ backticks or tildes indented at most 3 spaces; only a
# fence of the same character, at least as long, closes it. Text inside (e.g. an example response
# that itself holds ``` lines, which YAML indents by 4) is not a fence.
_FENCE_OPEN = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_FENCE_CLOSE = re.compile(r"^ {0,3}(`{3,}|~{3,})\s*$")


def _closes(line: str, fence: str) -> bool:
    m = _FENCE_CLOSE.match(line)
    return bool(m) and m.group(1)[0] == fence[0] and len(m.group(1)) >= len(fence)


def parse_principle_text(text: str, path: str) -> tuple[Principle | None, list[Diagnostic]]:
    """Parse and validate one principle file's text. Never raises on bad input."""
    diags: list[Diagnostic] = []
    lines = text.split("\n")
    if not lines or lines[0].strip() != "---":
        return None, [Diagnostic(path, 1, "missing YAML front matter: the file must start with '---'")]
    try:
        end = next(i for i in range(1, len(lines)) if lines[i].strip() == "---")
    except StopIteration:
        return None, [Diagnostic(path, 1, "front matter is not closed by a '---' line")]
    parsed = ParsedFile()
    data, parsed.front_lines, yaml_diags = parse_yaml_diagnostics(
        "\n".join(lines[1:end]), path, line_offset=1
    )
    diags += yaml_diags
    if data is None and not yaml_diags:
        diags.append(Diagnostic(path, 2, "front matter is empty"))
    elif data is not None and not isinstance(data, dict):
        diags.append(Diagnostic(path, 2, "front matter must be a YAML mapping of key: value"))
    elif isinstance(data, dict):
        parsed.front = data
        diags += unknown_key_diagnostics(data, FRONT_MATTER_KEYS, parsed.front_lines, path, "front matter")
    diags += _split_sections(lines, end + 1, parsed, path)
    if any(d.severity == "error" for d in diags):
        return None, diags

    fields = {k: v for k, v in parsed.front.items() if k in FRONT_MATTER_KEYS}
    fields["description"] = parsed.description
    for name, field in SECTION_FIELDS.items():
        if name in parsed.sections:
            fields[field] = parsed.sections[name]
    example_lines: dict[tuple, int] = {}
    if "Examples" in parsed.sections:
        examples, example_lines, ex_diags = _parse_examples(
            parsed.section_raw["Examples"], parsed.section_lines["Examples"], path
        )
        diags += ex_diags
        if ex_diags:
            return None, diags
        fields["examples"] = examples

    def line_of(loc: tuple) -> int | None:
        head = loc[0] if loc else None
        if head in FRONT_MATTER_KEYS:
            return line_for(parsed.front_lines, loc)
        if head == "examples":
            return line_for(example_lines, loc[1:]) or parsed.section_lines.get("Examples")
        for name, field in SECTION_FIELDS.items():
            if head == field:
                return parsed.section_lines.get(name)
        return None

    try:
        principle = Principle.model_validate(fields)
    except ValidationError as exc:
        return None, diags + validation_diagnostics(exc, path, line_of, default_line=1)
    stem = Path(path).stem
    if principle.id != stem:
        diags.append(
            Diagnostic(path, parsed.front_lines.get(("id",)), f"id '{principle.id}' must equal the file name stem '{stem}'")
        )
        return None, diags
    return principle, diags


def _split_sections(lines: list[str], start: int, parsed: ParsedFile, path: str) -> list[Diagnostic]:
    diags: list[Diagnostic] = []
    current: str | None = None
    buf: list[str] = []
    description: list[str] = []
    fence: str | None = None
    order: list[str] = []

    def flush():
        if current is not None:
            parsed.sections[current] = _clean(buf)
            parsed.section_raw[current] = list(buf)

    for i in range(start, len(lines)):
        line = lines[i]
        in_fence = fence is not None
        if fence is None and (m := _FENCE_OPEN.match(line)):
            fence = m.group(1)
        elif fence is not None and _closes(line, fence):
            fence = None
        heading = re.match(r"^##\s+(.*?)\s*#*\s*$", line) if not in_fence else None
        if heading and not line.startswith("###"):
            flush()
            name = heading.group(1).strip()
            lineno = i + 1
            if name not in SECTIONS:
                diags.append(
                    Diagnostic(path, lineno, f"unknown section '## {name}'{did_you_mean(name, SECTIONS)}; "
                               f"allowed: {', '.join(SECTIONS)}")
                )
                current, buf = None, []
                continue
            if name in parsed.sections or name == current:
                diags.append(Diagnostic(path, lineno, f"section '## {name}' appears twice"))
            order.append(name)
            current, buf = name, []
            parsed.section_lines[name] = lineno
            continue
        (buf if current is not None else description).append(line)
    flush()
    parsed.description = _clean(description)
    for name, body in parsed.sections.items():
        if not body:
            diags.append(Diagnostic(path, parsed.section_lines[name], f"section '## {name}' is empty"))
    expected = [s for s in SECTIONS if s in order]
    if order != expected and len(order) == len(set(order)):
        diags.append(
            Diagnostic(path, parsed.section_lines[order[0]], f"sections must appear in the order {', '.join(SECTIONS)}", "warning")
        )
    return diags


def _clean(lines: list[str]) -> str:
    return "\n".join(line.rstrip() for line in lines).strip()


def _parse_examples(raw: list[str], heading_line: int, path: str):
    """Parse the single fenced YAML block of '## Examples'; ``raw`` starts below the heading."""
    body = [i for i, ln in enumerate(raw) if ln.strip()]
    opening = body[0]
    fence = re.match(r"^ {0,3}(`{3,}|~{3,})\s*(ya?ml)?\s*$", raw[opening])
    closing = next((i for i in body[1:] if _closes(raw[i], fence.group(1))), None) if fence else None
    if not fence or closing is None or any(i > closing for i in body):
        return None, {}, [Diagnostic(path, heading_line, "'## Examples' must hold exactly one fenced ```yaml block")]
    # raw[0] is the line after the heading; YAML line 1 is the line after the opening fence
    offset = heading_line + opening + 1
    data, ex_lines, diags = parse_yaml_diagnostics("\n".join(raw[opening + 1 : closing]), path, line_offset=offset)
    if diags:
        return None, {}, diags
    if not isinstance(data, list) or not data:
        return None, {}, [Diagnostic(path, heading_line, "'## Examples' must be a non-empty YAML list")]
    return data, ex_lines, []


# --------------------------------------------------------------------------- loading and writing


def load_principle(path: str | Path) -> Principle:
    """Load one principle file; raise a one-line :class:`CaiError` on any problem."""
    path = str(path)
    text, diags = read_text_file(path)
    if text is None:
        raise diags[0].to_error()
    principle, diags = parse_principle_text(text, path)
    if principle is None:
        raise next(d for d in diags if d.severity == "error").to_error()
    return principle


def principle_to_markdown(p: Principle) -> str:
    """Render a principle as a principle file (the inverse of :func:`parse_principle_text`)."""
    import yaml

    front = {"id": p.id, "version": p.version, "title": p.title, "tags": list(p.tags)}
    if p.weight != 1.0:
        front["weight"] = p.weight
    out = ["---", yaml.safe_dump(front, sort_keys=False, allow_unicode=True, width=100).rstrip(), "---", ""]
    if p.description:
        out += [p.description, ""]
    for name, field in SECTION_FIELDS.items():
        value = getattr(p, field)
        if value:
            out += [f"## {name}", value, ""]
    if p.examples:
        dumped = yaml.safe_dump(
            [e.model_dump(exclude_none=True) for e in p.examples],
            sort_keys=False, allow_unicode=True, width=100,
        )
        out += ["## Examples", "```yaml", dumped.rstrip(), "```", ""]
    return "\n".join(out)
