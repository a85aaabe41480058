"""The numbers of a principle test: per principle, between principles, and all of them together.

Built from a (principles, pairs) vote matrix (:mod:`cai.inverse.votes`) with the measures of
:mod:`cai.feedback.forensics`; one set of bootstrap draws over the pairs serves every interval of
a report, so two principles' intervals rest on the same resamples.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

from cai.data.pairs import PreferencePair
from cai.feedback.forensics import agreement, agreement_gap, boot_indices, measure, relations, set_votes
from cai.inverse.votes import VoteRow

SNIPPET = 400


def data_hash(pairs: Sequence[PreferencePair]) -> str:
    """sha256 of the pairs as judged (each pair's id and which response was chosen), whatever
    file format they were read from."""
    h = hashlib.sha256()
    for p in pairs:
        h.update(f"{p.id}:{hashlib.sha256(p.chosen_text.encode()).hexdigest()}\n".encode())
    return h.hexdigest()


def _cut(text: str) -> str:
    return text if len(text) <= SNIPPET else text[:SNIPPET] + "…"


def worst_pairs(rows: Sequence[VoteRow], pairs: Sequence[PreferencePair], k: int) -> list[dict]:
    """The ``k`` pairs a principle got most surely wrong (it picked the rejected response)."""
    wrong = sorted((i for i, r in enumerate(rows) if r.vote == -1), key=lambda i: -rows[i].p_rejected)[:k]
    return [{"pair": pairs[i].id, "origin": pairs[i].origin, "p_rejected": rows[i].p_rejected,
             "prompt": _cut(pairs[i].prompt[-1].content), "chosen": _cut(pairs[i].chosen_text),
             "rejected": _cut(pairs[i].rejected_text)} for i in wrong]


def consistency(rows: Sequence[VoteRow]) -> dict:
    """Share of votes whose two orders preferred the same response, with its n."""
    known = [r.consistent for r in rows if r.consistent is not None]
    return {"value": round(sum(known) / len(known), 4) if known else None, "n": len(known)}


def principles_report(names: Sequence[str], votes: np.ndarray, rows: Sequence[Sequence[VoteRow]],
                      pairs: Sequence[PreferencePair], baseline: np.ndarray, *, n_boot: int = 1000, seed: int = 0,
                      worst: int = 3, titles: Sequence[str] | None = None) -> dict:
    """Per principle (ranked by strength), their relations, and the set of all of them against the
    no-principle judge, on the same pairs."""
    idx = boot_indices(len(pairs), n_boot, seed)
    per = []
    for i, name in enumerate(names):
        m = measure(votes[i], idx=idx)
        m.update(principle=name, title=(titles[i] if titles else name), position_consistency=consistency(rows[i]),
                 worst=worst_pairs(rows[i], pairs, worst))
        per.append(m)
    per.sort(key=lambda m: (-(m["strength"]["value"] or 0.0), m["principle"]))
    together = set_votes(votes, range(len(names)))
    return {
        "pairs": len(pairs), "principles": per,
        "relations": relations(votes, list(names)),
        "constitution": agreement(together, idx=idx),
        "no_principle": agreement(baseline, idx=idx),
        "constitution_minus_no_principle": agreement_gap(together, baseline, idx=idx),
    }
