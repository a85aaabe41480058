"""UltraFeedback-style rows (``score_chosen``/``score_rejected``): equal ratings are a tie, the
ratings stay on the pair, and the import says which columns it read."""

from __future__ import annotations

import json

import pytest

from cai.core.errors import CaiError

ROWS = [
    {"prompt": "Name a fruit.", "chosen": "An apple.", "rejected": "A car.", "score_chosen": 9.0, "score_rejected": 2.0},
    {"prompt": "Name a colour.", "chosen": "Blue.", "rejected": "Red.", "score_chosen": 7.5, "score_rejected": 7.5},
    {"prompt": "Name a tree.", "chosen": "Oak.", "rejected": "Pine.", "score_chosen": 8, "score_rejected": 8},
]


def _file(tmp_path):
    path = tmp_path / "uf.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    return path


def test_equal_ratings_are_ties_and_ratings_are_kept(tmp_path):
    from cai.data.pairs import read_pairs

    counts: dict = {}
    pairs = list(read_pairs(_file(tmp_path), counts=counts))
    assert [p.p_chosen for p in pairs] == [1.0, 0.5, 0.5]
    assert [(p.score_chosen, p.score_rejected) for p in pairs] == [(9.0, 2.0), (7.5, 7.5), (8.0, 8.0)]
    assert counts["score_ties"] == 2 and counts["score_columns"] == "score_chosen, score_rejected"
    dropped: dict = {}
    assert [p.chosen_text for p in read_pairs(_file(tmp_path), counts=dropped, ties="drop")] == ["An apple."]
    assert dropped["ties_dropped"] == 2
    with pytest.raises(CaiError, match="ties must be"):
        list(read_pairs(_file(tmp_path), ties="coin"))


def test_humans_import_counts_ties_and_names_the_columns(tmp_path):
    from cai.data.pairs import read_pairs
    from cai.humans.importers import import_labels

    summary = import_labels(_file(tmp_path), "trl", tmp_path / "out")
    assert summary.written == 3 and summary.score_ties == 2
    assert "read ratings from score_chosen, score_rejected (kept on each pair): 2 ties written with p_chosen 0.5" \
        in summary.line()
    written = list(read_pairs(tmp_path / "out"))
    assert [p.p_chosen for p in written] == [1.0, 0.5, 0.5] and written[1].score_chosen == 7.5
    summary = import_labels(_file(tmp_path), "trl", tmp_path / "out2", ties="drop")
    assert summary.written == 1 and summary.ties_dropped == 2 and "dropped 2 ties" in summary.line()
    assert summary.read == 3


def test_non_numeric_ratings_fail_the_row(tmp_path):
    from cai.data.pairs import read_pairs

    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({**ROWS[0], "score_chosen": "high"}) + "\n")
    with pytest.raises(CaiError, match="bad.jsonl:1: score_chosen/score_rejected: ratings must be numbers"):
        list(read_pairs(path))
