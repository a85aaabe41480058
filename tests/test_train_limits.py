"""Inputs over the token limits in training and scoring: the reward model reads the response (the
prompt is cut from the left, and cuts are counted), and PPO counts rollouts whose reward-model
input had to be cut."""

from __future__ import annotations

import json

import pytest
import torch

from cai.train.score import keep_end

LONG_PROMPT = "explain " + " ".join(["the rules"] * 40)


@pytest.fixture(scope="module")
def rlhf(tmp_path_factory):
    """A tiny policy and a tiny reward model that prefers responses with more good words."""
    from cai.testing.ppo import build_tiny_policy, build_tiny_reward_model

    tmp = tmp_path_factory.mktemp("limits")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        policy = build_tiny_policy(tmp / "policy")
        rm = build_tiny_reward_model(tmp / "rm", policy, steps=80)
    finally:
        torch.set_num_threads(before)
    prompts = tmp / "long.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": f"{LONG_PROMPT} {i}"}) + "\n" for i in range(4)))
    return {"policy": str(policy), "rm": str(rm), "prompts": str(prompts), "tmp": tmp}


def test_keep_end_cuts_the_start_and_keeps_bos():
    assert keep_end([1, 5, 6, 7, 8], 3, bos_id=1) == ([1, 7, 8], True)
    assert keep_end([5, 6, 7, 8], 3, bos_id=1) == ([6, 7, 8], True)
    assert keep_end([5, 6], 3, bos_id=1) == ([5, 6], False)
    assert keep_end([5, 6, 7], None) == ([5, 6, 7], False)


def test_ppo_reward_scorer_keeps_the_response_of_a_long_prompt(rlhf):
    from cai.train.ppo.scoring import RewardScorer

    scorer = RewardScorer(rlhf["rm"], torch.device("cpu"), max_length=32)
    prompt = [{"role": "user", "content": LONG_PROMPT}]
    texts = [scorer.render(prompt, r) for r in ("good safe helpful clear", "the rules the rules", "short")]
    assert all(len(scorer.tokenizer(t)["input_ids"]) > 32 for t in texts[:2])
    scores, cut = scorer.score(texts, batch_size=2)
    # cutting from the right left every response the same 32 prompt tokens, hence one score
    assert scores[0] > scores[1] + 0.1
    assert cut.tolist() == [True, True, True]


def test_cai_score_counts_cut_sequences(rlhf, tmp_path):
    from cai.train.score import score_file

    rows = [{"prompt": LONG_PROMPT, "response": "good safe helpful clear"},
            {"prompt": LONG_PROMPT, "response": "the rules the rules"},
            {"prompt": "hi", "response": "good"}]
    src = tmp_path / "responses.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    summary = score_file(rlhf["rm"], str(src), out=str(tmp_path / "scored.jsonl"), max_length=32, device="cpu")
    assert summary["truncated"] == 2
    rewards = [json.loads(line)["reward"] for line in (tmp_path / "scored.jsonl").read_text().splitlines()]
    assert rewards[0] > rewards[1] + 0.1


def test_ppo_counts_rollouts_whose_reward_input_was_cut(rlhf):
    from cai.train.ppo import PPOConfig, train_ppo

    cfg = PPOConfig(model=rlhf["policy"], reward_model=rlhf["rm"], prompts=rlhf["prompts"],
                    out=str(rlhf["tmp"] / "ppo"), batch_size=4, mini_batch_size=4, max_new_tokens=4, ppo_epochs=1,
                    max_steps=1, reward_max_length=16, quiet=True, cpu=True)
    train_ppo(cfg)
    [row] = [json.loads(line) for line in (rlhf["tmp"] / "ppo" / "metrics.jsonl").read_text().splitlines()]
    assert row["response/reward_input_cut"] == 4
    assert json.loads((rlhf["tmp"] / "ppo" / "summary.json").read_text())["reward_inputs_cut"] == 4


def test_ppo_warns_at_start_when_top_k_sampling_is_off_policy(rlhf, caplog):
    from cai.train.ppo import PPOConfig, PPOTrainer

    cfg = PPOConfig(model=rlhf["policy"], reward_model=rlhf["rm"], prompts=rlhf["prompts"],
                    out=str(rlhf["tmp"] / "ppo-topk"), batch_size=4, mini_batch_size=4, top_k=5, quiet=True, cpu=True)
    with caplog.at_level("WARNING", logger="cai.train.ppo"):
        PPOTrainer(cfg)
    assert "top_k=5: responses are sampled from a truncated distribution" in caplog.text


# ---------------------------------------------------------------- SFT, reward and DPO over max_length

pytest.importorskip("trl", reason="needs the train extra (trl)")


def _sft_rows(path, prompts):
    path.write_text("".join(json.dumps({"messages": [{"role": "user", "content": p},
                                                     {"role": "assistant", "content": "Sure, kindly."}]}) + "\n"
                            for p in prompts))
    return path


def _pair_rows(path, prompts):
    path.write_text("".join(json.dumps({"prompt": p, "chosen": "Kindly, yes.", "rejected": "No."}) + "\n"
                            for p in prompts))
    return path


