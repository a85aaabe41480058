"""Bradley–Terry reward model with soft labels and per-pair weights, on TRL's RewardTrainer.

TRL's loss is −log σ(Δ) with Δ = r_chosen − r_rejected (minus an optional ``margin`` column): every
label is hard. AI feedback gives a probability instead, so this trainer minimises the cross-entropy
against the soft label p = ``p_chosen``:

    ℓ = −[p·log σ(Δ) + (1 − p)·log σ(−Δ)] = −log σ(Δ) + (1 − p)·Δ

(the second form is the same quantity, numerically stable, and with p = 1 it *is* TRL's loss), then
takes the ``weight``-weighted mean over the batch: Σ wᵢℓᵢ / Σ wᵢ. The gradient wrt Δ is
w·(σ(Δ) − p)/Σw, zero where the model's probability matches the label. TRL's optional
``center_rewards_coefficient`` term uses the same weights. Hard labels with unit weights give TRL's
loss exactly (tested bit for bit).

Everything else is TRL's: tokenization (chat template over prompt + response), length filter,
logged metrics (accuracy, margin, rewards), saving. Two additions carry the extra columns
through: the signature columns (so ``remove_unused_columns`` keeps ``p_chosen`` and ``weight``)
and a collator that turns them into tensors.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from cai.core.errors import require
from cai.train.config import RewardRecipe

require("trl", extra="train", purpose="reward-model training")
from trl import RewardTrainer  # noqa: E402
from trl.trainer.reward_trainer import DataCollatorForPreference  # noqa: E402

EXTRA_COLUMNS = ("p_chosen", "weight")


def soft_bt_losses(delta: torch.Tensor, p_chosen: torch.Tensor | None = None) -> torch.Tensor:
    """Soft-label Bradley–Terry loss of each pair, ``(B,)``."""
    loss = -F.logsigmoid(delta)  # (B,)
    if p_chosen is not None:
        loss = loss + (1.0 - p_chosen.to(delta.dtype)) * delta
    return loss


def soft_bt_loss(delta: torch.Tensor, p_chosen: torch.Tensor | None = None,
                 weight: torch.Tensor | None = None) -> torch.Tensor:
    """Soft-label Bradley–Terry loss, weighted mean over the batch. Shapes: all ``(B,)``."""
    return weighted_mean(soft_bt_losses(delta, p_chosen), weight)


def weighted_mean(values: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
    """Σ wᵢxᵢ / Σ wᵢ (plain mean without weights; 0 when every weight is 0)."""
    if weight is None:
        return values.mean()
    weight = weight.to(values.dtype)
    return (values * weight).sum() / weight.sum().clamp_min(torch.finfo(values.dtype).tiny)


@dataclass
class SoftPreferenceCollator(DataCollatorForPreference):
    """TRL's preference collator, plus ``p_chosen`` and ``weight`` tensors of shape ``(B,)``."""

    def torch_call(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        batch = super().torch_call(examples)
        for key in EXTRA_COLUMNS:
            if key in examples[0]:
                batch[key] = torch.tensor([float(e[key]) for e in examples], dtype=torch.float)
        return batch


class SoftLabelRewardTrainer(RewardTrainer):
    """RewardTrainer whose loss takes soft labels (``p_chosen``) and per-pair weights (``weight``).

    In training, one optimizer step's loss is Σ wᵢℓᵢ / Σ wᵢ over *every* pair of the step: all
    gradient-accumulation micro-batches on all processes (the total weight is counted once per step
    and summed over processes), as one process with the whole batch would get, rather than a mean
    of per-micro-batch (and per-process) weighted means.
    """

    loss_is_scaled_for_ga = True  # compute_loss divides by the step's total weight itself

    def __init__(self, *args, data_collator=None, **kwargs):
        super().__init__(*args, data_collator=data_collator, **kwargs)
        if data_collator is None:
            self.data_collator = SoftPreferenceCollator(
                pad_token_id=self.processing_class.pad_token_id, pad_to_multiple_of=self.args.pad_to_multiple_of)

    def _set_signature_columns_if_needed(self):
        super()._set_signature_columns_if_needed()
        self._signature_columns = list(dict.fromkeys([*self._signature_columns, *EXTRA_COLUMNS]))

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        inputs = dict(inputs)
        p_chosen = inputs.pop("p_chosen", None)  # (B,)
        weight = inputs.pop("weight", None)  # (B,)
        # TRL's forward pass and metrics (accuracy, margin, rewards, tokens); its hard-label loss is replaced.
        _, outputs = super().compute_loss(model, inputs, return_outputs=True)
        rewards_chosen, rewards_rejected = torch.chunk(outputs.logits.squeeze(-1), chunks=2)  # (B,), (B,)
        delta = rewards_chosen - rewards_rejected
        if "margin" in inputs:
            delta = delta - inputs["margin"]
        if num_items_in_batch is None:  # evaluation, or a direct call: this batch's weighted mean
            mean = lambda x: weighted_mean(x, weight)  # noqa: E731
        else:  # training: Σ wᵢxᵢ over this micro-batch / the step's total weight (x processes: DDP averages)
            w = weight.to(delta.dtype) if weight is not None else torch.ones_like(delta)
            scale = self.accelerator.num_processes / num_items_in_batch.clamp_min(torch.finfo(delta.dtype).tiny)
            mean = lambda x: (x * w).sum() * scale  # noqa: E731
        loss = mean(soft_bt_losses(delta, p_chosen))
        if self.args.center_rewards_coefficient is not None:
            loss += self.args.center_rewards_coefficient * mean((rewards_chosen + rewards_rejected) ** 2)
        return (loss, outputs) if return_outputs else loss

    def _get_num_items_in_batch(self, batch_samples: list, device: torch.device) -> torch.Tensor:
        """Total weight (pairs, without a ``weight`` column) of one step's micro-batches, summed over
        processes: what :meth:`compute_loss` divides each micro-batch's weighted sum by."""
        total = sum(float(b["weight"].sum()) if "weight" in b else b["input_ids"].shape[0] / 2
                    for b in batch_samples)
        total = torch.tensor(total, dtype=torch.float32, device=device)
        if self.accelerator.num_processes > 1:
            total = self.accelerator.reduce(total, "sum")
        return total


# ---------------------------------------------------------------- the training run


def train_reward(recipe: RewardRecipe) -> dict:
    """Train a reward model, save it to ``recipe.out``, evaluate it on the held-out pairs.

    Writes ``OUT/eval.json`` (when there is a held-out split) and ``OUT/summary.json``; returns the summary.
    Pairs are checked against the chat template first (:mod:`cai.train.templates`; ``chat_template``
    in the summary).
    """
    from trl import RewardConfig

    from cai.train.config import check_trl_keys, peft_config, trl_config
    from cai.train.data import load_preference_splits, preference_dataset, source_counts
    from cai.core.runs import write_json
    from cai.train.evaluate import evaluate_reward_model
    from cai.train.limits import check_fills_a_step, check_limits, check_took_a_step, pairs_within
    from cai.train.run import save_model, train_stats

    check_trl_keys(recipe, RewardConfig)
    read_counts: dict = {}
    train_pairs, test_pairs = load_preference_splits(recipe.data, test_fraction=recipe.test_size,
                                                     seed=recipe.seed, counts=read_counts)
    from cai.models import resolve_model
    from cai.train.templates import add_reports, template_pairs, trainer_tokenizer

    model_path = resolve_model(recipe.model)
    tokenizer, template = trainer_tokenizer(model_path, recipe.trl)  # pairs the template takes, before TRL
    train_pairs, checked = template_pairs(train_pairs, tokenizer, "reward", template=template, path=recipe.data)
    test_pairs, checked_test = template_pairs(test_pairs, tokenizer, "reward", template=template, required=False)
    specific = {}
    if recipe.center_rewards_coefficient is not None:
        specific["center_rewards_coefficient"] = recipe.center_rewards_coefficient
    args = trl_config(RewardConfig, recipe, **specific)
    check_fills_a_step(len(train_pairs), args, recipe.data, "training pairs")  # before the model loads
    # The held-out pairs double as TRL's eval set, for recipes that set trl: {eval_strategy: steps, ...}.
    trainer = SoftLabelRewardTrainer(model=model_path, args=args, train_dataset=preference_dataset(train_pairs),
                                     eval_dataset=preference_dataset(test_pairs) if test_pairs else None,
                                     peft_config=peft_config(recipe, "SEQ_CLS"))
    limits = check_limits(trainer, {"train": len(train_pairs), "eval": len(test_pairs)}, "reward",
                          args.max_length, recipe.data)
    check_fills_a_step(len(trainer.train_dataset), args, recipe.data, "training pairs within max_length")
    from cai.train.run import plain_log_lines

    plain_log_lines(trainer)
    started = time.perf_counter()
    result = trainer.train()
    train_seconds = time.perf_counter() - started
    check_took_a_step(result.global_step, recipe.data)
    model = save_model(trainer, recipe.out)

    summary: dict[str, Any] = {
        "out": recipe.out,
        "model": recipe.model,
        "data": recipe.data,
        "train_pairs": len(train_pairs),
        "train_pairs_used": len(trainer.train_dataset),
        "test_pairs": len(test_pairs),
        "sources": source_counts(train_pairs),
        "empty_response_dropped": read_counts["empty_response"],
        "prompt_repeated": read_counts["prompt_repeated"],
        "over_max_length": limits,
        "chat_template": add_reports(checked, checked_test),
        "trl": dict(recipe.trl),
        **train_stats(trainer, result, train_seconds),
    }
    # Held-out evaluation: under accelerate launch every process scores a share of the pairs with
    # the wrapped model (its FSDP / ZeRO-3 shards take part in every forward pass); all get the metrics.
    # The pairs evaluated are the ones the trainer kept under max_length (its eval split's count).
    metrics = None
    eval_pairs = pairs_within(test_pairs, trainer.processing_class, args.max_length)
    if eval_pairs:
        distributed = trainer.accelerator.num_processes > 1
        metrics = evaluate_reward_model(trainer.model_wrapped if distributed else model, trainer.processing_class,
                                        eval_pairs, batch_size=recipe.eval_batch_size,
                                        bins=recipe.calibration_bins, accelerator=trainer.accelerator)
    if not trainer.is_world_process_zero():  # under accelerate launch: one process reports
        return summary
    if metrics is not None:
        report = {"model": recipe.out, "data": recipe.data, "pairs": len(eval_pairs),
                  "over_max_length_dropped": len(test_pairs) - len(eval_pairs),
                  "bins": recipe.calibration_bins, **metrics}
        write_json(Path(recipe.out) / "eval.json", report)
        summary["eval"] = metrics
    write_json(Path(recipe.out) / "summary.json", summary)
    return summary
