"""`cai generate --verify`: revisions the judge has checked.

After each revision step, the feedback model (the critic, or ``feedback``) compares the revision
with the response it revised, with the step principle's preference question, in both orders
(:mod:`cai.judge`, the same question, template, few-shot and debiasing as `cai label`, so the
number is the one `cai label` would give the exported pair). ``Step.p_better`` keeps it. When a
record's steps are done, ``Record.verification`` holds P(final ≻ draft): the one step's number when
a single step revised the draft, else one more comparison of final and draft under the revising
steps' principles. Then the final revision is rated pointwise (YES/NO, the same judge) under each
principle it was revised for: does it follow it now?

Gating (:mod:`cai.sl.checks`): P(final ≻ draft) below ``min_p``, or the two orders disagreeing
(position-inconsistent: the judge picked by the position shown), fails the ``not-better-than-draft``
check, P(follows) below ``min_follows`` fails ``still-breaks-principle``, and a judgement that
could not be made or failed the judge-health floor (label mass below it, NaN) fails its check,
never passes it. A record with a failed check fails (kind = the first check's name, every failed
check with why in ``Record.checks``): out of the SFT export as well as the preferences. With
``keep_unverified`` it stays ``ok`` with the checks as flags (``revision-not-better`` keeps its
pair out of the preferences, and its SFT row too with ``verify_sft``), as before this gate.
Every comparison of a step (or of the chunk's ends) goes in one ``score_choices`` call; so do the
chunk's ratings.
"""

from __future__ import annotations

import logging

from cai.data.records import Check, Record, Verification
from cai.judge import Judge, PairItem, PointItem
from cai.judge.health import HealthPolicy
from cai.sl.checks import NOT_BETTER as NOT_BETTER_CHECK, STILL_BREAKS
from cai.principles.principle import Principle

log = logging.getLogger("cai.sl")

NOT_BETTER = "revision-not-better"
REJECTED = "verify-rejected"


def question(p: Principle) -> Principle | str:
    """The principle itself when it has a preference question; else a question made from it."""
    if p.preference:
        return p
    return f"Which response better follows the principle '{p.title}'?" + (
        f" {p.critique.strip()}" if p.critique else "")


def _prompt(r: Record) -> list[dict]:
    return [m.model_dump() for m in r.prompt]


