"""The TRL trainers (`cai train sft|dpo|reward|grpo|rloo`) apply chat templates themselves: with a
template that refuses a system role (Gemma's "System role not supported"), each row's system turn
is merged into its first user turn before TRL sees the dataset, and a row the template rejects for
another reason is left out, counted and named by its file line in the summary; training goes on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("trl", reason="needs the train extra (trl)")

from test_rejected_rows import NO_SYSTEM_TEMPLATE

SYSTEM = {"role": "system", "content": "Be kind."}


@pytest.fixture(scope="module")
def no_system_llama(tmp_path_factory) -> Path:
    from cai.testing import build_tiny_llama

    return build_tiny_llama(tmp_path_factory.mktemp("nosys-train") / "model", chat_template=NO_SYSTEM_TEMPLATE,
                            hidden_size=64, num_heads=1)


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _pairs(path: Path) -> Path:
    """Line 1: a system turn (merged); line 2: a prompt the template rejects; line 3: plain."""
    def pair(prompt, good="Sure, gladly.", bad="No."):
        return {"prompt": prompt, "chosen": [{"role": "assistant", "content": good}],
                "rejected": [{"role": "assistant", "content": bad}], "source": "human"}
    return _jsonl(path, [pair([SYSTEM, {"role": "user", "content": "Greet a neighbour?"}]),
                         pair([{"role": "user", "content": "FORBIDDEN words"}]),
                         pair([{"role": "user", "content": "Thank a friend?"}], "Say thanks.", "Say nothing.")])


def _check(summary: dict, name: str, kept: int) -> None:
    t = summary["chat_template"]
    assert t["system_merged"] == 1 and t["rejected"] == 1, t
    assert len(t["rejected_rows"]) == 1 and t["rejected_rows"][0].startswith(f"{name}: chat template failed")
    assert "Conversation roles must alternate" in t["rejected_rows"][0]
    assert summary["steps"] >= 1 and kept == 2


# ---------------------------------------------------------------- the rule, without training


def test_template_rows_merge_a_refused_system_turn_and_leave_out_other_refusals(no_system_llama, caplog):
    from transformers import AutoTokenizer

    from cai.train.templates import template_rows

    tok = AutoTokenizer.from_pretrained(no_system_llama)
    rows = [{"prompt": [SYSTEM, {"role": "user", "content": "Hi"}], "completion": [{"role": "assistant", "content": "Hello"}]},
            {"prompt": [{"role": "user", "content": "FORBIDDEN"}], "completion": [{"role": "assistant", "content": "x"}]},
            {"prompt": [{"role": "user", "content": "Yo"}], "completion": [{"role": "assistant", "content": "Hey"}]}]
    kept, report = template_rows(rows, ["f:1", "f:2", "f:3"], tok, "sft")
    assert [r["prompt"] for r in kept] == [[{"role": "user", "content": "Be kind.\n\nHi"}],
                                           [{"role": "user", "content": "Yo"}]]
    assert kept[1] is rows[2]  # an accepted row is not touched
    assert report["system_merged"] == 1 and report["rejected"] == 1
    assert report["rejected_rows"][0].startswith("f:2: chat template failed: Conversation roles must alternate")
    from cai.train.templates import report_line

    assert report_line(report).startswith("chat template: 1 rows left out (first: f:2: chat template failed")
    assert report_line({"system_merged": 0, "rejected": 0, "rejected_rows": []}) is None
    from cai.core.errors import CaiError

    with pytest.raises(CaiError, match="the chat template rejected all 1 rows .*first: f:2"):
        template_rows(rows[1:2], ["f:2"], tok, "sft", path="f")


# ---------------------------------------------------------------- each trainer, one step


@pytest.mark.train
@pytest.mark.slow
def test_sft_merges_system_turns_and_leaves_out_rejected_rows(no_system_llama, tmp_path, capsys):
    from cai.cli.main import main

    def conv(user, answer, system=False):
        return {"messages": ([SYSTEM] if system else []) + [{"role": "user", "content": user},
                                                             {"role": "assistant", "content": answer}]}
    data = _jsonl(tmp_path / "sft.jsonl", [conv("Greet a neighbour?", "Say hello.", system=True),
                                           conv("FORBIDDEN words", "x"), conv("Thank a friend?", "Say thanks.")])
    out = tmp_path / "o"
    assert main(["train", "sft", "--model", str(no_system_llama), "--data", str(data), "--out", str(out),
                 "--max-steps", "1", "--batch-size", "2", "--max-length", "128"]) == 0
    assert f"chat template: 1 rows left out (first: {data}:2: chat template failed" in capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    _check(summary, f"{data}:2", summary["train_rows"])


@pytest.mark.train
@pytest.mark.slow
def test_dpo_merges_system_turns_and_leaves_out_rejected_pairs(no_system_llama, tmp_path):
    from cai.train.config import DPORecipe
    from cai.train.dpo import train_dpo

    data = _pairs(tmp_path / "pairs.jsonl")
    summary = train_dpo(DPORecipe(model=str(no_system_llama), data=str(data), out=str(tmp_path / "o"), max_steps=1,
                                  batch_size=2, max_length=128, gradient_checkpointing=False))
    _check(summary, "pairs.jsonl:2", summary["train_pairs"])


@pytest.mark.train
@pytest.mark.slow
def test_reward_merges_system_turns_and_leaves_out_rejected_pairs(no_system_llama, tmp_path):
    from cai.train.config import RewardRecipe
    from cai.train.reward import train_reward

    data = _pairs(tmp_path / "pairs.jsonl")
    summary = train_reward(RewardRecipe(model=str(no_system_llama), data=str(data), out=str(tmp_path / "o"),
                                        max_steps=1, batch_size=2, max_length=128, test_size=0.0,
                                        gradient_checkpointing=False))
    _check(summary, "pairs.jsonl:2", summary["train_pairs"])


class Constant:
    """A scripted judge: every completion rates 0.5."""

    def __init__(self):
        from collections import Counter

        self.stats = Counter()

    def rate(self, prompts, responses):
        self.stats["calls"] += 1
        self.stats["ratings"] += len(responses)
        return [0.5] * len(responses)

    def provenance(self):
        return {"judge": "constant (test)"}


@pytest.mark.train
@pytest.mark.slow
@pytest.mark.parametrize("algorithm", ["grpo", "rloo"])
def test_online_merges_system_turns_and_leaves_out_rejected_prompts(no_system_llama, tmp_path, algorithm):
    from cai.train.online import OnlineConfig, train_online

    prompts = _jsonl(tmp_path / "p.jsonl", [{"prompt": "Greet a neighbour?"}, {"prompt": "FORBIDDEN words"},
                                            {"prompt": "Thank a friend?"}])
    root = Path(__file__).resolve().parents[1]
    cfg = OnlineConfig.model_validate(dict(
        algorithm=algorithm, model=str(no_system_llama), prompts=str(prompts), out=str(tmp_path / "o"), max_steps=1,
        num_generations=2, batch_size=2, max_completion_length=4, system_prompt="Be kind.", quiet=True,
        constitution={"constitution": str(root / "constitution/default.yaml"), "few_shot": 0, "retry_seconds": 0.0}))
    summary = train_online(cfg, judge=Constant())
    t = summary["chat_template"]
    assert t["system_merged"] == 2 and t["rejected"] == 1, t
    assert t["rejected_rows"][0].startswith(f"{prompts}:2: chat template failed: Conversation roles must alternate")
    assert summary["steps"] == 1


def test_online_prompts_are_checked_against_the_reward_models_template_too(tiny_llama, no_system_llama, tmp_path):
    """A policy whose template takes every prompt, a reward model whose template rejects line 2:
    that prompt is left out before any rollout, as PPO does."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForSequenceClassification

    from cai.train.online import OnlineConfig
    from cai.train.online.rewards import RewardModelScore
    from cai.train.online.trainer import prompt_dataset

    tok = AutoTokenizer.from_pretrained(no_system_llama)
    torch.manual_seed(0)
    LlamaForSequenceClassification(LlamaConfig(
        vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=1, num_attention_heads=1,
        head_dim=64, num_labels=1, pad_token_id=tok.pad_token_id)).save_pretrained(tmp_path / "rm")
    tok.save_pretrained(tmp_path / "rm")
    prompts = _jsonl(tmp_path / "p.jsonl", [{"prompt": "Hello"}, {"prompt": "FORBIDDEN"}, {"prompt": "Bye"}])
    cfg = OnlineConfig.model_validate(dict(model=str(tiny_llama), prompts=str(prompts), out=str(tmp_path / "o"),
                                           rewards=["reward-model"], reward_model={"path": str(tmp_path / "rm")},
                                           system_prompt="Be kind.", quiet=True))
    dataset, report = prompt_dataset(cfg, str(tiny_llama), [RewardModelScore(str(tmp_path / "rm"), device="cpu")])
    assert [p[-1]["content"] for p in dataset["prompt"]] == ["Hello", "Bye"]
    assert dataset["prompt"][0][0] == {"role": "system", "content": "Be kind."}  # the policy's template takes it
    assert report["system_merged"] == 0 and report["rejected"] == 1
    assert report["rejected_rows"][0].startswith(f"{prompts}:2: chat template failed")
