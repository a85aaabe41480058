"""Judge health: is the judge answering, and can its verdicts be believed? One record for every stage.

A judge's option probabilities are normalized over the answer labels, which hides a judge that is
not answering (a reasoning model that starts with ``<think>``, a template/tokenizer mismatch): it
still yields confident-looking labels from ~1e-20 of its next-token probability. The label mass
before normalizing (:attr:`cai.backends.ChoiceProbs.mass`, read from the same forward pass, so the
check is ~free) shows it. Beside it: position consistency (do both orders pick the same response?)
and length bias (how often the vote follows the longer response, beside how often people's own
choices do when they are known).

- :class:`HealthPolicy`: the thresholds, the same everywhere (label-mass floor from
  ``CAI_MIN_LABEL_MASS`` when set, else 0.1), and ``on_unhealthy`` (``"warn"`` or ``"error"``).
- :func:`judgement_failure`: why one ``score_choices`` row cannot be used (``"nan"``,
  ``"labels_missing"``, ``"below_label_mass"``, a backend's ``"parse"``), or None. Such a
  judgement is a FAILURE, counted by id: never a label, a reward of 0 or a p of 0.5.
- :class:`HealthTracker`: what the :class:`~cai.judge.Judge` feeds (every judgement, every
  comparison); :meth:`HealthTracker.report` gives a :class:`JudgeHealth`.
- :class:`HealthCheckpoint`: a tracker's state saved in a run folder (``judge_health.state.json``)
  in step with the run's records, so a resumed run reports every session's judgements once.
- :class:`JudgeHealth`: n, failures by reason with the first ids, label-mass summary, position
  consistency and length bias (each with n and a Wilson interval), sources, per principle, status
  (``healthy`` | ``weak`` | ``unhealthy`` | ``unknown``) with reasons; ``to_dict`` / ``from_dict``
  (JSON), ``lines`` (terminal, plain text), ``html`` (escaped), ``raise_if_unhealthy``.

    judge = Judge(backend, constitution, health=HealthPolicy(on_unhealthy="error"))
    verdicts = judge.pairwise(items)         # a failed judgement: verdict.failed, judge.failures
    h = judge.health                          # JudgeHealth since the judge was made (reset_health())
    print("\\n".join(h.lines())); summary["judge_health"] = h.to_dict()
    h.raise_if_unhealthy(judge.health_policy) # CaiError (one line) only with on_unhealthy="error"

Sources of the checks: open-instruct PR #62 and t2v_metrics#41 (normalized label probabilities hide
a judge that is not answering); Zheng et al. 2023, "Judging LLM-as-a-judge" (position and
verbosity bias).
"""

from __future__ import annotations

import base64
import json
import math
import os
import sys
from array import array
from collections import Counter
from pathlib import Path

from cai.core.rates import MIN_N
from cai.core.runs import write_atomic
from cai.judge.health_record import (
    DEFAULT_MIN_LABEL_MASS, ENV_MIN_LABEL_MASS, HealthPolicy, JudgeHealth, MassSummary, Rate,
)

__all__ = [
    "DEFAULT_MIN_LABEL_MASS", "ENV_MIN_LABEL_MASS", "FAILURE_REASONS", "STATE_FILE", "HealthCheckpoint", "HealthPolicy",
    "HealthTracker", "JudgeHealth", "MassSummary", "Rate", "assess", "failure_text", "judgement_failure",
]

FAILURE_REASONS = ("nan", "labels_missing", "below_label_mass", "parse", "rejected")
"""Why a judgement failed: NaN log-probs; no answer label among the returned (top) log-probs; label
mass under the floor; a generated verdict that could not be parsed; the backend rejected the prompt
(too long for the context, refused by the chat template)."""
FIRST_IDS = 10  # ids kept per failure reason


def judgement_failure(probs, policy: HealthPolicy) -> str | None:
    """Why one ``score_choices`` row cannot be used as a judgement, or None if it can.

    ``probs``: a row (``ChoiceProbs`` or a plain dict; None = the backend rejected it). A backend
    that could not read a row may set ``probs.failure`` (``"parse"``, ``"labels_missing"``).
    Order: rejected, the backend's own reason, NaN, no mass on the labels, mass below the floor.
    """
    if probs is None:
        return "rejected"
    reason = getattr(probs, "failure", None)
    if reason:
        return str(reason)
    mass = getattr(probs, "mass", None)
    if (mass is not None and math.isnan(mass)) or any(isinstance(v, float) and math.isnan(v) for v in probs.values()):
        return "nan"
    if mass is not None and mass <= 0.0:
        return "labels_missing"
    if mass is not None and mass < policy.min_label_mass:
        return "below_label_mass"
    return None


