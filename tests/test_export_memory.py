"""Dataset exports are written as the rows come (cai.data.dataset_files): memory flat in the row
count, the same folder as ``save_to_disk`` + ``to_parquet`` + JSONL made before, and a failed
write leaves the previous folder as it was."""

from __future__ import annotations

import json
import tracemalloc

import datasets
import pyarrow.parquet as pq
import pytest

from cai.core.errors import CaiError
from cai.data.dataset_files import DatasetFiles, write_dataset
from cai.data.pairs import PreferencePair, features, write_pairs


def _pairs(n: int, start: int = 0):
    for i in range(start, start + n):
        yield PreferencePair(
            prompt=[{"role": "user", "content": f"question {i} " + "x" * 200}],
            chosen=[{"role": "assistant", "content": f"good answer {i} " + "y" * 400}],
            rejected=[{"role": "assistant", "content": f"bad answer {i} " + "z" * 400}],
            source="ai-feedback", p_chosen=0.8, weight=1.0, principle_ids=["p1"] if i % 2 else [],
            provenance=json.dumps({"i": i, "model": "m"}))


def _peak(tmp_path, n: int) -> int:
    tracemalloc.start()
    try:
        assert write_pairs(_pairs(n), tmp_path / f"out{n}") == n
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("small,large", [(1000, 10_000), pytest.param(2000, 30_000, marks=pytest.mark.slow)])
def test_export_memory_is_flat_in_the_pair_count(tmp_path, small, large):
    """The export used to build Parquet and hf/ with Dataset.from_json over the whole JSONL:
    its Python peak grew by ~0.6 KB a pair (13.6 MB at 2k pairs, 31.6 MB at 30k), the process's
    RSS by ~3.5 KB a pair. Now only one batch is held."""
    _peak(tmp_path, 50)  # warm-up: imports and caches
    a, b = _peak(tmp_path, small), _peak(tmp_path, large)
    assert b - a < 1_500_000, (a, b)  # before: +9 MB at 1k -> 10k pairs, +18 MB at 2k -> 30k


def test_the_folder_loads_as_before(tmp_path):
    """hf/ loads with load_from_disk, Parquet with its features, JSONL keeps provenance an object."""
    pairs = list(_pairs(7))
    assert write_pairs(pairs, tmp_path / "out") == 7
    ds = datasets.load_from_disk(str(tmp_path / "out" / "hf"))
    assert ds.features == features() and ds.split == "train" and len(ds) == 7
    assert ds[3]["provenance"] == json.dumps({"i": 3, "model": "m"}, sort_keys=True)
    assert ds[3]["chosen"] == [{"role": "assistant", "content": pairs[3].chosen_text}]
    assert ds[2]["principle_ids"] == [] and ds[3]["principle_ids"] == ["p1"]
    assert ds[0]["position_consistent"] is None
    table = pq.read_table(tmp_path / "out" / "data.parquet")
    assert datasets.Features.from_arrow_schema(table.schema) == features()
    assert table.to_pylist() == ds.to_list()
    rows = [json.loads(line) for line in (tmp_path / "out" / "data.jsonl").read_text().splitlines()]
    assert rows == [p.row() for p in pairs] and rows[0]["provenance"] == {"i": 0, "model": "m"}
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["data.jsonl", "data.parquet", "hf"]


def test_large_outputs_are_sharded_like_save_to_disk(tmp_path, monkeypatch):
    monkeypatch.setattr(datasets.config, "MAX_SHARD_SIZE", "20KB")
    assert write_dataset((p.row() for p in _pairs(120)), tmp_path / "out", features(),
                         arrow_row=lambda r: {**r, "provenance": json.dumps(r["provenance"], sort_keys=True)},
                         batch_rows=10) == 120
    shards = sorted(p.name for p in (tmp_path / "out" / "hf").glob("*.arrow"))
    assert len(shards) > 2 and shards[0] == f"data-00000-of-{len(shards):05d}.arrow"
    ds = datasets.load_from_disk(str(tmp_path / "out" / "hf"))
    assert [r["chosen"][0]["content"].split()[2] for r in ds] == [str(i) for i in range(120)]


def test_no_rows_removes_the_tables_or_writes_empty_ones(tmp_path):
    write_pairs(_pairs(3), tmp_path / "a")
    assert write_pairs([], tmp_path / "a") == 0
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["data.jsonl"]
    assert (tmp_path / "a" / "data.jsonl").read_text() == ""
    assert write_pairs([], tmp_path / "b", empty_tables=True) == 0
    ds = datasets.load_from_disk(str(tmp_path / "b" / "hf"))
    assert len(ds) == 0 and ds.features == features()
    assert pq.read_table(tmp_path / "b" / "data.parquet").num_rows == 0


def test_a_failed_write_keeps_the_previous_folder(tmp_path):
    write_pairs(_pairs(3), tmp_path / "out")
    before = (tmp_path / "out" / "data.jsonl").read_text()

    def broken():
        yield from _pairs(1500)
        raise RuntimeError("the source broke")

    with pytest.raises(RuntimeError):
        write_pairs(broken(), tmp_path / "out")
    assert (tmp_path / "out" / "data.jsonl").read_text() == before
    assert len(datasets.load_from_disk(str(tmp_path / "out" / "hf"))) == 3
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["data.jsonl", "data.parquet", "hf"]


def test_a_row_that_does_not_fit_is_named(tmp_path):
    rows = [{**p.row(), "provenance": ""} for p in _pairs(5)]
    rows[3]["p_chosen"] = "high"
    with pytest.raises(CaiError, match="row 4: .*"):
        write_dataset(rows, tmp_path / "x", features(), batch_rows=10)
    with pytest.raises(CaiError, match="row 2: column\\(s\\) extra not in the dataset's features"):
        with DatasetFiles(tmp_path / "y", features()) as files:
            files.add(rows[0])
            files.add({**rows[1], "extra": 1})
    assert not (tmp_path / "y" / "data.jsonl").exists()  # nothing half-written


def test_sl_export_keeps_its_sft_columns(tmp_path):
    """The SFT export's features were inferred from its JSONL; they are now explicit and the same."""
    from cai.data.records import Record, Step
    from cai.sl.export import export_run, sft_features

    rec = Record(id="r1", prompt=[{"role": "user", "content": "hi"}], draft="d", final="f", status="ok",
                 steps=[Step(round=0, principle="p@1", critique_prompt="c", revision="f")])
    (tmp_path / "records.jsonl").write_text(rec.model_dump_json() + "\n")
    assert export_run(tmp_path) == {"sft": 1, "preferences": 1}
    sft = datasets.load_from_disk(str(tmp_path / "sft" / "hf"))
    inferred = datasets.Dataset.from_json(str(tmp_path / "sft" / "data.jsonl"), cache_dir=str(tmp_path / "cache"))
    assert sft.features == sft_features() == inferred.features
    assert sft.to_list() == inferred.to_list()
