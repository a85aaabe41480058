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
    from cai.testing.ppo import build_tiny_policy, build_tiny_reward_model, write_prompts

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