def test_sft_with_every_completion_cut_off_fails_clearly(tiny_llama, tmp_path, capsys):
    from cai.cli.main import main

    data = _sft_rows(tmp_path / "sft.jsonl", [f"{LONG_PROMPT} {i}" for i in range(4)])
    code = main(["train", "sft", "--model", str(tiny_llama), "--data", str(data), "--out", str(tmp_path / "out"),
                 "--max-steps", "1", "--max-length", "16"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "Traceback" not in err  # (progress bars of TRL's preparation come before it)
    err = err.splitlines()[-1]
    assert "nothing to train on: all 4 training examples are over max_length=16" in err and "sft.jsonl" in err


def test_sft_counts_and_warns_about_cut_and_dropped_examples(tiny_llama, tmp_path, caplog):
    from cai.train.config import SFTRecipe
    from cai.train.sft import train_sft

    data = _sft_rows(tmp_path / "sft.jsonl", [f"{LONG_PROMPT} {i}" for i in range(2)] + ["Hi", "Hello"])
    recipe = SFTRecipe(model=str(tiny_llama), data=str(data), out=str(tmp_path / "out"), max_steps=1,
                       batch_size=2, max_length=40)
    with caplog.at_level("WARNING", logger="cai.train"):
        summary = train_sft(recipe)
    assert summary["over_max_length"] == {"train": {"cut": 0, "dropped": 2}}
    assert "max_length=40 cut 0 and dropped 2 of 4 rows" in caplog.text


def test_sft_with_every_test_row_over_the_limit_trains_without_evaluation(tiny_llama, tmp_path, caplog):
    from cai.train.config import SFTRecipe
    from cai.train.sft import train_sft

    for split, prompts in (("train", ["Hi", "Hello"]), ("test", [f"{LONG_PROMPT} {i}" for i in range(2)])):
        (tmp_path / "data" / split).mkdir(parents=True)
        _sft_rows(tmp_path / "data" / split / "data.jsonl", prompts)
    recipe = SFTRecipe(model=str(tiny_llama), data=str(tmp_path / "data"), out=str(tmp_path / "out"), max_steps=1,
                       batch_size=2, max_length=40)
    with caplog.at_level("WARNING", logger="cai.train"):
        summary = train_sft(recipe)
    assert summary["over_max_length"]["eval"] == {"cut": 0, "dropped": 2} and "eval" not in summary
    assert "eval split: all 2 rows are over max_length=40" in caplog.text


def test_reward_training_with_every_pair_over_the_limit_fails_clearly(tiny_llama, tmp_path):
    from cai.core.errors import CaiError
    from cai.train.config import RewardRecipe
    from cai.train.reward import train_reward

    data = _pair_rows(tmp_path / "pairs.jsonl", [f"{LONG_PROMPT} {i}" for i in range(4)])
    recipe = RewardRecipe(model=str(tiny_llama), data=str(data), out=str(tmp_path / "rm"), max_steps=1,
                          batch_size=2, max_length=16, test_fraction=0)
    with pytest.raises(CaiError, match="nothing to train on: all 4 training pairs are over max_length=16"):
        train_reward(recipe)


def test_dpo_counts_pairs_whose_responses_are_cut(tiny_llama, tmp_path):
    from cai.train.config import DPORecipe
    from cai.train.dpo import train_dpo

    # a prompt of 19 tokens fits max_length=28 but leaves too little room for the responses
    data = _pair_rows(tmp_path / "pairs.jsonl", ["explain the rules of chess please " + str(i) for i in range(2)]
                      + ["Hi", "Hello"])
    recipe = DPORecipe(model=str(tiny_llama), data=str(data), out=str(tmp_path / "dpo"), max_steps=1,
                       batch_size=2, max_length=28)
    summary = train_dpo(recipe)
    counts = summary["over_max_length"]["train"]
    assert counts == {"cut": 2, "dropped": 0}


def test_reward_heldout_metrics_describe_the_pairs_the_counts_describe(tiny_llama, tmp_path):
    """`--max-length` drops one of three held-out pairs: eval.json and the held-out table are
    computed on the two kept, not on all three with the long one cut from the left."""
    from cai.train.config import RewardRecipe
    from cai.train.reward import train_reward

    (tmp_path / "d" / "train").mkdir(parents=True)
    (tmp_path / "d" / "test").mkdir()
    _pair_rows(tmp_path / "d" / "train" / "data.jsonl", [f"Hi {i}" for i in range(4)])
    _pair_rows(tmp_path / "d" / "test" / "data.jsonl", ["Hello", LONG_PROMPT, "Hey"])
    recipe = RewardRecipe(model=str(tiny_llama), data=str(tmp_path / "d"), out=str(tmp_path / "rm"), max_steps=1,
                          batch_size=2, max_length=40)
    summary = train_reward(recipe)
    assert summary["over_max_length"]["eval"] == {"cut": 0, "dropped": 1}
    report = json.loads((tmp_path / "rm" / "eval.json").read_text())
    assert report["pairs"] == 2 and report["all"]["n"] == 2 and report["over_max_length_dropped"] == 1
    assert summary["eval"]["all"]["n"] == 2
