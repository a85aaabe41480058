"""Pairs whose meaning depends on a column cai cannot use (images, image parts) are refused by line
in every pairs reader; text-only typed content parts are read as text (issue 28 item 4, cases #9, #10)."""

from __future__ import annotations

import json
import logging
from collections import Counter

import pytest

from cai.core.errors import CaiError
from cai.data.pairs import read_pairs
from cai.feedback.inputs import iter_inputs


def _parts(text: str) -> list[dict]:
    return [{"type": "text", "text": text}]


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_text_only_typed_parts_are_joined(tmp_path):
    path = _write(tmp_path / "typed.jsonl", [
        {"prompt": [{"role": "user", "content": [*_parts("Boiling point of water?"), *_parts("At sea level.")]}],
         "chosen": [{"role": "assistant", "content": _parts("100 C.")}],
         "rejected": [{"role": "assistant", "content": _parts("50 C.")}]},
    ])
    [pair] = read_pairs(path)
    assert pair.prompt[0].content == "Boiling point of water?\nAt sea level."
    assert (pair.chosen_text, pair.rejected_text) == ("100 C.", "50 C.")
    # the same pair written as strings has the same content id
    [plain] = read_pairs(_write(tmp_path / "plain.jsonl", [
        {"prompt": "Boiling point of water?\nAt sea level.", "chosen": "100 C.", "rejected": "50 C."}]))
    assert plain.id == pair.id


IMAGE_ROWS = [
    {"prompt": "Capital of France?", "chosen": "Paris.", "rejected": "Lyon."},
    {"images": ["bike.png"], "prompt": "<image>What colour is the bicycle?", "chosen": "Red.", "rejected": "None."},
    {"prompt": [{"role": "user", "content": [{"type": "image"}, *_parts("What animal is this?")]}],
     "chosen": "A cat.", "rejected": "A dog."},
]


def test_rows_about_images_are_refused_by_line(tmp_path):
    path = _write(tmp_path / "vision.jsonl", IMAGE_ROWS)
    with pytest.raises(CaiError, match=r"vision.jsonl:2: column 'images' holds media"):
        list(read_pairs(path))
    with pytest.raises(CaiError, match=r"parts.jsonl:1: 'prompt' message 1 has a 'image' content part"):
        list(read_pairs(_write(tmp_path / "parts.jsonl", IMAGE_ROWS[2:])))


def test_skipped_image_rows_are_counted_and_named(tmp_path, caplog):
    path = _write(tmp_path / "vision.jsonl", IMAGE_ROWS)
    counts: dict = {}
    with caplog.at_level(logging.WARNING, logger="cai.data.pairs"):
        pairs = list(read_pairs(path, skip_invalid=True, counts=counts))
    assert [p.prompt[0].content for p in pairs] == ["Capital of France?"] and counts["invalid"] == 2
    assert "vision.jsonl:2: skipped: column 'images'" in caplog.text and "vision.jsonl:3: skipped:" in caplog.text
    # cai label --pairs reads through the same rule
    skipped: Counter = Counter()
    assert len(list(iter_inputs(path, skip_invalid=True, counts=skipped))) == 1 and skipped["invalid"] == 2
