"""`cai train dpo`: direct preference optimisation on a preference export."""

from __future__ import annotations

from typing import Optional

import typer

from cai.cli.common import load_yaml_config, validate_config
from cai.cli.fields import apply_fields, takes_fields
from cai.cli.train import RECIPE_FIELDS
from cai.train.config import DPORecipe


@takes_fields(DPORecipe, [*RECIPE_FIELDS, "loss_type", "beta", "label_smoothing"])
def dpo(
    config: Optional[str] = typer.Option(None, "--config", help="YAML recipe; flags override it."),
    *, fields: dict,
) -> None:
    """Train a policy directly on preference pairs (TRL DPOTrainer)."""
    from cai.cli.train_output import print_train_summary
    from cai.train.dpo import train_dpo

    values = load_yaml_config(config)
    apply_fields(values, fields)
    recipe = validate_config(DPORecipe, values, config)
    print_train_summary("dpo", train_dpo(recipe))
