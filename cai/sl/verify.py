"""`cai generate --verify`: revisions the judge has checked.

After each revision step, the feedback model (the critic, or ``feedback``) compares the revision
with the response it revised, with the step principle's preference question, in both orders
(:mod:`cai.judge`, the same question, template, few-shot and debiasing as `cai label`, so the
number is the one `cai label` would give the exported pair). ``Step.p_better`` keeps it. When a
record's steps are done, ``Record.verification`` holds P(final ≻ draft): the one step's number when
a single step revised the draft, else one more comparison of final and draft under the revising
steps' principles. Below ``min_p`` the record is flagged ``revision-not-better`` and its pair stays
out of the preference export (and its SFT row too with ``verify_sft``); the record keeps everything.
Every comparison of a step (or of the chunk's ends) goes in one ``score_choices`` call.
"""

from __future__ import annotations

import logging

from cai.data.records import Record, Verification
from cai.judge import Judge, PairItem
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

    def __init__(self, constitution, backend, *, few_shot: int, min_p: float | None, drop_sft: bool):
        self.constitution = constitution
        self.judge = Judge(backend, constitution, few_shot=few_shot)
        self.min_p, self.drop_sft = min_p, drop_sft
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
            if v is None:
                log.warning("verify (record %s): comparison rejected: %s", r.id, self.judge.failures[i])
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
                self._set(r, s.p_better, [s.principle], s.position_consistent,
                          "" if s.p_better is not None else "the judge's backend rejected the comparison")
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
