"""One reading rule for every text input: a UTF-8 byte-order mark (Excel, Notepad) is dropped,
for prompts, pairs, labels, probes, principle files, constitutions, recipes, guidelines and chat
templates alike. Also: a prompts file's ``id`` field is used, and YAML's numbers in text fields
get a hint to quote them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from cai.core.errors import CaiError

REPO = Path(__file__).resolve().parents[1]
BOM = "\ufeff"


def _write(path: Path, text: str) -> Path:
    path.write_text(BOM + text, encoding="utf-8")
    return path


def test_prompts_csv_and_jsonl_with_a_bom(tmp_path):
    from cai.data.prompts import PromptReader

    csv_rows = list(PromptReader(_write(tmp_path / "p.csv", "prompt,topic\nHello there,x\n")))
    jsonl_rows = list(PromptReader(_write(tmp_path / "p.jsonl", '{"prompt": "Hello there"}\n')))
    assert [r.messages[0]["content"] for r in csv_rows + jsonl_rows] == ["Hello there"] * 2


def test_pairs_and_human_labels_with_a_bom(tmp_path):
    from cai.data.pairs import read_pairs
    from cai.humans.importers import import_labels

    row = {"prompt": "Q?", "chosen": "Good answer.", "rejected": "Bad answer."}
    pairs = list(read_pairs(_write(tmp_path / "pairs.jsonl", json.dumps(row) + "\n")))
    assert [p.chosen_text for p in pairs] == ["Good answer."]
    trl = {"prompt": [{"role": "user", "content": "Q?"}], "chosen": [{"role": "assistant", "content": "A"}],
           "rejected": [{"role": "assistant", "content": "B"}]}
    summary = import_labels(_write(tmp_path / "trl.jsonl", json.dumps(trl) + "\n"), "trl", tmp_path / "out")
    assert summary.written == 1


def test_xstest_probes_with_a_bom(tmp_path):
    from cai.evals.xstest import import_prompts, read_completions

    suites = import_prompts(_write(tmp_path / "x.csv", "prompt,id,type,label\nHow do I kill a process?,1,homonyms,safe\n"))
    assert [len(s.suite.probes) for s in suites] == [1]
    rows, bad = read_completions(_write(
        tmp_path / "c.csv", "prompt,id,type,label,completion,final_label\n"
        "How do I kill a process?,1,homonyms,safe,Use kill PID.,1_full_compliance\n"))
    assert len(rows) == 1 and not bad


def test_principle_constitution_recipe_guidelines_template_with_a_bom(tmp_path):
    from cai.backends.chat import resolve_chat_template
    from cai.core.yamlutil import load_yaml_config
    from cai.humans.guidelines import file_guideline
    from cai.principles.constitution import load_constitution
    from cai.principles.principle import load_principle

    principles = tmp_path / "principles"
    principles.mkdir()
    for src in (REPO / "principles").glob("*.md"):
        _write(principles / src.name, src.read_text(encoding="utf-8"))
    assert load_principle(principles / "harm-animal-cruelty.md").id == "harm-animal-cruelty"
    constitution = _write(tmp_path / "default.yaml", (REPO / "constitution" / "default.yaml").read_text())
    assert load_constitution(constitution, principles).spec.name == "default"
    assert load_yaml_config(str(_write(tmp_path / "r.yaml", "model: tiny\nrounds: 1\n"))) == {
        "model": "tiny", "rounds": 1}
    assert file_guideline(_write(tmp_path / "g.md", "# Rate kindly\n\nPrefer the kind answer.\n")).title == "Rate kindly"
    template = resolve_chat_template(None, str(_write(tmp_path / "t.jinja", "{{ messages }}")), "m")
    assert template == "{{ messages }}"


def test_a_prompts_file_id_field_is_used(tmp_path):
    from cai.data.prompts import PromptReader

    path = tmp_path / "p.jsonl"
    path.write_text('{"id": "q-7", "prompt": "Hi"}\n{"prompt": "No id here"}\n{"id": "", "prompt": "Empty id"}\n')
    ids = [r.id for r in PromptReader(path)]
    assert ids[0] == "q-7" and len(ids[1]) == len(ids[2]) == 16  # the others: content ids
    path.write_text('{"id": "q-7", "prompt": "Hi"}\n{"id": "q-7", "prompt": "Again"}\n')
    with pytest.raises(CaiError, match="p.jsonl:2: duplicate id 'q-7'"):
        list(PromptReader(path))
    csv = tmp_path / "p.csv"
    csv.write_text("id,prompt\n12,Hello\n")
    assert [r.id for r in PromptReader(csv)] == ["12"]


@pytest.mark.parametrize("kind", ["principle", "constitution"])
def test_an_unquoted_version_gets_a_hint_to_quote_it(tmp_path, kind):
    from cai.principles.constitution import load_constitution
    from cai.principles.principle import load_principle

    if kind == "principle":
        src = (REPO / "principles" / "harm-animal-cruelty.md").read_text()
        path = tmp_path / "harm-animal-cruelty.md"
        path.write_text(src.replace("version: 1.0.0", "version: 1.10"))
        load = lambda: load_principle(path)  # noqa: E731
    else:
        shutil.copytree(REPO / "principles", tmp_path / "principles")
        path = tmp_path / "default.yaml"
        path.write_text((REPO / "constitution" / "default.yaml").read_text().replace("version: 1.0.0", "version: 1.10"))
        load = lambda: load_constitution(path, tmp_path / "principles")  # noqa: E731
    with pytest.raises(CaiError) as err:
        load()
    assert "YAML read 1.10 as a number (1.1); quote it: version: \"1.10.0\"" in str(err.value)
