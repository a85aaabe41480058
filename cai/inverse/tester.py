"""`cai principles test --pairs`: each principle as a voter on pairs people labeled.

For each principle and pair, a vote through the one judge (both orders, with a "does not apply"
option, :mod:`cai.inverse.votes`); per principle relevance, accuracy and strength with bootstrap
intervals and the pairs it gets most wrong; overlaps and contradictions between principles; and
the principles voting together, next to the same judge asked with no principle
(:mod:`cai.inverse.report`). Votes are kept in ``OUT/votes.jsonl`` as each chunk is done, so a
killed run resumes where it stopped, and a rerun with more principles asks only for theirs.
"""

from __future__ import annotations

import fnmatch
import time
from collections import Counter
from pathlib import Path

from cai import __version__
from cai.backends import Backend, load_backend
from cai.core.errors import CaiError
from cai.core.runs import check_resume, write_json
from cai.data.pairs import PROMPT_REPEATED, PreferencePair
from cai.feedback.inputs import iter_inputs
from cai.feedback.progress import Throughput
from cai.inverse.config import PrincipleTestConfig, VoteOptions
from cai.inverse.health import votes_health
from cai.inverse.report import data_hash, principles_report
from cai.inverse.votes import NO_PRINCIPLE, VoteStore, judge_provenance, judging_constitution, vote
from cai.principles.constitution import Constitution
from cai.principles.principle import Principle


def read_labeled(path: str, *, limit: int | None, skip_invalid: bool) -> tuple[list[PreferencePair], dict]:
    """The distinct comparable pairs of ``path`` and the counts of rows left out (a human tie,
    p_chosen 0.5, among them: ``human_tie``)."""
    skipped: Counter = Counter()
    pairs = list(iter_inputs(path, skip_invalid=skip_invalid, limit=limit, counts=skipped))
    skipped["human_tie"] = sum(p.p_chosen == 0.5 for p in pairs)  # no pick for a principle to agree with
    pairs = [p for p in pairs if p.p_chosen != 0.5]
    repeated = skipped.pop(PROMPT_REPEATED, 0)
    counts = {k: v for k, v in skipped.items() if v}
    if not pairs:
        raise CaiError(f"no comparable pairs (skipped: {counts or 'none'})", path=str(path))
    return pairs, counts | ({"prompt_repeated_kept": repeated} if repeated else {})


def select_principles(config: PrincipleTestConfig) -> tuple[list[Principle], Constitution | None, list[str]]:
    """The principles to test (those with a ``## Preference`` question), the constitution they
    come from (if any), and the ids left out for having no question."""
    if config.constitution:
        from cai.sl.pipeline import resolve_constitution

        constitution = resolve_constitution(config.constitution, config.principles_dir)
        chosen = list(constitution.principles)
    else:
        from cai.principles.library import load_principles_dir

        constitution = None
        library = load_principles_dir(config.principles_dir or "principles")
        chosen = []
        for pattern in config.principles or ["*"]:
            hits = [p for pid, p in sorted(library.items()) if fnmatch.fnmatchcase(pid, pattern)]
            if not hits:
                raise CaiError(f"no principle matches '{pattern}' in {config.principles_dir or 'principles'}")
            chosen += [p for p in hits if p not in chosen]
    usable = [p for p in chosen if p.preference]
    if not usable:
        raise CaiError("none of these principles has a '## Preference' question to vote with")
    return usable, constitution, [p.id for p in chosen if not p.preference]


