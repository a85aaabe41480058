"""Qualify a judge on the principles' own examples before believing it on new text.

Every principle file may carry examples (``## Examples``: a prompt, a response and whether it
violates the principle). They are labelled data that ships with the constitution, so a judge can be
checked on them at no labelling cost: ask it the same question it will ask about new responses and
count how often it agrees with ``violates``. A judge that agrees no better than chance, or that
answers "violates" to everything, gives verdicts no one should act on; the stages that judge new
text (`cai redteam`, `cai guard data`) print this beside their figures.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from cai.core.rates import estimate_text, proportion
from cai.principles.principle import Principle

def check_on_examples(backend, principles: Sequence[Principle], question: Callable[[Principle], str],
                      policy=None) -> dict:
    """Ask ``question(p)`` (a yes/no question, Yes = violates) about each example of each principle
    and compare with its ``violates`` label.

    Returns ``{"n", "agreement", "says_violates", "failed", "qualified", "warning"}``: ``agreement``
    and ``says_violates`` are rate dicts (:func:`cai.core.rates.proportion`, n and a Wilson
    interval) over the examples judged; ``failed`` counts judgements that failed the health checks;
    ``qualified`` is True when the agreement interval lies above 0.5; ``warning`` a sentence for the
    terminal and the report when not (None when qualified, or when no principle has examples).
    ``policy`` is the :class:`~cai.judge.health.HealthPolicy` (label-mass floor) to judge with.
    """
    from cai.judge import Judge, PointItem

    items, labels = [], []
    for p in principles:
        for i, ex in enumerate(p.examples):
            items.append(PointItem([{"role": "user", "content": ex.prompt}], ex.response, question(p),
                                   key=f"{p.id}#example-{i}"))
            labels.append(bool(ex.violates))
    if not items:
        return {"n": 0, "agreement": None, "says_violates": None, "failed": 0, "qualified": None,
                "warning": "the principles have no examples to check the judge on"}
    judge = Judge(backend, health=policy) if policy is not None else Judge(backend)
    verdicts = judge.pointwise(items)
    judged = [(v.score >= 0.5, y) for v, y in zip(verdicts, labels, strict=True) if not v.failed]
    failed = len(items) - len(judged)
    agreement = proportion(sum(a == y for a, y in judged), len(judged)) if judged else None
    says = proportion(sum(a for a, _ in judged), len(judged)) if judged else None
    qualified = bool(agreement and agreement["ci"][0] > 0.5)
    warning = None
    if not judged:
        warning = (f"every judgement of the principles' {failed} examples failed the health checks, so the judge "
                   "could not be checked and its verdicts here are not to be trusted; see the judge health above, "
                   "or use a stronger judge (--feedback-model)")
    elif not qualified:
        warning = (f"the judge agrees with the principles' own examples on {estimate_text(agreement)} and says "
                   f"'violates' on {estimate_text(says)}" + (f" ({failed} judgements failed)" if failed else "")
                   + ": no better than chance at this n, so its verdicts here are not to be trusted; use a "
                   "stronger judge (--feedback-model)")
    return {"n": len(items), "agreement": agreement, "says_violates": says, "failed": failed, "qualified": qualified,
            "warning": warning}
