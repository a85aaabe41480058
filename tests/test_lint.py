"""`cai principles lint`: the shipped library passes; each kind of broken file fails at its line."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cai.cli.main import main
from cai.principles.lint import lint_paths

REPO = Path(__file__).resolve().parents[1]


def principle_md(pid: str, *, critique="Point out where the last response is rude.",
                 revision="Rewrite the response so that it is polite.",
                 preference="Which response is more polite?", extra_front="", tags="[manners]") -> str:
    """A small valid principle file; every test starts from this and breaks one thing."""
    lines = ["---", f"id: {pid}", "version: 1.0.0", f"title: {pid} title", f"tags: {tags}"]
    if extra_front:
        lines.append(extra_front)
    lines += ["---", "Why this matters.", ""]
    if critique is not None:
        lines += ["## Critique", critique, "", "## Revision", revision, ""]
    if preference is not None:
        lines += ["## Preference", preference, ""]
    return "\n".join(lines)


GOOD = principle_md("polite")
# Line numbers of GOOD: 1 ---, 2 id, 3 version, 4 title, 5 tags, 6 ---, 7 prose, 8 blank,
# 9 ## Critique, 10 text, 11 blank, 12 ## Revision, 13 text, 14 blank, 15 ## Preference, 16 text.


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["principles", *args])
    out, err = capsys.readouterr()
    assert "Traceback" not in err and "Traceback" not in out
    return code, out, err


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


# --------------------------------------------------------------------------- the shipped library


def test_shipped_library_lints_clean(capsys, monkeypatch):
    monkeypatch.chdir(REPO)
    code, out, err = run(capsys, "lint", "--strict")  # default paths: principles/ constitution/
    assert code == 0, out + err
    assert "0 errors, 0 warnings" in err
    report = lint_paths([REPO / "principles", REPO / "constitution"])
    assert report.errors == [] and report.warnings == []
    assert report.principles == len(list((REPO / "principles").glob("*.md"))) >= 20
    assert report.constitutions == len(list((REPO / "constitution").glob("*.yaml"))) >= 3


# --------------------------------------------------------------------------- broken principle files

# (case id, file stem, file content, expected line, key phrase of the message)
BROKEN_PRINCIPLES = [
    ("yaml-syntax", "polite", GOOD.replace("title: polite title", "title: a: b"), 4, "malformed YAML"),
    ("yaml-python-tag", "polite",
     GOOD.replace("title: polite title", "title: !!python/object/apply:os.system ['true']"), 4, "malformed YAML"),
    ("no-front-matter", "polite", GOOD.split("---\n", 2)[2], 1, "missing YAML front matter"),
    ("unclosed-front-matter", "polite", GOOD.replace("---\nWhy", "Why"), 1, "not closed"),
    ("front-matter-list", "polite", "---\n- a\n- b\n---\n## Preference\nq\n", 2, "must be a YAML mapping"),
    ("empty-front-matter", "polite", "---\n---\n## Preference\nq\n", 2, "front matter is empty"),
    ("empty-section", "polite", principle_md("polite", critique=""), 9, "section '## Critique' is empty"),
    ("missing-revision", "polite", GOOD.replace("## Revision\nRewrite the response so that it is polite.\n", ""),
     1, "missing section '## Revision'"),
    ("no-sections", "polite", principle_md("polite", critique=None, preference=None), 1, "needs sections"),
    ("tags-int", "polite", principle_md("polite", tags="3"), 5, "tags: Input should be a valid list"),
    ("tags-empty", "polite", principle_md("polite", tags="[]"), 5, "tags"),
    ("tag-uppercase", "polite", principle_md("polite", tags="[Manners]"), 1, "tag 'Manners'"),
    ("weight-negative", "polite", principle_md("polite", extra_front="weight: -1"), 6, "weight: Input should be greater than 0"),
    ("weight-text", "polite", principle_md("polite", extra_front="weight: heavy"), 6, "weight"),
    ("version-word", "polite", GOOD.replace("version: 1.0.0", "version: one"), 3,
     "version: 'one' is not a semantic version such as 1.0.0"),
    ("version-number", "polite", GOOD.replace("version: 1.0.0", "version: 1.0"), 3, "version"),
    ("title-empty", "polite", GOOD.replace("title: polite title", "title: ''"), 4, "title"),
    ("unknown-key", "polite", GOOD.replace("title:", "titel:"), 4, "unknown front matter key 'titel' (did you mean 'title'?)"),
    ("unknown-section", "polite", GOOD.replace("## Critique", "## Critque"), 9,
     "unknown section '## Critque' (did you mean 'Critique'?)"),
    ("duplicate-key", "polite", principle_md("polite", extra_front="title: again"), 6, "duplicate key 'title'"),
    ("duplicate-section", "polite", GOOD + "\n## Preference\nAgain?\n", 18, "appears twice"),
    ("id-not-stem", "courteous", GOOD, 2, "id 'polite' must equal the file name stem 'courteous'"),
    ("bad-id", "Polite", GOOD.replace("id: polite", "id: Polite"), 2, "id: 'Polite' is not a valid id"),
    ("examples-bad-yaml", "polite", GOOD + "\n## Examples\n```yaml\n- prompt: hi\n  response: [oops\n```\n", 21,
     "malformed YAML"),
    ("examples-missing-field", "polite",
     GOOD + "\n## Examples\n```yaml\n- prompt: hi\n  response: hello\n  violates: false\n- prompt: hi\n  violates: true\n```\n", 23,
     "examples.1.response: Field required"),
    ("examples-unknown-field", "polite",
     GOOD + "\n## Examples\n```yaml\n- prompt: hi\n  response: yo\n  violates: false\n  verdict: ok\n```\n", 23,
     "examples.0.verdict"),
    ("examples-not-fenced", "polite", GOOD + "\n## Examples\n- prompt: hi\n", 18, "fenced ```yaml block"),
    ("examples-not-a-list", "polite", GOOD + "\n## Examples\n```yaml\nprompt: hi\n```\n", 18, "non-empty YAML list"),
    ("empty-file", "polite", "  \n\n", 1, "file is empty"),
    ("not-utf8", "polite", GOOD.replace("Why this", "Why \xe9 this").encode("latin-1"), 7, "not valid UTF-8"),
]


@pytest.mark.parametrize(
    "stem,content,line,phrase", [c[1:] for c in BROKEN_PRINCIPLES], ids=[c[0] for c in BROKEN_PRINCIPLES]
)
def test_broken_principle_fails_at_its_line(tmp_path, capsys, stem, content, line, phrase):
    path = write(tmp_path / f"{stem}.md", content)
    code, out, err = run(capsys, "lint", str(path))
    assert code == 2
    errors = [ln for ln in err.splitlines() if ln.startswith(f"{path}:")]
    assert errors, err
    assert errors[0].startswith(f"{path}:{line}: "), errors
    assert phrase in errors[0]
    assert "1 errors" in err or "errors" in err.splitlines()[-1]


def test_file_over_one_mib(tmp_path, capsys):
    path = write(tmp_path / "polite.md", GOOD + "\n" + "x" * (1 << 20))
    code, _, err = run(capsys, "lint", str(path))
    assert code == 2
    assert f"{path}:1: file is " in err and "1 MiB" in err


def test_duplicate_ids_across_files(tmp_path, capsys):
    first = write(tmp_path / "a" / "polite.md", GOOD)
    second = write(tmp_path / "b" / "polite.md", GOOD)
    code, _, err = run(capsys, "lint", str(tmp_path))
    assert code == 2
    assert f"{second}:2: duplicate principle id 'polite' (also defined in {first})" in err


def test_missing_path(tmp_path, capsys):
    code, _, err = run(capsys, "lint", str(tmp_path / "nope"))
    assert code == 2 and "no such file or directory" in err


def test_every_error_is_one_line(tmp_path, capsys):
    for i, (_, stem, content, _, _) in enumerate(BROKEN_PRINCIPLES):
        write(tmp_path / f"d{i}" / f"{stem}.md", content)
    code, out, err = run(capsys, "lint", str(tmp_path))
    assert code == 2
    lines = [ln for ln in err.splitlines() if not ln.endswith("warnings")]
    assert len(lines) >= len(BROKEN_PRINCIPLES)
    assert all(ln.startswith(str(tmp_path)) for ln in lines), lines


# --------------------------------------------------------------------------- broken constitutions


def library(tmp_path: Path, constitution: str, principles: dict[str, str] | None = None) -> Path:
    """A principles/ + constitution/ pair; returns the constitution's path."""
    principles = principles or {
        "polite": GOOD,
        "honest": principle_md("honest", critique="Find every claim in the response that is made up.",
                               revision="Remove the invented claims.", preference="Which is more truthful?",
                               tags="[truth]"),
    }
    for pid, text in principles.items():
        write(tmp_path / "principles" / f"{pid}.md", text)
    return write(tmp_path / "constitution" / "c.yaml", constitution)


