"""`cai label`: AI preference labels as normalized log-probabilities (soft labels).

For a chunk of pairs, the judge (:mod:`cai.judge`) renders every comparison (pair x principle x
order), then, with chain-of-thought, generates all reasonings in one call, and scores every
comparison in one ``score_choices`` call: no decoding of verdicts, and the shared prefixes
(few-shot turns, the conversation and question) are computed once by a prefix-caching backend.

Labeled pairs are appended (fsync'd) to ``OUT/labels.jsonl`` after each chunk, so a killed run
resumes without repeating or duplicating a pair (the judge's health record is kept in step
beside it, ``judge_health.state.json``, so the summary covers every session's judgements; a pair
whose judgement failed is not written and is judged again by the next session); at the end the whole set is written as a
preference dataset (``data.jsonl``, ``data.parquet``, ``hf/``).
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path

from cai import __version__
from cai.backends import Backend, load_backend
from cai.principles.constitution import Constitution
from cai.core.errors import CaiError
from cai.feedback.config import LabelConfig, LabelOptions
from cai.feedback.inputs import iter_inputs
from cai.feedback.progress import Throughput
from cai.core.runs import check_resume, timed_chunks
from cai.data.pairs import PROMPT_REPEATED, PreferencePair, provenance_json, write_pairs
from cai.principles.principle import Principle
from cai.data.store import RecordStore
from cai.judge import Cot, Judge, PairItem, PairLabel
from cai.judge.health import HealthCheckpoint

log = logging.getLogger("cai.feedback")

LABELS_FILE = "labels.jsonl"
MAX_FAILURES_KEPT = 20  # failed pairs listed (where: why) in the summary; all are counted
MAX_FAILURES_LOGGED = 10  # failed pairs logged one line each as they happen


def feedback_principles(constitution: Constitution) -> list[Principle]:
    """The constitution's principles that can compare responses; a one-line error if none can."""
    if "feedback" not in constitution.spec.stages:
        raise CaiError(f"constitution '{constitution.name}' does not drive the 'feedback' stage "
                       f"(stages: {constitution.spec.stages})")
    usable = [p for p in constitution.principles if p.preference]
    if not usable:
        raise CaiError(f"constitution '{constitution.name}' has no principle with a '## Preference' section")
    return usable


def _picker(constitution: Constitution, per_pair: int | str | None) -> Constitution:
    """The constitution to pick principles with: its own sampling over the principles that have a
    preference question, or that sampling with ``per_pair`` principles (or all)."""
    spec = constitution.spec
    if per_pair == "all":
        spec = spec.model_copy(update={"sampling": spec.sampling.model_copy(update={"strategy": "all"})})
    elif per_pair is not None:  # k principles: the constitution's strategy, or seeded random if it takes all
        strategy = "random" if spec.sampling.strategy == "all" else spec.sampling.strategy
        sampling = spec.sampling.model_copy(update={"per_round": per_pair, "strategy": strategy})
        spec = spec.model_copy(update={"sampling": sampling})
    return Constitution(spec, feedback_principles(constitution), constitution.path)