class Verifier:
    """The judge over a chunk's revisions."""

    def __init__(self, constitution, backend, *, few_shot: int, min_p: float | None, drop_sft: bool,
                 min_follows: float | None = 0.5, keep_unverified: bool = False, health: HealthPolicy | None = None):
        self.constitution = constitution
        self.judge = Judge(backend, constitution, few_shot=few_shot, health=health)
        self.min_p, self.drop_sft = min_p, drop_sft
        self.min_follows, self.keep_unverified = min_follows, keep_unverified
        self._why: dict[tuple[str, int], str] = {}  # (record id, step index) -> why it was not judged
        self.provenance = self.judge.provenance()
        self.principles = {p.ref: p for p in constitution.principles}

    def steps(self, revised: list[tuple[Record, Principle, str]]) -> None:
        """Judge each ``(record, principle, revised text)``: the record's last step's revision vs
        the text it revised, all in one call; the result goes on the step."""
        if not revised:
            return
        items = [PairItem(_prompt(r), r.steps[-1].revision, before, question(p), key=r.id) for r, p, before in revised]
        for (r, _, _), v, i in zip(revised, self.judge.pairwise(items, skip_rejected=True), range(len(items)),
                                   strict=True):
            if v is None:  # rejected by the backend, or a failed judgement (NaN, label mass below the floor)
                log.warning("verify (record %s): no judgement: %s", r.id, self.judge.failures[i])
                self._why[(r.id, len(r.steps) - 1)] = self.judge.failures[i]
                if REJECTED not in r.flags:
                    r.flags.append(REJECTED)
                continue
            step = r.steps[-1]
            step.p_better, step.position_consistent = v.p_x, v.position_consistent

    def finish(self, records: list[Record]) -> None:
        """P(final ≻ draft) for every revised record (one call for those with several revisions)."""
        again: list[tuple[Record, list[Principle]]] = []
        for r in records:
            if r.status != "ok" or not r.final or not r.draft or r.final.strip() == r.draft.strip():
                continue
            revising = [s for s in r.steps if s.revision is not None]
            if len(revising) == 1:  # the one revision revised the draft: its verdict is the pair's
                s = revising[0]
                why = self._why.pop((r.id, r.steps.index(s)), "the judge's backend rejected the comparison")
                self._set(r, s.p_better, [s.principle], s.position_consistent, "" if s.p_better is not None else why)
            else:
                again.append((r, [self.principles[s.principle] for s in revising]))
        items = [PairItem(_prompt(r), r.final, r.draft, [question(p) for p in ps], key=r.id) for r, ps in again]
        verdicts = self.judge.pairwise(items, skip_rejected=True) if items else []
        for i, ((r, ps), v) in enumerate(zip(again, verdicts, strict=True)):
            refs = [p.ref for p in ps]
            if v is None:
                self._set(r, None, refs, None, self.judge.failures[i])
            else:
                self._set(r, v.p_x, refs, v.position_consistent)
        self._why.clear()  # the chunk is done (memory stays flat)
        self._gate([r for r in records if r.verification is not None and r.status == "ok"])

    def _gate(self, records: list[Record]) -> None:
        """The judge's checks on each verified record (one pointwise call for the chunk), then its
        fate: failed unless ``keep_unverified`` (then flagged)."""
        failed: dict[str, list[Check]] = {r.id: [] for r in records}
        for r in records:
            v = r.verification
            if self.min_p is None:
                continue
            if v.p_chosen is None:
                failed[r.id].append(Check(name=NOT_BETTER_CHECK, why=f"the judge could not compare: {v.detail}"))
            elif v.p_chosen < self.min_p:
                failed[r.id].append(Check(name=NOT_BETTER_CHECK, why=(
                    f"the judge prefers the draft: P(revision better) {v.p_chosen:.3f} < min_p {self.min_p:g}")))
            elif v.position_consistent is False:  # each order picked the one shown first (or second)
                failed[r.id].append(Check(name=NOT_BETTER_CHECK, why=(
                    f"the judge's two orders disagree (P(revision better) {v.p_chosen:.3f} on average): it "
                    "picked by the position shown, not by the revision")))
        if self.min_follows is not None and records:
            items = [PointItem(_prompt(r), r.final, [self.principles[ref] for ref in dict.fromkeys(
                s.principle for s in r.steps if s.revision is not None)], key=r.id) for r in records]
            for i, (r, item, pv) in enumerate(zip(records, items, self.judge.pointwise(items), strict=True)):
                if pv.failed:
                    failed[r.id].append(Check(name=STILL_BREAKS, why=f"the judge could not rate it: {pv.failed}"))
                    continue
                for p in item.principles:
                    follows = pv.by_principle[p.ref]
                    r.verification.follows[p.ref] = round(follows, 6)
                    if follows < self.min_follows:
                        failed[r.id].append(Check(name=STILL_BREAKS, principle=p.ref, why=(
                            f"the judge finds it still breaks '{p.id}': P(follows) {follows:.3f} < "
                            f"min_follows {self.min_follows:g}")))
        for r in records:
            checks = failed[r.id]
            if not checks:
                continue
            r.checks.extend(checks)
            if self.keep_unverified:  # the user opted in: flagged, kept
                for c in checks:
                    if c.name not in r.flags:
                        r.flags.append(c.name)
            else:
                r.fail(checks[0].name, "verify", "; ".join(c.why for c in checks))

    def _set(self, r: Record, p: float | None, principles: list[str], consistent: bool | None, detail: str = "") -> None:
        r.verification = Verification(p_chosen=p, principles=principles, position_consistent=consistent,
                                      min_p=self.min_p, drop_sft=self.drop_sft, judge=self.provenance, detail=detail)
        if p is not None and not r.verification.kept and NOT_BETTER not in r.flags:
            r.flags.append(NOT_BETTER)


def verify_summary(records) -> dict | None:
    """``{"judged", "better", "better_rate", "interval", "mean_p", "not_better", "min_p",
    "position_consistency"}`` over the verified records; None when none was verified."""
    from cai.core.rates import wilson

    ps, consistent, not_better, min_p = [], [], 0, None
    for r in records:
        v = r.verification
        if v is None or v.p_chosen is None:
            continue
        ps.append(v.p_chosen)
        min_p = v.min_p
        not_better += not v.kept
        if v.position_consistent is not None:
            consistent.append(v.position_consistent)
    if not ps:
        return None
    better = sum(p > 0.5 for p in ps)
    low, high = wilson(better, len(ps))
    return {"judged": len(ps), "better": better, "better_rate": round(better / len(ps), 4),
            "interval": [round(low, 4), round(high, 4)], "mean_p": round(sum(ps) / len(ps), 4),
            "not_better": not_better, "min_p": min_p,
            "position_consistency": round(sum(consistent) / len(consistent), 4) if consistent else None}
