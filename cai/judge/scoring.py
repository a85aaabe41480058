"""The one scoring path and the one debiasing rule: option probabilities from ``score_choices``,
then orientation, order averaging, clamping, principle ensembling and position consistency.
Everything after :func:`score` is a pure function of the numbers.

A pair holds two responses, ``x`` (its first) and ``y``. Order 0 shows x as option (A) and y as
(B); order 1 swaps them. Every probability here is first expressed as "x is better", averaged,
and only then turned around to describe whichever response becomes ``chosen``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from cai.backends import Backend
from cai.core.errors import CaiError
from cai.data.pairs import PrincipleScore

ORDERS = (0, 1)


def score(backend: Backend, prompts: Sequence[list[dict]], options: Sequence[str] | Sequence[Sequence[str]],
          what: str = "questions") -> list[dict[str, float]]:
    """Option probabilities of every prompt in ONE ``score_choices`` call: log-probabilities of the
    option labels as the next token(s), normalized over the labels. One forward pass, no decoding."""
    if not prompts:
        return []
    probs = backend.score_choices(list(prompts), list(options))
    if len(probs) != len(prompts):
        raise CaiError(f"backend returned {len(probs)} scores for {len(prompts)} {what}")
    return probs


def expected(probs: Mapping[str, float], values: Mapping[str, float]) -> float:
    """The expected value of a rating: sum of P(label) x value(label) (probabilities normalized over
    the labels that have a value)."""
    value = sum(probs[k] * v for k, v in values.items())
    if set(values) == set(probs):  # already normalized over exactly these labels
        return value
    total = sum(probs[k] for k in values)
    return value / total if total > 0 else 0.0


def without(probs: Mapping[str, float], label: str) -> dict[str, float]:
    """``probs`` renormalized without ``label`` (the abstain option): P(A | not abstaining)."""
    rest = {k: v for k, v in probs.items() if k != label}
    total = sum(rest.values())
    return {k: v / total for k, v in rest.items()} if total > 0 else {k: 1.0 / len(rest) for k in rest}


def p_x(probs: Mapping[str, float], order: int) -> float:
    """P(x is better) from one order's option probabilities."""
    return probs["A"] if order == 0 else probs["B"]


def clamp(p: float, band: tuple[float, float] | None) -> float:
    return p if band is None else min(max(p, band[0]), band[1])


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


def _agree(p0: float, p1: float) -> bool:
    """Both orders prefer the same response (a 0.5 is no preference, so never agreement)."""
    return (p0 - 0.5) * (p1 - 0.5) > 0


@dataclass
class PrincipleResult:
    """One principle's comparison of a pair: P(x better) per order, and any reasonings."""

    principle: str
    by_order: dict[int, float]
    reasoning: dict[int, str] = field(default_factory=dict)
    abstain: dict[int, float] = field(default_factory=dict)
    """P(abstain) per order, when the judge offered an abstain option."""
    mass: dict[int, float] = field(default_factory=dict)
    """Label mass per order (probability on the answer labels before normalizing), where the
    backend reports it (:mod:`cai.judge.health`)."""

    @property
    def min_mass(self) -> float | None:
        """The smaller label mass of the orders asked (None when unknown)."""
        return min(self.mass.values()) if self.mass else None

    def p(self, band: tuple[float, float] | None) -> float:
        return clamp(_mean(list(self.by_order.values())), band)

    @property
    def consistent(self) -> bool | None:
        if len(self.by_order) < 2:
            return None
        return _agree(self.by_order[0], self.by_order[1])


@dataclass
class PairLabel:
    """The soft label of one pair, oriented to the chosen response."""

    x_chosen: bool
    p_chosen: float
    scores: list[PrincipleScore]
    position_consistent: bool | None


def label(results: Sequence[PrincipleResult], band: tuple[float, float] | None = None) -> PairLabel:
    """Average each principle over its orders (then clamp into ``band``), average over principles;
    the response with P >= 0.5 is chosen. Position consistency compares the principle-averaged
    probabilities of the two orders."""
    p = _mean([r.p(band) for r in results])
    x_chosen = p >= 0.5
    scores = [_oriented(r, band, x_chosen) for r in results]
    consistent = None
    if all(len(r.by_order) == 2 for r in results):
        consistent = _agree(_mean([r.by_order[0] for r in results]), _mean([r.by_order[1] for r in results]))
    return PairLabel(x_chosen, p if x_chosen else 1.0 - p, scores, consistent)


def _oriented(r: PrincipleResult, band, x_chosen: bool) -> PrincipleScore:
    """``p_first``: P(chosen better) when chosen was shown as (A); ``p_second``: when shown as (B)."""
    p = r.p(band)
    # x is (A) in order 0; y is (A) in order 1.
    first_order, second_order = (0, 1) if x_chosen else (1, 0)

    def for_chosen(order: int) -> float | None:
        if order not in r.by_order:
            return None
        return r.by_order[order] if x_chosen else 1.0 - r.by_order[order]

    reasoning = None
    if r.reasoning:
        parts = [f"[chosen as ({'A' if o == first_order else 'B'})] {r.reasoning[o].strip()}"
                 for o in (first_order, second_order) if o in r.reasoning]
        reasoning = "\n\n".join(parts)
    return PrincipleScore(principle=r.principle, p=p if x_chosen else 1.0 - p,
                          p_first=for_chosen(first_order), p_second=for_chosen(second_order),
                          reasoning=reasoning)
