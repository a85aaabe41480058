"""`cai mix` runs on an index of its rows: memory flat in the pair count, and the same output as
the list steps of cai.data.mix (dedupe, compare, caps, human policy, seeded split) give."""

from __future__ import annotations

import json
import random
import tracemalloc

import datasets
import pytest

from cai.data.mix import (MixConfig, apply_caps, apply_human_policy, compare, dedupe, run_mix, stratified_split)
from cai.data.pairs import read_pairs


def _write(path, rows):
    with open(path, "w", encoding="utf-8") as fh:
        for r in rows:
            fh.write(json.dumps(r) + "\n")
    return str(path)


def _row(i: int, *, swap: bool = False, p: float = 0.9, **extra) -> dict:
    good, bad = f"good answer {i} " + "y" * 300, f"bad answer {i} " + "z" * 300
    if swap:
        good, bad = bad, good
    return {"prompt": [{"role": "user", "content": f"question {i} " + "x" * 150}],
            "chosen": [{"role": "assistant", "content": good}], "rejected": [{"role": "assistant", "content": bad}],
            "p_chosen": p, **extra}


def _peak(tmp_path, n: int) -> int:
    ai = _write(tmp_path / f"ai{n}.jsonl", (_row(i) for i in range(n)))
    human = _write(tmp_path / f"h{n}.jsonl", (_row(i, swap=i % 3 == 0) for i in range(0, n, 10)))
    cfg = MixConfig(inputs=[f"ai-feedback={ai}", f"human={human}"], out=str(tmp_path / f"out{n}"),
                    caps={"ai-feedback": n - n // 20}, seed=3)
    tracemalloc.start()
    try:
        summary = run_mix(cfg)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert summary["human_vs_ai"]["overlap"] == n // 10
    return peak


@pytest.mark.parametrize("small,large", [(1000, 4000), pytest.param(2000, 30_000, marks=pytest.mark.slow)])
def test_mix_memory_is_flat_in_the_pair_count(tmp_path, small, large):
    """cai mix used to hold every pair (PreferencePair objects) through every step: its Python peak
    grew by ~5 KB a pair (22 MB at 2k pairs, 170 MB at 30k). The index holds ~40 bytes a row."""
    _peak(tmp_path, 50)  # warm-up: imports and caches
    a, b = _peak(tmp_path, small), _peak(tmp_path, large)
    assert (b - a) / (large - small) < 1000, (a, b)  # bytes per extra pair (both sizes fill a write batch)


def _inputs(tmp_path):
    """Duplicates, conflicting duplicates, ties on both sides, humans that agree and disagree, a
    bare path whose rows carry their own sources."""
    rng = random.Random(7)
    ai = [_row(rng.randrange(120), swap=rng.random() < 0.3, p=rng.choice([0.9, 0.7, 0.5])) for _ in range(300)]
    rev = [_row(rng.randrange(200, 260), p=1.0) for _ in range(80)]
    human = [_row(rng.randrange(140), swap=rng.random() < 0.4, p=rng.choice([1.0, 0.5, 0.75]), weight=2.0)
             for _ in range(70)]
    mixed = [_row(rng.randrange(100), source=rng.choice(["ai-feedback", "human", "other"]), p=0.8) for _ in range(60)]
    return [f"ai-feedback={_write(tmp_path / 'ai.jsonl', ai)}", f"ai-revision={_write(tmp_path / 'rev.jsonl', rev)}",
            f"human={_write(tmp_path / 'human.jsonl', human)}", _write(tmp_path / "bare.jsonl", mixed)]


def _reference(cfg: MixConfig):
    """The list steps, on every pair held in memory (what run_mix did before the index)."""
    hs = set(cfg.human_sources)
    rows = [p for inp in cfg.inputs for p in read_pairs(inp.path, source=inp.source)]
    kept, dups, conflicts = dedupe(rows)
    report, overlap = compare(kept, hs)
    capped, dropped = apply_caps(kept, cfg.caps, cfg.seed)
    mixed, replaced = apply_human_policy(capped, cfg.human_policy, hs)
    mixed = [p.model_copy(update={"weight": p.weight * cfg.weights[p.source]}) if p.source in cfg.weights else p
             for p in mixed]
    train, test, too_small = stratified_split(mixed, cfg.test_size, cfg.seed, hs)
    return train, test, report, overlap, dups, conflicts, dropped, replaced, too_small


def _jsonl(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.mark.parametrize("policy,seed,caps", [("replace", 0, {"ai-feedback": 60}), ("join", 5, {"ai-feedback": 90,
                                                                                               "human": 40})])
def test_the_index_gives_what_the_list_steps_give(tmp_path, policy, seed, caps):
    cfg = MixConfig(inputs=_inputs(tmp_path), out=str(tmp_path / "out"), human_policy=policy, seed=seed, caps=caps,
                    weights={"ai-revision": 0.5, "human": 3.0}, test_size=0.25)
    summary = run_mix(cfg)
    train, test, report, overlap, dups, conflicts, dropped, replaced, too_small = _reference(cfg)
    assert train and test and report and sum(dups.values()) and sum(conflicts.values()) and sum(dropped.values())
    out = tmp_path / "out"
    assert _jsonl(out / "train" / "data.jsonl") == [p.row() for p in train]
    assert _jsonl(out / "test" / "data.jsonl") == [p.row() for p in test]
    assert _jsonl(out / "disagreements.jsonl") == json.loads(json.dumps(report))
    assert summary["human_vs_ai"] == overlap and summary["splits"] == {"train": len(train), "test": len(test)}
    assert summary["dedupe"] == {"duplicates": sum(dups.values()), "conflicting": sum(conflicts.values())}
    for s, counts in summary["sources"].items():
        assert (counts["duplicates"], counts["conflicting_duplicates"], counts["capped"],
                counts["replaced_by_human"]) == (dups[s], conflicts[s], dropped[s], replaced[s]), s
    assert [n for n in summary["notes"]] == [
        f"source '{s}' is too small for a test row at test_size 0.25: all its pairs are in train" for s in too_small]
    assert len(datasets.load_from_disk(str(out / "train" / "hf"))) == len(train)


def test_an_input_that_changes_during_the_mix_is_an_error(tmp_path, monkeypatch):
    from cai.core.errors import CaiError
    from cai.data import mix_index

    path = _write(tmp_path / "ai.jsonl", [_row(i) for i in range(5)])
    real = mix_index.MixIndex.read

    def read_then_change(self, preferred):
        real(self, preferred)
        _write(tmp_path / "ai.jsonl", [_row(i) for i in range(1, 6)])

    monkeypatch.setattr(mix_index.MixIndex, "read", read_then_change)
    with pytest.raises(CaiError, match="changed while it was being mixed"):
        run_mix(MixConfig(inputs=[f"ai-feedback={path}"], out=str(tmp_path / "out")))
    assert not (tmp_path / "out" / "train").exists()