def failure_text(reason: str, probs=None, policy: HealthPolicy | None = None) -> str:
    """One line for a failed judgement, e.g. ``label mass 3.2e-20 < floor 0.1 (...)``."""
    mass = getattr(probs, "mass", None)
    if reason == "nan":
        return "the judge's log-probabilities are NaN (a broken model or numeric overflow): no judgement"
    if reason == "labels_missing":
        return "no answer label among the judge's returned log-probabilities: no judgement"
    if reason == "below_label_mass":
        floor = policy.min_label_mass if policy is not None else DEFAULT_MIN_LABEL_MASS
        shown = f"{mass:.2g}" if mass is not None else "?"
        return (f"label mass {shown} < floor {floor:g}: the judge's next token is not an answer label "
                f"(set --min-label-mass or {ENV_MIN_LABEL_MASS} to change the floor)")
    if reason == "parse":
        return "the judge's generated verdict could not be parsed: no judgement"
    return reason


# ------------------------------------------------------------------ building it


class _Counts:
    """What one scope (overall, or one principle) has seen."""

    def __init__(self):
        self.n = 0
        self.failures: Counter = Counter()
        self.failed_ids: dict[str, list[str]] = {}
        self.masses = array("d")  # 8 bytes a judgement: exact quantiles at any run size
        self.sources: Counter = Counter()
        self.position = Rate(0, 0)
        self.length = Rate(0, 0)
        self.human = Rate(0, 0)

    def judgement(self, reason: str | None, mass: float | None, source: str | None, id: str | None) -> None:
        self.n += 1
        if mass is not None and not math.isnan(mass):
            self.masses.append(mass)
        if source:
            self.sources[source] += 1
        if reason is not None:
            self.failures[reason] += 1
            ids = self.failed_ids.setdefault(reason, [])
            if id is not None and len(ids) < FIRST_IDS and str(id) not in ids:
                ids.append(str(id))

    def comparison(self, consistent: bool | None, p_x: float | None, len_x: int, len_y: int,
                   human_x: bool | None) -> None:
        if consistent is not None:
            self.position = Rate(self.position.n + 1, self.position.k + bool(consistent))
        if len_x == len_y:
            return
        x_longer = len_x > len_y
        if p_x is not None and not math.isnan(p_x) and p_x != 0.5:
            self.length = Rate(self.length.n + 1, self.length.k + ((p_x > 0.5) == x_longer))
        if human_x is not None:
            self.human = Rate(self.human.n + 1, self.human.k + (bool(human_x) == x_longer))

    def state(self) -> dict:
        """Everything counted, JSON-ready (the label masses as base64 of their 8-byte floats)."""
        return {"n": self.n, "failures": dict(self.failures), "failed_ids": {k: list(v) for k, v in self.failed_ids.items()},
                "masses": base64.b64encode(self.masses.tobytes()).decode("ascii"), "byteorder": sys.byteorder,
                "sources": dict(self.sources), "position": [self.position.n, self.position.k],
                "length": [self.length.n, self.length.k], "human": [self.human.n, self.human.k]}

    @classmethod
    def from_state(cls, d: dict) -> _Counts:
        c = cls()
        c.n = int(d["n"])
        c.failures = Counter({str(k): int(v) for k, v in d["failures"].items()})
        c.failed_ids = {str(k): [str(x) for x in v] for k, v in d["failed_ids"].items()}
        c.masses.frombytes(base64.b64decode(d["masses"]))
        if d.get("byteorder", sys.byteorder) != sys.byteorder:
            c.masses.byteswap()
        c.sources = Counter({str(k): int(v) for k, v in d["sources"].items()})
        c.position, c.length, c.human = (Rate(int(d[k][0]), int(d[k][1])) for k in ("position", "length", "human"))
        return c

    def report(self, policy: HealthPolicy, per_principle: dict[str, JudgeHealth]) -> JudgeHealth:
        h = JudgeHealth(n=self.n, failures=dict(self.failures), failed_ids={k: list(v) for k, v in self.failed_ids.items()},
                        label_mass=MassSummary.of(self.masses), position=self.position, length=self.length,
                        human_length=self.human if self.human.n else None, sources=dict(self.sources),
                        per_principle=per_principle, policy=policy)
        assess(h, policy)
        return h


