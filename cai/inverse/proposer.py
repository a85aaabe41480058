"""`cai principles propose`: principles that explain the choices in labeled pairs (inverse CAI).

After Findeis et al. 2024 (*Inverse Constitutional AI*), with three changes: votes come from
log-probabilities in both orders through the one judge, not generated JSON; candidates are
selected by the accuracy of the *set* voting together, not each on its own; and the chosen set is
scored on pairs it never saw. Stages, each written to a numbered file in ``OUT`` as it goes, so
a killed run picks up where it stopped (``run.json`` refuses a folder holding another run):

1. ``01-proposals.jsonl``: per train pair, up to ``per_pair`` principles from the proposer
   (batched generation, the answer prefilled with "1. Select the response that"; answers that
   still hold no principle are counted as unparseable);
2. ``02-candidates.json``: the proposals clustered, one representative each (:mod:`.cluster`);
3. ``03-votes.jsonl``: every candidate's vote on every train pair, and the no-principle judge's
   on every pair (:mod:`.votes`);
4. ``04-selection.json``: the greedy set (:mod:`.select`), its votes on the held-out pairs, and
   there its accuracy next to the no-principle judge's and an existing constitution's;
5. ``principles/*.md`` and ``constitution/NAME.yaml``, ``report.json``, ``report.html``,
   ``summary.json``.
"""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from pathlib import Path

from pydantic import BaseModel

from cai import __version__
from cai.backends import Backend, load_backend
from cai.backends.rows import generate_rows
from cai.core.errors import CaiError
from cai.core.runs import check_resume, write_atomic, write_json
from cai.data.pairs import PreferencePair
from cai.data.store import RecordStore
from cai.feedback.forensics import agreement, agreement_gap, boot_indices, measure, set_votes
from cai.feedback.progress import Throughput
from cai.inverse.cluster import cluster
from cai.inverse.config import ProposeConfig
from cai.inverse.health import votes_health
from cai.inverse.proposals import PREFILL, parse_proposals, preferred_first, render_proposal
from cai.inverse.report import data_hash, principles_report
from cai.inverse.select import greedy_select
from cai.inverse.tester import collect_votes, complete, read_labeled
from cai.inverse.votes import NO_PRINCIPLE, VoteStore, judge_provenance, judging_constitution
from cai.inverse.writing import candidate_principle, provenance_text, slug, write_outputs
from cai.principles.principle import Principle


class ProposalRow(BaseModel):
    """One train pair's proposals, as stored."""

    id: str
    preferred: str
    principles: list[str]
    raw: str


def split(pairs: list[PreferencePair], held_out: float, seed: int) -> tuple[list[PreferencePair], list[PreferencePair]]:
    """``(train, held out)``: each pair held out with probability ``held_out``, seeded by its id
    (so the split does not depend on the order or number of pairs)."""
    test = [random.Random(f"{seed}:split:{p.id}").random() < held_out for p in pairs]
    return [p for p, t in zip(pairs, test) if not t], [p for p, t in zip(pairs, test) if t]


def propose(store: RecordStore, backend: Backend, pairs: list[PreferencePair], config: ProposeConfig, console,
            failures: dict[str, str]) -> None:
    """Stage 1: proposals for the pairs that have none stored, chunk by chunk; a pair the backend
    rejects fails alone (``failures[pair id]``; a rerun asks again)."""
    todo = [p for p in pairs if p.id not in store.done]
    with Throughput(len(todo), "pairs", console, "propose") as progress:
        for start in range(0, len(todo), config.chunk_size):
            chunk = todo[start:start + config.chunk_size]
            t0 = time.perf_counter()
            outputs, reasons = generate_rows(backend, [render_proposal(p, config.per_pair, config.seed) for p in chunk],
                                             config.sampling.model_copy(update={"n": 1}))
            failures.update({chunk[i].id: why for i, why in reasons.items()})
            done = [(p, out[0]) for p, out in zip(chunk, outputs, strict=True) if out is not None]
            store.append([ProposalRow(id=p.id, preferred="A" if preferred_first(p, config.seed) else "B",
                                      principles=parse_proposals(PREFILL + c.text, config.per_pair),
                                      raw=PREFILL + c.text) for p, c in done])
            progress.advance(len(chunk), time.perf_counter() - t0, sum(c.completion_tokens for _, c in done))


