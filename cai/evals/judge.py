"""The evaluation judge: yes/no questions and comparisons about behaviour, asked through the one
judge (:mod:`cai.judge`).

A yes/no question is the judge's pointwise shape on the :data:`~cai.judge.YES_NO` scale (P(Yes));
a comparison is its pairwise shape with a plain question, both orders averaged (which cancels the
judge's position bias; Zheng et al., 2023, "Judging LLM-as-a-judge"). The answer is a probability
read in one forward pass, never parsed text.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from cai.backends import Backend
from cai.judge import Judge, PairItem, PointItem
from cai.judge.templates import with_note

__all__ = ["Comparison", "ask_compare", "ask_yes_no", "with_note"]


@dataclass(frozen=True)
class Comparison:
    """Is ``x`` the better answer to ``question`` than ``y``, after ``context``?"""

    context: list[dict]
    question: str
    x: str
    y: str


def ask_yes_no(backend: Backend, items: Sequence[tuple[list[dict], str]], judge: Judge | None = None,
               keys: Sequence[str] | None = None) -> list[float]:
    """P(yes) for each ``(conversation, question)`` about its last assistant turn, all in one
    ``score_choices`` call. A failed judgement (NaN, label mass below the floor, no labels) is NaN:
    ``judge.failures`` (pass ``judge`` to read them, and its ``health``) says why. ``keys`` name
    the items in the judge's health record (default: their index)."""
    judge = judge or Judge(backend)
    verdicts = judge.pointwise([PointItem(conv, None, q, key=keys[i] if keys else "")
                                for i, (conv, q) in enumerate(items)])
    return [round(v.score, 6) if not v.failed else float("nan") for v in verdicts]


def ask_compare(backend: Backend, items: Sequence[Comparison], judge: Judge | None = None,
                keys: Sequence[str] | None = None) -> list[dict]:
    """For each comparison ``{"p_x", "p_x_first", "p_x_second"}``: P(x is better) averaged over
    x shown as (A) and x shown as (B), both orders scored in one ``score_choices`` call. Identical
    responses get 0.5 without asking. A failed judgement gives ``{"failed": why}`` instead."""
    judge = judge or Judge(backend)
    verdicts = judge.pairwise([PairItem(c.context, c.x, c.y, c.question, key=keys[i] if keys else "")
                               for i, c in enumerate(items)])
    return [{"failed": v.failed} if v.failed else
            {"p_x": round(v.p_x, 6), "p_x_first": round(v.p_first, 6), "p_x_second": round(v.p_second, 6)}
            for v in verdicts]
