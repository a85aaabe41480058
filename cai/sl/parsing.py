"""Parsing critique and revision outputs: pure functions, tested on tables of messy outputs.

Models wrap revisions in chatter ("Sure, here is a revised response:"), labels ("Revision:"),
quotes or code fences, and sometimes return nothing usable. These functions extract the usable
text or name the failure kind; the caller keeps the raw text either way.
"""

from __future__ import annotations

import difflib
import re
from collections import Counter

# Lead-ins that announce the revision rather than being part of it. Matched on the first line only.
_LEAD_IN = re.compile(
    r"^\s*(?:(?:sure|certainly|of course|okay|ok|absolutely|alright)[,!.]?\s*)?"
    r"(?:(?:here(?:'s| is| are)|below is|i(?:'ve| have) (?:revised|rewritten|rewrote))\b[^\n]{0,80}?"
    r"(?:revis|rewrit|respons|version|answer|repl)[^\n]{0,40}?[:.]\s*$"
    r"|(?:revised|rewritten|improved|new|updated)\s+(?:response|answer|reply|version)\s*:\s*"
    r"|revision(?:request)?\s*:\s*"
    r"|response\s*:\s*)",
    re.IGNORECASE,
)
_ONLY_COURTESY = re.compile(r"^\s*(?:sure|certainly|of course|okay|ok|absolutely)[,!.]?\s*$", re.IGNORECASE)
_TRAILER = re.compile(
    r"\n\s*(?:---+\s*\n\s*)?(?:i hope this (?:helps|revision)|let me know if|this revised (?:response|version)"
    r"|this revision|in this revision|the revised response (?:now|removes|avoids))[^\n]*(?:\n.*)?$",
    re.IGNORECASE | re.DOTALL,
)
_REFUSAL = re.compile(
    r"^\s*(?:i['’]?m sorry,? (?:but )?)?i (?:cannot|can['’]t|won['’]t|am unable to) (?:revise|rewrite)",
    re.IGNORECASE,
)
# "I'm not going to rewrite the response, but ..." within the opening: talk about the revision
# instead of one (seen from small models).
_META_REFUSAL = re.compile(r"\bi(?:['’]?m| am) not (?:going to|able to|gonna) (?:revise|rewrite)\b", re.IGNORECASE)
_VERDICT = re.compile(r"verdict\s*[:\-]\s*\**\s*(revise|needs? revision|ok|no (?:issues|changes)|fine|pass)\b",
                      re.IGNORECASE)


_THINK = re.compile(r"<(think|thinking)>(.*?)(?:</\1>|$)", re.IGNORECASE | re.DOTALL)
_ORPHAN_CLOSE = re.compile(r"^(.*?)</(think|thinking)>", re.IGNORECASE | re.DOTALL)


def split_reasoning(raw: str | None) -> tuple[str, str | None, bool]:
    """Separate a reasoning model's ``<think>…</think>`` blocks from its answer.

    Returns ``(answer, reasoning, unclosed)``: the text outside the blocks (stripped), the text
    inside them joined by blank lines (None when there were none), and whether the last block was
    never closed (the output ended inside the reasoning). ``<thinking>`` is read the same way. A
    closing tag with no opening one (chat templates such as DeepSeek-R1's put ``<think>`` in the
    prompt) makes everything before it reasoning. Servers that return reasoning in a separate
    field (``reasoning_content``) get it put back as a leading block by the ``openai`` backend.
    """
    if not raw:
        return "", None, False
    parts: list[str] = []
    text = raw
    orphan = _ORPHAN_CLOSE.match(text)
    if orphan and not re.search(r"<(think|thinking)>", orphan.group(1), re.IGNORECASE):
        parts.append(orphan.group(1).strip())
        text = text[orphan.end():]
    unclosed = False
    for m in _THINK.finditer(text):
        parts.append(m.group(2).strip())
        unclosed = not m.group(0).lower().endswith(f"</{m.group(1).lower()}>")
    if not parts:
        return raw.strip(), None, False
    answer = re.sub(r"\n{3,}", "\n\n", _THINK.sub("\n\n", text)).strip()
    return answer, "\n\n".join(p for p in parts if p), unclosed


def without_reasoning(raw: str | None, finish_reason: str | None = None) -> tuple[str | None, bool]:
    """``(answer, cut)``: ``raw`` without its reasoning blocks (see :func:`split_reasoning`), and
    whether the token budget ran out inside the reasoning (``finish_reason == "length"`` with an
    unclosed block, or with reasoning and no answer): a ``truncated`` output, not an empty one."""
    answer, reasoning, unclosed = split_reasoning(raw)
    if reasoning is None and not unclosed:
        return raw, False
    cut = finish_reason == "length" and (unclosed or not answer)
    return answer, cut


