"""`cai eval agreement`: how well AI labels agree with human labels on the same items.

Two kinds of input:

- human pairwise labels (any preference file; ``chosen`` is the human's pick): the AI labels the
  same pairs (or they are read from a `cai label` output, joined on the order-independent pair id)
  and is right when it gives the human's pick a probability above 0.5;
- a multiple-choice evaluation file (``prompt``/``corrects``/``incorrects``): the model is right
  when a correct option gets the highest probability.

Reported: accuracy, Cohen's kappa (chance-corrected agreement), expected calibration error
(confidence = the probability of the AI's pick, in equal-width bins), position consistency,
per-principle accuracy, and the judge's health (:mod:`cai.judge.health`: label mass, failed
judgements, position consistency, and length bias beside the people's own rate of choosing the
longer response), overall and per principle. This is the place to qualify a judge on human pairs
before its labels or rewards are used.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path

from cai.backends import Backend, load_backend
from cai.core.errors import CaiError, looked_at
from cai.feedback.choice_eval import is_choice_file, read_choice_rows, score_rows
from cai.feedback.config import AgreementConfig, LabelOptions
from cai.feedback.forensics import measure, vote_from_p
from cai.feedback.inputs import iter_inputs
from cai.feedback.labeler import Labeler, feedback_principles
from cai.data.pairs import PROMPT_REPEATED, PreferencePair, read_pairs
from cai.judge.health import HealthPolicy, HealthTracker, JudgeHealth

log = logging.getLogger("cai.feedback")


def expected_calibration_error(confidences: Sequence[float], correct: Sequence[bool], bins: int = 10,
                               low: float = 0.5) -> float:
    """Sum over equal-width confidence bins on [low, 1] of (share of items) x |accuracy - mean
    confidence|. ``low`` is 1/(number of options): the least confidence a pick can have."""
    if not confidences:
        return 0.0
    width = (1.0 - low) / bins
    groups: dict[int, list[tuple[float, bool]]] = defaultdict(list)
    for c, ok in zip(confidences, correct, strict=True):
        groups[min(int((c - low) / width), bins - 1) if width > 0 else 0].append((c, ok))
    total = len(confidences)
    return sum(len(g) / total * abs(sum(ok for _, ok in g) / len(g) - sum(c for c, _ in g) / len(g))
               for g in groups.values())


def _flip_for(human: PreferencePair, ai: PreferencePair) -> bool:
    """True when the AI chose the human's rejected response."""
    return ai.chosen_text.strip() != human.chosen_text.strip()


def cohens_kappa(a: Sequence[bool], b: Sequence[bool], z: float = 1.96) -> dict:
    """Cohen's kappa of two raters' binary answers (Cohen 1960): (p_o - p_e) / (1 - p_e), with a
    large-sample 95% interval (SE = sqrt(p_o (1 - p_o) / n) / (1 - p_e)). ``{"n", "kappa", "low",
    "high"}``; kappa None when n is 0 or chance agreement is 1 (both raters always said the same)."""
    n = len(a)
    if n == 0:
        return {"n": 0, "kappa": None, "low": None, "high": None}
    p_o = sum(x == y for x, y in zip(a, b, strict=True)) / n
    pa, pb = sum(a) / n, sum(b) / n
    p_e = pa * pb + (1 - pa) * (1 - pb)
    if p_e >= 1.0:
        return {"n": n, "kappa": None, "low": None, "high": None}
    kappa = (p_o - p_e) / (1 - p_e)
    se = math.sqrt(p_o * (1 - p_o) / n) / (1 - p_e)
    half = max(z * se, z / (n * (1 - p_e)))  # never zero-width (p_o of 0 or 1 at small n)
    return {"n": n, "kappa": round(kappa, 4), "low": round(max(-1.0, kappa - half), 4),
            "high": round(min(1.0, kappa + half), 4)}


def _first(pair: PreferencePair) -> str:
    """One of the pair's two responses, picked by a hash of the order-independent pair id: a side
    that depends neither on which one the human chose nor on the texts (a content rule such as
    "the shorter" would make one rater constant and kappa degenerate), so kappa compares two
    raters' choices of the same, effectively random, side."""
    a, b = sorted((pair.chosen_text.strip(), pair.rejected_text.strip()))
    return a if hashlib.sha256(pair.id.encode()).digest()[0] % 2 == 0 else b


