"""The shared PreferencePair row: ids, TRL formats, bad rows, and a datasets round trip."""

from __future__ import annotations

import gzip
import json

import pytest

from cai.core.errors import CaiError
from cai.data.pairs import PreferencePair, PrincipleScore, pair_from_row, read_pairs, write_pairs

U = [{"role": "user", "content": "How do I boil an egg?"}]
A = [{"role": "assistant", "content": "Put it in boiling water for 8 minutes."}]
B = [{"role": "assistant", "content": "No idea."}]


def test_id_is_order_independent_and_content_based():
    p1 = PreferencePair(prompt=U, chosen=A, rejected=B, source="human")
    p2 = PreferencePair(prompt=U, chosen=B, rejected=A, source="ai-feedback", p_chosen=0.3)
    p3 = PreferencePair(prompt=U, chosen=A, rejected=[{"role": "assistant", "content": "Other."}], source="human")
    assert p1.id == p2.id != p3.id
    # Whitespace at the ends of a message does not make a new pair.
    p4 = PreferencePair(prompt=U, chosen=[{"role": "assistant", "content": A[0]["content"] + "\n"}], rejected=B,
                        source="human")
    assert p4.id == p1.id


@pytest.mark.parametrize("row, prompt, chosen", [
    ({"prompt": "Hi", "chosen": "Hello!", "rejected": "Go away."}, "Hi", "Hello!"),  # standard explicit
    ({"prompt": U, "chosen": A, "rejected": B}, U[0]["content"], A[0]["content"]),  # conversational explicit
    ({"chosen": U + A, "rejected": U + B}, U[0]["content"], A[0]["content"]),  # conversational implicit
])
def test_trl_formats(row, prompt, chosen):
    pair = pair_from_row(row, source="human")
    assert pair.prompt[-1].content == prompt
    assert pair.chosen_text == chosen
    assert pair.source == "human" and pair.p_chosen == 1.0


@pytest.mark.parametrize("row, message", [
    ({"prompt": "x", "chosen": "y"}, "missing column(s) rejected"),
    ({"prompt": "x", "chosen": 3, "rejected": "z"}, "'chosen' must be a string"),
    ({"chosen": U + A, "rejected": B}, "share no leading messages"),
    ({"prompt": "x", "chosen": "y", "rejected": "z", "p_chosen": 1.5}, "p_chosen"),
    ({"prompt": [{"role": "robot", "content": "x"}], "chosen": "y", "rejected": "z"}, "prompt.0.role"),
])
def test_bad_rows_name_the_field(row, message):
    with pytest.raises(ValueError) as info:
        pair_from_row(row)
    assert message in str(info.value)


def test_read_reports_file_and_line_or_skips(tmp_path):
    path = tmp_path / "p.jsonl"
    good = json.dumps({"prompt": "a", "chosen": "b", "rejected": "c"})
    path.write_text(good + "\n\n{oops\n" + good + "\n")
    with pytest.raises(CaiError) as info:
        list(read_pairs(path))
    assert info.value.line == 3 and "invalid JSON" in info.value.format()
    counts = {}
    pairs = list(read_pairs(path, skip_invalid=True, counts=counts))
    assert len(pairs) == 2 and counts["invalid"] == 1
    assert pairs[0].origin == "p.jsonl:1" and pairs[1].origin == "p.jsonl:4"


def test_gzip_jsonl(tmp_path):
    path = tmp_path / "p.jsonl.gz"
    with gzip.open(path, "wt") as fh:
        fh.write(json.dumps({"prompt": "a", "chosen": "b", "rejected": "c"}) + "\n")
    assert [p.chosen_text for p in read_pairs(path)] == ["b"]


def test_write_then_read_every_format(tmp_path):
    pairs = [
        PreferencePair(prompt=U, chosen=A, rejected=B, source="ai-feedback", p_chosen=0.7,
                       scores=[PrincipleScore(principle="harm-x@1", p=0.7, p_first=0.8, p_second=0.6)],
                       position_consistent=True),
        PreferencePair(prompt=U, chosen=B, rejected=[{"role": "assistant", "content": "Maybe."}], source="human"),
    ]
    assert write_pairs(pairs, tmp_path / "out") == 2
    for where in ("out", "out/data.jsonl", "out/data.parquet", "out/hf"):
        back = list(read_pairs(tmp_path / where))
        assert [p.id for p in back] == [p.id for p in pairs], where
        assert back[0].scores[0].p_first == pytest.approx(0.8)
        assert back[1].scores == [] and back[1].position_consistent is None


def test_write_empty_and_missing_folder(tmp_path):
    assert write_pairs([], tmp_path / "empty") == 0
    assert (tmp_path / "empty" / "data.jsonl").read_text() == ""
    assert list(read_pairs(tmp_path / "empty")) == []  # the folder resolves to its empty data.jsonl
    (tmp_path / "bare").mkdir()
    with pytest.raises(CaiError, match="no preference data"):
        next(read_pairs(tmp_path / "bare"))
    with pytest.raises(CaiError, match="no such file"):
        next(read_pairs(tmp_path / "missing"))


def test_dataset_dict_folder_reads_train_split(tmp_path):
    from datasets import Dataset, DatasetDict

    row = {"prompt": "a", "chosen": "b", "rejected": "c"}
    DatasetDict({"test": Dataset.from_list([row]), "train": Dataset.from_list([row, row])}).save_to_disk(str(tmp_path / "dd"))
    assert len(list(read_pairs(tmp_path / "dd"))) == 2


def test_failed_write_keeps_previous_data(tmp_path):
    pair = PreferencePair(prompt=U, chosen=A, rejected=B, source="human")
    write_pairs([pair], tmp_path / "out")

    def broken():
        yield pair
        raise RuntimeError("source failed mid-stream")

    with pytest.raises(RuntimeError):
        write_pairs(broken(), tmp_path / "out")
    assert [p.id for p in read_pairs(tmp_path / "out")] == [pair.id]
    assert not (tmp_path / "out" / ".data.jsonl.tmp").exists()