def _strip_wrappers(text: str) -> str:
    t = text.strip()
    fence = re.match(r"^```[a-zA-Z]*\n(.*)\n```$", t, re.DOTALL)
    if fence:
        t = fence.group(1).strip()
    for q1, q2 in (('"', '"'), ("“", "”"), ("'", "'")):
        if len(t) > 1 and t.startswith(q1) and t.endswith(q2) and q1 not in t[1:-1] and q2 not in t[1:-1]:
            t = t[1:-1].strip()
    return t


def clean_revision(raw: str | None, finish_reason: str | None = None) -> tuple[str | None, str | None]:
    """Return ``(revision, None)`` or ``(None, failure_kind)``.

    Failure kinds: ``empty``, ``truncated`` (hit max_tokens), ``refused`` (declined to revise),
    ``only-preamble`` (a lead-in with nothing after it). Reasoning blocks are not part of the
    revision (:func:`without_reasoning`).
    """
    raw, cut = without_reasoning(raw, finish_reason)
    if cut:
        return None, "truncated"
    if raw is None or not raw.strip():
        return None, "empty"
    if finish_reason == "length":
        return None, "truncated"
    text = raw.strip()
    if _REFUSAL.match(text) or _META_REFUSAL.search(text[:200]):
        return None, "refused"
    first, _, rest = text.partition("\n")
    match = _LEAD_IN.match(first)
    if match:
        remainder = first[match.end():].strip()
        text = (remainder + "\n" + rest).strip() if remainder else rest.strip()
    elif _ONLY_COURTESY.match(first):
        text = rest.strip()
    if not text:
        return None, "only-preamble"
    text = _TRAILER.sub("", text).strip()
    text = _strip_wrappers(text)
    if not text:
        return None, "only-preamble"
    return text, None


def parse_critique(raw: str | None, finish_reason: str | None = None) -> tuple[str | None, str | None, str | None]:
    """Return ``(critique, verdict, failure_kind)``; verdict is ``revise``, ``ok`` or None (not stated).

    A critique may end with a line ``Verdict: revise`` or ``Verdict: ok`` when the constitution
    asks for a structured verdict; that line is removed from the critique text. Reasoning blocks
    are not part of the critique; a budget spent inside them makes it ``truncated``.
    """
    raw, cut = without_reasoning(raw, finish_reason)
    if cut:
        return None, None, "truncated"
    if raw is None or not raw.strip():
        return None, None, "empty"
    text = raw.strip()
    verdict = None
    matches = list(_VERDICT.finditer(text))
    if matches:
        m = matches[-1]
        word = m.group(1).lower()
        verdict = "revise" if word.startswith(("revise", "need")) else "ok"
        text = (text[: m.start()] + text[m.end():]).strip().rstrip("*").strip()
    text = re.sub(r"^\s*critique\s*:\s*", "", text, flags=re.IGNORECASE).strip()
    if not text and verdict is None:
        return None, None, "empty"
    if finish_reason == "length" and verdict is None:
        # A cut-off critique is still a usable critique; it only cannot carry a verdict.
        return text, None, None
    return text or "(no issues)", verdict, None


# A sentence ends at . ! ? (or an ellipsis), possibly followed by closing quotes or brackets, then
# whitespace or the end; a line break before a list item or a blank line also ends one.
_SENTENCE_END = re.compile(r"[.!?…][\"'”’)\]]*(?=\s|$)|\n\s*\n")


_LIST_MARKER = re.compile(r"(?:\d+|[a-zA-Z])[.)]")


def trim_to_sentence(text: str, min_keep: float = 0.5) -> str | None:
    """``text`` cut after its last complete sentence, for outputs that ran out of tokens.

    Returns None when no sentence ends in ``text`` or the cut would keep less than ``min_keep``
    of its characters (the output is mostly an unfinished thought, not worth keeping).
    """
    text = text.rstrip()
    ends = [m.end() for m in _SENTENCE_END.finditer(text)
            if not _LIST_MARKER.fullmatch(text[text.rfind("\n", 0, m.start()) + 1: m.end()].strip())]
    if not ends:
        return None
    kept = text[: ends[-1]].rstrip()
    return kept if kept and len(kept) >= min_keep * len(text) else None


_SENTENCES = re.compile(r"[^.!?\n]+[.!?]*")


def is_repetitive(text: str, min_repeats: int = 3, share: float = 0.4) -> bool:
    """True for degenerate looping output: one sentence (or line) said ``min_repeats`` or more
    times and making up at least ``share`` of all sentences. Small models at low temperature
    fall into such loops ("This is not acceptable. This is not acceptable. ...")."""
    sentences = [m.group(0).strip().lower() for m in _SENTENCES.finditer(text)]
    sentences = [x for x in sentences if len(x) > 3]
    if len(sentences) < min_repeats:
        return False
    counts = Counter(sentences)
    [(_, top)] = counts.most_common(1)
    if top >= min_repeats and top >= share * len(sentences):
        return True
    # Several sentences each said again: a loop over a paragraph rather than over one line.
    return len(sentences) >= 4 and 1 - len(counts) / len(sentences) >= share