def pairwise_report(humans: Sequence[PreferencePair], ai: dict[str, PreferencePair], bins: int = 10) -> dict:
    """Compare AI labels with the human picks (pairs missing from ``ai`` are counted, not scored;
    so are the human's ties, p_chosen 0.5: ``human_ties``). Cohen's kappa compares which side
    (the first in text order) each picked, over the pairs the AI decided."""
    confidences, correct, ties, missing, human_ties = [], [], 0, 0, 0
    human_side, ai_side = [], []
    consistency = Counter()
    per_principle: dict[str, list[int]] = defaultdict(list)
    for h in humans:
        if h.p_chosen == 0.5:  # the human saw no winner: nothing for the AI to agree with
            human_ties += 1
            continue
        a = ai.get(h.id)
        if a is None:
            missing += 1
            continue
        flip = _flip_for(h, a)
        p_human = 1.0 - a.p_chosen if flip else a.p_chosen  # AI's P(the human's pick is better)
        ties += p_human == 0.5
        if p_human != 0.5:
            human_first = h.chosen_text.strip() == _first(h)
            human_side.append(human_first)
            ai_side.append((p_human > 0.5) == human_first)
        correct.append(p_human > 0.5)
        confidences.append(max(p_human, 1.0 - p_human))
        if a.position_consistent is not None:
            consistency[a.position_consistent] += 1
        for s in a.scores:
            per_principle[s.principle].append(vote_from_p(1.0 - s.p if flip else s.p))
    n = len(correct)
    checked = consistency[True] + consistency[False]
    return {
        "kind": "pairwise", "n": n, "missing": missing, "ties": ties, "human_ties": human_ties,
        "accuracy": round(sum(correct) / n, 4) if n else None,
        "kappa": cohens_kappa(human_side, ai_side),
        "ece": round(expected_calibration_error(confidences, correct, bins), 4) if n else None,
        "position_consistency": round(consistency[True] / checked, 4) if checked else None,
        "position_checked": checked,
        "per_principle": {k: _principle_accuracy(v) for k, v in sorted(per_principle.items())},
    }


def _principle_accuracy(votes: list[int]) -> dict:
    """One principle's accuracy against the human picks: the measure `cai principles test --pairs`
    reports (:mod:`cai.feedback.forensics`); a probability of exactly 0.5 is no vote (a tie)."""
    m = measure(votes)
    return {"n": m["n"], "accuracy": m["accuracy"]["value"], "ci": m["accuracy"]["ci"], "ties": m["abstain"]}


def choice_report(rows, probs: Sequence[dict[str, float] | None], bins: int = 10,
                  failures: Sequence[str] = ()) -> dict:
    """Accuracy and calibration on the rows scored (a None in ``probs`` is a failed row, left out);
    ``failed`` counts the ``failures`` (``file:line: why``), the first 20 listed."""
    scored = [(row, p) for row, p in zip(rows, probs, strict=True) if p is not None]
    rows = [row for row, _ in scored]
    confidences, correct = [], []
    for row, p in scored:
        pick = max(p, key=p.get)
        correct.append(pick in row.corrects)
        confidences.append(p[pick])
    n = len(correct)
    fewest = min(len(r.options) for r in rows)
    return {
        "kind": "multiple-choice", "n": n, "missing": 0, "ties": 0,
        "accuracy": round(sum(correct) / n, 4),
        "ece": round(expected_calibration_error(confidences, correct, bins, low=1.0 / fewest), 4),
        "position_consistency": None, "per_principle": {},
        "failed": len(failures), "failures": list(failures[:20]),
    }


def _need_model(config: AgreementConfig, backend: Backend | None) -> None:
    if backend is None and config.labeler is None:
        raise CaiError("no model given: pass --model (or --labels with a `cai label` output)")


