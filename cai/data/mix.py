"""``cai mix``: AI-revision, AI-feedback and human pairs as one preference dataset.

The steps, in order:

1. Read every input (``SRC=PATH`` forces the rows' ``source``; a bare ``PATH`` keeps each row's):
   any pairs file `cai humans import` reads (HH transcripts, TRL, CSV). Pairs with an empty
   response are dropped and counted; a prompt repeated inside the responses is stripped and counted.
2. Dedupe by pair id within each source: the first row wins; later ones are counted, and counted
   as *conflicting* when they prefer the other response.
3. Compare AI labels with human ones on the pairs both labeled: ``disagreements.jsonl`` lists each
   pair where the AI preferred the response the human rejected, or where only one side called a tie.
4. Cap sources (a seeded sample that keeps the input order).
5. Human policy: ``replace`` drops an AI row when the mix holds a human row for the same pair;
   ``join`` keeps both.
6. Scale ``weight`` by the per-source weights (a row's own weight, such as the number of raters
   behind a human label, times its source's; sources without one keep their rows' weights); the
   soft label ``p_chosen`` is kept as is.
7. Split into train/test, stratified by source and seeded. A pair id never lands in both splits
   (in ``join`` mode its human and AI rows go together, counted in the human stratum). A source
   too small for a test row goes wholly to train, and the summary says so.

``OUT/train`` and ``OUT/test`` are pairs folders (``data.jsonl``, ``data.parquet``, ``hf/``) in TRL's
conversational preference format, like the SL-CAI export; ``OUT/mix.json`` records inputs, weights,
caps, seed and every count. Nothing in ``OUT`` changes unless the whole mix succeeds.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from cai.data.outputs import canon, staged_outputs
from cai.core.errors import CaiError
from cai.data.pairs import EMPTY_RESPONSE, INVALID, PROMPT_REPEATED, PreferencePair
from cai.core.runs import write_json

OUTPUTS = ["train", "test", "mix.json", "disagreements.jsonl"]
_SOURCE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class MixInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source: str | None = Field(default=None, description="Source of every row (None: each row's own source).")
    path: str = Field(description="A pairs file or folder (read_pairs).")

    @property
    def flag(self) -> str:
        return f"--input {self.source}={self.path}" if self.source else f"--input {self.path}"


def parse_input(text: str) -> MixInput:
    """``SRC=PATH`` or a bare ``PATH`` (a path that exists, or whose part before '=' is not a name)."""
    src, sep, path = text.partition("=")
    if not sep or Path(text).exists() or not _SOURCE_NAME.match(src.strip()):
        return MixInput(path=text)
    if not path.strip():
        raise CaiError(f"--input {text}: expected SRC=PATH")
    return MixInput(source=src.strip(), path=path.strip())


class MixConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    inputs: list[MixInput] = Field(min_length=1, description="Pairs to mix: SRC=PATH (or PATH) each.")
    out: str = Field(description="Output folder: train/, test/, mix.json, disagreements.jsonl.")
    weights: dict[str, float] = Field(default_factory=dict, description="Factor on the rows' own training weights, per source (default: 1).")
    caps: dict[str, int] = Field(default_factory=dict, description="Most rows per source (a seeded sample).")
    human_policy: Literal["replace", "join"] = Field(default="replace",
                                                     description="replace: a human label drops the AI row; join: keep both.")
    human_sources: list[str] = Field(default_factory=lambda: ["human"], description="Sources whose labels are human.")
    test_size: float = Field(default=0.1, ge=0.0, lt=1.0, description="Share of each source's pairs in test.")
    seed: int = Field(default=0, description="Seed of the caps' samples and the split.")
    skip_invalid: bool = Field(default=False, description="Skip bad rows instead of stopping at the first.")

    @field_validator("inputs", mode="before")
    @classmethod
    def _inputs(cls, value: Any) -> Any:
        """YAML may give ``{source: path | [paths]}`` or a list of ``SRC=PATH`` strings."""
        if isinstance(value, dict):
            return [{"source": k, "path": p} for k, v in value.items() for p in (v if isinstance(v, list) else [v])]
        if isinstance(value, list):
            return [parse_input(v) if isinstance(v, str) else v for v in value]
        return value

    # CaiError (not ValueError) in these validators so the message reaches the user as is, naming the flag.
    @field_validator("weights")
    @classmethod
    def _weights(cls, value: dict[str, float]) -> dict[str, float]:
        for name, w in value.items():
            if w < 0 or w != w:
                raise CaiError(f"--weight {name}={w:g}: a weight must be >= 0")
        return value

    @field_validator("caps")
    @classmethod
    def _caps(cls, value: dict[str, int]) -> dict[str, int]:
        for name, n in value.items():
            if n < 0:
                raise CaiError(f"--cap {name}={n}: a cap must be >= 0")
        return value


# ---------------------------------------------------------------- steps (pure functions on lists)


def preferred(pair: PreferencePair) -> str | None:
    """The canonical text of the response the label prefers; None for a tie (p_chosen == 0.5)."""
    if pair.p_chosen == 0.5:
        return None
    return canon(pair.chosen if pair.p_chosen > 0.5 else pair.rejected)


def dedupe(pairs: list[PreferencePair]) -> tuple[list[PreferencePair], Counter, Counter]:
    """First row per (source, id); returns kept rows, duplicates per source, conflicting duplicates per source."""
    first: dict[tuple[str, str], PreferencePair] = {}
    dups, conflicts = Counter(), Counter()
    for p in pairs:
        key = (p.source, p.id)
        if key not in first:
            first[key] = p
            continue
        dups[p.source] += 1
        if preferred(p) != preferred(first[key]):
            conflicts[p.source] += 1
    return list(first.values()), dups, conflicts


def _label(p: PreferencePair) -> dict:
    return {"source": p.source, "chosen": p.chosen_text, "rejected": p.rejected_text, "p_chosen": p.p_chosen,
            "labeler": p.labeler, "principle_ids": p.principle_ids, "origin": p.origin,
            "scores": [s.model_dump() for s in p.scores], "position_consistent": p.position_consistent}


def compare(pairs: list[PreferencePair], human_sources: set[str]) -> tuple[list[dict], dict]:
    """AI rows against the human label of the same pair.

    Kinds: ``agree``; ``disagree`` (the AI prefers the response the human rejected);
    ``human-tie`` / ``ai-tie`` (only that side called a tie; both tying counts as agreement).
    Returns the report rows (every kind but agree) and counts per kind, overall and per AI source.
    """
    human: dict[str, PreferencePair] = {}
    for p in pairs:
        if p.source in human_sources:
            human.setdefault(p.id, p)
    report: list[dict] = []
    counts: dict[str, Any] = dict.fromkeys(("overlap", "agree", "disagree", "human-tie", "ai-tie"), 0)
    by_source: dict[str, Counter] = {}
    for p in pairs:
        h = human.get(p.id)
        if p.source in human_sources or h is None:
            continue
        ai_pref, h_pref = preferred(p), preferred(h)
        if ai_pref == h_pref:
            kind = "agree"
        elif h_pref is None:
            kind = "human-tie"
        elif ai_pref is None:
            kind = "ai-tie"
        else:
            kind = "disagree"
        counts["overlap"] += 1
        counts[kind] += 1
        by_source.setdefault(p.source, Counter())[kind] += 1
        if kind != "agree":
            report.append({"id": p.id, "kind": kind, "prompt": [m.model_dump() for m in p.prompt],
                           "ai": _label(p), "human": _label(h)})
    counts["by_source"] = {s: dict(c) for s, c in by_source.items()}
    return report, counts


def apply_caps(pairs: list[PreferencePair], caps: dict[str, int], seed: int) -> tuple[list[PreferencePair], Counter]:
    """At most ``caps[source]`` rows per source: a seeded sample, kept in input order."""
    by_source: dict[str, list[int]] = {}
    for i, p in enumerate(pairs):
        by_source.setdefault(p.source, []).append(i)
    keep: set[int] = set()
    dropped = Counter()
    for source, idx in by_source.items():
        cap = caps.get(source)
        if cap is None or len(idx) <= cap:
            keep.update(idx)
            continue
        keep.update(random.Random(f"{seed}:cap:{source}").sample(idx, cap))
        dropped[source] = len(idx) - cap
    return [p for i, p in enumerate(pairs) if i in keep], dropped


def apply_human_policy(pairs: list[PreferencePair], policy: str,
                       human_sources: set[str]) -> tuple[list[PreferencePair], Counter]:
    """``replace``: drop AI rows whose pair has a human row here; ``join``: keep everything."""
    if policy == "join":
        return pairs, Counter()
    labeled = {p.id for p in pairs if p.source in human_sources}
    kept, replaced = [], Counter()
    for p in pairs:
        if p.source not in human_sources and p.id in labeled:
            replaced[p.source] += 1
        else:
            kept.append(p)
    return kept, replaced


def stratified_split(pairs: list[PreferencePair], test_size: float, seed: int, human_sources: set[str],
                     ) -> tuple[list[PreferencePair], list[PreferencePair], list[str]]:
    """Seeded train/test split of pair ids, stratified by source; returns train, test, too-small sources.

    A pair id's rows stay together; its stratum is a human source when it has one, else the
    source of its first row. Each stratum sends ``round(n * test_size)`` ids to test, but always
    keeps one in train; a stratum that would get no test id goes wholly to train.
    """
    sources_of: dict[str, list[str]] = {}
    for p in pairs:
        sources_of.setdefault(p.id, []).append(p.source)
    strata: dict[str, list[str]] = {}
    for pid, srcs in sources_of.items():
        stratum = next((s for s in srcs if s in human_sources), srcs[0])
        strata.setdefault(stratum, []).append(pid)
    test_ids: set[str] = set()
    too_small: list[str] = []
    for stratum, ids in strata.items():
        if test_size <= 0:
            continue
        n_test = min(int(len(ids) * test_size + 0.5), len(ids) - 1)
        if n_test <= 0:
            too_small.append(stratum)
            continue
        shuffled = list(ids)
        random.Random(f"{seed}:split:{stratum}").shuffle(shuffled)
        test_ids.update(shuffled[:n_test])
    train = [p for p in pairs if p.id not in test_ids]
    test = [p for p in pairs if p.id in test_ids]
    return train, test, too_small


# ---------------------------------------------------------------- the command


def _check_names(cfg: MixConfig, sources: list[str]) -> None:
    known = set(sources)
    for flag, names in (("--weight", cfg.weights), ("--cap", cfg.caps)):
        for name in names:
            if name not in known:
                raise CaiError(f"{flag} {name}: no input has source '{name}' (sources: {', '.join(sources) or 'none'})")
    if "human_sources" in cfg.model_fields_set:
        for name in cfg.human_sources:
            if name not in known:
                raise CaiError(f"--human-source {name}: no input has source '{name}' (sources: {', '.join(sources)})")


def run_mix(cfg: MixConfig) -> dict:
    """Mix, split and write; returns the summary (also written as ``OUT/mix.json``).

    Memory stays flat in the number of pairs: the steps run on an index of the rows
    (:class:`cai.data.mix_index.MixIndex`, about 40 bytes a row), with the same seeded choices as
    the list steps above, and the rows are read again from the inputs as they are written.
    """
    from cai.data.dataset_files import DatasetFiles
    from cai.data.mix_index import MixIndex, ReportRows
    from cai.data.pairs import features, provenance_json

    human_sources = set(cfg.human_sources)
    index = MixIndex(cfg.inputs, human_sources, cfg.skip_invalid)
    index.read(preferred)
    read_counts = {k: index.read_counts[k] for k in (INVALID, EMPTY_RESPONSE, PROMPT_REPEATED)}
    sources = list(dict.fromkeys([i.source for i in cfg.inputs if i.source] + index.sources))
    _check_names(cfg, sources)

    read = index.counts_by_source()
    dups, conflicts = index.dedupe()
    report, overlap = index.compare()
    cap_dropped = index.apply_caps(cfg.caps, cfg.seed)
    replaced = index.apply_human_policy(cfg.human_policy)
    too_small = index.split(cfg.test_size, cfg.seed)
    in_test = index.test[index.pid]
    n_train = index.counts_by_source(index.keep & ~in_test)
    n_test = index.counts_by_source(index.keep & in_test)

    per_source = {
        s: {"read": read[s], "duplicates": dups[s], "conflicting_duplicates": conflicts[s],
            "capped": cap_dropped[s], "replaced_by_human": replaced[s], "train": n_train[s], "test": n_test[s],
            "weight": cfg.weights.get(s), "cap": cfg.caps.get(s), "human": s in human_sources}
        for s in sources
    }
    notes = [f"source '{s}' is too small for a test row at test_size {cfg.test_size:g}: all its pairs are in train"
             for s in too_small]
    summary = {
        "out": cfg.out, "seed": cfg.seed, "test_size": cfg.test_size, "human_policy": cfg.human_policy,
        "human_sources": sorted(human_sources), "inputs": index.info, "weights": cfg.weights, "caps": cfg.caps,
        "invalid_rows": read_counts[INVALID],
        "dropped": {"empty_response": read_counts[EMPTY_RESPONSE]},
        "prompt_repeated": read_counts[PROMPT_REPEATED],
        "splits": {"train": sum(n_train.values()), "test": sum(n_test.values())},
        "sources": per_source,
        "dedupe": {"duplicates": sum(dups.values()), "conflicting": sum(conflicts.values())},
        "human_vs_ai": overlap,
        "notes": notes,
    }

    def arrow_row(row: dict) -> dict:
        prov = row.get("provenance")
        return {**row, "provenance": provenance_json(**prov)} if isinstance(prov, dict) else row

    parked = ReportRows(report)
    try:
        with staged_outputs(cfg.out, OUTPUTS) as stage:
            feats = features()
            with (DatasetFiles(stage / "train", feats, arrow_row=arrow_row, empty_tables=True) as train,
                  DatasetFiles(stage / "test", feats, arrow_row=arrow_row, empty_tables=True) as test):
                for g, p in index.rows():
                    if parked.want(g):
                        parked.keep(g, {"id": p.id, "prompt": [m.model_dump() for m in p.prompt], "label": _label(p)})
                    if not index.keep[g]:
                        continue
                    if p.source in cfg.weights:
                        p = p.model_copy(update={"weight": p.weight * cfg.weights[p.source]})
                    (test if in_test[g] else train).add(p.row())
            with open(stage / "disagreements.jsonl", "w", encoding="utf-8") as fh:
                fh.writelines(parked.lines())
            write_json(stage / "mix.json", summary)
    finally:
        parked.close()
    return summary
