"""`cai train sft` and `cai train dpo`: one real step each through the CLI on an SL-CAI export,
data loading (completion-only SFT, splits), loss choice per source, and one-line errors."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

pytest.importorskip("trl", reason="needs the train extra (trl)")

from cai.cli.main import main
from cai.data.pairs import PreferencePair
from cai.sl import run_generate
from cai.train.data import load_preference_splits, load_sft_splits
from cai.train.dpo import resolve_loss
from sl_helpers import EchoCritic
from test_generate import config, write_prompts


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A real SL-CAI run folder (records, sft/ and preferences/ exports) from a scripted model."""
    tmp = tmp_path_factory.mktemp("sl-run")
    prompts = write_prompts(tmp / "p.jsonl", 4)
    backend = EchoCritic()
    run_generate(config(tmp, prompts), backends=(backend, backend))
    return tmp / "run"


def _one_line_error(capsys, argv) -> str:
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    return err


# ---------------------------------------------------------------- data (no model)


def test_sft_data_is_completion_only_prompt_completion(run_dir):
    train, test = load_sft_splits(run_dir)
    assert test is None and len(train) == 4 and set(train.column_names) == {"prompt", "completion"}
    row = train[0]
    assert row["prompt"][-1]["role"] == "user" and row["completion"][0]["role"] == "assistant"
    assert row["completion"][0]["content"].startswith("A kinder answer to:")
    full, _ = load_sft_splits(run_dir / "sft", completion_only=False)
    assert full.column_names == ["messages"]


def test_preference_splits_by_folder_or_id_hash(run_dir, tmp_path):
    from cai.data.pairs import write_pairs

    pairs = [PreferencePair(prompt=[{"role": "user", "content": f"q{i}"}], chosen=[{"role": "assistant", "content": "a"}],
                            rejected=[{"role": "assistant", "content": f"b{i}"}], source="human") for i in range(200)]
    write_pairs(pairs, tmp_path / "one")
    train, test = load_preference_splits(tmp_path / "one", test_fraction=0.2, seed=0)
    assert len(train) + len(test) == 200 and 20 < len(test) < 60
    assert not {p.id for p in train} & {p.id for p in test}
    again, _ = load_preference_splits(tmp_path / "one", test_fraction=0.2, seed=0)
    assert [p.id for p in again] == [p.id for p in train]  # deterministic
    write_pairs(pairs[:150], tmp_path / "split" / "train")
    write_pairs(pairs[150:], tmp_path / "split" / "test")
    train, test = load_preference_splits(tmp_path / "split", test_fraction=0.5)
    assert (len(train), len(test)) == (150, 50)  # explicit folders win over test_fraction


@pytest.mark.parametrize("sources, loss", [
    ({"ai-revision": 10}, "apo_zero"),
    ({"ai-revision": 10, "ai-feedback": 3}, "robust"),
    ({"ai-feedback": 3, "human": 2}, "robust"),
    ({"human": 5}, "sigmoid"),
    ({"ai-revision": 10, "human": 1}, "sigmoid"),
])
def test_auto_loss_per_source(sources, loss):
    assert resolve_loss("auto", sources) == loss
    assert resolve_loss("ipo", sources) == "ipo"  # an explicit choice is kept


# ---------------------------------------------------------------- one real step each


@pytest.mark.train
@pytest.mark.slow
def test_sft_one_step_from_config_with_flag_overrides(run_dir, tiny_llama, tmp_path, capsys):
    cfg = tmp_path / "sft.yaml"
    cfg.write_text(f"model: {tiny_llama}\ndata: {run_dir}\nout: {tmp_path / 'ignored'}\nmax_steps: 5\n"
                   "batch_size: 2\nmax_length: 256\nlearning_rate: 1.0e-4\ngradient_checkpointing: false\n"
                   "trl:\n  warmup_steps: 0.1\n")
    out = tmp_path / "sft"
    assert main(["train", "sft", "--config", str(cfg), "--out", str(out), "--max-steps", "1"]) == 0
    assert "cai train sft: 1 steps" in capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 1 and summary["train_rows"] == 4 and math.isfinite(summary["final_loss"])
    from transformers import AutoModelForCausalLM

    assert AutoModelForCausalLM.from_pretrained(str(out)).config.vocab_size > 0


@pytest.mark.train
@pytest.mark.slow
def test_dpo_one_step_auto_picks_apo_zero_for_revisions(run_dir, tiny_llama, tmp_path, capsys):
    out = tmp_path / "dpo"
    assert main(["train", "dpo", "--data", str(run_dir / "preferences"), "--model", str(tiny_llama),
                 "--out", str(out), "--max-steps", "1", "--batch-size", "2", "--max-length", "256",
                 "--loss-type", "auto"]) == 0
    printed = capsys.readouterr().out
    assert "loss type apo_zero" in printed
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 1 and summary["loss_type"] == "apo_zero" and summary["sources"] == {"ai-revision": 4}
    assert (out / "model.safetensors").exists()


@pytest.mark.train
@pytest.mark.slow
def test_dpo_with_a_test_split_reports_held_out_metrics(run_dir, tiny_llama, tmp_path):
    from cai.data.pairs import read_pairs, write_pairs

    pairs = list(read_pairs(run_dir / "preferences"))
    write_pairs(pairs[:3], tmp_path / "data" / "train")
    write_pairs(pairs[3:], tmp_path / "data" / "test")
    out = tmp_path / "dpo"
    assert main(["train", "dpo", "--data", str(tmp_path / "data"), "--model", str(tiny_llama),
                 "--out", str(out), "--max-steps", "1", "--batch-size", "2", "--max-length", "256"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["train_pairs"] == 3 and summary["test_pairs"] == 1
    assert math.isfinite(summary["eval"]["loss"])


# ---------------------------------------------------------------- errors


def test_sft_without_messages_lists_the_expected_columns(tmp_path, capsys):
    bad = tmp_path / "sft.jsonl"
    bad.write_text(json.dumps({"question": "hi", "answer": "hello"}) + "\n")
    err = _one_line_error(capsys, ["train", "sft", "--data", str(bad), "--model", "m", "--out", str(tmp_path / "o")])
    assert "expected messages (or prompt and completion, or text)" in err and "question, answer" in err


def test_dpo_bad_settings_are_one_line(run_dir, tmp_path, capsys):
    err = _one_line_error(capsys, ["train", "dpo", "--data", str(run_dir / "preferences"), "--model", "m",
                                   "--out", str(tmp_path / "o"), "--loss-type", "sigmoidd"])
    assert "unknown DPO loss 'sigmoidd'" in err and "apo_zero" in err
    cfg = tmp_path / "d.yaml"
    cfg.write_text("model: m\ndata: d\nout: o\nbeta: 0.1\nlabel_smoothing: 0.7\n")
    assert "label_smoothing" in _one_line_error(capsys, ["train", "dpo", "--config", str(cfg)])


def test_dpo_takes_the_labeled_winner():
    from cai.train.dpo import hard_pairs

    def pair(p, weight=1.0):
        return PreferencePair(prompt=[{"role": "user", "content": "q"}], chosen=[{"role": "assistant", "content": "A"}],
                              rejected=[{"role": "assistant", "content": "B"}], source="ai-feedback", p_chosen=p,
                              weight=weight)

    kept, dropped = hard_pairs([pair(0.9), pair(0.2), pair(0.5), pair(1.0, weight=0.0)])
    assert dropped == 2 and [p.chosen_text for p in kept] == ["A", "B"] and kept[1].p_chosen == pytest.approx(0.8)
