"""Each principle's vote on each pair, through the one judge (:mod:`cai.judge`).

A principle votes the way Feedback Forensics and ICAI (Findeis et al. 2024) have it vote, but from
log-probabilities instead of generated JSON: the judge is asked the principle's preference
question about the pair with three options, (A), (B) and (C) "does not apply", in both orders
(:class:`cai.judge.Judge` with its abstain option). From its numbers, averaged over the orders,

    P(chosen) = (1 - p_abstain) p_x,   P(rejected) = (1 - p_abstain) (1 - p_x),   P(abstain),

with ``x`` the response people chose. The principle applies when the judge finds that more likely
than not (``p_abstain < 1/2``), and then votes for the response it finds more likely the better
under it: +1 (agrees with people) when ``p_x > 1/2``, -1 (disagrees) when ``p_x < 1/2``; otherwise
0 (abstains; also on an exact tie). Deciding "does it apply" and "which one" apart keeps a small
judge that spreads its mass evenly over three options from abstaining everywhere, as taking the
largest of the three numbers would.

The no-principle judge is the same judge asked :data:`NO_PRINCIPLE` with two options only: it
always answers, as the ICAI baseline does.

The question comes after both responses (:data:`PAIR_FIRST`), so every principle asked about a
pair shares the pair's text as a prompt prefix, which a prefix-caching backend (vLLM) computes
once per pair instead of once per principle; ``pair_first=False`` uses the constitution's own
template, the one `cai label` uses (question before the responses).

:func:`vote` is the one place votes are made; the stages keep them in a resumable
``votes.jsonl`` with :class:`VoteStore`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from pydantic import BaseModel

from cai.backends import Backend
from cai.data.pairs import PreferencePair
from cai.data.store import RecordStore
from cai.judge import Criterion, Judge, PairItem, criterion_ref
from cai.judge.health import HealthPolicy
from cai.principles.constitution import Constitution, ConstitutionSpec, Selection, Templates
from cai.principles.principle import Principle

NO_PRINCIPLE = "Which response is better?"
"""The question of the no-principle judge (the baseline a constitution is compared with)."""
ABSTAIN_OPTION = "Neither: the principle does not apply to these two responses."
PAIR_FIRST = (
    "Consider the following conversation between a human and an assistant:\n\n"
    "{{ conversation }}\n\n"
    "Two possible next responses of the assistant:\n"
    "(A) {{ response_a }}\n"
    "(B) {{ response_b }}\n\n"
    "{{ question }}\n"
    "Answer (A) or (B), or the option below.\n"
    "The answer is: ("
)
"""Responses first, then the question: the pair's text is a prefix shared by all principles."""


class VoteRow(BaseModel):
    """One principle's vote on one pair, as stored (``id`` = ``criterion key|pair id``)."""

    id: str
    criterion: str
    pair: str
    vote: int
    p_chosen: float
    p_rejected: float
    p_abstain: float
    consistent: bool | None = None
    label_mass: float | None = None
    """The smaller label mass of the two orders (probability on the answer labels before
    normalizing; :mod:`cai.judge.health`), where the backend reports it."""


def criterion_key(c: Criterion) -> str:
    """``id@version#hash8`` of a principle's question (an edited question without a new version
    is a new voter), or ``q#hash8`` for a plain question."""
    text = c.preference if isinstance(c, Principle) else c
    digest = hashlib.sha256((text or "").encode()).hexdigest()[:8]
    return f"{c.ref}#{digest}" if isinstance(c, Principle) else f"q#{digest}"


def judging_constitution(principles: Sequence[Principle], base: Constitution | None = None,
                         pair_first: bool = True) -> Constitution | None:
    """The constitution the judge renders with: ``base`` (its template and exemplars), with the
    pair-first template unless ``pair_first`` is off."""
    if not pair_first:
        return base
    spec = base.spec if base is not None else ConstitutionSpec(
        name="principle-test", version="0.1.0", principles=Selection(ids=["*"]), stages=["feedback"])
    spec = spec.model_copy(update={"templates": spec.templates.model_copy(update={"preference": PAIR_FIRST})})
    return Constitution(spec, list(base.principles if base is not None else principles))


def decide(p_chosen: float, p_rejected: float, p_abstain: float) -> int:
    """The vote from the three probabilities (the rule in the module docstring). Stored votes are
    decided again when read, so a stored run always follows the rule of the code reading it."""
    if p_abstain >= 0.5 or p_chosen == p_rejected:
        return 0
    return 1 if p_chosen > p_rejected else -1


def _row(c: Criterion, pair: PreferencePair, p_x: float, p_abstain: float, consistent: bool | None,
         mass: float | None = None) -> VoteRow:
    pc, pr, pa = round((1 - p_abstain) * p_x, 6), round((1 - p_abstain) * (1 - p_x), 6), round(p_abstain, 6)
    key = criterion_key(c)
    return VoteRow(id=f"{key}|{pair.id}", criterion=key, pair=pair.id, vote=decide(pc, pr, pa),
                   p_chosen=pc, p_rejected=pr, p_abstain=pa, consistent=consistent, label_mass=mass)


