"""The checks a revision must pass for its record to be ``ok`` (`cai generate`).

Text checks, on every revision as it is parsed (a failure there is retried with ``retries``, then
fails the record as ``<check>-revision``):

- ``echoed-critique``: the revision is mostly a copy of the critique (:func:`parsing.echoes`);
- ``repetitive``: a sentence loop (:func:`parsing.is_repetitive`);
- ``repeated-paragraph``: a whole paragraph said twice (:func:`parsing.repeated_paragraph`);
- ``critique-not-revision``: it talks about "the response" instead of being one, or is made of
  the critique's words (:func:`parsing.critique_not_revision`).

Judge checks, with ``--verify`` (:mod:`cai.sl.verify`): ``not-better-than-draft`` (P(final ≻
draft) below ``min_p``) and ``still-breaks-principle`` (asked pointwise, YES/NO through
:mod:`cai.judge`, whether the final revision follows each principle it was revised for; P(Yes)
below ``min_follows``). A judgement that could not be made, or that fails the judge-health floor
(label mass below it, or NaN), fails its check: it is never taken as a pass. Unless the run says
``keep_unverified``, a failed judge check fails the record (out of the SFT export as well as the
preferences); with it, the record stays ``ok`` and carries the failed checks as flags.

Each failed check is kept on the record (:class:`cai.data.records.Check`: name, why, principle).
"""

from __future__ import annotations

from cai.sl.parsing import critique_not_revision, echoes, is_repetitive, repeated_paragraph

TEXT_CHECKS = ("echoed-critique", "repetitive", "repeated-paragraph", "critique-not-revision")
NOT_BETTER = "not-better-than-draft"
STILL_BREAKS = "still-breaks-principle"


def text_check(text: str | None, critique: str | None, before: str | None) -> tuple[str, str] | None:
    """``(check, why)`` for the first text check ``text`` (a parsed revision of ``before`` after
    ``critique``) fails, or None when it passes them all. Pure; cheap (regexes and difflib over at
    most 2,000 characters)."""
    if not text:
        return None
    if critique and echoes(text, critique):
        return "echoed-critique", "the revision repeats the critique instead of rewriting the response"
    if is_repetitive(text):
        return "repetitive", "the revision loops over one sentence or a few"
    para = repeated_paragraph(text)
    if para:
        short = para if len(para) <= 80 else para[:77] + "..."
        return "repeated-paragraph", f"the revision says this paragraph twice: '{short}'"
    why = critique_not_revision(text, critique, before)
    if why:
        return "critique-not-revision", f"the revision reads as a critique: {why}"
    return None
