"""Principle files: parsing, validation and the Markdown round trip."""

from __future__ import annotations

from pathlib import Path

import pytest

from cai.core.errors import CaiError
from cai.principles.principle import (
    Principle,
    PrincipleExample,
    load_principle,
    parse_principle_text,
    principle_to_markdown,
)

REPO = Path(__file__).resolve().parents[1]
SHIPPED = sorted((REPO / "principles").glob("*.md"))

SAMPLE = """\
---
id: kind-words
version: 2.1.0
title: Kind words
tags: [manners, helpful]
weight: 3
---
Responses should be kind.

It matters because people read them.

## Critique
Point out where the response is unkind.

## Revision
Rewrite the response kindly.

## Preference
Which response is kinder?

## Examples
```yaml
- prompt: "Is my poem good?"
  response: "No. It is bad."
  violates: true
  critique: Blunt and unkind.
  revision: "It has a strong image in line two; the rhythm could be smoother."
- prompt: Thanks!
  response: You're welcome.
  violates: false
```
"""


def test_parse_sample_fields():
    p, diags = parse_principle_text(SAMPLE, "kind-words.md")
    assert diags == []
    assert p.id == "kind-words" and p.version == "2.1.0" and p.title == "Kind words"
    assert p.tags == ["manners", "helpful"] and p.weight == 3.0
    assert p.description == "Responses should be kind.\n\nIt matters because people read them."
    assert p.critique == "Point out where the response is unkind."
    assert p.revision == "Rewrite the response kindly."
    assert p.preference == "Which response is kinder?"
    assert p.ref == "kind-words@2.1.0"
    assert [e.violates for e in p.examples] == [True, False]
    assert p.examples[0].critique == "Blunt and unkind." and p.examples[1].revision is None


def test_preference_only_principle_is_valid_but_critique_alone_is_not():
    pref_only = SAMPLE.split("## Critique")[0] + "## Preference\nWhich is kinder?\n"
    p, diags = parse_principle_text(pref_only, "kind-words.md")
    assert p is not None and p.critique is None and p.revision is None and not diags
    crit_only = SAMPLE.split("## Revision")[0]
    p, diags = parse_principle_text(crit_only, "kind-words.md")
    assert p is None
    assert diags[0].line == 1 and "missing section '## Revision'" in diags[0].message


def test_heading_inside_fenced_block_is_not_a_section():
    text = SAMPLE.replace(
        "It matters because people read them.",
        "For example:\n\n```markdown\n## Critque\n## Critique\n```\n\n~~~~\n## Revision\n```\n~~~~",
    )
    p, diags = parse_principle_text(text, "kind-words.md")
    assert diags == [], diags
    assert "## Critque" in p.description and "## Revision" in p.description
    assert p.critique == "Point out where the response is unkind."


def test_third_level_headings_stay_in_the_section():
    text = SAMPLE.replace("Point out where the response is unkind.", "Look at:\n### Tone\nand\n### Words")
    p, _ = parse_principle_text(text, "kind-words.md")
    assert p.critique == "Look at:\n### Tone\nand\n### Words"


def test_sections_out_of_order_is_a_warning_only():
    text = SAMPLE.replace("## Preference\nWhich response is kinder?\n\n", "")
    text = text.replace("## Critique", "## Preference\nWhich response is kinder?\n\n## Critique")
    p, diags = parse_principle_text(text, "kind-words.md")
    assert p is not None and p.preference == "Which response is kinder?"
    assert [d.severity for d in diags] == ["warning"] and "order" in diags[0].message


def test_crlf_and_bom_are_accepted(tmp_path):
    path = tmp_path / "kind-words.md"
    path.write_bytes(b"\xef\xbb\xbf" + SAMPLE.replace("\n", "\r\n").encode())
    assert load_principle(path) == parse_principle_text(SAMPLE, str(path))[0]


