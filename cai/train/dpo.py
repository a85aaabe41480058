"""DPO with TRL's DPOTrainer on any preference export (SL-CAI, AI feedback, human, mixed).

Which loss suits which labels:

- ``apo_zero`` (Anchored Preference Optimization) for revision-vs-draft pairs (``ai-revision``):
  the revision is known to be better and the draft is the model's own output, so APO-zero raises
  the likelihood of the revision and lowers that of the draft, instead of only widening the gap.
- ``robust`` (Robust DPO) for noisy AI labels (``ai-feedback``): it assumes a label-flip rate
  ``label_smoothing`` (default 0.1 here) and stays unbiased under that noise.
- ``sigmoid`` (the DPO paper's loss) otherwise, e.g. human labels or mixtures; the default.

``loss_type: auto`` applies these rules to the training pairs' sources. DPO sees hard labels: the
soft label only decides which response is chosen (a pair with p_chosen < 0.5 is swapped, one at
exactly 0.5 is dropped) and the per-pair ``weight`` is not used (pairs with weight 0 are dropped).
"""

from __future__ import annotations

from typing import Any

from cai.train.config import DPORecipe


def resolve_loss(loss_type: str, sources: dict[str, int]) -> str:
    """The DPO loss for ``auto`` given the source counts of the training pairs."""
    if loss_type != "auto":
        return loss_type
    if set(sources) == {"ai-revision"}:
        return "apo_zero"
    if "ai-feedback" in sources:
        return "robust"
    return "sigmoid"


def hard_pairs(pairs):
    """Pairs as DPO needs them: the labeled winner as chosen (pairs with p_chosen < 0.5 are swapped);
    pairs without a preference (p_chosen = 0.5) or with weight 0 are dropped. Returns (pairs, dropped)."""
    out = []
    for p in pairs:
        if p.weight <= 0 or p.p_chosen == 0.5:
            continue
        if p.p_chosen < 0.5:
            p = p.model_copy(update={"chosen": p.rejected, "rejected": p.chosen, "p_chosen": 1.0 - p.p_chosen})
        out.append(p)
    return out, len(pairs) - len(out)


def train_dpo(recipe: DPORecipe) -> dict:
    """Train ``recipe.model`` with DPO against a frozen copy of itself; returns a summary. Pairs
    are checked against the chat template first (:mod:`cai.train.templates`; ``chat_template`` in
    the summary)."""
    from cai.core.errors import CaiError, require

    require("trl", extra="train", purpose="DPO")
    from trl import DPOConfig, DPOTrainer

    from cai.train.config import check_trl_keys, peft_config, trl_config
    from cai.train.data import load_preference_splits, preference_dataset, source_counts
    from cai.train.limits import check_fills_a_step, check_limits
    from cai.train.run import train_and_save

    check_trl_keys(recipe, DPOConfig)
    read_counts: dict = {}
    train_pairs, test_pairs = load_preference_splits(recipe.data, counts=read_counts)
    train_pairs, dropped = hard_pairs(train_pairs)
    test_pairs, _ = hard_pairs(test_pairs)
    if not train_pairs:
        raise CaiError("no training pairs with a preference (every pair has p_chosen 0.5 or weight 0)",
                       path=recipe.data)
    from cai.models import resolve_model
    from cai.train.templates import add_reports, template_pairs, trainer_tokenizer

    model = resolve_model(recipe.model)
    tokenizer, template = trainer_tokenizer(model, recipe.trl)  # pairs the template takes, before TRL renders them
    train_pairs, checked = template_pairs(train_pairs, tokenizer, "dpo", template=template, path=recipe.data)
    test_pairs, checked_test = template_pairs(test_pairs, tokenizer, "dpo", template=template, required=False)
    sources = source_counts(train_pairs)
    loss = resolve_loss(recipe.loss_type, sources)
    specific: dict[str, Any] = {"loss_type": [loss], "beta": recipe.beta}
    if recipe.label_smoothing is not None or loss == "robust":
        specific["label_smoothing"] = recipe.label_smoothing if recipe.label_smoothing is not None else 0.1
    args = trl_config(DPOConfig, recipe, **specific)
    check_fills_a_step(len(train_pairs), args, recipe.data, "training pairs")  # before the model loads
    train = preference_dataset(train_pairs, extra=False)
    test = preference_dataset(test_pairs, extra=False) if test_pairs else None
    trainer = DPOTrainer(model=model, args=args, train_dataset=train, eval_dataset=test,
                         peft_config=peft_config(recipe, "CAUSAL_LM"))
    limits = check_limits(trainer, {"train": len(train_pairs), "eval": len(test_pairs)}, "dpo", args.max_length,
                          recipe.data)
    check_fills_a_step(len(trainer.train_dataset), args, recipe.data, "training pairs within max_length")
    return train_and_save(trainer, recipe, {
        "loss_type": loss, "beta": recipe.beta, "train_pairs": len(train_pairs), "test_pairs": len(test_pairs),
        "dropped_pairs": dropped, "sources": sources, "over_max_length": limits, "empty_response_dropped": read_counts["empty_response"],
        "prompt_repeated": read_counts["prompt_repeated"], "chat_template": add_reports(checked, checked_test),
    })