class Labeler:
    """Labels chunks of pairs with one backend under one constitution, through the judge."""

    def __init__(self, constitution: Constitution, backend: Backend, options: LabelOptions):
        self.constitution = constitution
        self.backend = backend
        self.options = options
        self.picker = _picker(constitution, options.principles_per_pair)
        c = options.cot
        cot = Cot(c.prompt, c.sampling, c.clamp) if c.enabled else None
        self.judge = Judge(backend, constitution, few_shot=options.few_shot, both_orders=options.both_orders,
                           seed=options.seed, cot=cot, health=options.health_policy())
        self.stats = self.judge.stats
        self.failed: list[tuple[str, str]] = []
        """(pair origin or id, why) of the first failed pairs (rejected by the backend, or a failed
        judgement: NaN, label mass below the floor); never labeled."""
        self.failed_by_reason: Counter = Counter()
        """Failed pairs by reason (``rejected``, ``nan``, ``below_label_mass``, ...)."""

    def principles(self, pair: PreferencePair) -> list[Principle]:
        """The principles this pair is judged under (seeded by the order-independent pair id)."""
        return self.picker.pick(pair.id, 0)

    def items(self, pairs: Sequence[PreferencePair], human: bool = False) -> list[PairItem]:
        """The judge's questions: each pair under its principles (x = the pair's first response).
        ``human``: the pairs carry people's choices (``chosen``, unless p_chosen is 0.5), so judge
        health can put the judge's length bias beside people's own."""
        return [PairItem([m.model_dump() for m in pair.prompt], pair.chosen_text, pair.rejected_text,
                         self.principles(pair), key=pair.id,
                         human_x=(pair.p_chosen > 0.5 if pair.p_chosen != 0.5 else None) if human else None)
                for pair in pairs]

    def label(self, pairs: Sequence[PreferencePair], labeler: str = "", provenance: str = "",
              human: bool = False) -> list[PreferencePair]:
        """Soft labels for ``pairs``: one generate call (with CoT) and one score_choices call. A pair
        whose judgement fails (rejected, NaN, label mass below the floor) is left out and counted in
        :attr:`failed` / :attr:`failed_by_reason`. ``human``: see :meth:`items`."""
        if not pairs:
            return []
        verdicts = self.judge.pairwise(self.items(pairs, human), skip_rejected=True)
        out = []
        for i, (pair, v) in enumerate(zip(pairs, verdicts, strict=True)):
            if v is None:  # rejected, or a judgement failed (NaN, label mass below the floor): fails alone
                reason = self.judge.failure_reasons.get(i, "rejected")
                self.failed_by_reason[reason] += 1
                if len(self.failed) < MAX_FAILURES_KEPT:
                    self.failed.append((pair.origin or pair.id, self.judge.failures[i]))
                if sum(self.failed_by_reason.values()) <= MAX_FAILURES_LOGGED:
                    log.warning("label: %s: %s", pair.origin or pair.id, self.judge.failures[i])
                continue
            out.append(self._pair(pair, v.label, labeler, provenance))
        return out

    def _pair(self, pair: PreferencePair, verdict: PairLabel, labeler: str, provenance: str) -> PreferencePair:
        chosen, rejected = (pair.chosen, pair.rejected) if verdict.x_chosen else (pair.rejected, pair.chosen)
        if pair.provenance:
            provenance = _with_input(provenance, pair.provenance)
        return PreferencePair(
            id=pair.id, prompt=pair.prompt, chosen=chosen, rejected=rejected, source="ai-feedback",
            p_chosen=verdict.p_chosen, weight=1.0, principle_ids=[s.principle for s in verdict.scores],
            record_id=pair.record_id, labeler=labeler, constitution_hash=self.constitution.hash,
            scores=verdict.scores, position_consistent=verdict.position_consistent, origin=pair.origin,
            provenance=provenance,
        )

    def provenance(self) -> str:
        """What produced the labels (JSON), shared by every pair of a run."""
        c, o = self.constitution, self.options
        judge = self.judge.provenance()
        fields = dict(
            constitution=f"{c.spec.name}@{c.spec.version}", constitution_hash=c.hash,
            model=self.backend.config.model, backend=self.backend.config.backend,
            backend_info=self.backend.describe(), principles_per_pair=o.principles_per_pair,
            both_orders=o.both_orders, few_shot=o.few_shot, seed=o.seed, cai_version=__version__,
            cot=o.cot.model_dump(mode="json") if o.cot.enabled else None,
            judge={"template_hash": judge["template_hash"], "orders": judge["orders"]},
        )
        return provenance_json(**fields)


def _with_input(provenance: str, previous: str) -> str:
    """Keep the input pair's own provenance (e.g. how `cai sample` made it) inside ours."""
    ours = json.loads(provenance) if provenance else {}
    try:
        ours["input"] = json.loads(previous)
    except json.JSONDecodeError:
        ours["input"] = previous
    return provenance_json(**ours)


# ---------------------------------------------------------------------------- the run


def iter_labels(path: str | Path) -> Iterator[PreferencePair]:
    """Labeled pairs from a ``labels.jsonl`` (complete lines only)."""
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.endswith("\n"):
                yield PreferencePair.model_validate_json(line)