def run_agreement(config: AgreementConfig, *, backend: Backend | None = None) -> dict:
    """Compute the agreement report (written as JSON to ``config.out`` when set)."""
    started = time.perf_counter()
    path = Path(config.file)
    if not path.exists():
        raise CaiError(f"no such file or folder{looked_at(path)}", path=str(path))
    owned = False
    try:
        if is_choice_file(path):
            rows = read_choice_rows(path, config.limit, config.seed)  # validated before model time
            _need_model(config, backend)
            owned = backend is None
            backend = load_backend(config.labeler) if owned else backend
            tracker = HealthTracker(config.health_policy())
            probs, failures = score_rows(backend, rows, config.chunk_size, health=tracker)
            for why in failures[:20]:
                log.warning("agreement: %s", why)
            if failures and len(failures) == len(rows):
                raise CaiError(f"every row failed (first: {failures[0]})", path=str(path))
            report = choice_report(rows, probs, config.bins, failures)
            report["judge_health"] = tracker.report().to_dict()
        else:
            skipped: Counter = Counter()
            humans = list(iter_inputs(path, limit=config.limit, counts=skipped))
            repeated = skipped.pop(PROMPT_REPEATED, 0)
            skipped = {k: v for k, v in skipped.items() if v}
            if not humans:
                raise CaiError(f"no comparable pairs (skipped: {skipped or 'none'})", path=str(path))
            labeler = None
            if config.labels:
                ai = {p.id: p for p in read_pairs(config.labels)}
                health = health_from_labels(humans, ai, config.health_policy())
            else:
                ai, labeler = _label(config, humans, backend)
                health = labeler.judge.health
            report = pairwise_report(humans, ai, config.bins)
            report.update(skipped=skipped, prompt_repeated=repeated, judge_health=health.to_dict())
            if labeler is not None:
                failed = sum(labeler.failed_by_reason.values())
                report.update(missing=report["missing"] - failed, failed=failed,
                              failed_by_reason=dict(labeler.failed_by_reason),
                              failures=[f"{where}: {why}" for where, why in labeler.failed[:20]])
            if report["n"] == 0 and report["human_ties"] == len(humans):
                raise CaiError(f"every one of the {len(humans)} pairs is a human tie (p_chosen 0.5): "
                               "nothing to agree with", path=str(path))
            if report["n"] == 0 and report.get("failed"):
                raise CaiError(f"every judgement failed: {report['failed']} of {len(humans)} pairs "
                               f"({', '.join(f'{k} {v}' for k, v in sorted(report['failed_by_reason'].items()))}); "
                               f"first, {report['failures'][0]}", path=str(path))
            if report["n"] == 0:
                raise CaiError(f"none of the {len(humans)} pairs of {path} is in the labels {config.labels}")
    finally:
        if owned:
            backend.close()
    report.update(file=str(path), labels=config.labels, seconds=round(time.perf_counter() - started, 2))
    if config.out:
        Path(config.out).parent.mkdir(parents=True, exist_ok=True)
        Path(config.out).write_text(json.dumps(report, indent=2))
    if report.get("judge_health"):  # --judge-health error: an unhealthy judge fails the command (report kept)
        JudgeHealth.from_dict(report["judge_health"]).raise_if_unhealthy(config.health_policy(), "labeler")
    return report


def health_from_labels(humans: Sequence[PreferencePair], ai: dict[str, PreferencePair],
                       policy: HealthPolicy) -> JudgeHealth:
    """Judge health from stored `cai label` output (no model run): position consistency and length
    bias (overall and per principle, beside the people's own rate); label mass and failed
    judgements are unknown here (they are in that run's summary.json)."""
    tracker = HealthTracker(policy)
    for h in humans:
        a = ai.get(h.id)
        if a is None or h.p_chosen == 0.5:
            continue
        x_is_ai_chosen = a.chosen_text.strip() == h.chosen_text.strip()  # x = the human's pick
        p_x = a.p_chosen if x_is_ai_chosen else 1.0 - a.p_chosen
        tracker.comparison(principle=None, consistent=a.position_consistent, p_x=p_x, x=h.chosen_text,
                           y=h.rejected_text, human_x=True)
        for s in a.scores:
            consistent = None if s.p_first is None or s.p_second is None else (s.p_first - 0.5) * (s.p_second - 0.5) > 0
            tracker.comparison(principle=s.principle, consistent=consistent, p_x=s.p if x_is_ai_chosen else 1.0 - s.p,
                               x=h.chosen_text, y=h.rejected_text, human_x=True)
    health = tracker.report()
    health.notes.append("label mass and failed judgements: not known from stored labels (see their summary.json)")
    return health


def _label(config: AgreementConfig, humans: list[PreferencePair], backend: Backend | None) -> tuple[dict, Labeler]:
    from cai.sl.pipeline import resolve_constitution

    if config.constitution is None:
        raise CaiError("no constitution given: pass --constitution to label the pairs (or --labels)")
    constitution = resolve_constitution(config.constitution, config.principles_dir)
    feedback_principles(constitution)
    _need_model(config, backend)
    owned = backend is None
    backend = load_backend(config.labeler) if owned else backend
    try:
        options = LabelOptions.model_validate(config.model_dump(include=set(LabelOptions.model_fields)))
        labeler = Labeler(constitution, backend, options)
        out = {}
        for start in range(0, len(humans), config.chunk_size):
            for pair in labeler.label(humans[start:start + config.chunk_size], backend.config.model, human=True):
                out[pair.id] = pair
        return out, labeler
    finally:
        if owned:
            backend.close()