CONST_HEAD = "name: c\nversion: 1.0.0\nprinciples:\n  ids: [polite, honest]\n"

# (case id, constitution text, expected line, key phrase)
BROKEN_CONSTITUTIONS = [
    ("yaml-syntax", CONST_HEAD + "rounds: [1\n", 6, "malformed YAML"),
    ("python-tag", CONST_HEAD + "description: !!python/object/apply:os.system ['true']\n", 5, "malformed YAML"),
    ("not-a-mapping", "- a\n- b\n", 1, "must be a YAML mapping"),
    ("unknown-id", "name: c\nversion: 1.0.0\nprinciples:\n  ids:\n    - polite\n    - honset\n", 6,
     "selects unknown principle 'honset' (did you mean 'honest'?)"),
    # a glob that matches nothing here nor in the shipped library (harm-* would reach the shipped ones)
    ("unknown-glob", "name: c\nversion: 1.0.0\nprinciples:\n  ids: [nosuch-*]\n", 4, "selects unknown principle 'nosuch-*'"),
    ("tag-matches-nothing", "name: c\nversion: 1.0.0\nprinciples:\n  tags: [truht]\n", 4,
     "tag 'truht' matches no principle (did you mean 'truth'?)"),
    ("unknown-key", CONST_HEAD + "round: 2\n", 5, "unknown constitution key 'round' (did you mean 'rounds'?)"),
    ("unknown-sampling-key", CONST_HEAD + "sampling:\n  strategy: random\n  sed: 3\n", 7,
     "unknown 'sampling' key 'sed' (did you mean 'seed'?)"),
    ("unknown-principles-key", "name: c\nversion: 1.0.0\nprinciples:\n  ids: [polite]\n  tag: [truth]\n", 5,
     "unknown 'principles' key 'tag' (did you mean 'tags'?)"),
    ("unknown-templates-key", CONST_HEAD + "templates:\n  critic: x\n", 6, "unknown 'templates' key 'critic'"),
    ("weight-unselected", "name: c\nversion: 1.0.0\nprinciples:\n  ids: [polite]\nweights:\n  polite: 2\n  honest: 3\n",
     7, "weight for 'honest', which this constitution does not select"),
    ("weight-negative", CONST_HEAD + "weights:\n  honest: -1\n", 6, "weights.honest"),
    ("bad-strategy", CONST_HEAD + "sampling:\n  strategy: sometimes\n", 6, "sampling.strategy"),
    ("rounds-zero", CONST_HEAD + "rounds: 0\n", 5, "rounds"),
    ("bad-stage", CONST_HEAD + "stages: [revision, ranking]\n", 5, "stages.1"),
    ("name-not-stem", CONST_HEAD.replace("name: c", "name: other"), 1, "must equal the file name stem 'c'"),
    ("bad-version", CONST_HEAD.replace("1.0.0", "'1.0'"), 2, "version: '1.0' is not a semantic version"),
    ("missing-version", "name: c\nprinciples:\n  ids: [polite]\n", 1, "version: Field required"),
    ("empty-selection", "name: c\nversion: 1.0.0\nprinciples:\n  exclude: [x]\n", 3, "select principles with"),
    ("exemplar-bad-role", CONST_HEAD + "exemplars:\n  - messages:\n      - {role: human, content: hi}\n"
     "      - {role: assistant, content: yo}\n", 7, "exemplars.0.messages.0.role"),
    ("template-syntax", CONST_HEAD + "templates:\n  critique: '{{ request '\n", 6, "template 'critique'"),
    ("template-unknown-variable", CONST_HEAD + "templates:\n  revision: '{{ requets }}'\n", 6,
     "unknown variable(s) requets"),
    ("template-include", CONST_HEAD + "templates:\n  critique: \"{% include '/etc/passwd' %}\"\n", 6,
     "may not include"),
    ("template-private-attr", CONST_HEAD + "templates:\n  preference: \"{{ question.__class__ }}\"\n", 6,
     "private attribute '__class__'"),
    ("empty-file", "\n\n", 1, "file is empty"),
    ("not-utf8", (CONST_HEAD + "description: caf\xe9\n").encode("latin-1"), 5, "not valid UTF-8"),
]