def collect_votes(store: VoteStore, backend: Backend, principles: list[Principle], pairs: list[PreferencePair],
                  options: VoteOptions, constitution: Constitution | None, console=None, name: str = "cai",
                  failures: dict[str, str] | None = None, codes: dict[str, str] | None = None) -> dict:
    """Fill ``store`` with every principle's vote and the no-principle judge's on every pair; a
    pair the backend rejects, or whose judgement fails (NaN, label mass below the floor), gets none
    (``failures[pair id]`` says why, ``codes[pair id]`` the reason's code; a rerun asks again)."""
    failures = {} if failures is None else failures
    codes = {} if codes is None else codes
    policy = options.health_policy()
    render_with = judging_constitution(principles, constitution, options.pair_first)
    todo = store.missing(principles, pairs)
    base_todo = store.missing([NO_PRINCIPLE], pairs)
    asked = Counter()
    with Throughput(len(todo) + len(base_todo), "pairs", console, name) as progress:
        def ask(chunk, criteria, **kw):
            t0 = time.perf_counter()
            rows = vote(backend, criteria, chunk, failures=failures, failure_codes=codes, health=policy, **kw)
            progress.advance(len(chunk), time.perf_counter() - t0)
            return rows

        asked["votes"] = store.fill(principles, todo, lambda chunk, needed: ask(
            chunk, needed, constitution=render_with, few_shot=options.few_shot), options.chunk_size)
        asked["no_principle_votes"] = store.fill([NO_PRINCIPLE], base_todo, lambda chunk, needed: ask(
            chunk, needed, abstain=False), options.chunk_size)
    return dict(asked)


def complete(store: VoteStore, criteria: list, pairs: list[PreferencePair], failures: dict[str, str]
             ) -> tuple[list[PreferencePair], list[dict]]:
    """``(pairs with every vote, the failed ones as {pair, origin, reason})``."""
    ok = [p for p in pairs if not store.missing(criteria, [p])]
    failed = [{"pair": p.id, "origin": p.origin, "reason": failures.get(p.id, "no vote")}
              for p in pairs if store.missing(criteria, [p])]
    return ok, failed


def run_principle_test(config: PrincipleTestConfig, *, backend: Backend | None = None, console=None) -> dict:
    """Test the principles on the pairs; returns the report (also OUT/report.json and report.html)."""
    if config.pairs is None:
        raise CaiError("pairs: run_principle_test needs labeled pairs (a principle's own examples: "
                       "cai.evals.principle_check.check_principles)")
    started = time.perf_counter()
    pairs, skipped = read_labeled(config.pairs, limit=config.limit, skip_invalid=config.skip_invalid)
    principles, constitution, no_question = select_principles(config)
    owned = backend is None
    backend = load_backend(config.judge) if owned else backend
    try:
        render_with = judging_constitution(principles, constitution, config.pair_first)
        judge = judge_provenance(backend, render_with, config.few_shot)
        out = Path(config.out) if config.out else None
        if out is not None:
            check_resume(out, {"pairs": data_hash(pairs), "judge": {k: judge[k] for k in ("model", "backend",
                               "template_hash", "few_shot")}})
        store = VoteStore(out)
        failures: dict[str, str] = {}
        codes: dict[str, str] = {}
        asked = collect_votes(store, backend, principles, pairs, config, constitution, console, "principles test",
                              failures, codes)
    finally:
        if owned:
            backend.close()
    pairs, failed = complete(store, principles + [NO_PRINCIPLE], pairs, failures)
    health = votes_health(store, principles + [NO_PRINCIPLE], pairs, failed, codes, config.health_policy())
    if not pairs:
        raise CaiError(f"every pair failed: {failed[0]['origin'] or failed[0]['pair']}: {failed[0]['reason']}")
    rows = [[store.row(p, pair) for pair in pairs] for p in principles]
    report = principles_report([p.ref for p in principles], store.matrix(principles, pairs), rows, pairs,
                               store.matrix([NO_PRINCIPLE], pairs)[0], n_boot=config.n_boot, seed=config.seed,
                               worst=config.worst, titles=[p.title for p in principles])
    failing = [] if config.min_strength is None else [
        m["principle"] for m in report["principles"] if (m["strength"]["value"] or 0.0) < config.min_strength]
    report.update(
        file=str(config.pairs), data_hash=data_hash(pairs), skipped=skipped, without_question=no_question,
        constitution_ref=constitution.ref if constitution is not None else None, judge=judge,
        no_principle_question=NO_PRINCIPLE, min_strength=config.min_strength, below_min_strength=failing,
        asked=asked, failed=len(failed), failed_pairs=failed[:20], cai_version=__version__,
        seconds=round(time.perf_counter() - started, 2), judge_health=health.to_dict())
    if out is not None:
        from cai.inverse.page import test_page

        write_json(out / "report.json", report)
        (out / "report.html").write_text(test_page(report), encoding="utf-8")
    health.raise_if_unhealthy(config.health_policy())  # --judge-health error (the report is written)
    return report
