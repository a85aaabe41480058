"""Prompt files (issue 28 item 4, every reader): a row about an image is left out and named by its
line; text-only typed content parts are joined; TRL's conversational prompt column is read; an
image content part is one error naming its line."""

from __future__ import annotations

import json

import pytest

from cai.core.errors import CaiError
from cai.data.prompts import PromptReader


def read(path):
    reader = PromptReader(str(path), "auto", "prompt", None, "first", None)
    return reader, list(reader)


def test_media_rows_left_out_typed_parts_joined(tmp_path):
    path = tmp_path / "p.jsonl"
    rows = [
        {"prompt": "plain question"},
        {"prompt": "<image>What colour is the bicycle?", "images": ["bike.png"]},
        {"messages": [{"role": "user", "content": [{"type": "text", "text": "part one"},
                                                    {"type": "text", "text": "part two"}]}]},
        {"prompt": [{"role": "user", "content": "a conversational prompt"}]},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    reader, got = read(path)
    assert [r.messages[-1]["content"] for r in got] == ["plain question", "part one\npart two",
                                                        "a conversational prompt"]
    assert [w for w, _ in reader.left_out] == [f"{path}:2"] and "images" in reader.left_out[0][1]


def test_an_image_content_part_is_named_by_its_line(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps({"prompt": "ok"}) + "\n" + json.dumps(
        {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]}) + "\n")
    with pytest.raises(CaiError, match="image_url") as err:
        read(path)
    assert err.value.line == 2