class HealthTracker:
    """Accumulates judge health as judgements are made; :meth:`report` -> :class:`JudgeHealth`.

    The :class:`~cai.judge.Judge` feeds one (``judge.health_tracker``); a stage that judges by
    other means (a generated verdict, a reward model) can feed its own:

        tracker = HealthTracker(policy)
        reason = tracker.judgement(probs, id="line 7", principle="concise@1")   # None, or why it failed
        tracker.comparison(principle="concise@1", consistent=True, p_x=0.8, x=text_x, y=text_y, human_x=True)
        health = tracker.report()

    :meth:`state` / :meth:`restore` carry what it has counted across processes (a resumed run:
    :class:`HealthCheckpoint`); :attr:`notes` are added to every report's notes.
    """

    def __init__(self, policy: HealthPolicy | None = None):
        self.policy = policy or HealthPolicy()
        self.reset()

    def reset(self) -> None:
        """Forget everything seen (e.g. at each training step)."""
        self._all = _Counts()
        self._by: dict[str, _Counts] = {}
        self.notes: list[str] = []

    def state(self) -> dict:
        """What has been counted, as a JSON-ready dict that :meth:`restore` reads back."""
        return {"version": 1, "all": self._all.state(), "by": {ref: c.state() for ref, c in self._by.items()},
                "notes": list(self.notes)}

    def restore(self, state: dict) -> None:
        """Replace what has been counted with ``state`` (from :meth:`state`); the policy stays
        this tracker's. Raises ValueError (or KeyError, TypeError) on a state it cannot read."""
        if state.get("version") != 1:
            raise ValueError(f"unknown judge-health state version {state.get('version')!r}")
        counts = _Counts.from_state(state["all"])
        by = {str(ref): _Counts.from_state(c) for ref, c in state["by"].items()}
        self._all, self._by, self.notes = counts, by, [str(n) for n in state.get("notes", [])]

    def _scopes(self, principle: str | None) -> list[_Counts]:
        return [self._all] + ([self._by.setdefault(principle, _Counts())] if principle is not None else [])

    def judgement(self, probs, *, id: str | None = None, principle: str | None = None) -> str | None:
        """Count one ``score_choices`` row (None: rejected by the backend); return why it failed, or None."""
        reason = judgement_failure(probs, self.policy)
        mass = getattr(probs, "mass", None) if probs is not None else None
        source = getattr(probs, "source", None) if probs is not None else None
        for scope in self._scopes(principle):
            scope.judgement(reason, mass, source, id)
        return reason

    def failure(self, reason: str, *, id: str | None = None, principle: str | None = None) -> None:
        """Count a judgement that failed before any probabilities existed (e.g. ``"parse"``, ``"rejected"``)."""
        for scope in self._scopes(principle):
            scope.judgement(reason, None, None, id)

    def comparison(self, *, principle: str | None, consistent: bool | None, p_x: float | None, x: str, y: str,
                   human_x: bool | None = None) -> None:
        """Count one decided comparison of ``x`` against ``y`` (P(x ≻ y) = ``p_x``; lengths in characters
        of the stripped texts); ``human_x``: people preferred x (None: unknown). ``principle`` None:
        the overall (principle-averaged) comparison only."""
        lx, ly = len(x.strip()), len(y.strip())
        scopes = [self._by.setdefault(principle, _Counts())] if principle is not None else [self._all]
        for scope in scopes:
            scope.comparison(consistent, p_x, lx, ly, human_x)

    def report(self) -> JudgeHealth:
        per = {ref: c.report(self.policy, {}) for ref, c in sorted(self._by.items())}
        h = self._all.report(self.policy, per)
        h.notes = list(self.notes) + h.notes
        return h


STATE_FILE = "judge_health.state.json"
"""The judge-health state a resumable run keeps in its folder (:class:`HealthCheckpoint`)."""


