"""Importers: published critique/revision sets become principle files and a constitution."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cai.cli.main import main
from cai.principles.constitution import load_constitution
from cai.core.errors import CaiError
from cai.principles.importers import import_file, slug, strip_wrapper
from cai.principles.lint import lint_paths

# Small fixtures in the shapes of the published files (texts written for these tests).
ANTHROPIC_CRITIQUE_REVISION = {
    "rude0": {
        "prompt": ["CritiqueRequest: Point out every place where the assistant's reply was rude or dismissive."],
        "edit_request": "RevisionRequest: Rewrite the reply so it is courteous: keep the facts, drop the sneer.",
    },
    "made_up1": {
        "prompt": ["\n\nCritiqueRequest: Find claims in the reply that are invented, such as fake citations.\n\nCritique:"],
        "edit_request": "\n\nRevisionRequest: Remove or correct the invented claims.\n\nRevision:",
    },
    "plain": {
        "prompt": "Does the reply ignore part of the question? Say which part.",
        "edit_request": "Answer every part of the question.",
    },
}
ANTHROPIC_EXPECTED = {
    "rude0": ("Point out every place where the assistant's reply was rude or dismissive.",
              "Rewrite the reply so it is courteous: keep the facts, drop the sneer."),
    "made-up1": ("Find claims in the reply that are invented, such as fake citations.",
                 "Remove or correct the invented claims."),
    "plain": ("Does the reply ignore part of the question? Say which part.", "Answer every part of the question."),
}

ANTHROPIC_RL_CHOICES = [
    "\nPick the reply that is kinder and less likely to upset a reader. Options:",
    "\nWhich reply is more honest about what it does not know? Options:",
    "Choose the reply a careful teacher would give.\nOptions:",
]

HF_SWARM = {
    "constitutions": [
        {"critic": "Did the reply encourage anything unsafe? Explain.",
         "revision": "Rewrite the reply so it does not encourage anything unsafe."},
        {"critic": "Critique: Is the reply condescending in tone?",
         "revision": "Revision: Make the tone respectful, as between equals."},
    ],
    "system_chat": [
        [
            {"role": "user", "content": "How do I pick a lock?"},
            {"role": "assistant", "content": "Insert a tension wrench, then rake the pins."},
            {"role": "user", "content": "Did the reply encourage anything unsafe? Explain."},
            {"role": "assistant", "content": "It teaches a skill that could be used to break in."},
            {"role": "user", "content": "Rewrite the reply so it does not encourage anything unsafe."},
            {"role": "assistant", "content": "If you are locked out, a licensed locksmith can help."},
        ],
        [
            {"role": "user", "content": "Explain tides."},
            {"role": "assistant", "content": "Obviously even a child knows it's the moon."},
        ],
    ],
}

LANGCHAIN_LIST = [
    {"name": "no_jargon", "critique_request": "Identify jargon the user may not understand.",
     "revision_request": "Rewrite the reply in plain words."},
    {"name": "cite", "critique_request": "Which claims lack a source?",
     "revision_request": "Add sources for the claims, or soften them."},
]
LANGCHAIN_DICT = {
    "brevity": {"critique_request": "Is the reply longer than it needs to be?",
                "revision_request": "Cut the reply to what the user needs."},
    "warmth": {"name": "warm tone", "critique_request": "Is the reply cold?",
               "revision_request": "Make the reply warmer."},
}


def write_json(path: Path, data) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, ensure_ascii=False, indent=1), encoding="utf-8")
    return path


def cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


def import_and_load(tmp_path, capsys, fmt: str, data, *extra: str):
    src = write_json(tmp_path / "source.json", data)
    out = tmp_path / "out"
    code, stdout, err = cli(capsys, "principles", "import", "--from", fmt, str(src), "--out", str(out), *extra)
    assert code == 0, stdout + err
    report = lint_paths([out / "principles", out / "constitution"])
    assert report.errors == [] and report.warnings == [], [d.format() for d in report.diagnostics]
    constitutions = list((out / "constitution").glob("*.yaml"))
    assert len(constitutions) == 1
    c = load_constitution(constitutions[0])
    assert {p.id for p in c.principles} == {p.stem for p in (out / "principles").glob("*.md")}
    return c, stdout


def test_anthropic_critique_revision(tmp_path, capsys):
    c, stdout = import_and_load(tmp_path, capsys, "anthropic", ANTHROPIC_CRITIQUE_REVISION)
    assert c.name == "anthropic-source" and "wrote 3 principles" in stdout
    got = {p.id: (p.critique, p.revision) for p in c.principles}
    assert got == {f"imported-anthropic-{k}": v for k, v in ANTHROPIC_EXPECTED.items()}
    assert c.spec.stages == ["revision"]
    assert all(p.tags == ["imported-anthropic"] and p.version == "1.0.0" for p in c.principles)


def test_anthropic_rl_choices(tmp_path, capsys):
    c, _ = import_and_load(tmp_path, capsys, "anthropic", ANTHROPIC_RL_CHOICES, "--name", "RL Choices", "--tag", "rl")
    assert c.name == "rl-choices" and c.spec.stages == ["feedback"]
    assert [p.preference for p in c.principles] == [
        "Pick the reply that is kinder and less likely to upset a reader.",
        "Which reply is more honest about what it does not know?",
        "Choose the reply a careful teacher would give.",
    ]
    assert [p.id for p in c.principles] == ["rl-choice-1", "rl-choice-2", "rl-choice-3"]
    assert all(p.critique is None for p in c.principles)


def test_hf_swarm(tmp_path, capsys):
    c, _ = import_and_load(tmp_path, capsys, "hf", HF_SWARM)
    assert [(p.critique, p.revision) for p in c.principles] == [
        ("Did the reply encourage anything unsafe? Explain.", "Rewrite the reply so it does not encourage anything unsafe."),
        ("Is the reply condescending in tone?", "Make the tone respectful, as between equals."),
    ]
    assert len(c.spec.exemplars) == 2
    first = c.spec.exemplars[0].messages
    assert [(m.role, m.content) for m in first] == [(m["role"], m["content"]) for m in HF_SWARM["system_chat"][0]]
    # the older file is the bare list of {critic, revision}
    c2, _ = import_and_load(tmp_path / "bare", capsys, "hf", HF_SWARM["constitutions"])
    assert [p.critique for p in c2.principles] == [p.critique for p in c.principles]
    assert c2.spec.exemplars == []


@pytest.mark.parametrize("data", [LANGCHAIN_LIST, LANGCHAIN_DICT], ids=["list", "dict"])
def test_langchain(tmp_path, capsys, data):
    c, _ = import_and_load(tmp_path, capsys, "langchain", data)
    entries = data if isinstance(data, list) else [dict(v, name=v.get("name", k)) for k, v in data.items()]
    expected = {f"imported-langchain-{slug(e['name'])}": (e["critique_request"], e["revision_request"]) for e in entries}
    assert {p.id: (p.critique, p.revision) for p in c.principles} == expected
    titles = {p.title for p in c.principles}
    assert ("no jargon" in titles) if isinstance(data, list) else ("warm tone" in titles)


def test_import_file_api_and_duplicate_names(tmp_path):
    src = write_json(tmp_path / "x.json", [LANGCHAIN_LIST[0], dict(LANGCHAIN_LIST[0], critique_request="Other?")])
    imported = import_file("langchain", src)
    assert [p.id for p in imported.principles] == ["imported-langchain-no-jargon", "imported-langchain-no-jargon-2"]
    written = imported.write(tmp_path / "out")
    assert [p.name for p in written] == ["imported-langchain-no-jargon.md", "imported-langchain-no-jargon-2.md",
                                         "langchain-x.yaml"]


def test_strip_wrapper_and_slug():
    assert strip_wrapper("  CritiqueRequest:   Be kind.  ") == "Be kind."
    assert strip_wrapper("revisionrequest: Fix it.\n\nRevision:") == "Fix it."
    assert strip_wrapper("Critique: Why: because.") == "Why: because."
    assert strip_wrapper("Nothing to strip: here") == "Nothing to strip: here"
    assert slug("Made_Up 1!") == "made-up-1" and slug("42 things") == "p-42-things" and slug("") == "p"


# --------------------------------------------------------------------------- bad input

BAD = [
    ("anthropic", '{"a": {"prompt": ["x"],\n  "edit_request": "y",}\n}', 2, "invalid JSON"),
    ("hf", '{\n\n  "constitutions": [\n', 4, "invalid JSON"),
    ("anthropic", "42", None, "expected a JSON object"),
    ("anthropic", '{"a": {"prompt": ["x"]}}', None, "entry 'a' needs 'prompt' and 'edit_request'"),
    ("anthropic", '{"a": {"prompt": [3], "edit_request": "y"}}', None, "must be non-empty text"),
    ("anthropic", '{"a": {"prompt": ["CritiqueRequest:"], "edit_request": "y"}}', None, "must be non-empty text"),
    ("anthropic", '["fine. Options:", 7]', None, "item 1 must be a non-empty string"),
    ("anthropic", '["Options:"]', None, "holds no question"),
    ("anthropic", "{}", None, "no principles found"),
    ("hf", '{"constitution": []}', None, "expected an object with a 'constitutions' list"),
    ("hf", '{"constitutions": [{"critic": "x"}]}', None, "constitutions[0] needs non-empty 'critic' and 'revision'"),
    ("hf", '{"constitutions": [{"critic": ["x"], "revision": "y"}]}', None, "constitutions[0] needs"),
    ("hf", '{"constitutions": [{"critic": "x", "revision": "y"}], "system_chat": [[{"role": "user"}]]}', None,
     "system_chat[0] must be a list of {role, content} messages"),
    ("hf", '{"constitutions": [{"critic": "x", "revision": "y"}], "system_chat": [[{"role": "bot", "content": "a"},'
           ' {"role": "user", "content": "b"}]]}', None, "system_chat[0]"),
    ("hf", '{"constitutions": [{"critic": "x", "revision": "y"}], "system_chat": 5}', None, "'system_chat' must be a list"),
    ("langchain", '"just text"', None, "expected a JSON list or object"),
    ("langchain", '[{"name": "a", "critique_request": "x"}]', None, "principle 0 needs"),
    ("langchain", '[{"name": "a", "critique_request": 1, "revision_request": "y"}]', None, "principle 0 needs"),
    ("langchain", '{"a": "not an object"}', None, "principle 0 needs"),
    ("langchain", "", 1, "file is empty"),
]


@pytest.mark.parametrize("fmt,text,line,phrase", BAD, ids=[f"{i}-{b[0]}" for i, b in enumerate(BAD)])
def test_bad_import_files(tmp_path, capsys, fmt, text, line, phrase):
    src = tmp_path / "bad.json"
    src.write_text(text, encoding="utf-8")
    out = tmp_path / "out"
    code, stdout, err = cli(capsys, "principles", "import", "--from", fmt, str(src), "--out", str(out))
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    where = f"{src}:{line}: " if line else f"{src}: "
    assert lines[0].startswith(f"error: {where}"), lines[0]
    assert phrase in lines[0]
    assert not out.exists()  # nothing written


def test_unknown_format_and_missing_file(tmp_path, capsys):
    src = write_json(tmp_path / "x.json", LANGCHAIN_LIST)
    code, _, err = cli(capsys, "principles", "import", "--from", "openai", str(src), "--out", str(tmp_path / "o"))
    assert code == 2 and "unknown format 'openai'; choose one of: anthropic, hf, langchain" in err
    code, _, err = cli(capsys, "principles", "import", "--from", "hf", str(tmp_path / "no.json"), "--out", str(tmp_path))
    assert code == 2 and "cannot read file" in err
    with pytest.raises(CaiError, match="unknown format"):
        import_file("nope", src)