def _read_rows(path: Path) -> list[ProposalRow]:
    with open(path, encoding="utf-8") as fh:
        return [ProposalRow.model_validate_json(line) for line in fh if line.endswith("\n")]


def candidates(out: Path, rows: list[ProposalRow], config: ProposeConfig) -> list[dict]:
    """Stage 2 (read back when done): the clusters, each with its principle id."""
    path = out / "02-candidates.json"
    if path.exists():
        return json.loads(path.read_text())["candidates"]
    clusters = cluster([t for r in rows for t in r.principles], config.max_candidates,
                       embedding_model=config.embedding_model)
    taken: set[str] = set()
    for c in clusters:
        c["id"] = slug(c["text"], taken)
    write_atomic(path, [json.dumps({"method": "embeddings" if config.embedding_model else "tf-idf",
                                    "max_candidates": config.max_candidates, "candidates": clusters}, indent=2)])
    return clusters


def _constitution_votes(config: ProposeConfig, store: VoteStore, backend, held, console, failures) -> tuple | None:
    """An existing constitution's set votes on the held-out pairs (a pair whose vote failed: 0, a
    coin flip)."""
    if not config.constitution:
        return None
    from cai.sl.pipeline import resolve_constitution

    existing = resolve_constitution(config.constitution, config.principles_dir)
    usable = [p for p in existing.principles if p.preference]
    if not usable:
        raise CaiError(f"constitution '{existing.name}' has no principle with a '## Preference' question")
    collect_votes(store, backend, usable, held, config, existing, console, "propose: constitution", failures)
    return existing, set_votes(store.matrix(usable, held, missing=0), range(len(usable)))


def run_propose(config: ProposeConfig, *, backend: Backend | None = None, judge: Backend | None = None,
                console=None) -> dict:
    """Propose, test, select and write principles; returns the summary (also OUT/summary.json)."""
    started = time.perf_counter()
    pairs, skipped = read_labeled(config.pairs, limit=config.limit, skip_invalid=config.skip_invalid)
    train, held = split(pairs, config.test_size, config.seed)
    if not train:
        raise CaiError(f"all {len(pairs)} pairs were held out: lower --test-size")
    out = Path(config.out)
    loaded: list[Backend] = []
    if backend is None:
        backend = load_backend(config.proposer)
        loaded.append(backend)
    if judge is None:
        judge = backend if config.judge is None else load_backend(config.judge)
        if judge is not backend:
            loaded.append(judge)
    try:
        return _run(config, out, pairs, train, held, skipped, backend, judge, console, started)
    finally:
        for b in loaded:
            b.close()