def echoes(text: str, source: str, threshold: float = 0.8) -> bool:
    """True when ``text`` is mostly a copy of ``source`` (e.g. a "revision" that repeats the
    critique it was given): the same opening, or a difflib similarity of at least ``threshold``
    between their first 400 words.

    Words, not characters: a character-level match of two 2,000-character texts cost up to ~85 ms
    per revision (difflib is quadratic in the repeats of each symbol, and a text has few distinct
    characters), more than a GPU spends generating the revision; over words it is ~1 ms, and the
    two cheap upper bounds (lengths, then word counts) settle most pairs before it."""
    a, b = " ".join(text.lower().split()), " ".join(source.lower().split())
    if not a or not b:
        return False
    head = min(60, len(a), len(b))
    if head >= 30 and a[:head] == b[:head]:
        return True
    m = difflib.SequenceMatcher(None, a.split()[:400], b.split()[:400], autojunk=False)
    return m.real_quick_ratio() >= threshold and m.quick_ratio() >= threshold and m.ratio() >= threshold


_BLOCKS = re.compile(r"\n\s*\n")


def repeated_paragraph(text: str, min_words: int = 8) -> str | None:
    """The first paragraph that ``text`` says twice (compared without case or spacing), or None.

    A paragraph is a block between blank lines; a line of at least ``min_words`` words counts too
    (small models often separate paragraphs by single line breaks). Shorter blocks (a heading, a
    list item such as "- Check the chain.") may repeat in a real answer and are not counted.
    :func:`is_repetitive` catches sentence loops; this catches a whole paragraph written again after
    others (A, B, A), which leaves too few repeated sentences for that check."""
    for units in (_BLOCKS.split(text), text.split("\n")):
        seen: set[str] = set()
        for unit in units:
            key = " ".join(unit.lower().split())
            if len(key.split()) < min_words:
                continue
            if key in seen:
                return unit.strip()
            seen.add(key)
    return None


# Talk about a response, rather than a response: what a critique says and a revision never needs to.
_ABOUT = (r"(?:original|previous|initial|given|above|first|revised|rewritten|assistant['’]s|ai['’]s|model['’]s)")
_VERBS = (r"(?:is|was|does|did|could|should|would|fails?|lacks?|provides?|contains?|includes?|mentions?|"
          r"doesn['’]t|does not|didn['’]t|did not|needs?|seems?|appears?|is not|isn['’]t|can be|may|might|has|uses?|offers?|"
          r"suggests?|claims?|makes?|avoids?)")
# "The answer is 42." is an answer; "the response is", "the original answer is" talk about one.
_META = re.compile(
    rf"\b(?:the|this|that)\s+(?:{_ABOUT}\s+)?(?:response|reply|draft)\s+{_VERBS}\b"
    rf"|\b(?:the|this|that)\s+{_ABOUT}\s+answer\s+{_VERBS}\b"
    rf"|\b(?:the|this)\s+(?:chat|conversation)\s+(?:was|is|didn['’]t|did not|doesn['’]t|does not)\b"
    r"|\bthe\s+(?:assistant|ai|model)['’]?s?\s+(?:response|answer|reply)\b"
    r"|\b(?:original|previous|initial)\s+(?:response|answer|reply|draft)\b"
    r"|\b(?:the|this)\s+(?:critique|revision request|critique request)\b"
    r"|\bto improve (?:the|this) (?:response|answer)\b",
    re.IGNORECASE,
)


def _trigrams(text: str) -> set[tuple[str, ...]]:
    words = re.findall(r"[a-z0-9']+", text.lower())
    return {tuple(words[i:i + 3]) for i in range(len(words) - 2)}


def critique_not_revision(text: str, critique: str | None = None, before: str | None = None,
                          share: float = 0.5) -> str | None:
    """Why ``text`` reads as a critique of a response rather than a rewritten response, or None.

    Two signs, each enough: it talks about "the response" / "the assistant's answer" / "the
    original reply" (a critique's words; a rewritten answer speaks to the user) near its start or
    more than once; or at least ``share`` of its word trigrams come from ``critique`` and more of
    them from the critique than from ``before`` (the response it revised). :func:`echoes` already
    fails a near-verbatim copy of the critique; this catches one reworded."""
    found = [m.group(0) for m in _META.finditer(text)]
    early = [m.group(0) for m in _META.finditer(text[:240])]
    if early or len(found) >= 2:
        return f"it talks about the response ('{(early or found)[0]}') instead of rewriting it"
    if critique:
        mine = _trigrams(text)
        if len(mine) >= 4:
            from_critique = len(mine & _trigrams(critique)) / len(mine)
            from_before = len(mine & _trigrams(before or "")) / len(mine)
            if from_critique >= share and from_critique > from_before:
                return f"{from_critique:.0%} of its word triples come from the critique"
    return None