class HealthCheckpoint:
    """A :class:`HealthTracker`'s state kept in a run folder in step with the run's records, so a
    resumed run's health record covers every judgement of the run once, not the last session's.

    The run stages the state (the records there will be once the chunk is written) before it
    appends the chunk's records, and commits it after; both files are replaced atomically. On
    resume the saved state whose record count equals the records on disk is restored: a kill
    after the append (before the commit) restores the staged state, a kill before or during the
    append the previous one (the chunk is judged again). Neither matching (an older run, a
    folder edited by hand): the tracker starts empty and its reports say so in a note.

        checkpoint = HealthCheckpoint(out, judge.health_tracker)
        checkpoint.resume(len(store.done))
        for chunk in ...:
            ...judge the chunk...
            checkpoint.stage(records=len(store.done) + len(new))
            store.append(new)
            checkpoint.commit()
    """

    def __init__(self, folder: str | Path, tracker: HealthTracker, name: str = STATE_FILE):
        self.tracker = tracker
        self.path = Path(folder) / name
        self.staged = self.path.with_name(self.path.stem + ".staged.json")

    def _read(self, path: Path) -> dict | None:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def resume(self, records: int) -> bool:
        """Restore the state saved with ``records`` records written; True when one was found.
        Otherwise (with records already written) the tracker's reports note that the judgements
        of earlier sessions are not in them."""
        for path in (self.staged, self.path):
            data = self._read(path)
            if data is None or data.get("records") != records:
                continue
            try:
                self.tracker.restore(data["tracker"])
            except (KeyError, TypeError, ValueError):
                continue
            floor = data.get("min_label_mass")
            if floor is not None and floor != self.tracker.policy.min_label_mass:
                note = (f"judgements before the run resumed were checked against the label-mass floor {floor:g}, "
                        f"later ones against {self.tracker.policy.min_label_mass:g}")
                if note not in self.tracker.notes:
                    self.tracker.notes.append(note)
            if path == self.staged:
                os.replace(self.staged, self.path)
            self.staged.unlink(missing_ok=True)
            return True
        self.staged.unlink(missing_ok=True)
        if records:
            self.tracker.notes.append(
                f"the run resumed at {records} records without a saved judge-health state matching them "
                f"({self.path.name}): this record covers only the judgements made since")
        return False

    def stage(self, records: int) -> None:
        """Save the tracker's state as it will be once ``records`` records are written."""
        write_atomic(self.staged, [json.dumps({"records": records, "min_label_mass": self.tracker.policy.min_label_mass,
                                               "tracker": self.tracker.state()})])

    def commit(self) -> None:
        """The staged state is now the run's (call after the records were appended)."""
        if self.staged.exists():
            os.replace(self.staged, self.path)


def assess(h: JudgeHealth, policy: HealthPolicy) -> JudgeHealth:
    """Set ``h.status``, ``h.reasons`` and ``h.notes`` from its figures and ``policy`` (in place)."""
    bad, weak, notes = [], [], []
    if h.failed:
        share = h.failed / h.n if h.n else 1.0
        why = ", ".join(f"{k} {v}" for k, v in sorted(h.failures.items()))
        (bad if share > policy.max_failed_share else weak).append(f"{h.failed} of {h.n} judgements failed ({why})")
    m = h.label_mass
    if m.n and m.median is not None and m.median < policy.weak_label_mass:
        weak.append(f"median label mass {m.median:.2g} < {policy.weak_label_mass:g}: the judge's next token is "
                    "often not an answer label")
    pos = h.position
    if pos.n:
        if pos.interval[1] < policy.min_position_consistency:
            bad.append(f"position consistency {pos.text('comparisons')}: the answers follow the order shown, "
                       "not the responses")
        elif pos.interval[1] < policy.weak_position_consistency or (
                pos.n >= MIN_N and pos.rate < policy.weak_position_consistency):
            weak.append(f"position consistency {pos.text('comparisons')} < {policy.weak_position_consistency:.0%}")
    ln = h.length
    if ln.n >= policy.min_n:
        if h.human_length is not None and h.human_length.n >= policy.min_n:
            if abs(ln.rate - h.human_length.rate) > policy.length_gap:
                weak.append(f"length bias: the vote follows the longer response in {ln.text()}, people "
                            f"in {h.human_length.text()}")
        elif ln.rate > policy.max_length_bias or ln.rate < 1 - policy.max_length_bias:
            weak.append(f"length bias: the vote follows the longer response in {ln.text()}")
    if h.sources.get("generated"):
        notes.append(f"{h.sources['generated']} judgements read from generated text: p is 0 or 1, not calibrated")
    if h.sources.get("top_logprobs"):
        notes.append(f"{h.sources['top_logprobs']} judgements read from a server's top log-probs: labels "
                     "outside them are bounded, not known")
    h.reasons, h.notes = bad + weak, notes
    if bad:
        h.status = "unhealthy"
    elif weak:
        h.status = "weak"
    elif h.n - h.failed < policy.min_n:
        h.status = "unknown"
        if h.n:
            h.reasons = [f"only {h.n} judgements (< {policy.min_n}): too few to call the judge healthy"]
    else:
        h.status = "healthy"
    return h
