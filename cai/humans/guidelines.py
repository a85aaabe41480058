"""What each labeling task is judged by, and Markdown rendered safely for the page.

A task's guideline is, in order of preference:

1. the preference question of its *focus principle* (the principle least in favour of the AI's
   chosen response, as ``cai route`` picks it) when the pair carries principle scores or ids and
   that principle is in the library;
2. the ``--guidelines FILE`` text (Markdown);
3. the ``--constitution``'s text: its description and each principle's preference question;
4. none.

Markdown goes through markdown-it (CommonMark) with raw HTML off, so a guideline file cannot put
markup or scripts on the page; markdown-it also refuses ``javascript:``-style link targets.
"""

from __future__ import annotations

from pathlib import Path

from cai.data.route import focus_principle
from cai.core.errors import CaiError
from cai.humans.store import Guideline
from cai.data.pairs import pair_from_row
from cai.principles.principle import Principle


def render_markdown(text: str) -> str:
    """Markdown as HTML with raw HTML escaped (never passed through) and unsafe links dropped."""
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark", {"html": False, "linkify": False}).render(text)


def _first_paragraph(text: str) -> str:
    for block in text.strip().split("\n\n"):
        block = block.strip()
        if block and not block.startswith("#"):
            return block
    return text.strip()


def file_guideline(path: str | Path) -> Guideline:
    """A ``--guidelines`` Markdown file: title from its first ``#`` heading (else the file name),
    summary its first paragraph, text the whole file. CaiError if unreadable or empty."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")  # the one rule: cai.core.files.open_text
    except (OSError, UnicodeDecodeError) as exc:
        raise CaiError(f"cannot read the guidelines: {exc}", path=str(path)) from None
    if not text.strip():
        raise CaiError("the guidelines file is empty", path=str(path))
    title = next((line.lstrip("#").strip() for line in text.splitlines() if line.startswith("# ")), path.stem)
    return Guideline(title=title, summary=_first_paragraph(text), text=text)


def principle_guideline(p: Principle, general: Guideline | None = None) -> Guideline:
    """A principle's preference question as the criterion; the full text is its description and
    question, followed by the general guidelines when there are any."""
    question = p.preference or p.critique or ""
    text = f"# {p.title}\n\n{p.description}\n\n**Question:** {question}\n\n_Principle {p.ref}_\n"
    if general is not None:
        text += f"\n---\n\n{general.text}"
    return Guideline(title=p.title, summary=question, text=text)


def constitution_guideline(constitution) -> Guideline:
    """A constitution's description and the preference question of each of its principles."""
    lines = [f"# {constitution.name}", "", constitution.spec.description.strip() or "", ""]
    for p in constitution.principles:
        lines.append(f"- **{p.title}**: {p.preference or p.critique}")
    lines += ["", f"_Constitution {constitution.ref}_", ""]
    summary = constitution.spec.description.strip() or f"Judge by the {constitution.name} constitution."
    return Guideline(title=constitution.name, summary=summary, text="\n".join(lines))


def assign(pairs: dict[str, dict], *, principles: dict[str, Principle] | None = None,
           default: Guideline | None = None) -> dict[str, Guideline | None]:
    """The guideline of each task (pair id → pair row as stored): its focus principle's when
    known, else ``default``."""
    principles = principles or {}
    out: dict[str, Guideline | None] = {}
    for pair_id, row in pairs.items():
        ref = focus_principle(pair_from_row(row))
        p = principles.get(ref.split("@", 1)[0]) if ref else None
        out[pair_id] = principle_guideline(p, default) if p is not None else default
    return out
