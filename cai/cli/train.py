"""`cai train ...`: reward model, PPO, GRPO/RLOO, SFT and DPO. Each command lives in its own module."""

from __future__ import annotations

import typer

app = typer.Typer(rich_markup_mode=None, help="Train a reward model, PPO with a KL penalty, GRPO or RLOO (online, the constitution as judge), SFT or DPO.", no_args_is_help=True)

RECIPE_FIELDS = [
    "model", "data", "out", "max_steps", "epochs", "learning_rate", "batch_size", "grad_accum", "max_length", "seed",
    "logging_steps", "save_steps", "gradient_checkpointing", "dtype",
]
"""The :class:`cai.train.config.TrainRecipe` fields every `cai train reward|sft|dpo` takes as flags (its
``lora:`` block and ``trl:`` mapping are set in --config)."""
