"""SFT on SL-CAI revisions with TRL's SFTTrainer.

Reads a run's ``sft/`` export (``messages``: the prompt and the final revision), any folder or
file with a ``messages`` column, or TRL's ``prompt``/``completion`` or ``text`` formats. With
``completion_only`` (the default) each conversation becomes TRL's conversational
prompt/completion, so the loss falls on the revision only, not on the user's prompt.
"""

from __future__ import annotations

from cai.train.config import SFTRecipe


def train_sft(recipe: SFTRecipe) -> dict:
    """Fine-tune ``recipe.model`` on the SFT data and save it to ``recipe.out``; returns a summary.

    Rows are checked against the chat template first (:mod:`cai.train.templates`): a refused
    system turn is merged, other refusals are left out and named in ``summary["chat_template"]``."""
    from cai.core.errors import require

    require("trl", extra="train", purpose="SFT")
    from trl import SFTConfig, SFTTrainer

    from cai.train.config import check_trl_keys, peft_config, trl_config
    from cai.train.data import load_sft_splits
    from cai.train.limits import check_fills_a_step, check_limits
    from cai.train.run import train_and_save

    check_trl_keys(recipe, SFTConfig)
    from cai.models import resolve_model
    from cai.train.templates import add_reports, template_dataset, trainer_tokenizer

    names: dict = {}
    train, test = load_sft_splits(recipe.data, completion_only=recipe.completion_only, names=names)
    model = resolve_model(recipe.model)
    tokenizer, template = trainer_tokenizer(model, recipe.trl)  # rows the template takes, before TRL renders them
    train, checked = template_dataset(train, names["train"], tokenizer, "sft", template=template, path=recipe.data)
    test, checked_test = template_dataset(test, names.get("test", []), tokenizer, "sft", template=template, required=False)
    args = trl_config(SFTConfig, recipe)
    check_fills_a_step(len(train), args, recipe.data)  # before the model loads

    trainer = SFTTrainer(model=model, args=args, train_dataset=train, eval_dataset=test,
                         peft_config=peft_config(recipe, "CAUSAL_LM"))
    given = {"train": len(train), "eval": len(test) if test is not None else 0}
    limits = check_limits(trainer, given, "sft", args.max_length, recipe.data)
    check_fills_a_step(len(trainer.train_dataset), args, recipe.data, "training rows within max_length")
    return train_and_save(trainer, recipe, {"train_rows": len(train),
                                            "test_rows": len(test) if test is not None else 0,
                                            "over_max_length": limits,
                                            "chat_template": add_reports(checked, checked_test)})
