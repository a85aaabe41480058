"""`cai train dpo`: direct preference optimisation on a preference export."""

from __future__ import annotations

from typing import Optional

import typer

from cai.cli.common import load_yaml_config, merge_overrides, validate_config


def dpo(
    data: Optional[str] = typer.Option(None, help="Preference data: a folder with train/ and test/, or one dataset."),
    model: Optional[str] = typer.Option(None, help="Policy to train (also the frozen reference): folder, hub id, .gguf file or known name."),
    out: Optional[str] = typer.Option(None, help="Output folder for the trained policy and summary.json."),
    loss_type: Optional[str] = typer.Option(
        None, help="sigmoid (default), apo_zero (revision vs draft), robust (noisy AI labels), auto, or another TRL DPO loss."),
    beta: Optional[float] = typer.Option(None, help="Strength of the implicit KL to the reference."),
    max_steps: Optional[int] = typer.Option(None, help="Stop after N optimizer steps."),
    epochs: Optional[float] = typer.Option(None, help="Passes over the training pairs."),
    learning_rate: Optional[float] = typer.Option(None, help="Peak learning rate."),
    batch_size: Optional[int] = typer.Option(None, help="Pairs per device per step."),
    max_length: Optional[int] = typer.Option(None, help="Token limit per sequence."),
    seed: Optional[int] = typer.Option(None, help="Seed of data order."),
    config: Optional[str] = typer.Option(None, "--config", help="YAML recipe; flags override it."),
) -> None:
    """Train a policy directly on preference pairs (TRL DPOTrainer)."""
    from cai.cli.train_output import print_train_summary
    from cai.train.config import DPORecipe
    from cai.train.dpo import train_dpo

    values = load_yaml_config(config)
    merge_overrides(values, {
        "data": data, "model": model, "out": out, "loss_type": loss_type, "beta": beta, "max_steps": max_steps,
        "epochs": epochs, "learning_rate": learning_rate, "batch_size": batch_size, "max_length": max_length,
        "seed": seed,
    })
    recipe = validate_config(DPORecipe, values, config)
    print_train_summary("dpo", train_dpo(recipe))
