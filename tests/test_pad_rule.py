"""One pad rule wherever a model is loaded: a reward does not depend on what else is in the batch,
and PPO's reward scorer and `cai score` give the same text the same reward."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def reward_model_without_pad_token(tmp_path_factory, tiny_llama) -> Path:
    """A random reward model whose tokenizer has no pad token while its config names one
    (``<pad>``, an id in the vocabulary), as many published reward models ship."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForSequenceClassification

    path = tmp_path_factory.mktemp("rm-nopad") / "rm"
    tok = AutoTokenizer.from_pretrained(tiny_llama)
    config_pad = tok.convert_tokens_to_ids("<pad>")
    tok.pad_token = None
    torch.manual_seed(0)
    model = LlamaForSequenceClassification(LlamaConfig(
        vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=1, num_attention_heads=1,
        head_dim=64, num_labels=1, pad_token_id=config_pad, initializer_range=0.5))
    model.save_pretrained(path)
    tok.save_pretrained(path)
    assert AutoTokenizer.from_pretrained(path).pad_token is None
    return path


def _pair(prompt: str, chosen: str, rejected: str):
    from cai.data.pairs import PreferencePair

    return PreferencePair.model_validate({
        "prompt": [{"role": "user", "content": prompt}], "chosen": [{"role": "assistant", "content": chosen}],
        "rejected": [{"role": "assistant", "content": rejected}], "source": "human", "p_chosen": 1.0})


def test_a_pair_scores_the_same_alone_and_batched_with_a_longer_one(reward_model_without_pad_token):
    from cai.train.score import load_reward_model, score_pairs

    model, tok = load_reward_model(str(reward_model_without_pad_token), device="cpu")
    short = _pair("Is tea good?", "Yes, it is.", "No.")
    long = _pair("Explain " + "the model answer question " * 20, "because " * 30, "the " * 25)
    alone = score_pairs(model, tok, [short])
    batched = score_pairs(model, tok, [long, short], batch_size=4)
    assert alone[0][0] == pytest.approx(batched[0][1], abs=1e-5)
    assert alone[1][0] == pytest.approx(batched[1][1], abs=1e-5)
    assert model.config.pad_token_id == tok.pad_token_id  # the id skipped is the id padded with


def test_ppo_reward_scorer_and_cai_score_agree(reward_model_without_pad_token):
    import torch

    from cai.train.ppo.scoring import RewardScorer
    from cai.train.score import load_reward_model, score_conversations

    model, tok = load_reward_model(str(reward_model_without_pad_token), device="cpu")
    convs = [[{"role": "user", "content": "Is tea good?"}], [{"role": "user", "content": "Say " * 30}]]
    responses = ["Yes.", "the answer is " * 10]
    by_score = score_conversations(model, tok, [c + [{"role": "assistant", "content": r}]
                                                for c, r in zip(convs, responses)], batch_size=2)
    scorer = RewardScorer(str(reward_model_without_pad_token), torch.device("cpu"))
    by_ppo, _ = scorer.score([scorer.render(c, r) for c, r in zip(convs, responses)], batch_size=2)
    assert by_ppo.tolist() == pytest.approx(by_score, abs=1e-5)
