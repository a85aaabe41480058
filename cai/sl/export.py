"""Exports of SL-CAI records: TRL-ready SFT and preference datasets.

- ``OUT/sft/``: ``messages`` (the prompt plus the final revision as the assistant turn).
- ``OUT/preferences/``: TRL's conversational preference format, ``prompt``/``chosen``/``rejected``
  as lists of ``{role, content}``; chosen = final revision, rejected = draft; plus ``source``,
  ``p_chosen``, ``weight``, ``principle_ids``, ``record_id`` and provenance columns. ``p_chosen`` is
  1.0, or with ``--verify`` the judge's P(final ≻ draft); a pair the judge put below ``min_p``
  stays out (and its SFT row too when the run said so).
Each is a dataset folder (``hf/`` in ``save_to_disk``'s layout, ``data.parquet``, ``data.jsonl``),
written as the records are read (:mod:`cai.data.dataset_files`): memory stays flat in the run's size.
"""

from __future__ import annotations

from pathlib import Path

from cai.data.pairs import features, write_rows
from cai.data.store import iter_records


def sft_features():
    """The SFT export's columns (what ``datasets`` inferred from its JSONL before it was streamed)."""
    from datasets import Features, List, Value

    return Features({
        "messages": List({"role": Value("string"), "content": Value("string")}),
        "record_id": Value("string"), "principle_ids": List(Value("string")), "constitution_hash": Value("string"),
    })


def sft_rows(records_path):
    for r in iter_records(records_path):
        if r.status != "ok" or not r.final:
            continue
        v = r.verification
        if v is not None and v.drop_sft and v.p_chosen is not None and not v.kept:
            continue
        prompt = [m.model_dump() for m in r.prompt]
        yield {
            "messages": prompt + [{"role": "assistant", "content": r.final}],
            "record_id": r.id, "principle_ids": r.principles,
            "constitution_hash": r.provenance.constitution_hash if r.provenance else "",
        }


def preference_rows(records_path):
    from cai.data.pairs import PreferencePair, provenance_json

    for r in iter_records(records_path):
        final, draft = (r.final or "").strip(), (r.draft or "").strip()
        if r.status != "ok" or not final or not draft or final == draft:  # never an empty response
            continue
        v = r.verification
        if v is not None and not v.kept:  # the judge found the revision not better (or could not judge)
            continue
        prov = r.provenance
        fields = prov.model_dump() if prov else {}
        if v is not None:
            fields["verification"] = v.model_dump(mode="json")
        yield PreferencePair(
            prompt=r.prompt,
            chosen=[{"role": "assistant", "content": r.final}],
            rejected=[{"role": "assistant", "content": r.draft}],
            source="ai-revision", p_chosen=v.p_chosen if v is not None else 1.0, weight=1.0,
            principle_ids=r.principles, record_id=r.id, origin=r.source or "",
            labeler=(v.judge.get("model", "") if v is not None else prov.critic_model) if prov else "",
            constitution_hash=prov.constitution_hash if prov else "",
            position_consistent=v.position_consistent if v is not None else None,
            provenance=provenance_json(**fields) if fields else "",
        ).row()


def export_run(out: str | Path) -> dict:
    """Write both exports for a run folder; returns row counts."""
    out = Path(out)
    records = out / "records.jsonl"
    return {
        "sft": write_rows(sft_rows(records), out / "sft", sft_features()),
        "preferences": write_rows(preference_rows(records), out / "preferences", features()),
    }
