"""The shipped library (cai/library): one lookup for its principles, constitutions and recipes, its
ids and globs reachable beside one's own folders, and `cai init`'s starter project."""

from __future__ import annotations

from pathlib import Path

import pytest

from cai.cli.main import main
from cai.core.errors import CaiError
from cai.principles import library as lib
from cai.principles.constitution import load_constitution

REPO = Path(__file__).resolve().parents[1]

OWN = """---
id: {pid}
version: 1.0.0
title: {pid}
tags: [own]
---

Own principle.

## Critique
Say what is wrong.

## Revision
Fix it.

## Preference
Which is better?
"""


def project(tmp_path: Path, ids: str, own: tuple[str, ...] = ("mine",)) -> Path:
    for pid in own:
        (tmp_path / "principles").mkdir(exist_ok=True)
        (tmp_path / "principles" / f"{pid}.md").write_text(OWN.format(pid=pid))
    (tmp_path / "constitution").mkdir()
    path = tmp_path / "constitution" / "c.yaml"
    path.write_text(f"name: c\nversion: 1.0.0\nprinciples:\n  ids: {ids}\n")
    return path


def test_one_lookup_finds_every_kind_and_the_clone_links_point_at_it():
    for kind in lib.SHIPPED_KINDS:
        folder = lib.shipped_dir(kind)
        assert folder is not None and folder.parent == REPO / "cai" / "library"
        if kind != "suites":  # principles/ constitution/ recipes/ of a clone
            assert (REPO / kind).resolve() == folder.resolve()
    assert (lib.shipped_dir("recipes") / "loop-quickstart.yaml").is_file()
    from cai.evals.suites import builtin_dir

    assert builtin_dir() == lib.shipped_dir("suites") and (builtin_dir() / "harmful.yaml").is_file()
    assert lib.find_constitution("harmless").resolve() == (lib.shipped_dir("constitution") / "harmless.yaml").resolve()


def test_shipped_globs_and_ids_reach_beside_own_principles(tmp_path):
    shipped = sorted(p for p in lib.shipped_principles() if p.startswith("rlhf-"))
    assert len(shipped) >= 2
    c = load_constitution(project(tmp_path, "[mine, 'rlhf-*', harm-high-stakes-advice]"))
    assert sorted(p.id for p in c.principles) == sorted(["mine", "harm-high-stakes-advice", *shipped])


def test_a_glob_that_matches_own_principles_takes_only_those(tmp_path):
    c = load_constitution(project(tmp_path, "['rlhf-*']", own=("rlhf-mine",)))
    assert [p.id for p in c.principles] == ["rlhf-mine"]


def test_lint_accepts_a_shipped_glob_and_refuses_one_that_matches_nothing(tmp_path, capsys):
    path = project(tmp_path, "[mine, 'rlhf-*']")
    assert main(["principles", "lint", str(tmp_path / "principles"), str(tmp_path / "constitution")]) == 0
    path.write_text("name: c\nversion: 1.0.0\nprinciples:\n  ids: [mine, 'nosuch-*']\n")
    assert main(["principles", "lint", str(tmp_path / "principles"), str(tmp_path / "constitution")]) == 2
    assert "selects unknown principle 'nosuch-*'" in capsys.readouterr().err


def test_an_install_without_the_library_says_so_once(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(lib, "SHIPPED", tmp_path / "nothing")
    monkeypatch.setattr(lib, "_said_missing", set())
    assert lib.shipped_dir("principles") is None and lib.shipped_dir("principles") is None
    err = capsys.readouterr().err
    assert err.count("no shipped principles") == 1 and err.count("\n") == 1
    with pytest.raises(CaiError, match="no starter project"):
        lib.write_starter(tmp_path / "p")


def test_init_writes_a_project_that_lints_and_plans(tmp_path, capsys, monkeypatch):
    dest = tmp_path / "proj"
    assert main(["init", str(dest)]) == 0
    out = capsys.readouterr().out
    for f in ("principles/plain-answers.md", "constitution/starter.yaml", "prompts.jsonl", "loop.yaml"):
        assert (dest / f).is_file() and f in out
    monkeypatch.chdir(dest)
    assert main(["principles", "lint", "--strict"]) == 0
    assert main(["run", "loop.yaml", "--dry-run"]) == 0
    plan = capsys.readouterr().out
    assert "generate" in plan and "mix" in plan and "ppo" not in plan


def test_init_never_overwrites_without_force(tmp_path, capsys):
    dest = tmp_path / "proj"
    assert main(["init", str(dest)]) == 0
    (dest / "loop.yaml").write_text("mine\n")
    assert main(["init", str(dest)]) == 2
    assert "would overwrite" in capsys.readouterr().err and (dest / "loop.yaml").read_text() == "mine\n"
    assert main(["init", str(dest), "--force"]) == 0
    assert (dest / "loop.yaml").read_text() != "mine\n"


def test_a_shipped_recipe_runs_by_its_clone_path_from_anywhere(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no recipes/ here, as after `pip install`
    assert lib.find_recipe("recipes/loop-quickstart.yaml") == lib.shipped_dir("recipes") / "loop-quickstart.yaml"
    assert lib.find_recipe("loop-grpo.yaml") == lib.shipped_dir("recipes") / "loop-grpo.yaml"
    assert lib.find_recipe("recipes/nope.yaml") == Path("recipes/nope.yaml")  # the reader names what is missing
    assert main(["run", "recipes/loop-quickstart.yaml", "--dry-run", "--out", str(tmp_path / "run")]) == 0
    captured = capsys.readouterr()
    assert "running the shipped recipe" in captured.err and "generate" in captured.out
    assert not (tmp_path / "run").exists() or not any((tmp_path / "run").iterdir())
