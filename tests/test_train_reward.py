"""Reward model: the soft-label loss, its exact reduction to TRL's, extra columns through TRL's
pipeline, learning a synthetic preference, eval.json, `cai score`, and one-line errors."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest

pytest.importorskip("trl", reason="needs the train extra (trl)")

from cai.cli.main import main
from cai.data.pairs import PreferencePair, write_pairs
from cai.train.evaluate import calibration, margin_stats, reward_metrics

REPO = Path(__file__).resolve().parents[1]
WORDS = ("the a model answer question response helpful assistant explain why how what good clear "
         "because and or but if then so this that it you we they").split()
SOURCES = ("ai-revision", "ai-feedback", "human")


def synthetic_pairs(n: int, seed: int, start: int = 0) -> list[PreferencePair]:
    """Chosen responses contain "polite", rejected ones "rude", at the same random place in random filler."""
    rng = random.Random(seed)
    pairs = []
    for i in range(start, start + n):
        words = rng.choices(WORDS, k=rng.randint(4, 9))
        at = rng.randint(0, len(words))
        chosen = " ".join(words[:at] + ["polite"] + words[at:])
        rejected = " ".join(words[:at] + ["rude"] + words[at:])
        source = SOURCES[i % 3]
        pairs.append(PreferencePair(
            prompt=[{"role": "user", "content": f"Request {i}: " + " ".join(rng.choices(WORDS, k=5))}],
            chosen=[{"role": "assistant", "content": chosen}], rejected=[{"role": "assistant", "content": rejected}],
            source=source, p_chosen=0.8 if source == "ai-feedback" else 1.0, weight=2.0 if source == "human" else 1.0,
        ))
    return pairs


def swapped(pairs: list[PreferencePair]) -> list[PreferencePair]:
    return [p.model_copy(update={"chosen": p.rejected, "rejected": p.chosen}) for p in pairs]


# ---------------------------------------------------------------- the loss (no model)


def test_soft_label_half_has_zero_gradient_at_zero_margin():
    import torch

    from cai.train.reward import soft_bt_loss

    delta = torch.zeros(3, requires_grad=True)
    loss = soft_bt_loss(delta, torch.full((3,), 0.5))
    loss.backward()
    assert loss.item() == pytest.approx(math.log(2))
    assert torch.allclose(delta.grad, torch.zeros(3))


@pytest.mark.parametrize("d, p", [(1.3, 0.7), (-0.4, 0.9), (2.0, 0.0), (0.5, 1.0)])
def test_soft_label_value_and_gradient(d, p):
    import torch

    from cai.train.reward import soft_bt_loss

    delta = torch.tensor([d], dtype=torch.float64, requires_grad=True)
    loss = soft_bt_loss(delta, torch.tensor([p], dtype=torch.float64))
    loss.backward()
    sig = 1 / (1 + math.exp(-d))
    assert loss.item() == pytest.approx(-(p * math.log(sig) + (1 - p) * math.log(1 - sig)), rel=1e-12)
    assert delta.grad.item() == pytest.approx(sig - p, rel=1e-12)  # zero where σ(Δ) matches the label


def test_weights_give_a_weighted_mean():
    import torch

    from cai.train.reward import soft_bt_loss

    delta = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64)
    p = torch.tensor([1.0, 0.6, 0.9], dtype=torch.float64)
    each = torch.stack([soft_bt_loss(delta[i:i + 1], p[i:i + 1]) for i in range(3)])
    w = torch.tensor([1.0, 3.0, 0.0], dtype=torch.float64)
    expected = (each[0] + 3 * each[1]) / 4  # weight 0 drops the third pair
    assert soft_bt_loss(delta, p, w).item() == pytest.approx(expected.item(), rel=1e-12)
    assert soft_bt_loss(delta, p, 5 * w).item() == pytest.approx(expected.item(), rel=1e-12)  # scale-free
    assert soft_bt_loss(delta, p, torch.ones(3, dtype=torch.float64)).item() == pytest.approx(each.mean().item())
    assert soft_bt_loss(delta, p, torch.zeros(3, dtype=torch.float64)).item() == 0.0


# ---------------------------------------------------------------- evaluation metrics (no model)


def test_metrics_accuracy_per_source_ties_and_margins():
    margins = [2.0, -1.0, 0.0, 3.0, 1.0, -2.0]
    p = [1.0, 1.0, 1.0, 0.8, 0.5, 0.9]
    sources = ["human", "human", "human", "ai-feedback", "ai-feedback", "ai-feedback"]
    m = reward_metrics(margins, p, sources)
    assert m["by_source"]["human"]["accuracy"] == pytest.approx((1 + 0 + 0.5) / 3)  # a tie counts half
    assert m["by_source"]["ai-feedback"]["accuracy"] == pytest.approx(0.5)  # the p=0.5 pair has no winner
    assert m["all"]["n"] == 6 and m["by_source"]["human"]["n"] == 3
    stats = margin_stats([1.0, 2.0, 3.0, 4.0, 5.0])
    assert stats["mean"] == 3.0 and stats["p50"] == 3.0 and stats["p25"] == 2.0 and stats["p05"] == pytest.approx(1.2)


def test_calibration_is_zero_when_confidence_matches_outcomes_and_labels():
    logit = math.log(0.8 / 0.2)
    # σ(Δ) = 0.8 everywhere; 8 of 10 picks right → ECE 0. Soft labels 0.8 → soft ECE 0 too.
    margins = [logit] * 8 + [-logit] * 2
    assert calibration(margins, [1.0] * 10)["ece"] == pytest.approx(0.0, abs=1e-12)
    assert calibration([logit] * 10, [0.8] * 10)["ece_soft"] == pytest.approx(0.0, abs=1e-12)
    # Overconfident: σ(Δ) = 0.8 but only half right.
    assert calibration([logit] * 5 + [-logit] * 5, [1.0] * 10)["ece"] == pytest.approx(0.3)


# ---------------------------------------------------------------- the trainer (tiny model)


def _trainer(tiny_llama, pairs, out, **recipe_kw):
    from trl import RewardConfig

    from cai.train.config import RewardRecipe, trl_config
    from cai.train.data import preference_dataset
    from cai.train.reward import SoftLabelRewardTrainer

    recipe = RewardRecipe(model=str(tiny_llama), data="-", out=str(out), max_steps=1, batch_size=4,
                          gradient_checkpointing=False, **recipe_kw)
    specific = {}
    if recipe.center_rewards_coefficient is not None:
        specific["center_rewards_coefficient"] = recipe.center_rewards_coefficient
    args = trl_config(RewardConfig, recipe, **specific)
    return SoftLabelRewardTrainer(model=recipe.model, args=args, train_dataset=preference_dataset(pairs))


def _first_batch(trainer):
    return next(iter(trainer.get_train_dataloader()))


@pytest.mark.train
@pytest.mark.parametrize("center", [None, 0.01])
def test_hard_labels_reduce_to_trl_loss_exactly(tiny_llama, tmp_path, center):
    import torch
    from trl import RewardTrainer

    trainer = _trainer(tiny_llama, synthetic_pairs(8, seed=3), tmp_path, center_rewards_coefficient=center)
    trainer.args.center_rewards_coefficient = center
    model = trainer.model
    batch = _first_batch(trainer)
    hard = dict(batch, p_chosen=torch.ones_like(batch["p_chosen"]), weight=torch.ones_like(batch["weight"]))
    plain = {k: v for k, v in batch.items() if k not in ("p_chosen", "weight")}

    ours = trainer.compute_loss(model, dict(hard))
    ours.backward()
    grads_ours = [p.grad.clone() for p in model.parameters() if p.grad is not None]
    model.zero_grad()
    theirs = RewardTrainer.compute_loss(trainer, model, dict(plain))
    theirs.backward()
    grads_theirs = [p.grad.clone() for p in model.parameters() if p.grad is not None]

    assert torch.equal(ours, theirs), (ours.item(), theirs.item())
    assert all(torch.equal(a, b) for a, b in zip(grads_ours, grads_theirs))
    # Without the extra columns at all (plain TRL data) the loss is TRL's too.
    assert torch.equal(trainer.compute_loss(model, dict(plain)), theirs)


@pytest.mark.train
def test_extra_columns_survive_tokenization_and_collation(tiny_llama, tmp_path):
    import torch

    pairs = synthetic_pairs(4, seed=4)
    trainer = _trainer(tiny_llama, pairs, tmp_path)
    assert trainer.args.remove_unused_columns  # TRL's default: only signature columns are kept
    batch = _first_batch(trainer)
    assert batch["input_ids"].shape[0] == 8  # 4 chosen then 4 rejected
    assert sorted(batch["p_chosen"].tolist()) == pytest.approx(sorted(p.p_chosen for p in pairs))
    assert sorted(batch["weight"].tolist()) == sorted(p.weight for p in pairs)

    # The trainer's loss is the soft, weighted one on the model's own rewards.
    with torch.no_grad():
        loss = trainer.compute_loss(trainer.model, dict(batch))
        inputs = {k: v for k, v in batch.items() if k in ("input_ids", "attention_mask")}
        rewards = trainer.model(**inputs).logits.squeeze(-1)
    from cai.train.reward import soft_bt_loss

    chosen, rejected = rewards.chunk(2)
    expected = soft_bt_loss(chosen - rejected, batch["p_chosen"], batch["weight"])
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    assert batch["p_chosen"].min() < 1.0 and batch["weight"].max() > 1.0  # soft labels and weights present


@pytest.mark.train
@pytest.mark.slow
def test_learns_a_synthetic_preference_then_eval_json_and_score(tiny_llama, tmp_path, capsys):
    """The rule is oriented against the untrained model's bias (≤ 50% held-out accuracy at the start);
    a few dozen steps later held-out accuracy is far above chance."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, set_seed

    from cai.train.evaluate import evaluate_reward_model

    train_pairs, test_pairs = synthetic_pairs(120, seed=1), synthetic_pairs(36, seed=2, start=1000)
    set_seed(0)  # TRL seeds the same way before adding the head
    base = AutoModelForSequenceClassification.from_pretrained(str(tiny_llama), num_labels=1, dtype=torch.float32)
    tok = AutoTokenizer.from_pretrained(str(tiny_llama))
    before = evaluate_reward_model(base, tok, test_pairs)["all"]["accuracy"]
    if before > 0.5:  # learn "rude" ≻ "polite" instead: the untrained model starts at 1 - before
        train_pairs, test_pairs, before = swapped(train_pairs), swapped(test_pairs), 1 - before
    data = tmp_path / "mixed"
    write_pairs(train_pairs, data / "train")
    write_pairs(test_pairs, data / "test")

    out = tmp_path / "rm"
    code = main(["train", "reward", "--data", str(data), "--model", str(tiny_llama), "--out", str(out),
                 "--max-steps", "30", "--batch-size", "8", "--learning-rate", "1e-3"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "held-out evaluation" in printed and "cai train reward: 30 steps" in printed and str(out) in printed

    report = json.loads((out / "eval.json").read_text())
    assert report["pairs"] == 36 and set(report["by_source"]) == set(SOURCES)
    after = report["all"]["accuracy"]
    assert before <= 0.5 and after >= 0.85, (before, after)
    for m in [report["all"], *report["by_source"].values()]:
        assert m["n"] > 0 and 0 <= m["ece"] <= 1 and 0 <= m["ece_soft"] <= 1
        assert set(m["margin"]) == {"mean", "std", "min", "max", "p05", "p25", "p50", "p75", "p95"}
    assert report["all"]["margin"]["p50"] > 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 30 and summary["train_pairs"] == 120 and summary["eval"] == {
        k: report[k] for k in ("all", "by_source")}

    # cai score on the held-out pairs reproduces the evaluation's margins.
    scored = tmp_path / "scored.jsonl"
    assert main(["score", "--model", str(out), str(data / "test"), "--out", str(scored)]) == 0
    rows = [json.loads(line) for line in scored.read_text().splitlines()]
    assert len(rows) == 36 and {"r_chosen", "r_rejected", "margin", "id", "source"} <= set(rows[0])
    assert sum(r["margin"] > 0 for r in rows) / 36 == pytest.approx(after)
    assert all(r["margin"] == pytest.approx(r["r_chosen"] - r["r_rejected"]) for r in rows)

    # ... and on single responses, prompt/response and messages rows alike, batched.
    responses = tmp_path / "responses.jsonl"
    pair = test_pairs[0]
    prompt = pair.prompt[0].content
    responses.write_text("\n".join(json.dumps(r) for r in [
        {"prompt": prompt, "response": pair.chosen_text, "id": "a"},
        {"messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": pair.rejected_text}]},
    ]) + "\n")
    capsys.readouterr()
    assert main(["score", "--model", str(out), str(responses), "--batch-size", "1"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert lines[0]["id"] == "a" and lines[0]["reward"] > lines[1]["reward"]
    first = next(r for r in rows if r["id"] == pair.id)
    assert lines[0]["reward"] == pytest.approx(first["r_chosen"], abs=1e-4)


# ---------------------------------------------------------------- errors and recipes


def _one_line_error(capsys, argv) -> str:
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    return err


def test_missing_columns_name_the_expected_ones(tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"prompt": "hi", "chosen": "hello"}) + "\n")
    err = _one_line_error(capsys, ["train", "reward", "--data", str(bad), "--model", "m", "--out", str(tmp_path / "o")])
    assert "missing column(s) rejected" in err and "prompt, chosen, rejected" in err and str(bad) in err
    err = _one_line_error(capsys, ["train", "dpo", "--data", str(bad), "--model", "m", "--out", str(tmp_path / "o")])
    assert "missing column(s) rejected" in err