def vote(backend: Backend, criteria: Sequence[Criterion], pairs: Sequence[PreferencePair], *,
         constitution: Constitution | None = None, abstain: bool = True, few_shot: int = 0,
         judge: Judge | None = None, failures: dict[str, str] | None = None,
         failure_codes: dict[str, str] | None = None, health: HealthPolicy | None = None) -> list[VoteRow]:
    """Every criterion's vote on every pair (pair by pair, criterion by criterion), in one judge
    call: both orders, with the abstain option unless ``abstain`` is off. A comparison the backend
    rejects (longer than its context, refused by the chat template), or a judgement that fails
    (NaN, label mass below ``health``'s floor; :mod:`cai.judge.health`), fails its pair alone: the
    pair gets no votes here, ``failures[pair id]`` says why and ``failure_codes[pair id]`` gives
    the reason's code."""
    judge = judge or Judge(backend, constitution, few_shot=few_shot, abstain=ABSTAIN_OPTION if abstain else None,
                           health=health)
    items = [(pair, c) for pair in pairs for c in criteria]
    verdicts = judge.pairwise([PairItem([m.model_dump() for m in pair.prompt], pair.chosen_text, pair.rejected_text,
                                        [c], key=pair.id) for pair, c in items], skip_rejected=True)
    rejected = {items[i][0].id: why for i, why in judge.failures.items()}
    if failures is not None:
        failures.update(rejected)
    if failure_codes is not None:
        failure_codes.update({items[i][0].id: code for i, code in judge.failure_reasons.items()})
    return [_row(c, pair, v.p_x, v.p_abstain or 0.0, v.position_consistent, v.results[0].min_mass)
            for (pair, c), v in zip(items, verdicts, strict=True) if v is not None and pair.id not in rejected]


class VoteStore:
    """Votes kept in ``folder/name`` (append-only, fsync'd; a torn last line is dropped on open),
    so a rerun asks the judge only for the votes it does not have. ``folder=None``: in memory."""

    def __init__(self, folder: Path | None, name: str = "votes.jsonl"):
        self.store = RecordStore(folder, name) if folder is not None else None
        self.rows: dict[str, VoteRow] = {}
        if self.store is not None and self.store.path.exists():
            with open(self.store.path, encoding="utf-8") as fh:
                for line in fh:
                    row = VoteRow.model_validate_json(line)
                    row.vote = decide(row.p_chosen, row.p_rejected, row.p_abstain)
                    self.rows[row.id] = row

    def missing(self, criteria: Sequence[Criterion], pairs: Sequence[PreferencePair]) -> list[PreferencePair]:
        """The pairs on which some criterion has no stored vote."""
        keys = [criterion_key(c) for c in criteria]
        return [p for p in pairs if any(f"{k}|{p.id}" not in self.rows for k in keys)]

    def fill(self, criteria: Sequence[Criterion], pairs: Sequence[PreferencePair],
             ask: Callable[[list, list], list[VoteRow]], chunk_size: int,
             progress: Callable[[int], None] | None = None) -> int:
        """Ask ``ask(chunk of pairs, criteria)`` for the missing votes, ``chunk_size`` pairs per
        call, only of the criteria that lack some vote (a principle added to a finished run is the
        only one asked); each chunk is stored before the next is asked. Returns the votes asked."""
        todo, asked = self.missing(criteria, pairs), 0
        needed = [c for c in criteria if self.missing([c], todo)]
        for start in range(0, len(todo), chunk_size):
            chunk = todo[start:start + chunk_size]
            rows = [r for r in ask(chunk, needed) if r.id not in self.rows]
            if self.store is not None:
                self.store.append(rows)
            self.rows.update((r.id, r) for r in rows)
            asked += len(rows)
            if progress is not None:
                progress(len(chunk))
        return asked

    def matrix(self, criteria: Sequence[Criterion], pairs: Sequence[PreferencePair],
               missing: int | None = None) -> np.ndarray:
        """Votes as a (criteria, pairs) int8 array; a vote not stored is an error, or ``missing``."""
        keys = [criterion_key(c) for c in criteria]

        def get(key: str) -> int:
            row = self.rows.get(key)
            if row is None and missing is None:
                raise KeyError(f"no vote {key}")
            return missing if row is None else row.vote

        return np.array([[get(f"{k}|{p.id}") for p in pairs] for k in keys], dtype=np.int8).reshape(
            len(keys), len(pairs))

    def row(self, c: Criterion, pair: PreferencePair) -> VoteRow:
        return self.rows[self.row_id(c, pair)]

    @staticmethod
    def row_id(c: Criterion, pair: PreferencePair) -> str:
        """The stored id of ``c``'s vote on ``pair``."""
        return f"{criterion_key(c)}|{pair.id}"


def judge_provenance(backend: Backend, constitution: Constitution | None, few_shot: int = 0) -> dict:
    """What the votes come from (the judge's provenance record), for run.json and reports."""
    record = Judge(backend, constitution, few_shot=few_shot, abstain=ABSTAIN_OPTION).provenance()
    return json.loads(json.dumps(record, default=str))


__all__ = ["ABSTAIN_OPTION", "NO_PRINCIPLE", "PAIR_FIRST", "VoteRow", "VoteStore", "criterion_key",
           "criterion_ref", "judging_constitution", "judge_provenance", "vote"]
