"""The judge: one way to ask a model about responses under principles, for every stage that does.

`cai label` (AI preference labels), `cai eval` (the evaluation judge), `cai principles test`,
`cai generate --verify` (is the revision better than the draft?) and the RL reward all call this,
so a probability means the same thing wherever it appears:

- one set of templates (:mod:`cai.judge.templates`): a principle's preference question for a pair
  (the constitution's ``preference`` template, few-shot demonstrations first), a rating question
  for one response, and all pairs of K responses for a group;
- one scoring path (:func:`cai.judge.scoring.score`): ``backend.score_choices``, the log-probability
  of each option label as the next token normalized over the labels, one forward pass, no decoding;
  every item x principle x order of a call goes into ONE ``score_choices`` call, so a
  prefix-caching backend computes shared prefixes (demonstrations, conversation) once;
- one position-debiasing rule: every comparison in both orders (x as (A), then x as (B)), averaged
  per principle, then over principles; position consistency = both orders prefer the same one;
- one provenance record (:meth:`Judge.provenance`): constitution name@version and hash, judge
  model, backend and ``describe()``, template hash, orders, few-shot, CoT, abstain option, scale;
  each verdict names its principles ``id@version``.

    from cai.judge import Judge, PairItem, PointItem, GroupItem, RATINGS_5

    judge = Judge(backend, constitution)                 # both orders, no few-shot, no abstain
    [v] = judge.pairwise([PairItem(prompt, x, y, [principle])])
    v.p_x, v.position_consistent, v.results[0].by_order  # P(x ≻ y), debiased; raw per order
    [r] = Judge(backend, constitution, scale=RATINGS_5).pointwise([PointItem(prompt, response, [principle])])
    r.score                                              # expected rating in [0, 1]
    [g] = judge.groupwise([GroupItem(prompt, [r1, r2, r3, r4], [principle])])
    g.scores, g.win_rate, g.matrix                       # Bradley-Terry strengths (or win rates)
    Judge(backend, constitution, abstain=DEFAULT_ABSTAIN).pairwise(...)[0].p_abstain
    judge.stats                                          # calls, prompts, comparisons, seconds
    judge.health                                         # JudgeHealth: label mass, failures, biases

Judge health (:mod:`cai.judge.health`): every judgement's label mass (probability on the answer
labels before normalizing) is checked; NaN or below the floor fails the judgement (``failed`` on
the verdict, counted by id), never a label, a score or a 0.5.

Shapes:

- *pairwise* (:meth:`Judge.pairwise`, :class:`PairItem` -> :class:`PairVerdict`): P(x ≻ y) under
  each principle (a :class:`~cai.principles.principle.Principle`'s ``## Preference`` question, or a
  plain question string), both orders averaged (``both_orders=False``: one order, seeded by
  ``seed`` and the item's ``key``). Optional chain-of-thought (:class:`Cot`: one generate call,
  then the score call; each principle clamped into a band). Optional abstain option (``abstain``:
  a third label ``(C) <text>``): ``p_abstain``, and ``p_x`` becomes P(x ≻ y | not abstaining).
  Off by default, so the labels are those of `cai label` before the judge existed. Identical
  responses get 0.5 without asking.
- *pointwise* (:meth:`Judge.pointwise`, :class:`PointItem` -> :class:`PointVerdict`): the expected
  value of a rating over the scale's labels (:data:`YES_NO`: P(Yes); :data:`RATINGS_5`: 1..5
  mapped to 0..1), one forward pass per item x principle (direct RLAIF's reward).
- *groupwise* (:meth:`Judge.groupwise`, :class:`GroupItem` -> :class:`GroupScores`): the K
  responses of one prompt compared pairwise (K(K-1)/2 pairs, both orders), one score each by a
  Bradley-Terry fit (``group_score="bradley-terry"``) or the win rate (``"win-rate"``).

Imports: core, models, principles, data, backends.
"""

from cai.judge.items import (
    Criterion, GroupItem, GroupScores, PairItem, PairVerdict, PointItem, PointVerdict, criterion_ref,
)
from cai.judge.health import HealthPolicy, HealthTracker, JudgeHealth
from cai.judge.judge import DEFAULT_ABSTAIN, RATINGS_5, YES_NO, Cot, Judge, Scale
from cai.judge.scoring import PairLabel, PrincipleResult, score

__all__ = [
    "DEFAULT_ABSTAIN", "RATINGS_5", "YES_NO", "Cot", "Criterion", "GroupItem", "GroupScores", "HealthPolicy",
    "HealthTracker", "Judge", "JudgeHealth",
    "PairItem", "PairLabel", "PairVerdict", "PointItem", "PointVerdict", "PrincipleResult", "Scale",
    "criterion_ref", "score",
]
