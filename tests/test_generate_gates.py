"""`cai generate`: what gates the data (issue 26 item 3) and how a run starts and stops (issue 28
items 5 and 8): a lone surrogate fails its row alone; checks on each revision (a repeated
paragraph, a critique given as a revision, a judge that finds it not better or still breaking
its principle) fail the record, with the reasons on it; critiques against the principles that
apply; Ctrl-C and --dry-run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cai.data.store import iter_records
from cai.sl import GenerateConfig, run_generate
from sl_helpers import EchoCritic

REPO = Path(__file__).resolve().parents[1]
HARMLESS = str(REPO / "constitution" / "harmless.yaml")

# Five rows as in field case #21: fine, a surrogate pair, a LONE surrogate, a NUL, an RTL override.
UNICODE_ROWS = (
    '{"id": "ok", "prompt": "Suggest a name for a grey cat."}\n'
    '{"id": "pair", "prompt": "What does the emoji \\ud83d\\ude00 usually mean?"}\n'
    '{"id": "lone", "prompt": "My text editor saved this broken emoji: \\ud83d. What happened?"}\n'
    '{"id": "nul", "prompt": "Why does my CSV contain a \\u0000 byte?"}\n'
    '{"id": "rtl", "prompt": "Is the file name invoice\\u202egpj.exe safe to open?"}\n'
)


def gen_config(tmp_path, prompts: Path, **kw) -> GenerateConfig:
    data = dict(constitution=HARMLESS, prompts=str(prompts), out=str(tmp_path / "run"),
                policy={"backend": "transformers", "model": "echo"}, rounds=1)
    data.update(kw)
    return GenerateConfig.model_validate(data)


def test_a_lone_surrogate_fails_its_row_alone_before_the_model(tmp_path, hf_backend):
    """Case #21: the tokenizer's TypeError traceback killed the run with 0 of 5 records and no line
    named. Now the row is left out by file:line, in the reader, and the other four run on a real
    (tiny) tokenizer and model."""
    src = tmp_path / "unicode.jsonl"
    src.write_text(UNICODE_ROWS)
    cfg = gen_config(tmp_path, src, id_column="id", sampling={"max_tokens": 4, "temperature": 0.0})
    summary = run_generate(cfg, backends=(hf_backend, hf_backend))
    assert summary["records"] == 4 and {r.id for r in iter_records(tmp_path / "run")} == {"ok", "pair", "nul", "rtl"}
    left = summary["left_out"]
    assert left["first"] == [f"{src}:3"] and left["rows_why"] == [f"{src}:3: lone surrogate U+D83D at character 41 of 'the prompt'"]
    assert "lone surrogate" in left["why"]


def test_every_prompt_reader_names_the_line(tmp_path):
    """The one prompt reader serves generate, sample, GRPO/RLOO, PPO and the loop's checks: the row
    is left out there (a `messages` column too), the others are read."""
    from cai.data.prompts import PromptReader

    src = tmp_path / "m.jsonl"
    src.write_text('{"messages": [{"role": "user", "content": "fine"}]}\n'
                   '{"messages": [{"role": "user", "content": "bad \\udc00 half"}]}\n'
                   '{"prompt": "also fine"}\n')
    reader = PromptReader(src)
    rows = list(reader)
    assert [r.source for r in rows] == [f"{src}:1", f"{src}:3"]
    assert reader.left_out == [(f"{src}:2", "lone surrogate U+DC00 at character 5 of 'the prompt'")]
    only_bad = tmp_path / "bad.jsonl"
    only_bad.write_text('{"prompt": "x \\ud800"}\n')
    from cai.core.errors import CaiError

    with pytest.raises(CaiError, match=r"bad.jsonl:1: lone surrogate"):
        list(PromptReader(only_bad))