@pytest.mark.parametrize(
    "text,line,phrase", [c[1:] for c in BROKEN_CONSTITUTIONS], ids=[c[0] for c in BROKEN_CONSTITUTIONS]
)
def test_broken_constitution_fails_at_its_line(tmp_path, capsys, text, line, phrase):
    path = library(tmp_path, text)
    # linted alone (against the library beside it) and together with its principles
    for args in ([str(path)], [str(tmp_path / "principles"), str(tmp_path / "constitution")]):
        code, out, err = run(capsys, "lint", *args)
        assert code == 2, out + err
        errors = [ln for ln in err.splitlines() if ln.startswith(f"{path}:")]
        assert errors, err
        assert errors[0].startswith(f"{path}:{line}: "), errors
        assert phrase in errors[0]


def test_no_unused_warnings_when_a_constitution_is_unreadable(tmp_path, capsys):
    library(tmp_path, CONST_HEAD + "round: 2\n")
    code, out, err = run(capsys, "lint", str(tmp_path))
    assert code == 2 and "unknown constitution key 'round'" in err
    assert "not used by any constitution" not in out


def test_revision_stage_needs_critique(tmp_path, capsys):
    only_pref = principle_md("polite", critique=None)
    path = library(tmp_path, "name: c\nversion: 1.0.0\nprinciples:\n  ids: [polite]\nstages: [revision]\n",
                   {"polite": only_pref})
    code, _, err = run(capsys, "lint", str(tmp_path))
    assert code == 2
    assert f"{path}:3: principle 'polite' has no Critique/Revision sections" in err