def test_bad_configs_are_one_line_errors(tmp_path, capsys):
    mixed_data = tmp_path / "data"
    cfg = tmp_path / "r.yaml"
    cfg.write_text(f"model: m\ndata: {mixed_data}\nout: {tmp_path / 'o'}\nlearning_rat: 0.1\n")
    assert "learning_rat" in _one_line_error(capsys, ["train", "reward", "--config", str(cfg)])
    cfg.write_text(f"model: m\ndata: {mixed_data}\nout: {tmp_path / 'o'}\ntrl:\n  warmup_ratioo: 0.1\n")
    assert "trl.warmup_ratioo: not a field of trl.RewardConfig" in _one_line_error(
        capsys, ["train", "reward", "--config", str(cfg)])
    cfg.write_text(f"model: m\ndata: {mixed_data}\nout: {tmp_path / 'o'}\nbatch_size: 0\n")
    assert "batch_size" in _one_line_error(capsys, ["train", "reward", "--config", str(cfg)])
    assert "out: Field required" in _one_line_error(capsys, ["train", "reward", "--data", "d", "--model", "m"])
    assert "no such file" in _one_line_error(
        capsys, ["train", "reward", "--data", str(tmp_path / "none"), "--model", "m", "--out", "o"])


@pytest.mark.parametrize("name", ["reward", "sft", "dpo"])
def test_recipes_parse(name):
    """The worked recipes validate, including their trl: blocks (they are not run: no hub here)."""
    from trl import DPOConfig, RewardConfig, SFTConfig

    from cai.cli.common import load_yaml_config
    from cai.train.config import DPORecipe, RewardRecipe, SFTRecipe, check_trl_keys, trl_config

    recipe_cls, trl_cls = {"reward": (RewardRecipe, RewardConfig), "sft": (SFTRecipe, SFTConfig),
                           "dpo": (DPORecipe, DPOConfig)}[name]
    path = REPO / "recipes" / f"{name}.yaml"
    recipe = recipe_cls.model_validate(load_yaml_config(str(path)))
    check_trl_keys(recipe, trl_cls)
    args = trl_config(trl_cls, recipe)  # TRL accepts every value too
    assert args.output_dir == recipe.out and args.max_length == recipe.max_length
    assert recipe.model.startswith("Qwen/") or name == "dpo"


def test_score_errors_are_one_line(tiny_llama, tmp_path, capsys):
    responses = tmp_path / "r.jsonl"
    responses.write_text(json.dumps({"prompt": "hi", "response": "hello"}) + "\n")
    assert "no such reward model folder" in _one_line_error(
        capsys, ["score", "--model", str(tmp_path / "missing"), str(responses)])
    assert "not a reward model: 2 outputs, expected 1" in _one_line_error(
        capsys, ["score", "--model", str(tiny_llama), str(responses)])  # a causal LM, not an RM
    responses.write_text(json.dumps({"prompt": "hi"}) + "\n")
    err = _one_line_error(capsys, ["score", "--model", str(tiny_llama), str(responses)])
    assert f"{responses}:1: expected prompt and response (or messages)" in err
