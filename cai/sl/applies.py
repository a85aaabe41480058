"""`cai generate --pick applicable`: critique each prompt only against the principles that apply to it.

The constitution's own sampling draws principles without looking at the prompt (the CAI paper's
uniform draw), so a question about a refund can be critiqued against a principle about injury
advice, and its "revision" then has nothing to fix. Here the judge is asked, for each principle and
prompt, whether the principle applies, the way `cai principles test` lets a principle abstain on a
pair (:mod:`cai.inverse.votes`, "does not apply"): one pointwise YES/NO question through
:mod:`cai.judge` per prompt x principle, about the conversation so far (the user's request),
all of a chunk in one ``score_choices`` call (they share the prompt as a prefix). P(Yes) at least
``min_applies`` makes a principle apply. Each round then draws among the applicable principles by
the constitution's own strategy (random, weighted and seeded; round-robin; all). A prompt no
principle applies to is not critiqued: its draft is its final answer, flagged
``no-principle-applies``. A judgement that fails the judge-health floor fails the record
(``principle-applies``), never counts as "applies" or "does not apply".
"""

from __future__ import annotations

from collections import Counter

from cai.data.records import Check, Record
from cai.judge import Judge, PointItem, Scale
from cai.principles.constitution import Constitution
from cai.principles.principle import Principle

APPLIES = Scale((("A", "Yes", 1.0), ("B", "No", 0.0)),
                "Does this principle apply to the human's request, so that a response to it could follow "
                "or break the principle?")
"""The question: a principle's title, description and what it checks, then this."""
NONE_APPLIES = "no-principle-applies"
CHECK = "principle-applies"


class Applicability:
    """Which principles apply to each record's prompt; plans its (round, principle) steps."""

    def __init__(self, constitution: Constitution, judge: Judge, min_applies: float = 0.5):
        self.constitution, self.judge, self.min_applies = constitution, judge, min_applies
        self._subsets: dict[tuple[str, ...], Constitution] = {}
        self.asked = 0  # prompts asked about (this process)
        self.applied: Counter = Counter()  # principle ref -> prompts it applied to
        self.none = 0  # prompts no principle applied to

    def applicable(self, records: list[Record]) -> dict[str, list[Principle] | None]:
        """record id -> the principles that apply (constitution order), or None when a judgement
        failed (the record is failed here, with the check and why). One score_choices call."""
        principles = self.constitution.principles
        items = [PointItem([m.model_dump() for m in r.prompt], None, principles, key=r.id) for r in records]
        out: dict[str, list[Principle] | None] = {}
        for r, v in zip(records, self.judge.pointwise(items) if items else [], strict=True):
            if v.failed:
                why = f"the judge could not say which principles apply: {v.failed}"
                r.checks.append(Check(name=CHECK, why=why))
                r.fail(CHECK, "critique", why)
                out[r.id] = None
                continue
            out[r.id] = [p for p in principles if v.by_principle[p.ref] >= self.min_applies]
            self.asked += 1
            self.applied.update(p.ref for p in out[r.id])
            self.none += not out[r.id]
        return out

    def summary(self) -> dict:
        """``{"prompts", "min_applies", "applied": {ref: {"k", "n", "rate"}}, "none_applies", "warning"}``
        over the prompts this process asked about. ``warning``: the judge found nearly every
        principle applies to nearly every prompt (every rate >= 0.9, at least 5 prompts), so the
        pick is no better than the constitution's own draw (a weak judge: the embedded SmolLM2 put
        P(Yes) 0.57-0.67 on every principle for every prompt)."""
        n = self.asked
        applied = {p.ref: {"k": self.applied[p.ref], "n": n, "rate": round(self.applied[p.ref] / n, 4) if n else None}
                   for p in self.constitution.principles}
        warning = None
        if n >= 5 and all(a["rate"] >= 0.9 for a in applied.values()):
            warning = (f"the judge found every principle applies to nearly every prompt (n {n}): pick: applicable "
                       "is then no better than the constitution's own draw; use a stronger judge (--feedback-model)")
        return {"prompts": n, "min_applies": self.min_applies, "applied": applied, "none_applies": self.none,
                "warning": warning}

    def plan(self, r: Record, applicable: list[Principle], rounds: int) -> list[tuple[int, Principle]]:
        """``(round, principle)`` for each step: the constitution's sampling over ``applicable``."""
        if not applicable:
            return []
        key = tuple(p.id for p in applicable)
        if key not in self._subsets:
            self._subsets[key] = Constitution(self.constitution.spec, list(applicable), self.constitution.path)
        sub = self._subsets[key]
        return [(k, p) for k in range(rounds) for p in sub.pick(r.id, k)]