@pytest.mark.parametrize(
    "text",
    ["", "---", "---\n---", "---\n:\n---", "---\n[a\n---\n", "---\nid: x\n---\n## \n", "---\n- 1\n---",
     "---\nid: [1, 2]\nversion: {a: 1}\ntitle: null\ntags: [null]\n---\n## Preference\nq",
     "---\nid: kind-words\n---\n## Examples\n```yaml\n```\n", "---\nid: kind-words\n---\n## Examples\n```\n- 1\n```\n",
     "\x00\x01\x02", "---\nid: kind-words\n---\n```\n## Critique\n"],
)
def test_garbage_never_raises(text):
    p, diags = parse_principle_text(text, "kind-words.md")
    assert p is None
    assert diags and all(d.path == "kind-words.md" for d in diags)
    assert all("\n" not in d.format() for d in diags)


def test_load_principle_raises_one_line_cai_error(tmp_path):
    path = tmp_path / "kind-words.md"
    path.write_text(SAMPLE.replace("tags: [manners, helpful]", "tags: 3"), encoding="utf-8")
    with pytest.raises(CaiError) as info:
        load_principle(path)
    assert str(info.value) == f"{path}:5: tags: Input should be a valid list"
    assert info.value.exit_code == 2 and info.value.line == 5
    with pytest.raises(CaiError, match="cannot read file"):
        load_principle(tmp_path / "missing.md")


def test_python_yaml_tag_does_not_run(tmp_path):
    marker = tmp_path / "MARKER"
    text = SAMPLE.replace("title: Kind words", f"title: !!python/object/apply:os.system ['touch {marker}']")
    p, diags = parse_principle_text(text, "kind-words.md")
    assert p is None and diags[0].line == 4 and "malformed YAML" in diags[0].message
    text = SAMPLE.replace("  critique: Blunt and unkind.", f"  critique: !!python/object/new:os.system ['touch {marker}']")
    p, diags = parse_principle_text(text, "kind-words.md")
    assert p is None and diags[0].line == 26
    assert not marker.exists()


# --------------------------------------------------------------------------- round trip


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_shipped_principle_round_trips(path):
    p = load_principle(path)
    again, diags = parse_principle_text(principle_to_markdown(p), str(path))
    assert [d for d in diags if d.severity == "error"] == []
    assert again == p
    assert again.normalized() == p.normalized()


TRICKY = Principle(
    id="tricky-text",
    version="1.2.3-rc.1",
    title="Colons: \"double\" and 'single' quotes — ünïcode ✓ #not-a-comment",
    tags=["edge", "unicode-2"],
    weight=2.5,
    description=(
        "Intro: with a colon, and `code`.\n\n"
        "```markdown\n## Critique\nThis heading is inside a fence.\n```\n\n"
        "---\n\nAfter a rule, a # hash and 日本語."
    ),
    critique='Say: "why" it fails?\n\n- bullet: with colon\n### a third-level heading\n\n    indented code',
    revision="Fix it — keep the ✓ and the emoji 🙂.\nkey: value",
    preference="Which one: (A) or (B)?",
    examples=[
        PrincipleExample(prompt="p: q", response="Here:\n```\n## Revision\n```\nend", violates=False,
                         critique='c: "x"', revision="---"),
        PrincipleExample(prompt="multi\nline\n\n## Critique\n", response="~~~\n- [x]", violates=True),
        PrincipleExample(prompt="yes", response="no", violates=True),
    ],
)


def test_tricky_principle_round_trips():
    text = principle_to_markdown(TRICKY)
    again, diags = parse_principle_text(text, "tricky-text.md")
    assert diags == []
    assert again == TRICKY


def test_round_trip_preserves_default_weight_and_no_examples():
    p = TRICKY.model_copy(update={"weight": 1.0, "examples": [], "description": ""})
    text = principle_to_markdown(p)
    assert "weight" not in text and "## Examples" not in text
    assert parse_principle_text(text, "tricky-text.md")[0] == p
