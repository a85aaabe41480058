"""Exports of SL-CAI records: TRL-ready SFT and preference datasets.

- ``OUT/sft/``: ``messages`` (the prompt plus the final revision as the assistant turn).
- ``OUT/preferences/``: TRL's conversational preference format, ``prompt``/``chosen``/``rejected``
  as lists of ``{role, content}``; chosen = final revision, rejected = draft; plus ``source``,
  ``p_chosen``, ``weight``, ``principle_ids``, ``record_id`` and provenance columns.
Each is written with ``save_to_disk`` (``hf/``) and as ``data.parquet`` and ``data.jsonl``.
"""

from __future__ import annotations

import json
from pathlib import Path

from cai.store import iter_records


def sft_rows(records_path):
    for r in iter_records(records_path):
        if r.status != "ok" or not r.final:
            continue
        prompt = [m.model_dump() for m in r.prompt]
        yield {
            "messages": prompt + [{"role": "assistant", "content": r.final}],
            "record_id": r.id, "principle_ids": r.principles,
            "constitution_hash": r.provenance.constitution_hash if r.provenance else "",
        }


def preference_rows(records_path):
    for r in iter_records(records_path):
        if r.status != "ok" or not r.final or not r.draft or r.final.strip() == r.draft.strip():
            continue
        prov = r.provenance
        yield {
            "prompt": [m.model_dump() for m in r.prompt],
            "chosen": [{"role": "assistant", "content": r.final}],
            "rejected": [{"role": "assistant", "content": r.draft}],
            "source": "ai-revision", "p_chosen": 1.0, "weight": 1.0,
            "principle_ids": r.principles, "record_id": r.id,
            "labeler": prov.critic_model if prov else "",
            "constitution_hash": prov.constitution_hash if prov else "",
        }


def _write(rows_fn, records_path: Path, target: Path) -> int:
    """Stream rows to JSONL, then build the dataset from it (Parquet + save_to_disk)."""
    import shutil
    import tempfile

    from datasets import Dataset

    target.mkdir(parents=True, exist_ok=True)
    jsonl = target / "data.jsonl"
    count = 0
    with open(jsonl, "w", encoding="utf-8") as fh:
        for row in rows_fn(records_path):
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
            count += 1
    for stale in (target / "hf", target / "data.parquet"):
        if stale.is_dir():
            shutil.rmtree(stale)
        elif stale.exists():
            stale.unlink()
    if count == 0:
        return 0
    # A private cache folder: the datasets cache is keyed by file name and could serve stale rows.
    with tempfile.TemporaryDirectory(dir=target) as cache:
        ds = Dataset.from_json(str(jsonl), cache_dir=cache)
        ds.save_to_disk(str(target / "hf"))
        ds.to_parquet(str(target / "data.parquet"))
        del ds
    return count


def export_run(out: str | Path) -> dict:
    """Write both exports for a run folder; returns row counts."""
    out = Path(out)
    records = out / "records.jsonl"
    return {
        "sft": _write(sft_rows, records, out / "sft"),
        "preferences": _write(preference_rows, records, out / "preferences"),
    }
