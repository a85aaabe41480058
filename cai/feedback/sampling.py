"""`cai sample`: K responses per prompt in one request each, then unlabeled pairs among them.

Samples go to ``OUT/samples.jsonl`` one row per prompt, appended and fsync'd after each chunk, so
a killed run resumes where it stopped. Pairs are rebuilt from all samples at the end and written
to ``OUT/pairs.jsonl`` as ``PreferencePair`` rows with ``source="unlabeled"``, ``p_chosen=0.5``
and ``weight=0`` (which response is "chosen" means nothing yet): the input of `cai label`.

Greedy decoding with K > 1 is refused (``SampleConfig``: it gives K copies of one response);
prompts whose samples hold fewer than two distinct non-empty responses give no pair and are
counted in the summary (``prompts_without_pairs``) with a warning, never silently.
"""

from __future__ import annotations

import itertools
import json
import logging
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from cai import __version__
from cai.backends import Backend, load_backend
from cai.backends.rows import generate_rows
from cai.core.errors import CaiError
from cai.feedback.config import SampleConfig
from cai.feedback.pairing import form_pairs
from cai.feedback.progress import Throughput
from cai.core.runs import check_resume, timed_chunks, write_atomic
from cai.data.pairs import PreferencePair, provenance_json
from cai.sl.parsing import without_reasoning
from cai.data.records import ChatMessage
from cai.data.store import RecordStore

log = logging.getLogger("cai.feedback")

SAMPLES_FILE = "samples.jsonl"
PAIRS_FILE = "pairs.jsonl"


class Sample(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str
    completion_tokens: int
    finish_reason: Literal["stop", "length"]


class SampleRecord(BaseModel):
    """One prompt's K responses, with what produced them."""

    model_config = ConfigDict(extra="forbid")

    id: str
    prompt: list[ChatMessage]
    source: str = Field(default="", description="Where the prompt came from: file:line.")
    samples: list[Sample]
    prompt_tokens: int = 0
    provenance: dict[str, Any] = Field(default_factory=dict)


def _provenance(config: SampleConfig, backend: Backend, sampling) -> dict:
    return {
        "model": config.policy.model, "backend": config.policy.backend, "backend_info": backend.describe(),
        "sampling": sampling.model_dump(mode="json"), "seed": sampling.seed, "cai_version": __version__,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def iter_samples(path: str | Path) -> Iterator[SampleRecord]:
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.endswith("\n"):
                yield SampleRecord.model_validate_json(line)


def pairs_of(record: SampleRecord, config: SampleConfig) -> list[PreferencePair]:
    """The unlabeled pairs of one prompt's samples."""
    usable = [s for s in record.samples if not (config.drop_truncated and s.finish_reason == "length")]
    # A reasoning model's <think> blocks stay in samples.jsonl but are not part of the response;
    # a sample whose budget ran out inside them has no response.
    answers = [without_reasoning(s.text, s.finish_reason) for s in usable]
    texts = [text for text, cut in answers if not cut and text.strip()]
    seed = f"{config.sampling.seed}:{record.id}"
    out = []
    for i, j in form_pairs(texts, config.pairing, config.max_pairs, seed):
        out.append(PreferencePair(
            prompt=record.prompt, chosen=[{"role": "assistant", "content": texts[i].strip()}],
            rejected=[{"role": "assistant", "content": texts[j].strip()}],
            source="unlabeled", p_chosen=0.5, weight=0.0, record_id=record.id, origin=record.source,
            labeler="", provenance=provenance_json(**record.provenance, samples=[i, j]),
        ))
    return out


def write_pair_file(samples_path: Path, target: Path, config: SampleConfig) -> tuple[int, int]:
    """Write every prompt's pairs to ``target``; returns (pairs written, prompts that gave no pair:
    fewer than two distinct non-empty usable responses)."""
    unpaired = [0]

    def rows():
        for r in iter_samples(samples_path):
            pairs = pairs_of(r, config)
            unpaired[0] += not pairs
            for p in pairs:
                yield json.dumps(p.row(), ensure_ascii=False) + "\n"

    return write_atomic(target, rows()), unpaired[0]


def run_sample(config: SampleConfig, *, backend: Backend | None = None, console=None) -> dict:
    """Sample every prompt K times and form pairs; returns the summary (also ``summary.json``)."""
    reader = config.reader()
    total = sum(1 for _ in itertools.islice(reader, config.limit))  # validate before model time
    sampling = config.sampling.model_copy(update={"n": config.n})
    out = Path(config.out)
    check_resume(out, {"prompts": str(Path(config.prompts).resolve()), "model": config.policy.model,
                       "backend": config.policy.backend, "sampling": sampling.model_dump(mode="json")})
    store = RecordStore(out, SAMPLES_FILE)
    already = len(store.done)
    owned = backend is None
    backend = load_backend(config.policy) if owned else backend
    started = time.perf_counter()
    tokens = 0
    failed: list[str] = []
    try:
        provenance = _provenance(config, backend, sampling)
        todo = (row for row in itertools.islice(reader, config.limit) if row.id not in store.done)
        with Throughput(total - min(already, total), "prompts", console, "sample") as progress:
            for chunk in timed_chunks(todo, config.chunk_size, config.flush_seconds):
                t0 = time.perf_counter()
                outputs, rejected = generate_rows(backend, [row.messages for row in chunk], sampling)
                for i, why in rejected.items():  # that prompt fails alone, named by its file line
                    log.warning("%s (prompt %s): rejected: %s", chunk[i].source, chunk[i].id, why)
                    failed.append(f"{chunk[i].source}: {why}")
                chunk = [row for i, row in enumerate(chunk) if i not in rejected]
                outputs = [o for i, o in enumerate(outputs) if i not in rejected]
                if len(outputs) != len(chunk) or any(len(o) != config.n for o in outputs):
                    raise CaiError(f"backend returned the wrong number of samples for {len(chunk)} prompts x {config.n}")
                records = [
                    SampleRecord(id=row.id, prompt=row.messages, source=row.source, provenance=provenance,
                                 prompt_tokens=completions[0].prompt_tokens,
                                 samples=[Sample(text=c.text, completion_tokens=c.completion_tokens,
                                                 finish_reason=c.finish_reason) for c in completions])
                    for row, completions in zip(chunk, outputs)
                ]
                store.append(records)
                chunk_tokens = sum(s.completion_tokens for r in records for s in r.samples)
                tokens += chunk_tokens
                progress.advance(len(records), time.perf_counter() - t0, chunk_tokens)
    finally:
        if owned:
            backend.close()
    seconds = time.perf_counter() - started
    pairs, unpaired = write_pair_file(store.path, out / PAIRS_FILE, config)
    prompts = sum(1 for _ in iter_samples(store.path))
    summary = {
        "prompts": prompts, "samples": prompts * config.n, "pairs": pairs,
        "prompts_without_pairs": unpaired, "resumed_from": already,
        "failed": len(failed), "failures": failed[:20],
        "pairing": config.pairing, "completion_tokens": tokens, "seconds": round(seconds, 2),
        "tokens_per_second": round(tokens / seconds, 1) if seconds > 0 else None,
    }
    if unpaired:
        log.warning("%d of %d prompts got fewer than two distinct responses and gave no pair%s", unpaired, prompts,
                    "" if pairs else " (is the sampling deterministic, or does the server repeat one seed for "
                    "all n samples?)")
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary
