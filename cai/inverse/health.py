"""Judge health of a principle test or a proposal run, from the stored votes (:mod:`cai.judge.health`).

Every vote row keeps the judge's label mass (the smaller of its two orders) and whether the two
orders agreed, so the health record covers every vote of the run, including the ones a resumed
run read back: label mass, position consistency and length bias (how often a vote that applies
picks the longer response, beside how often the people who labeled the pairs did), overall and
per principle, plus the pairs whose judgement failed (counted by file line or id).
"""

from __future__ import annotations

from collections.abc import Sequence

from cai.backends.choices import ChoiceProbs
from cai.data.pairs import PreferencePair
from cai.judge import Criterion
from cai.judge.health import HealthPolicy, HealthTracker, JudgeHealth
from cai.inverse.votes import NO_PRINCIPLE, VoteStore
from cai.principles.principle import Principle

NO_PRINCIPLE_NAME = "(no principle)"


def _name(c: Criterion) -> str:
    return c.ref if isinstance(c, Principle) else NO_PRINCIPLE_NAME if c == NO_PRINCIPLE else c


def votes_health(store: VoteStore, criteria: Sequence[Criterion], pairs: Sequence[PreferencePair],
                 failed: Sequence[dict] = (), codes: dict[str, str] | None = None,
                 policy: HealthPolicy | None = None) -> JudgeHealth:
    """The judge's health over the votes of ``criteria`` on ``pairs`` (every vote stored), and the
    ``failed`` pairs (``{"pair", "origin", "reason"}``; ``codes[pair id]`` is the reason's code,
    else ``rejected``). People's pick is each pair's ``chosen``."""
    tracker = HealthTracker(policy)
    for c in criteria:
        name = _name(c)
        for pair in pairs:
            row = store.rows.get(store.row_id(c, pair))
            if row is None:
                continue
            tracker.judgement(ChoiceProbs({"chosen": row.p_chosen, "rejected": row.p_rejected}, mass=row.label_mass),
                              id=pair.origin or pair.id, principle=name)
            p_x = 0.5 if row.vote == 0 else 1.0 if row.vote > 0 else 0.0
            for scope in (name, None):
                tracker.comparison(principle=scope, consistent=row.consistent, p_x=p_x, x=pair.chosen_text,
                                   y=pair.rejected_text, human_x=True)
    for f in failed:
        tracker.failure((codes or {}).get(f["pair"], "rejected"), id=f.get("origin") or f["pair"])
    return tracker.report()
