"""A note about an old spelling is said once per command, not once per process: the second
`cai ...` run in one process (a notebook, a test session) was told nothing (CI failed on it)."""

from __future__ import annotations

from cai.cli.main import main
from cai.core import renames


def test_each_command_invocation_says_its_own_notes(tmp_path, capsys):
    (tmp_path / "pairs.jsonl").write_text('{"prompt": "p", "chosen": "a", "rejected": "b"}\n')
    cfg = tmp_path / "reward.yaml"
    cfg.write_text("model: m\npairs: pairs.jsonl\nout: run\ntest_fraction: 0.5\n")
    errs = []
    for _ in range(2):
        main(["train", "reward", "--config", str(cfg)])  # fails later (no model m): the note comes first
        errs.append(capsys.readouterr().err)
    assert all("test_fraction is now test_size" in e for e in errs), errs


def test_note_is_said_once_until_reset(capsys):
    renames.note("zzz is now yyy")
    renames.note("zzz is now yyy")
    assert capsys.readouterr().err.count("zzz is now yyy") == 1
    renames.reset_notes()
    renames.note("zzz is now yyy")
    assert capsys.readouterr().err.count("zzz is now yyy") == 1
