"""PPO building blocks on hand-computed and crafted inputs: GAE, whitening, KL estimators and
controllers, clipped losses, stop-token truncation, prompt order, the reward-hacking monitor, config."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from cai.train.ppo.advantages import gae, masked_mean, masked_var, masked_whiten
from cai.train.ppo.config import MonitorConfig, PPOConfig
from cai.train.ppo.data import PromptOrder
from cai.train.ppo.kl import AdaptiveKLController, FixedKLController, kl_per_token
from cai.train.ppo.losses import logprobs_and_entropy, policy_loss, value_loss
from cai.train.ppo.monitor import RewardHackingMonitor, distinct_ngrams, repetition_stats
from cai.train.ppo.rewards import shape_scores, token_rewards
from cai.train.ppo.rollout import truncate_at_stop

ROOT = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------- GAE and whitening
def test_gae_matches_hand_computation():
    rewards = torch.tensor([[1.0, 0.0, 2.0]])
    values = torch.tensor([[0.5, 1.0, 1.5]])
    mask = torch.ones(1, 3)
    adv, ret = gae(rewards, values, mask, gamma=0.9, lam=0.8)
    # δ2 = 2 − 1.5 = 0.5;  δ1 = 0 + 0.9·1.5 − 1 = 0.35;  δ0 = 1 + 0.9·1 − 0.5 = 1.4
    # A2 = 0.5;  A1 = 0.35 + 0.72·0.5 = 0.71;  A0 = 1.4 + 0.72·0.71 = 1.9112
    assert adv.tolist()[0] == pytest.approx([1.9112, 0.71, 0.5])
    assert ret.tolist()[0] == pytest.approx([2.4112, 1.71, 2.0])


def test_gae_stops_at_the_end_of_the_response():
    rewards = torch.tensor([[1.0, 0.0, 99.0]])  # the third token is padding: its reward must not leak back
    values = torch.tensor([[0.5, 1.0, 42.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0]])
    adv, ret = gae(rewards, values, mask, gamma=0.9, lam=0.8)
    # last real token: δ1 = 0 + 0 − 1 = −1 (no bootstrap); δ0 = 1 + 0.9·1 − 0.5 = 1.4; A0 = 1.4 − 0.72
    assert adv.tolist()[0] == pytest.approx([0.68, -1.0, 0.0])
    assert ret.tolist()[0] == pytest.approx([1.18, 0.0, 0.0])


def test_gae_with_gamma_lambda_one_is_reward_to_go_minus_value():
    torch.manual_seed(0)
    rewards, values = torch.randn(4, 6), torch.randn(4, 6)
    mask = torch.ones(4, 6)
    adv, _ = gae(rewards, values, mask, gamma=1.0, lam=1.0)
    to_go = rewards.flip(1).cumsum(1).flip(1)
    assert torch.allclose(adv, to_go - values, atol=1e-5)


def test_masked_statistics_and_whitening_ignore_padding():
    x = torch.tensor([[1.0, 2.0, 3.0, 100.0], [4.0, 5.0, -50.0, 7.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0], [1.0, 1.0, 0.0, 0.0]])
    real = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0])
    assert masked_mean(x, mask) == pytest.approx(3.0)
    assert masked_var(x, mask) == pytest.approx(float(real.var()))
    w = masked_whiten(x, mask)
    assert masked_mean(w, mask) == pytest.approx(0.0, abs=1e-6)
    assert masked_var(w, mask) == pytest.approx(1.0, rel=1e-4)
    assert w[mask == 0].abs().max() == 0
    kept = masked_whiten(x, mask, shift_mean=False)
    assert masked_mean(kept, mask) == pytest.approx(3.0, rel=1e-5)
    assert masked_var(kept, mask) == pytest.approx(1.0, rel=1e-4)


# ---------------------------------------------------------------- rewards
def test_token_rewards_put_the_score_on_the_last_real_token():
    kl = torch.tensor([[0.5, 1.0, 2.0], [0.1, 0.2, 9.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
    r = token_rewards(kl, torch.tensor([3.0, -1.0]), mask, beta=0.1)
    assert r.tolist()[0] == pytest.approx([-0.05, -0.1, -0.2 + 3.0])
    assert r.tolist()[1] == pytest.approx([-0.01, -0.02 - 1.0, 0.0])


def test_shape_scores_scales_penalises_missing_eos_and_clips():
    raw, ended = torch.tensor([2.0, 2.0, -9.0]), torch.tensor([True, False, True])
    assert shape_scores(raw, ended).tolist() == [2.0, 2.0, -9.0]
    assert shape_scores(raw, ended, scale=0.5, missing_eos_penalty=1.0).tolist() == [1.0, 0.0, -4.5]
    assert shape_scores(raw, ended, missing_eos_penalty=1.0, clip=3.0).tolist() == [2.0, 1.0, -3.0]


# ---------------------------------------------------------------- KL
def _two_distributions():
    p = torch.tensor([0.5, 0.2, 0.15, 0.1, 0.05], dtype=torch.float64)   # policy π
    q = torch.tensor([0.2, 0.2, 0.2, 0.2, 0.2], dtype=torch.float64)     # reference π_ref
    return p, q, float((p * (p / q).log()).sum())


@pytest.mark.parametrize("estimator", ["k1", "k3"])
def test_kl_estimators_are_unbiased(estimator):
    p, q, exact = _two_distributions()
    per_outcome = kl_per_token(p.log(), q.log(), estimator)
    assert float((p * per_outcome).sum()) == pytest.approx(exact, rel=1e-9)   # exact expectation under π
    g = torch.Generator().manual_seed(0)
    x = torch.multinomial(p, 200_000, replacement=True, generator=g)
    mc = kl_per_token(p.log()[x], q.log()[x], estimator).mean()
    assert float(mc) == pytest.approx(exact, rel=0.03)


def test_k3_is_never_negative_and_has_lower_variance():
    p, q, _ = _two_distributions()
    k1, k3 = kl_per_token(p.log(), q.log(), "k1"), kl_per_token(p.log(), q.log(), "k3")
    assert (k1 < 0).any() and (k3 >= 0).all()
    var = lambda v: float((p * (v - (p * v).sum()) ** 2).sum())  # noqa: E731
    assert var(k3) < var(k1)
    assert torch.equal(kl_per_token(p.log(), p.log(), "k3"), torch.zeros(5, dtype=torch.float64))
    with pytest.raises(ValueError):
        kl_per_token(p, q, "k2")


def test_adaptive_controller_moves_beta_towards_the_target():
    ctl = AdaptiveKLController(beta=0.1, target=6.0, horizon=100)
    ctl.update(kl=12.0, n_samples=10)          # above target: error clipped to +0.2
    assert ctl.beta == pytest.approx(0.1 * (1 + 0.2 * 10 / 100))
    up = ctl.beta
    ctl.update(kl=3.0, n_samples=10)           # below target: error −0.5 clipped to −0.2
    assert ctl.beta == pytest.approx(up * (1 - 0.02))
    before = ctl.beta
    ctl.update(kl=6.0, n_samples=10)           # on target: unchanged
    assert ctl.beta == before
    ctl.update(kl=float("nan"), n_samples=10)  # a broken step does not poison β
    assert ctl.beta == before
    restored = AdaptiveKLController(beta=1.0, target=6.0, horizon=100)
    restored.load_state_dict(ctl.state_dict())
    assert restored.beta == ctl.beta
    fixed = FixedKLController(0.0)
    fixed.update(100.0, 10)
    assert fixed.beta == 0.0
    with pytest.raises(ValueError):
        AdaptiveKLController(beta=0.0, target=1.0, horizon=1)


# ---------------------------------------------------------------- losses
def test_policy_loss_clips_the_ratio():
    old = torch.zeros(1, 3)
    new = torch.log(torch.tensor([[1.5, 1.1, 0.5]])).requires_grad_()   # ratios 1.5, 1.1, 0.5
    adv = torch.tensor([[1.0, 1.0, 1.0]])
    loss, stats = policy_loss(new, old, adv, torch.ones(1, 3), cliprange=0.2)
    # −mean(min(ρA, clip(ρ)A)) = −(1.2 + 1.1 + 0.5) / 3
    assert loss.item() == pytest.approx(-(1.2 + 1.1 + 0.5) / 3)
    assert float(stats["clipfrac"]) == pytest.approx(1 / 3)
    loss.backward()
    assert new.grad[0, 0] == 0 and new.grad[0, 1] != 0 and new.grad[0, 2] != 0  # clipped token: no gradient
    # negative advantage: a ratio below 1 − ε is the clipped one
    new2 = torch.log(torch.tensor([[0.5]])).requires_grad_()
    loss2, _ = policy_loss(new2, torch.zeros(1, 1), torch.tensor([[-1.0]]), torch.ones(1, 1), 0.2)
    assert loss2.item() == pytest.approx(0.8)
    loss2.backward()
    assert new2.grad.item() == 0


def test_policy_loss_ignores_masked_tokens_and_reports_approxkl():
    old = torch.zeros(1, 2)
    new = torch.tensor([[0.1, 5.0]])
    loss, stats = policy_loss(new, old, torch.tensor([[1.0, 100.0]]), torch.tensor([[1.0, 0.0]]), 0.2)
    assert float(loss) == pytest.approx(-math.exp(0.1))
    assert float(stats["approxkl"]) == pytest.approx(math.expm1(0.1) - 0.1, rel=1e-4)


def test_value_loss_is_the_pessimistic_clipped_error():
    old = torch.tensor([[0.0, 0.0]])
    ret = torch.tensor([[1.0, 1.0]])
    values = torch.tensor([[0.5, 0.1]], requires_grad=True)
    loss, stats = value_loss(values, old, ret, torch.ones(1, 2), cliprange_value=0.2)
    # token 0: unclipped (0.5−1)² = 0.25, clipped (0.2−1)² = 0.64 → 0.64; token 1: both 0.81
    assert loss.item() == pytest.approx(0.5 * (0.64 + 0.81) / 2)
    assert float(stats["clipfrac"]) == pytest.approx(0.5)
    loss.backward()
    assert values.grad[0, 0] == 0 and values.grad[0, 1] != 0


def test_logprobs_and_entropy():
    logits = torch.log(torch.tensor([[[0.5, 0.25, 0.25], [1 / 3, 1 / 3, 1 / 3]]]))
    lp, ent = logprobs_and_entropy(logits, torch.tensor([[1, 2]]))
    assert lp.tolist()[0] == pytest.approx([math.log(0.25), math.log(1 / 3)])
    assert ent.tolist()[0] == pytest.approx([1.5 * math.log(2), math.log(3)])


# ---------------------------------------------------------------- rollout helpers
def test_truncate_at_stop_keeps_the_stop_token_and_pads_after_it():
    resp = torch.tensor([[5, 6, 2, 7, 8], [5, 6, 7, 8, 9], [2, 5, 5, 5, 5], [5, 9, 6, 3, 3]])
    out, mask, ended = truncate_at_stop(resp, stop_ids=[2, 9], pad_id=0)
    assert out.tolist() == [[5, 6, 2, 0, 0], [5, 6, 7, 8, 9], [2, 0, 0, 0, 0], [5, 9, 0, 0, 0]]
    assert mask.sum(1).tolist() == [3, 5, 1, 2]
    assert ended.tolist() == [True, True, True, True]
    out, mask, ended = truncate_at_stop(torch.tensor([[5, 6, 7]]), stop_ids=[2], pad_id=0)
    assert mask.tolist() == [[1.0, 1.0, 1.0]] and ended.tolist() == [False]


def test_prompt_order_is_a_function_of_seed_and_step():
    order = PromptOrder(10, seed=3)
    seen = [i for step in range(1, 6) for i in order.indices(step, 2)]
    assert sorted(seen) == list(range(10))  # one pass covers every prompt once
    assert PromptOrder(10, seed=3).indices(4, 2) == order.indices(4, 2)  # no hidden state
    ranks = order.indices(2, 2, rank=0, world=2) + order.indices(2, 2, rank=1, world=2)
    assert len(set(ranks)) == 4  # processes take disjoint slices
    assert PromptOrder(10, seed=4).indices(1, 10) != order.indices(1, 10)


# ---------------------------------------------------------------- monitor
def _step(reward, length, kl=1.0, distinct=1.0, unique=1.0):
    return {"objective/reward_mean": reward, "response/length_mean": length, "objective/kl": kl,
            "response/distinct_n": distinct, "response/unique_frac": unique}


def test_monitor_warns_when_length_grows_with_reward():
    mon = RewardHackingMonitor(MonitorConfig(window=3), kl_bound=None)
    kinds = []
    for i in range(12):
        warnings, _ = mon.observe(_step(reward=0.1 * i, length=10 + 3 * i))
        kinds.append([w.split(":")[0] for w in warnings])
    assert kinds[:5] == [[]] * 5 and kinds[-1] == ["length"]  # needs two windows of history first
    # the same reward rise with a steady length, or a longer response with a falling reward: no warning
    for lengths, rewards in (([10] * 12, [0.1 * i for i in range(12)]), ([10 + 3 * i for i in range(12)], [-0.1 * i for i in range(12)])):
        mon = RewardHackingMonitor(MonitorConfig(window=3), kl_bound=None)
        assert all(not mon.observe(_step(r, n))[0] for r, n in zip(rewards, lengths))


def test_monitor_warns_when_kl_passes_its_bound_once_per_episode():
    mon = RewardHackingMonitor(MonitorConfig(), kl_bound=6.0)
    seen_new = []
    for kl in (1.0, 7.0, 8.0, 2.0, 9.0):
        warnings, new = mon.observe(_step(0.0, 10, kl=kl))
        seen_new.append(len(new))
        assert bool(warnings) == (kl > 6.0)
    assert seen_new == [0, 1, 0, 0, 1]  # logged when it starts, stored every step
    restored = RewardHackingMonitor(MonitorConfig(), kl_bound=6.0)
    restored.load_state_dict(mon.state_dict())
    assert restored.state_dict() == mon.state_dict()


def test_monitor_warns_on_repetition_and_mode_collapse():
    assert distinct_ngrams([1, 2, 3, 4, 5], 3) == 1.0
    assert distinct_ngrams([7, 7, 7, 7, 7, 7], 3) == pytest.approx(1 / 4)
    assert distinct_ngrams([1, 2], 3) == 1.0
    stats = repetition_stats([[7] * 8, [7] * 8, [1, 2, 3, 4]], 2)
    assert stats["response/unique_frac"] == pytest.approx(2 / 3)
    assert stats["response/distinct_n"] == pytest.approx((1 / 7 + 1 / 7 + 1) / 3)
    mon = RewardHackingMonitor(MonitorConfig(), kl_bound=None)
    assert mon.observe(_step(0, 10, distinct=0.9, unique=1.0))[0] == []
    assert mon.observe(_step(0, 10, distinct=0.3))[0][0].startswith("repetition: distinct-3")
    assert "mode collapse" in mon.observe(_step(0, 10, distinct=0.9, unique=0.1))[0][0]
    off = RewardHackingMonitor(MonitorConfig(enabled=False), kl_bound=1.0)
    assert off.observe(_step(0, 10, kl=100, distinct=0.0)) == ([], [])


def test_monitor_warns_when_the_running_kl_is_negative_beyond_noise():
    def step(k1, std, n=64):
        return {**_step(0.0, 10, kl=k1), "objective/kl_k1": k1, "objective/kl_k1_std": std, "rollout/samples": n}

    # a noisy estimate just below zero (standard error 0.5/8 per step): no warning
    mon = RewardHackingMonitor(MonitorConfig(window=3), kl_bound=None)
    assert all(not mon.observe(step(k1, 0.5))[0] for k1 in (0.05, -0.04, -0.06, -0.02))
    # clearly below zero over the window (what top_k/top_p sampling does): warned once, when it starts
    news = [mon.observe(step(-0.3, 0.5))[1] for _ in range(3)]
    assert [len(n) for n in news] == [1, 0, 0] and news[0][0].startswith("negative-kl: running KL estimate")
    restored = RewardHackingMonitor(MonitorConfig(window=3), kl_bound=None)
    restored.load_state_dict(mon.state_dict())
    assert restored.observe(step(-0.3, 0.5))[0][0].startswith("negative-kl")


def test_top_k_or_top_p_sampling_is_warned_about():
    assert PPOConfig.model_validate(_minimal()).sampling_warnings() == []
    [msg] = PPOConfig.model_validate(_minimal(top_k=1, top_p=0.9)).sampling_warnings()
    assert msg.startswith("top_k=1 and top_p=0.9: responses are sampled from a truncated distribution")


# ---------------------------------------------------------------- config
def _minimal(**kw):
    return {"model": "m", "reward_model": "rm", "prompts": "p.jsonl", "out": "o", **kw}


def test_config_rejects_unknown_keys_by_name():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="learning_rat"):
        PPOConfig.model_validate(_minimal(learning_rat=1e-5))
    with pytest.raises(ValidationError, match="horizn"):
        PPOConfig.model_validate(_minimal(kl={"horizn": 3}))
    with pytest.raises(ValidationError, match="multiple of mini_batch_size"):
        PPOConfig.model_validate(_minimal(batch_size=10, mini_batch_size=4))
    with pytest.raises(ValidationError, match="estimator"):
        PPOConfig.model_validate(_minimal(kl={"estimator": "k2"}))


def test_recipe_parses():
    from cai.cli.common import load_yaml_config

    cfg = PPOConfig.model_validate(load_yaml_config(str(ROOT / "recipes" / "ppo.yaml")))
    assert cfg.model == "Qwen/Qwen2.5-0.5B-Instruct"
    assert cfg.kl.controller == "adaptive" and cfg.kl.target > 0
    assert cfg.mini_batch_size % cfg.gradient_accumulation_steps == 0
    assert (ROOT / cfg.prompts).exists()


def test_cli_reports_bad_config_and_bad_prompts_in_one_line(tmp_path, capsys):
    from cai.cli.main import main

    bad_cfg = tmp_path / "ppo.yaml"
    bad_cfg.write_text("model: m\nreward_model: rm\nprompts: p\nout: o\nkl:\n  tagret: 3\n")
    assert main(["train", "ppo", "--config", str(bad_cfg)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "kl.tagret" in err and str(bad_cfg) in err

    assert main(["train", "ppo", "--model", "m", "--out", str(tmp_path / "o"), "--prompts", "p"]) == 2
    assert "reward_model" in capsys.readouterr().err

    prompts = tmp_path / "p.jsonl"
    prompts.write_text('{"prompt": "hi"}\n{"prompt": 3}\n')
    assert main(["train", "ppo", "--model", "m", "--reward-model", "rm", "--out", str(tmp_path / "o"),
                 "--prompts", str(prompts)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"{prompts}:2:" in err and "'prompt'" in err


def test_summary_start_and_end_never_share_a_step():
    from cai.train.ppo.metrics import summarize

    rows = [{"step": i + 1, "objective/reward_mean": float(i), "objective/kl": 0.1 * i} for i in range(2)]
    s = summarize(rows)
    assert s["objective/reward_mean"] == {"start": 0.0, "end": 1.0}  # a 2-step run: the first vs the last step
    rows = [{"step": i + 1, "objective/reward_mean": float(i)} for i in range(20)]
    assert summarize(rows)["objective/reward_mean"] == {"start": 2.0, "end": 17.0}  # means of 5 steps each
