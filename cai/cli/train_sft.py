"""`cai train sft`: supervised fine-tuning on SL-CAI revisions."""

from __future__ import annotations

from typing import Optional

import typer

from cai.cli.common import load_yaml_config, merge_overrides, validate_config


def sft(
    data: Optional[str] = typer.Option(None, help="A run folder (its sft/), or a dataset with a messages column."),
    model: Optional[str] = typer.Option(None, help="Base model: a local folder, hub id, .gguf file or known name (cai models list)."),
    out: Optional[str] = typer.Option(None, help="Output folder for the fine-tuned model and summary.json."),
    max_steps: Optional[int] = typer.Option(None, help="Stop after N optimizer steps."),
    epochs: Optional[float] = typer.Option(None, help="Passes over the data."),
    learning_rate: Optional[float] = typer.Option(None, help="Peak learning rate."),
    batch_size: Optional[int] = typer.Option(None, help="Conversations per device per step."),
    max_length: Optional[int] = typer.Option(None, help="Token limit per conversation (truncated)."),
    completion_only: Optional[bool] = typer.Option(
        None, "--completion-only/--full-loss", help="Loss on the final assistant turn only (default) or on all tokens."),
    seed: Optional[int] = typer.Option(None, help="Seed of data order."),
    config: Optional[str] = typer.Option(None, "--config", help="YAML recipe; flags override it."),
) -> None:
    """Fine-tune a model on the revisions (TRL SFTTrainer)."""
    from cai.cli.train_output import print_train_summary
    from cai.train.config import SFTRecipe
    from cai.train.sft import train_sft

    values = load_yaml_config(config)
    merge_overrides(values, {
        "data": data, "model": model, "out": out, "max_steps": max_steps, "epochs": epochs,
        "learning_rate": learning_rate, "batch_size": batch_size, "max_length": max_length,
        "completion_only": completion_only, "seed": seed,
    })
    recipe = validate_config(SFTRecipe, values, config)
    print_train_summary("sft", train_sft(recipe))
