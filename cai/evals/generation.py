"""Running the probes: every conversation of a suite goes to the backend in one batched call per
turn. Turn k of every multi-turn probe is generated together, after turn k-1 of all of them, so a
suite of single-turn probes costs one call and an escalation of three user turns costs three.
"""

from __future__ import annotations

import copy

from cai.backends import Backend, SamplingConfig
from cai.backends.rows import generate_rows
from cai.core.errors import CaiError
from cai.evals.rules import ProbeRun
from cai.evals.suites import LoadedSuite


def run_suite(backend: Backend, suite: LoadedSuite, sampling: SamplingConfig, model: str = "candidate",
              stats: dict | None = None) -> list[ProbeRun]:
    """One :class:`ProbeRun` per probe, its variants' replies generated turn by turn.

    ``stats`` (if given) collects ``calls``, ``completions``, ``completion_tokens``,
    ``length_stops`` (replies cut at ``max_tokens``) and ``rejected``: ``suite#probe: why`` for each
    probe one of whose conversations the backend rejected (too long, refused by the chat
    template); such a probe has no run, the others do."""
    sampling = sampling.model_copy(update={"n": 1})
    slots: list[tuple[int, str, list[dict]]] = []  # (probe index, variant, conversation being filled)
    for i, probe in enumerate(suite.suite.probes):
        for variant, template in probe.variants().items():
            slots.append((i, variant, copy.deepcopy(template)))
    stats = stats if stats is not None else {}
    failed: dict[int, str] = {}  # probe index -> why the backend rejected one of its conversations
    while True:
        pending = []  # (conversation being filled, probe index, index of the reply to write)
        for i, _, conv in slots:
            gap = next((j for j, m in enumerate(conv) if m["content"] is None), None)
            if gap is not None and i not in failed:
                pending.append((conv, i, gap))
        if not pending:
            break
        outputs, rejected = generate_rows(backend, [conv[:gap] for conv, _, gap in pending], sampling)
        if len(outputs) != len(pending):
            raise CaiError(f"backend returned {len(outputs)} completions for {len(pending)} conversations")
        stats["calls"] = stats.get("calls", 0) + 1
        for k, why in rejected.items():  # that probe fails alone; the suite goes on
            i = pending[k][1]
            failed.setdefault(i, f"{suite.path}#{suite.suite.probes[i].id}: {why}")
        for k, ((conv, i, gap), out) in enumerate(zip(pending, outputs)):
            if out is None:
                for m in conv[gap:]:
                    if m["content"] is None:
                        m["content"] = ""  # nothing more is asked for this conversation
                continue
            [completion] = out
            conv[gap] = {"role": "assistant", "content": completion.text}
            stats["completions"] = stats.get("completions", 0) + 1
            stats["completion_tokens"] = stats.get("completion_tokens", 0) + completion.completion_tokens
            stats["length_stops"] = stats.get("length_stops", 0) + (completion.finish_reason == "length")
    if failed:
        stats.setdefault("rejected", []).extend(failed[i] for i in sorted(failed))
    runs: dict[int, ProbeRun] = {}
    for i, variant, conv in slots:
        if i in failed:
            continue
        probe = suite.suite.probes[i]
        run = runs.setdefault(i, ProbeRun(suite, probe, model, {}, origin=f"{suite.path}#{probe.id}"))
        run.conversations[variant] = conv
    return [runs[i] for i in sorted(runs)]