def _run(config, out, pairs, train, held, skipped, backend, judge, console, started) -> dict:
    vote_judge = judge_provenance(judge, judging_constitution([], None, config.pair_first), config.few_shot)
    check_resume(out, {
        "pairs": data_hash(pairs), "proposer": {"model": backend.config.model, "backend": backend.config.backend},
        "judge": {k: vote_judge[k] for k in ("model", "backend", "template_hash", "few_shot")},
        "options": config.model_dump(mode="json", include={"per_pair", "sampling", "test_size", "seed", "max_candidates",
                                                           "embedding_model"}),
    })
    store = RecordStore(out, "01-proposals.jsonl")
    failures: dict[str, str] = {}
    codes: dict[str, str] = {}
    propose(store, backend, train, config, console, failures)
    rows = _read_rows(store.path)
    unparseable = sum(1 for r in rows if not r.principles)
    clusters = candidates(out, rows, config)
    if not clusters:
        raise CaiError(f"the proposer wrote no parseable principle for any of {len(rows)} pairs "
                       f"(see {store.path}); try a larger model or more pairs")
    cands = [candidate_principle(c["text"], c["id"]) for c in clusters]
    votes = VoteStore(out, "03-votes.jsonl")
    collect_votes(votes, judge, cands, train, config, None, console, "propose: test", failures, codes)
    failed = [{"pair": p.id, "origin": p.origin, "reason": failures.get(p.id, "no proposal")}
              for p in train if p.id not in store.done]  # their proposals failed; they still vote
    train, failed_votes = complete(votes, cands + [NO_PRINCIPLE], train, failures)
    failed += [f for f in failed_votes if f["pair"] not in {g["pair"] for g in failed}]
    if not train:
        raise CaiError(f"every train pair failed: {failed[0]['origin'] or failed[0]['pair']}: {failed[0]['reason']}")
    train_v = votes.matrix(cands, train)
    selection = greedy_select(train_v, [c.id for c in cands], config.n)
    chosen = [cands[i] for i in selection["chosen"]]
    held_report = {"pairs": len(held)}
    if held:
        collect_votes(votes, judge, chosen, held, config, None, console, "propose: held out", failures, codes)
        held, failed_held = complete(votes, chosen + [NO_PRINCIPLE], held, failures)
        failed += failed_held
        held_report["pairs"] = len(held)
    if held and not chosen:  # nothing selected: no set to score (an empty set's "accuracy" is a coin flip)
        held_report["nothing_selected"] = True
    elif held:
        idx = boot_indices(len(held), config.n_boot, config.seed)
        mine = set_votes(votes.matrix(chosen, held), range(len(chosen)))
        base = votes.matrix([NO_PRINCIPLE], held)[0]
        held_report.update(selected=agreement(mine, idx=idx), no_principle=agreement(base, idx=idx),
                           selected_minus_no_principle=agreement_gap(mine, base, idx=idx))
        existing = _constitution_votes(config, votes, judge, held, console, failures)
        if existing is not None:
            held_report.update(constitution=existing[0].ref, constitution_accuracy=agreement(existing[1], idx=idx),
                               selected_minus_constitution=agreement_gap(mine, existing[1], idx=idx))
    health = votes_health(votes, cands + [NO_PRINCIPLE], train + held, failed, codes, config.health_policy())
    train_report = principles_report([c.id for c in cands], train_v, [[votes.row(c, p) for p in train] for c in cands],
                                     train, votes.matrix([NO_PRINCIPLE], train)[0], n_boot=config.n_boot,
                                     seed=config.seed, titles=[c.preference for c in cands])
    by_id = {m["principle"]: m for m in train_report["principles"]}
    for m in train_report["principles"]:
        cl = next(c for c in clusters if c["id"] == m["principle"])
        m.update(size=cl["size"], members=cl["members"][:5])
    info = {"file": config.pairs, "data_hash": data_hash(pairs), "proposer": backend.config.model,
            "judge": judge.config.model, "train": len(train), "held_out": len(held),
            "held_out_accuracy": held_report.get("selected"), "votes": str(out / "03-votes.jsonl"),
            "cai_version": __version__}
    final = [candidate_principle(p.preference, p.id, provenance_text(by_id[p.id], info | {
        "size": next(c["size"] for c in clusters if c["id"] == p.id)})) for p in chosen]
    written = []
    if final:
        written = write_outputs(out, final, config.name,
                                f"Principles proposed by `cai principles propose` from {config.pairs} "
                                f"(data sha256 {info['data_hash'][:16]}); selected greedily by set accuracy "
                                f"on {len(train)} train pairs.")
    selection.update(selected=[p.id for p in final], held_out=held_report)
    write_json(out / "04-selection.json", selection)
    report = train_report | {
        "file": str(config.pairs), "data_hash": info["data_hash"], "skipped": skipped, "train": len(train),
        "held_out": held_report, "selection": selection, "proposals": len(rows), "unparseable": unparseable,
        "proposed_principles": sum(len(r.principles) for r in rows), "candidates": len(cands),
        "judge": vote_judge, "proposer": backend.describe(), "no_principle_question": NO_PRINCIPLE,
        "written": [str(p) for p in written], "failed": len(failed), "failed_pairs": failed[:20],
        "judge_health": health.to_dict(), "cai_version": __version__,
        "seconds": round(time.perf_counter() - started, 2),
    }
    from cai.inverse.page import propose_page

    write_json(out / "report.json", report)
    (out / "report.html").write_text(propose_page(report), encoding="utf-8")
    summary = {k: report[k] for k in ("train", "proposals", "unparseable", "proposed_principles", "candidates",
                                      "seconds", "skipped", "failed", "failed_pairs", "judge_health")}
    summary.update(pairs=len(pairs), held_out=held_report, selected=selection["selected"], steps=selection["steps"],
                   stopped=selection["stopped"], written=report["written"],
                   counts=dict(Counter(len(r.principles) for r in rows)))
    write_json(out / "summary.json", summary)
    health.raise_if_unhealthy(config.health_policy())  # --judge-health error (everything is written)
    return summary
