"""Issue 23: a newcomer's three workflows, each rough edge as a small test of its own.

Each test builds its own small input (a handful of records, a three-row CSV, a recipe in tmp_path)
and fails on the behaviour the newcomer ran into."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cai.cli.main import main
from cai.data.records import ChatMessage, Record


def cli(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def _records(folder: Path, ids: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "records.jsonl", "w", encoding="utf-8") as fh:
        for i, rid in enumerate(ids):
            r = Record(id=rid, prompt=[ChatMessage(role="user", content=f"question number {i}")],
                       draft=f"draft {i}", final=f"final {i}")
            fh.write(r.model_dump_json() + "\n")


# ---------------------------------------------------------------- 6. finding one's way in `cai show`


def test_show_lists_records_and_explains_ids(tmp_path, capsys):
    _records(tmp_path / "run", ["med001aa", "med002bb", "med003cc", "other000"])
    code, out, _ = cli(capsys, "show", str(tmp_path / "run"))
    assert code == 0 and all(i in out for i in ("med001aa", "med003cc", "other000")) and "question number 3" in out
    code, _, err = cli(capsys, "show", str(tmp_path / "run"), "--id", "med")
    assert code == 2 and "matches 3 records" in err and "med002bb" in err
    code, _, err = cli(capsys, "show", str(tmp_path / "run"), "--id", "nope")
    assert code == 2 and "other000" in err and "med001aa" in err
    code, out, _ = cli(capsys, "show", str(tmp_path / "run"), "--id", "med002")
    assert code == 0 and "draft 1" in out


def test_show_on_a_loop_run_folder_reads_its_generate_stage(tmp_path, capsys):
    _records(tmp_path / "loop" / "generate", ["abc123"])
    code, out, _ = cli(capsys, "show", str(tmp_path / "loop"), "--id", "abc")
    assert code == 0 and "final 0" in out
    code, _, err = cli(capsys, "show", str(tmp_path / "empty"))
    assert code == 2


def test_trl_log_entries_become_one_plain_line_per_step():
    from cai.train.run import log_line

    line = log_line({"loss": 0.693147, "grad_norm": 1.23456, "learning_rate": 5e-05, "epoch": 0.4}, 10, 40)
    assert line == "step 10/40: loss 0.6931, grad_norm 1.235, learning_rate 5e-05, epoch 0.4"
    end = log_line({"train_runtime": 3.21, "train_loss": 0.7, "total_flos": 12.0}, 40, 40)
    assert end.startswith("done after 40 steps: runtime 3.21") and "flos" not in end


@pytest.mark.slow
def test_reward_training_off_a_terminal_prints_plain_lines_not_dicts(tiny_llama, tmp_path, capsys):
    pytest.importorskip("trl")
    from cai.data.pairs import PreferencePair, write_pairs

    pairs = [PreferencePair(prompt=[{"role": "user", "content": f"question {i}"}],
                            chosen=[{"role": "assistant", "content": f"good answer {i}"}],
                            rejected=[{"role": "assistant", "content": f"bad {i}"}], source="human")
             for i in range(8)]
    write_pairs(pairs, tmp_path / "pairs")
    cfg = tmp_path / "rm.yaml"
    cfg.write_text(f"data: {tmp_path / 'pairs'}\nmodel: {tiny_llama}\nout: {tmp_path / 'rm'}\n"
                   "max_steps: 2\nbatch_size: 4\nlogging_steps: 1\n")
    code, out, err = cli(capsys, "train", "reward", "--config", str(cfg))
    assert code == 0, err
    assert "step 1/2: loss" in out and "{'loss'" not in out + err


# ---------------------------------------------------------------- 5. weak judges, rates with their n


def test_rates_carry_their_n_and_interval():
    from cai.core.rates import rate_text, wilson

    text = rate_text(1.0, 1, of="pairs")
    assert text.startswith("100.0% of 1 pairs (95% CI") and "small sample" in text
    low, high = wilson(1, 1)
    assert low < 0.25 and high == 1.0
    assert "small sample" not in rate_text(0.5, 400) and rate_text(None, 3) == "n/a"


def test_label_warns_when_answers_are_mostly_position_bias(tmp_path, capsys):
    from feedback_helpers import write_constitution, write_pairs_file

    pairs = write_pairs_file(tmp_path / "pairs.jsonl", [(f"q{i}", f"yes {i}", f"no {i}") for i in range(4)])
    constitution = write_constitution(tmp_path)
    # The scripted labeler always answers "A": the first shown response wins in both orders.
    code, out, err = cli(capsys, "label", "--pairs", str(pairs), "--constitution", str(constitution),
                         "--principles", str(tmp_path / "principles"), "--out", str(tmp_path / "out"),
                         "--backend", "scripted", "--model", "scripted", "-O", "choices=[{A: 0.9, B: 0.1}]",
                         "--few-shot", "0")
    assert code == 0, err
    assert "position consistency 0.0% of 4 pairs" in out
    assert "warning: position consistency 0.0%" in err and "cai eval agreement" in err


def test_loop_report_gives_the_reward_model_accuracy_its_n(tmp_path):
    from cai.loop.page import _ENV

    html = _ENV.from_string("{{ x|rate(n) }}").render(x=1.0, n=1)
    assert "of 1 pairs" in html and "small sample" in html


# ---------------------------------------------------------------- 7. help at 80 columns


def _commands():
    """Every leaf command of the CLI as (path, click command)."""
    import typer

    from cai.cli import main as cli_main

    cli_main._register()
    root = typer.main.get_command(cli_main.app)

    def walk(cmd, path):
        if hasattr(cmd, "commands"):  # a group
            for name, sub in cmd.commands.items():
                yield from walk(sub, path + [name])
        else:
            yield path, cmd

    return list(walk(root, []))


def test_help_fits_80_columns_with_whole_option_names(monkeypatch, capsys):
    monkeypatch.setenv("COLUMNS", "80")
    commands = _commands()
    assert len(commands) > 20
    for path, cmd in commands:
        code, out, _ = cli(capsys, *path, "--help")
        assert code == 0, path
        assert max(len(line) for line in out.splitlines()) <= 80, (path, out)
        assert "<bool>" not in out and "…" not in out, path
        for param in cmd.params:
            for opt in param.opts + param.secondary_opts:
                if opt.startswith("--"):
                    assert opt in out, (path, opt)
    code, out, _ = cli(capsys, "generate", "--help")
    assert "(needs cai[ray])" in " ".join(out.split())
