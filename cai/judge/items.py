"""What the judge is asked and what it answers: items (a prompt, its response or responses, the
principles or plain questions to judge them by) and verdicts (probabilities, debiased, with the
raw numbers kept). Plain data, no model."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from cai.judge.scoring import PairLabel, PrincipleResult
from cai.principles.principle import Principle

Criterion = Principle | str
"""What a response is judged by: a principle (its ``## Preference`` question for comparisons, its
title, description and critique for ratings) or a plain question (e.g. an evaluation's)."""


def criterion_ref(c: Criterion) -> str:
    """``id@version`` for a principle; the question itself for a plain question."""
    return c.ref if isinstance(c, Principle) else c


def _criteria(value) -> tuple[Criterion, ...]:
    if isinstance(value, (Principle, str)):
        return (value,)
    out = tuple(value)
    if not out:
        raise ValueError("an item needs at least one principle or question")
    return out


@dataclass(frozen=True)
class PairItem:
    """Is ``x`` better than ``y`` as the next assistant turn after ``prompt``? Judged under each of
    ``principles`` (averaged). ``key`` seeds the shown order when only one order is asked (the
    labeler passes the pair id); ``orders`` overrides the judge's choice of orders."""

    prompt: list[dict]
    x: str
    y: str
    principles: Sequence[Criterion]
    key: str = ""
    orders: tuple[int, ...] | None = None
    human_x: bool | None = None
    """People preferred ``x`` (True), ``y`` (False) or unknown (None): judge health puts the
    judge's length bias beside people's own."""

    def __post_init__(self):
        object.__setattr__(self, "principles", _criteria(self.principles))


@dataclass(frozen=True)
class PointItem:
    """How does ``response`` (or, when None, the last assistant turn of ``prompt``) rate under each
    of ``principles`` (averaged)?"""

    prompt: list[dict]
    response: str | None
    principles: Sequence[Criterion]
    key: str = ""
    """Names the item in judge health's failed ids (default: its index in the call)."""

    def __post_init__(self):
        object.__setattr__(self, "principles", _criteria(self.principles))

    def conversation(self) -> list[dict]:
        if self.response is None:
            return list(self.prompt)
        return list(self.prompt) + [{"role": "assistant", "content": self.response}]


@dataclass(frozen=True)
class GroupItem:
    """Rank the K ``responses`` to one ``prompt`` under ``principles``: every pair in both orders."""

    prompt: list[dict]
    responses: Sequence[str]
    principles: Sequence[Criterion]
    key: str = ""
    """Names the group in judge health's failed ids (default: its index in the call)."""

    def __post_init__(self):
        object.__setattr__(self, "principles", _criteria(self.principles))
        object.__setattr__(self, "responses", tuple(self.responses))


@dataclass
class PairVerdict:
    """The judge's answer for one :class:`PairItem`.

    ``p_x``: P(x ≻ y), each principle averaged over the orders asked (then clamped into the CoT
    band, if any), then averaged over principles. ``results``: per principle, P(x ≻ y) per order
    (order 0 shows x as (A), order 1 as (B)), and any reasoning. ``position_consistent``: both
    orders preferred the same response (None with one order). ``p_abstain``: with an abstain
    option, P(abstain) averaged like p_x (then p_x is P(x ≻ y | not abstaining)); else None.
    """

    p_x: float
    results: list[PrincipleResult]
    position_consistent: bool | None
    p_abstain: float | None = None
    label: PairLabel | None = field(default=None, repr=False)
    """The same numbers oriented to the winner (what `cai label` writes)."""
    failed: str | None = None
    """Why the judgement failed (NaN, label mass below the floor, no labels, parse): then ``p_x``
    is NaN, ``results`` empty and ``label`` None: never use it as a label (see cai.judge.health)."""

    @property
    def p_first(self) -> float | None:
        """P(x ≻ y) with x shown first, averaged over principles (None if that order was not asked)."""
        return _order_mean(self.results, 0)

    @property
    def p_second(self) -> float | None:
        return _order_mean(self.results, 1)


def _order_mean(results: list[PrincipleResult], order: int) -> float | None:
    values = [r.by_order[order] for r in results if order in r.by_order]
    return sum(values) / len(values) if len(values) == len(results) and values else None


@dataclass
class PointVerdict:
    """The judge's answer for one :class:`PointItem`: ``score``, the expected value of the rating
    (Yes = 1, No = 0; or (k - 1) / (n - 1) on a 1..n scale), averaged over principles;
    ``by_principle``: each principle's (ref -> score); ``probs``: each principle's label
    probabilities."""

    score: float
    by_principle: dict[str, float]
    probs: dict[str, dict[str, float]]
    failed: str | None = None
    """Why the rating failed (see :class:`PairVerdict`): then ``score`` is NaN; never a reward."""


@dataclass
class GroupScores:
    """The judge's ranking of one :class:`GroupItem`: one ``score`` per response (Bradley-Terry
    strengths, mean 0, or win rates, by the judge's ``group_score``), ``win_rate`` (mean P(i ≻ j)
    over the others), ``matrix[i][j]`` = P(i ≻ j), and the share of pairs whose two orders agreed."""

    scores: list[float]
    win_rate: list[float]
    matrix: list[list[float]]
    position_consistency: float | None
    verdicts: dict[tuple[int, int], PairVerdict]
    failed: str | None = None
    """Why the group could not be ranked (a pair's judgement failed): then every score and win rate
    is NaN; never a reward."""
