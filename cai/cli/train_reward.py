"""`cai train reward`: a Bradley–Terry reward model with soft labels, evaluated on held-out pairs."""

from __future__ import annotations

from typing import Optional

import typer

from cai.cli.common import load_yaml_config, validate_config
from cai.cli.fields import apply_fields, takes_fields
from cai.cli.train import RECIPE_FIELDS
from cai.train.config import RewardRecipe


@takes_fields(RewardRecipe, [*RECIPE_FIELDS, "center_rewards_coefficient", "test_size", "eval_batch_size",
                             "calibration_bins"])
def reward(
    config: Optional[str] = typer.Option(None, "--config", help="YAML recipe; flags override it."),
    *, fields: dict,
) -> None:
    """Train a reward model on preference pairs (soft labels p_chosen, per-pair weights)."""
    from cai.cli.train_output import print_train_summary
    from cai.train.reward import train_reward

    values = load_yaml_config(config)
    apply_fields(values, fields)
    recipe = validate_config(RewardRecipe, values, config)
    print_train_summary("reward", train_reward(recipe))
