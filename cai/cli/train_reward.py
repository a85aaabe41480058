"""`cai train reward`: a Bradley–Terry reward model with soft labels, evaluated on held-out pairs."""

from __future__ import annotations

from typing import Optional

import typer

from cai.cli.common import load_yaml_config, merge_overrides, validate_config


def reward(
    data: Optional[str] = typer.Option(None, help="Preference data: a folder with train/ and test/, or one dataset."),
    model: Optional[str] = typer.Option(None, help="Base model (a local folder, hub id, .gguf file or known name (cai models list)); a scalar head is added."),
    out: Optional[str] = typer.Option(None, help="Output folder for the reward model, eval.json and summary.json."),
    max_steps: Optional[int] = typer.Option(None, help="Stop after N optimizer steps."),
    epochs: Optional[float] = typer.Option(None, help="Passes over the training pairs."),
    learning_rate: Optional[float] = typer.Option(None, help="Peak learning rate."),
    batch_size: Optional[int] = typer.Option(None, help="Pairs per device per step."),
    max_length: Optional[int] = typer.Option(None, help="Token limit per sequence (longer pairs are skipped)."),
    test_size: Optional[float] = typer.Option(None, help="Held-out share when the data has no test/ split."),
    seed: Optional[int] = typer.Option(None, help="Seed of data order, split and new weights."),
    config: Optional[str] = typer.Option(None, "--config", help="YAML recipe; flags override it."),
) -> None:
    """Train a reward model on preference pairs (soft labels p_chosen, per-pair weights)."""
    from cai.cli.train_output import print_train_summary
    from cai.train.config import RewardRecipe
    from cai.train.reward import train_reward

    values = load_yaml_config(config)
    merge_overrides(values, {
        "data": data, "model": model, "out": out, "max_steps": max_steps, "epochs": epochs,
        "learning_rate": learning_rate, "batch_size": batch_size, "max_length": max_length,
        "test_size": test_size, "seed": seed,
    })
    recipe = validate_config(RewardRecipe, values, config)
    print_train_summary("reward", train_reward(recipe))
