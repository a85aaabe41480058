"""The SL-CAI pipeline: stage-batched draft → critique → revision (× rounds), resumable.

For each chunk of prompts: every draft in one backend call, then every critique of round 1 in
one call, every revision in one call, and so on. Finished records are appended to
``OUT/records.jsonl`` (fsync'd) after each chunk, so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import itertools
import json
import logging
import time
from collections import Counter
from pathlib import Path

from cai import __version__
from cai.backends import load_backend
from cai.backends.rows import generate_rows
from cai.principles.constitution import Constitution, load_constitution
from cai.core.errors import CaiError
from cai.judge.health import HealthCheckpoint, HealthPolicy
from cai.sl.applies import NONE_APPLIES
from cai.sl.checks import text_check
from cai.sl.parsing import clean_revision, is_repetitive, parse_critique, trim_to_sentence, without_reasoning
from cai.data.records import Check, Provenance, Record, Step
from cai.core.runs import check_resume, timed_chunks
from cai.sl import prompting
from cai.sl.config import GenerateConfig
from cai.sl.progress import StageProgress
from cai.data.store import RecordStore

log = logging.getLogger("cai.sl")


def resolve_constitution(ref: str, principles_dir: str | None) -> Constitution:
    """The constitution ``ref`` names (a YAML file, or a name under ./constitution/ or the shipped
    library's), with its principles; the error for a missing one lists where it looked."""
    from cai.principles.library import find_constitution

    return load_constitution(find_constitution(ref), principles_dir)


# Revision failures that another sample may not repeat (a refusal or an empty reply usually will).
RETRYABLE = {"echoed-critique", "repetitive", "truncated", "only-preamble", "repeated-paragraph",
             "critique-not-revision"}


class Pipeline:
    """Runs the stages for chunks of records with a policy (and optional critic) backend."""

    def __init__(self, config: GenerateConfig, constitution: Constitution, policy, critic, progress: StageProgress,
                 feedback=None):
        self.config = config
        self.constitution = constitution
        self.policy = policy
        self.critic = critic
        self.progress = progress
        self.exemplars = prompting.exemplar_messages(constitution)
        self.verifier = self.applies = self.judge = None
        health = HealthPolicy.from_options(config.min_label_mass, config.judge_health)
        if config.verify:  # the feedback model checks each revision against what it revised
            from cai.sl.verify import Verifier

            self.verifier = Verifier(constitution, feedback or critic, few_shot=config.verify_few_shot,
                                     min_p=config.min_p, drop_sft=config.verify_sft, min_follows=config.min_follows,
                                     keep_unverified=config.keep_unverified, health=health)
            self.judge = self.verifier.judge
        if config.pick == "applicable":  # the judge says which principles apply to each prompt
            from cai.judge import Judge
            from cai.sl.applies import APPLIES, Applicability

            judge = Judge(feedback or critic, constitution, scale=APPLIES, health=health)
            if self.judge is not None:  # one health record for every judgement of the run
                judge.health_tracker = self.judge.health_tracker
            self.judge = self.judge or judge
            self.applies = Applicability(constitution, judge, config.min_applies)
        self.rounds = config.rounds or constitution.spec.rounds
        self.sampling = config.sampling.model_copy(update={"n": 1})
        self.stage_sampling = {
            stage: self.sampling.model_copy(update={"max_tokens": config.max_tokens_per_stage.get(
                stage, self.sampling.max_tokens)})
            for stage in ("draft", "critique", "revision")
        }

    def sampling_record(self) -> dict:
        """The sampling as used: the shared settings, plus per-stage budgets and truncation rule."""
        out = self.sampling.model_dump(mode="json")
        if self.config.max_tokens_per_stage:
            out["max_tokens_per_stage"] = dict(self.config.max_tokens_per_stage)
        out["truncated"] = self.config.truncated
        if self.config.retries:
            out["revision_retries"] = self.config.retries
        return out

    def _revision_outcome(self, step: Step, c, before: str | None = None) -> tuple[str | None, str | None, bool]:
        """``(revision, failure kind, trimmed)`` for one completion of a revision of ``before``; no
        side effects (it may be retried)."""
        text, failure = clean_revision(c.text, c.finish_reason)
        trimmed = False
        if failure == "truncated":  # ran out of tokens: keep its full sentences if allowed
            cleaned, _ = clean_revision(c.text, "stop")
            text = self._trim(cleaned) if cleaned else None
            failure, trimmed = (None, True) if text else ("truncated", False)
        if not failure:  # the revision's text checks (cai.sl.checks): the text is kept to say why
            found = text_check(text, step.critique, before)
            failure = found[0] if found else None
        return text, failure, trimmed

    def _trim(self, text: str) -> str | None:
        """An output that ran out of tokens, cut after its last full sentence; None when the
        run's ``truncated`` rule is ``fail`` or too little would be left."""
        return trim_to_sentence(text) if self.config.truncated == "trim" else None

    def provenance(self) -> Provenance:
        c = self.constitution
        return Provenance(
            constitution=f"{c.spec.name}@{c.spec.version}", constitution_hash=c.hash,
            policy_model=self.config.policy.model,
            critic_model=(self.config.critic or self.config.policy).model,
            backend=self.config.policy.backend, sampling=self.sampling_record(),
            backend_info=self.policy.describe(),
            seed=self.sampling.seed if self.sampling.seed is not None else 0, cai_version=__version__,
        )

    def _generate(self, backend, stage: str, records: list[Record], conversations: list[list[dict]],
                  attempt: int = 0):
        """One backend call for a whole stage; returns one completion per record, None where the
        backend rejected the record's conversation (too long, refused by the chat template): that
        record is failed (``prompt-rejected``, naming its file line) and the others go on. A retry
        (``attempt`` > 0) samples with the seed moved by ``attempt``."""
        if not records:
            return []
        t0 = time.perf_counter()
        sampling = self.stage_sampling[stage]
        if attempt and sampling.seed is not None:
            sampling = sampling.model_copy(update={"seed": sampling.seed + 1000 * attempt})
        outputs, rejected = generate_rows(backend, conversations, sampling)
        if len(outputs) != len(records):
            raise CaiError(f"backend returned {len(outputs)} results for {len(records)} {stage} prompts")
        for i, why in rejected.items():
            r = records[i]
            log.warning("%s (record %s): %s prompt rejected: %s", r.source or "prompt", r.id, stage, why)
            r.fail("prompt-rejected", stage, f"{r.source or r.id}: {why}")
        completions = [o[0] if o is not None else None for o in outputs]  # n is 1: one sample per conversation
        tokens = 0
        for r, c in zip(records, completions):
            if c is None:
                continue
            r.add_tokens(stage, c.prompt_tokens, c.completion_tokens)
            if c.truncated and f"{stage}-prompt-truncated" not in r.flags:
                r.flags.append(f"{stage}-prompt-truncated")
            tokens += c.completion_tokens
        self.progress.advance(stage, len(records), tokens, time.perf_counter() - t0)
        return completions

    def run_chunk(self, records: list[Record]) -> None:
        prov = self.provenance()
        for r in records:
            r.provenance = prov
        # Drafts.
        drafts = self._generate(self.policy, "draft", records, [prompting.draft_conversation(r) for r in records])
        active = []
        for r, c in zip(records, drafts):
            if c is None:  # rejected by the backend; already failed
                continue
            text, cut = without_reasoning(c.text, c.finish_reason)
            if c.truncated:
                r.fail("prompt-too-long", "draft", "the prompt was cut to fit the context", raw=c.text)
            elif cut:
                r.fail("truncated-draft", "draft", "the token budget ran out inside the reasoning", raw=c.text)
            elif not text.strip():
                r.fail("empty-draft", "draft", raw=c.text)
            else:
                r.draft = text.strip()
                kept = self._trim(r.draft) if c.finish_reason == "length" else None
                if kept:  # an unfinished draft ends on its last full sentence
                    r.draft = kept
                    r.flags.append("draft-trimmed")
                r.draft_raw = c.text if r.draft != c.text.strip() else None
                r.final = r.draft
                active.append(r)
        # Critique and revision steps, round by round; each round may use several principles.
        # Each record's plan: (round, principle) for every step, in order.
        if self.applies is None:
            plans = {r.id: [(k, p) for k in range(self.rounds) for p in self.constitution.pick(r.id, k)]
                     for r in active}
        else:  # only the principles that apply to the prompt (a failed judgement failed its record)
            applicable = self.applies.applicable(active)
            active = [r for r in active if applicable[r.id] is not None]
            plans = {r.id: self.applies.plan(r, applicable[r.id], self.rounds) for r in active}
            for r in active:
                if not plans[r.id]:
                    r.flags.append(NONE_APPLIES)
        n_steps = max((len(v) for v in plans.values()), default=0)
        for j in range(n_steps):
            stepping = [r for r in active if r.status == "ok" and j < len(plans[r.id])]
            crit_convs = []
            for r in stepping:
                round_index, principle = plans[r.id][j]
                request = prompting.critique_request(self.constitution, principle, r, r.final, self.config.skip_ok)
                r.steps.append(Step(round=round_index, principle=principle.ref, critique_prompt=request))
                crit_convs.append(prompting.critique_conversation(r, self.exemplars, r.final, request))
            critiques = self._generate(self.critic, "critique", stepping, crit_convs)
            revising, rev_convs = [], []
            for r, conv, c in zip(stepping, crit_convs, critiques):
                if c is None:
                    continue
                step = r.steps[-1]
                text, verdict, failure = parse_critique(c.text, c.finish_reason)
                if failure:
                    r.fail(f"{failure}-critique", "critique", raw=c.text)
                    continue
                if is_repetitive(text):  # a looping critique gives the revision nothing to use
                    r.fail("repetitive-critique", "critique", raw=c.text)
                    continue
                step.critique, step.verdict = text, verdict
                step.critique_raw = c.text if without_reasoning(c.text)[0] != c.text else None
                if self.config.skip_ok and verdict == "ok":
                    step.skipped = True
                    continue
                _, principle = plans[r.id][j]
                step.revision_prompt = prompting.revision_request(self.constitution, principle, r, r.final, text)
                revising.append(r)
                rev_convs.append(prompting.revision_conversation(conv, text, step.revision_prompt))
            revisions = self._generate(self.policy, "revision", revising, rev_convs)
            kept = [i for i, c in enumerate(revisions) if c is not None]
            revising, rev_convs, revisions = ([xs[i] for i in kept] for xs in (revising, rev_convs, revisions))
            outcomes = [self._revision_outcome(r.steps[-1], c, r.final) for r, c in zip(revising, revisions)]
            for attempt in range(1, self.config.retries + 1):
                redo = [i for i, (_, failure, _) in enumerate(outcomes) if failure in RETRYABLE]
                if not redo or self.sampling.temperature == 0:  # greedy would write the same again
                    break
                again = self._generate(self.policy, "revision", [revising[i] for i in redo],
                                       [rev_convs[i] for i in redo], attempt=attempt)
                for i, c in zip(redo, again):
                    if c is None:  # rejected (already failed by _generate)
                        outcomes[i] = (None, "rejected", False)
                        continue
                    revising[i].flags.append("revision-retried")
                    revisions[i], outcomes[i] = c, self._revision_outcome(revising[i].steps[-1], c, revising[i].final)
            verified = []  # (record, principle, the text it revised)
            for r, c, (text, failure, trimmed) in zip(revising, revisions, outcomes):
                if failure == "rejected":
                    continue
                step = r.steps[-1]
                step.revision_raw = c.text
                if failure:
                    found = text_check(text, step.critique, r.final) if text else None
                    if found:  # a check failed: named on the record, with why
                        r.checks.append(Check(name=found[0], why=found[1], principle=step.principle))
                    r.fail(f"{failure}-revision", "revision", found[1] if found else "", raw=c.text)
                    continue
                if trimmed:
                    r.flags.append("revision-trimmed")
                step.revision = text
                verified.append((r, plans[r.id][j][1], r.final))
                r.final = text
            if self.verifier is not None:
                self.verifier.steps(verified)
        if self.verifier is not None:
            self.verifier.finish(records)
        for r in records:
            if r.status == "failed":
                r.final = None


def run_generate(config: GenerateConfig, *, backends: tuple | None = None, console=None) -> dict:
    """Run SL-CAI end to end and return the summary (also written to ``OUT/summary.json``).

    ``backends`` may pass already-loaded ``(policy, critic)`` or ``(policy, critic, feedback)``
    backends (tests, notebooks).
    """
    from cai.sl.export import export_run

    constitution = resolve_constitution(config.constitution, config.principles_dir)
    if "revision" not in constitution.spec.stages:
        raise CaiError(f"constitution '{constitution.name}' does not drive the 'revision' stage (stages: {constitution.spec.stages})")
    reader = config.reader(constitution.spec.system_prompt)
    # First pass: validate every row before any model time is spent; keep only ids (flat memory).
    total = sum(1 for _ in itertools.islice(reader, config.limit))
    out = Path(config.out)
    sampling = config.sampling.model_dump(mode="json")
    check_resume(out, {
        "constitution_hash": constitution.hash, "policy": config.policy.model,
        "critic": (config.critic or config.policy).model, "sampling": sampling,
        "rounds": config.rounds or constitution.spec.rounds, "skip_ok": config.skip_ok,
        **({"max_tokens_per_stage": dict(config.max_tokens_per_stage), "truncated": config.truncated}
           if config.max_tokens_per_stage or config.truncated != "trim" else {}),
        **({"retries": config.retries} if config.retries else {}),
        **({"verify": {"feedback": (config.feedback or config.critic or config.policy).model, "min_p": config.min_p,
                       "verify_sft": config.verify_sft, "few_shot": config.verify_few_shot,
                       "keep_unverified": config.keep_unverified, "min_follows": config.min_follows}}
           if config.verify else {}),
        **({"pick": {"applicable": config.min_applies, "judge": (config.feedback or config.critic or config.policy).model}}
           if config.pick == "applicable" else {}),
    })
    store = RecordStore(out)
    already = len(store.done)
    if backends is None:
        policy = load_backend(config.policy)
        critic = load_backend(config.critic) if config.critic else policy
        feedback = load_backend(config.feedback) if (config.verify or config.pick == "applicable") and config.feedback \
            else None
    else:
        policy, critic, *rest = backends
        feedback = rest[0] if rest else None
    # The input's rows not written yet (not total - already: a written row may since have been left
    # out of the input, or cut by a smaller --limit, and a finished run has none to do).
    to_do = total if not already else sum(
        1 for row in itertools.islice(reader, config.limit) if row.id not in store.done)
    started = time.perf_counter()
    with StageProgress(to_do, console=console) as progress:
        pipeline = Pipeline(config, constitution, policy, critic, progress, feedback)
        checkpoint = None
        if pipeline.judge is not None:  # the judge's health over every session (in step with records.jsonl)
            checkpoint = HealthCheckpoint(out, pipeline.judge.health_tracker)
            checkpoint.resume(already)
        todo = (row for row in itertools.islice(reader, config.limit) if row.id not in store.done)
        # The first chunk is one prompt, so an interrupt (or a crash) in the first minutes keeps
        # what finished; later chunks grow to take about flush_seconds each.
        for chunk in timed_chunks(todo, config.chunk_size, config.flush_seconds, start=1):
            records = [Record(id=row.id, prompt=row.messages, source=row.source) for row in chunk]
            pipeline.run_chunk(records)
            if checkpoint is not None:
                checkpoint.stage(records=len(store.done) + len({r.id for r in records} - store.done))
            store.append(records)
            if checkpoint is not None:
                checkpoint.commit()
            progress.records_done(len(records))
            if pipeline.judge is not None:  # judge_health: error stops here, the chunk's records kept
                pipeline.judge.health.raise_if_unhealthy()
    summary = summarize(store, progress, time.perf_counter() - started, already, constitution)
    if reader.skipped:  # rows with a blank prompt cell or unencodable text: left out, each named by file:line
        reasons = Counter(why.split(" at character")[0] for _, why in reader.left_out)
        summary["left_out"] = {"rows": len(reader.skipped), "first": reader.skipped[:20],
                               "why": "; ".join(f"{why} ({n})" if len(reasons) > 1 else why for why, n in reasons.items()),
                               "rows_why": [f"{where}: {why}" for where, why in reader.left_out[:20]]}
    if config.verify:
        from cai.sl.verify import verify_summary

        summary["verify"] = verify_summary(store)
        if summary["verify"]:
            summary["verify"]["keep_unverified"] = config.keep_unverified
        summary["revision_not_better"] = (summary["verify"] or {}).get("not_better", 0)
        summary["verify_seconds"] = round(pipeline.verifier.judge.stats["seconds"], 2)
    if pipeline.judge is not None:  # every session's judgements (verify, pick: applicable), with the floor
        summary["judge_health"] = pipeline.judge.health.to_dict()
    if pipeline.applies is not None:
        summary["applicable"] = pipeline.applies.summary()
    if config.export:
        summary["exports"] = export_run(out)
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def summarize(store: RecordStore, progress: StageProgress, seconds: float, resumed: int, constitution) -> dict:
    status, failures, flags, checks = Counter(), Counter(), Counter(), Counter()
    revised = 0
    for r in store:
        status[r.status] += 1
        flags.update(r.flags)
        checks.update({c.name for c in r.checks})  # records failing each check
        if r.failure:
            failures[r.failure.kind] += 1
        if r.status == "ok" and r.final != r.draft:
            revised += 1
    return {
        "records": sum(status.values()), "ok": status["ok"], "failed": status["failed"],
        "revised": revised, "failures": dict(failures), "flags": dict(sorted(flags.items())),
        "checks_failed": dict(sorted(checks.items())), "resumed_from": resumed,
        "constitution": constitution.ref, "seconds": round(seconds, 2), "stages": progress.stats(),
    }