def run_label(config: LabelConfig, *, backend: Backend | None = None, console=None) -> dict:
    """Label every input pair and write the dataset; returns the summary (also ``summary.json``).

    ``backend`` may pass an already-loaded feedback model (tests, notebooks).
    """
    from cai.sl.pipeline import resolve_constitution

    constitution = resolve_constitution(config.constitution, config.principles_dir)
    feedback_principles(constitution)
    # Validate every input row before any model time is spent; keep only counts (flat memory).
    skipped: Counter = Counter()
    total = sum(1 for _ in iter_inputs(config.pairs, skip_invalid=config.skip_invalid, limit=config.limit,
                                       counts=skipped))
    if total == 0:
        raise CaiError(f"no pairs to label in {config.pairs} (skipped: {dict(skipped) or 'none'})")
    out = Path(config.out)
    options = LabelOptions.model_validate(config.model_dump(include=set(LabelOptions.model_fields)))
    check_resume(out, {
        "pairs": str(Path(config.pairs).resolve()), "constitution_hash": constitution.hash,
        "labeler": config.labeler.model, "backend": config.labeler.backend,
        "options": options.model_dump(mode="json", exclude={"chunk_size", "flush_seconds", "min_label_mass",
                                                             "judge_health"}),
    })
    store = RecordStore(out, LABELS_FILE)  # append-only, fsync'd, torn last line repaired
    already = len(store.done)
    owned = backend is None
    backend = load_backend(config.labeler) if owned else backend
    started = time.perf_counter()
    try:
        labeler = Labeler(constitution, backend, options)
        # The judge's health over every session of the run (kept in step with labels.jsonl).
        checkpoint = HealthCheckpoint(out, labeler.judge.health_tracker)
        checkpoint.resume(already)
        provenance = labeler.provenance()
        todo = (p for p in iter_inputs(config.pairs, skip_invalid=config.skip_invalid, limit=config.limit)
                if p.id not in store.done)
        # The input's pairs not labeled yet (a labeled pair may since have left the input or the --limit).
        to_do = total if not already else sum(
            1 for p in iter_inputs(config.pairs, skip_invalid=config.skip_invalid, limit=config.limit)
            if p.id not in store.done)
        with Throughput(to_do, "pairs", console, "label") as progress:
            for chunk in timed_chunks(todo, config.chunk_size, config.flush_seconds):
                t0 = time.perf_counter()
                tokens = labeler.stats["cot_tokens"]
                labeled = labeler.label(chunk, config.labeler.model, provenance)
                checkpoint.stage(records=len(store.done) + len({p.id for p in labeled} - store.done))
                store.append(labeled)
                checkpoint.commit()
                progress.advance(len(labeled), time.perf_counter() - t0, labeler.stats["cot_tokens"] - tokens)
                labeler.judge.health.raise_if_unhealthy(labeler.judge.health_policy, "labeler")  # --judge-health error
    finally:
        if owned:
            backend.close()
    seconds = time.perf_counter() - started
    failed = sum(labeler.failed_by_reason.values())
    health = labeler.judge.health
    repeated = skipped.pop(PROMPT_REPEATED, 0)  # kept rows, not skipped ones
    summary = summarize(iter_labels(store.path) if store.path.exists() else [], seconds, already, dict(skipped))
    summary.update(constitution=constitution.ref, comparisons=labeler.stats["comparisons"], written=0,
                   prompt_repeated=repeated, failed=failed, failed_by_reason=dict(labeler.failed_by_reason),
                   failures=[f"{where}: {why}" for where, why in labeler.failed[:MAX_FAILURES_KEPT]],
                   judge_health=health.to_dict())
    if getattr(backend, "stats", None):  # e.g. labels a server left out of its top log-probs
        summary["backend_counts"] = dict(backend.stats)
    if summary["pairs"] == 0 and failed:  # every pair failed: say why in one line, keep the summary
        (out / "summary.json").write_text(json.dumps(summary, indent=2))
        where, why = labeler.failed[0]
        raise CaiError(f"no pair labeled: {failed} of {total} pairs failed "
                       f"({', '.join(f'{k} {v}' for k, v in sorted(labeler.failed_by_reason.items()))}); "
                       f"first, {where}: {why} (details: {out / 'summary.json'})")
    summary["written"] = write_pairs(iter_labels(store.path), out)
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def summarize(pairs, seconds: float, resumed: int, skipped: dict) -> dict:
    n = margin = 0
    consistent = [0, 0]  # pairs consistent, pairs scored in both orders
    per_principle: Counter = Counter()
    for pair in pairs:
        n += 1
        margin += abs(pair.p_chosen - 0.5)
        if pair.position_consistent is not None:
            consistent[0] += pair.position_consistent
            consistent[1] += 1
        per_principle.update(pair.principle_ids)
    return {
        "pairs": n, "resumed_from": resumed, "skipped": skipped,
        "mean_margin": round(margin / n, 4) if n else None,
        "position_consistency": round(consistent[0] / consistent[1], 4) if consistent[1] else None,
        "position_checked": consistent[1],
        "per_principle": dict(sorted(per_principle.items())), "seconds": round(seconds, 2),
    }