# --------------------------------------------------------------------------- warnings


def _warning_cases(tmp_path: Path, case: str) -> tuple[Path, str]:
    if case == "near-duplicate":
        twin = GOOD.replace("id: polite", "id: polite-two").replace("is rude.", "is impolite.")
        library(tmp_path, "name: c\nversion: 1.0.0\nprinciples:\n  tags: [manners]\n", {"polite": GOOD, "polite-two": twin})
        return tmp_path / "principles" / "polite-two.md", "near-duplicate of 'polite'"
    if case == "no-preference-with-feedback":
        path = library(tmp_path, "name: c\nversion: 1.0.0\nprinciples:\n  ids: [polite]\nstages: [revision, feedback]\n",
                       {"polite": principle_md("polite", preference=None)})
        return path, "principle 'polite' has no '## Preference' section, which stage 'feedback' needs"
    if case == "unused":
        library(tmp_path, "name: c\nversion: 1.0.0\nprinciples:\n  ids: [polite]\n")
        return tmp_path / "principles" / "honest.md", "principle 'honest' is not used by any constitution"
    raise AssertionError(case)


@pytest.mark.parametrize("case", ["near-duplicate", "no-preference-with-feedback", "unused"])
def test_warnings_pass_unless_strict(tmp_path, capsys, case):
    where, phrase = _warning_cases(tmp_path, case)
    code, out, err = run(capsys, "lint", str(tmp_path / "principles"), str(tmp_path / "constitution"))
    assert code == 0, out + err
    assert any(ln.startswith(f"{where}:2: warning: ") and phrase in ln for ln in out.splitlines()) or any(
        ln.startswith(f"{where}:") and ": warning: " in ln and phrase in ln for ln in out.splitlines()
    ), out
    assert "0 errors, 1 warnings" in err
    code, out, err = run(capsys, "lint", "--strict", str(tmp_path / "principles"), str(tmp_path / "constitution"))
    assert code == 2
    assert phrase in out


def test_preference_only_principle_is_fine_for_feedback_only(tmp_path, capsys):
    library(tmp_path, "name: c\nversion: 1.0.0\nprinciples:\n  ids: [polite]\nstages: [feedback]\n",
            {"polite": principle_md("polite", critique=None)})
    code, out, err = run(capsys, "lint", "--strict", str(tmp_path))
    assert code == 0, out + err


def test_no_code_runs_from_yaml_tags(tmp_path, capsys):
    marker = tmp_path / "MARKER"
    payload = f"!!python/object/apply:os.system ['touch {marker}']"
    write(tmp_path / "principles" / "polite.md", GOOD.replace("title: polite title", f"title: {payload}"))
    write(tmp_path / "constitution" / "c.yaml", CONST_HEAD + f"description: {payload}\n")
    code, _, err = run(capsys, "lint", str(tmp_path))
    assert code == 2
    assert "polite.md:4: malformed YAML" in err and "c.yaml:5: malformed YAML" in err
    assert not marker.exists()


# --------------------------------------------------------------------------- a real process


def test_console_script_subprocess(tmp_path):
    cai = shutil.which("cai", path=str(Path(sys.executable).parent)) or shutil.which("cai")
    assert cai, "the `cai` console script is not installed (pip install -e .)"
    bad = write(tmp_path / "polite.md", GOOD.replace("## Critique", "## Critque"))
    proc = subprocess.run([str(cai), "principles", "lint", str(bad)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert f"{bad}:9: unknown section '## Critque' (did you mean 'Critique'?)" in proc.stderr
    assert "Traceback" not in proc.stderr
    good = write(tmp_path / "ok" / "polite.md", GOOD)
    proc = subprocess.run([str(cai), "principles", "lint", str(good)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "1 principles, 0 constitutions: 0 errors, 0 warnings" in proc.stderr
