"""`cai principles list | show | new | schema`, and how the CLI reports errors."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from cai.cli.main import main
from cai.principles.principle import load_principle

REPO = Path(__file__).resolve().parents[1]
PRINCIPLES = REPO / "principles"


def cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


def test_list_all(capsys):
    code, out, _ = cli(capsys, "principles", "list", "--principles-dir", str(PRINCIPLES))
    assert code == 0
    rows = [ln.split()[0] for ln in out.splitlines()[1:] if ln.strip()]
    assert rows == sorted(load_principle(p).ref for p in PRINCIPLES.glob("*.md"))
    assert "Malware and cyber attacks" in out


def test_list_by_tag(capsys):
    code, out, _ = cli(capsys, "principles", "list", "--tag", "honest", "--principles-dir", str(PRINCIPLES))
    assert code == 0
    ids = {ln.split()[0].split("@")[0] for ln in out.splitlines()[1:] if ln.strip()}
    expected = {p.stem for p in PRINCIPLES.glob("*.md") if "honest" in load_principle(p).tags}
    assert ids == expected and ids
    code, _, err = cli(capsys, "principles", "list", "--tag", "nosuchtag", "--principles-dir", str(PRINCIPLES))
    assert code == 2 and err.strip() == "error: no principle has tag 'nosuchtag'"


def test_list_missing_dir(capsys, tmp_path):
    code, _, err = cli(capsys, "principles", "list", "--principles-dir", str(tmp_path / "nope"))
    assert code == 2 and "principles directory not found" in err


def test_show(capsys):
    code, out, _ = cli(capsys, "principles", "show", "harm-cyber", "--principles-dir", str(PRINCIPLES))
    assert code == 0
    p = load_principle(PRINCIPLES / "harm-cyber.md")
    flat = " ".join(out.split())
    assert p.title in flat and "harm-cyber@1.0.0" in flat
    assert " ".join(p.critique.split()[:8]) in flat
    assert "Example 1 (violates)" in flat and "Example 2 (does not violate)" in flat


def test_show_unknown_suggests(capsys):
    code, out, err = cli(capsys, "principles", "show", "harm-cybr", "--principles-dir", str(PRINCIPLES))
    assert code == 2 and out == ""
    assert err.strip() == "error: no principle 'harm-cybr' (did you mean 'harm-cyber'?)"
    code, _, err = cli(capsys, "principles", "show", "zzz", "--principles-dir", str(PRINCIPLES))
    assert code == 2 and err.strip() == "error: no principle 'zzz'"


def test_new_scaffold_lints_clean_and_is_not_overwritten(capsys, tmp_path):
    code, out, _ = cli(capsys, "principles", "new", "no-spoilers", "--principles-dir", str(tmp_path),
                       "--title", "No spoilers", "--tags", "helpful, fiction")
    path = tmp_path / "no-spoilers.md"
    assert code == 0 and f"wrote {path}" in out
    p = load_principle(path)
    assert (p.id, p.title, p.tags, p.version) == ("no-spoilers", "No spoilers", ["helpful", "fiction"], "0.1.0")
    assert p.critique and p.revision and p.preference and p.examples
    # its placeholder text is a warning: plain lint passes, --strict fails until it is replaced
    code, out, err = cli(capsys, "principles", "lint", str(path))
    assert code == 0 and out.count("placeholder text from `cai principles new`") == 3, out + err
    code, out, err = cli(capsys, "principles", "lint", "--strict", str(path))
    assert code == 2 and f"{path}:10: warning: placeholder text" in out, out + err
    text = path.read_text(encoding="utf-8")
    for old, new in (("Describe what 'No spoilers' protects against, and why it matters.", "Endings stay secret."),
                     ("A user message where this principle matters.", "How does the film end?"),
                     ("A response that falls short of it.", "The hero dies in the last scene.")):
        text = text.replace(old, new)
    path.write_text(text, encoding="utf-8")
    code, out, err = cli(capsys, "principles", "lint", "--strict", str(path))
    assert code == 0, out + err
    # and it lints clean next to the shipped library, used by a constitution that selects it
    (tmp_path / "constitution").mkdir()
    (tmp_path / "constitution" / "fiction.yaml").write_text(
        "name: fiction\nversion: 1.0.0\nprinciples:\n  ids: [no-spoilers]\n", encoding="utf-8")
    code, out, err = cli(capsys, "principles", "lint", "--strict", str(tmp_path))
    assert code == 0, out + err

    path.write_text(path.read_text(encoding="utf-8") + "\nEdited by hand.\n", encoding="utf-8")
    before = path.read_bytes()
    code, out, err = cli(capsys, "principles", "new", "no-spoilers", "--principles-dir", str(tmp_path))
    assert code == 2 and "already exists" in err and str(path) in err
    assert path.read_bytes() == before


@pytest.mark.parametrize(
    "args,phrase",
    [(["Bad_Id"], "invalid id 'Bad_Id'"), (["ok-id", "--tags", "Not OK"], "invalid tag 'Not OK'")],
)
def test_new_rejects_bad_names(capsys, tmp_path, args, phrase):
    code, _, err = cli(capsys, "principles", "new", *args, "--principles-dir", str(tmp_path))
    assert code == 2 and phrase in err and len(err.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_schema_principle(capsys):
    code, out, _ = cli(capsys, "principles", "schema", "principle")
    assert code == 0
    schema = json.loads(out)
    assert schema["type"] == "object"
    assert {"id", "version", "title", "tags", "critique", "revision", "preference", "examples"} <= set(schema["properties"])
    assert set(schema["required"]) == {"id", "version", "title", "tags"}
    assert schema["additionalProperties"] is False
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    for path in PRINCIPLES.glob("*.md"):
        validator.validate(load_principle(path).model_dump(mode="json", exclude_none=True))
    assert not validator.is_valid({"id": "Bad Id", "version": "one", "title": "", "tags": 3})


def test_schema_constitution(capsys):
    code, out, _ = cli(capsys, "principles", "schema", "constitution")
    assert code == 0
    schema = json.loads(out)
    assert {"name", "version", "principles", "sampling", "weights", "templates", "rounds"} <= set(schema["properties"])
    assert set(schema["required"]) == {"name", "version", "principles"}
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    for path in (REPO / "constitution").glob("*.yaml"):
        validator.validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    assert not validator.is_valid({"name": "x", "version": "1.0.0", "principles": {"ids": []}, "sampling": {"sed": 1}})


def test_schema_unknown(capsys):
    code, out, err = cli(capsys, "principles", "schema", "recipe")
    assert code == 2 and out == ""
    assert err.strip() == "error: unknown schema 'recipe'; choose principle or constitution"


def test_usage_errors_exit_2_without_traceback(capsys):
    code, _, err = cli(capsys, "principles", "shwo")
    assert code == 2 and "No such command" in err
    code, _, err = cli(capsys, "principles", "lint", "--strikt")
    assert code == 2 and "No such option" in err


def test_main_can_run_many_times(capsys):
    for _ in range(3):
        code, out, _ = cli(capsys, "principles", "schema", "principle")
        assert code == 0 and json.loads(out)["title"] == "Principle"


def test_console_script(tmp_path):
    cai = shutil.which("cai", path=str(Path(sys.executable).parent)) or shutil.which("cai")
    assert cai, "the `cai` console script is not installed (pip install -e .)"
    proc = subprocess.run([str(cai), "principles", "show", "harm-cybr", "--principles-dir", str(PRINCIPLES)],
                          capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "error: no principle 'harm-cybr' (did you mean 'harm-cyber'?)"
    proc = subprocess.run([str(cai), "principles", "lint"], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    assert "0 errors, 0 warnings" in proc.stderr
