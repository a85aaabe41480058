"""`cai train sft`: supervised fine-tuning on SL-CAI revisions."""

from __future__ import annotations

from typing import Optional

import typer

from cai.cli.common import load_yaml_config, validate_config
from cai.cli.fields import apply_fields, takes_fields
from cai.cli.train import RECIPE_FIELDS
from cai.train.config import SFTRecipe


@takes_fields(SFTRecipe, [*RECIPE_FIELDS, "completion_only"])
def sft(
    config: Optional[str] = typer.Option(None, "--config", help="YAML recipe; flags override it."),
    *, fields: dict,
) -> None:
    """Fine-tune a model on the revisions (TRL SFTTrainer)."""
    from cai.cli.train_output import print_train_summary
    from cai.train.sft import train_sft

    values = load_yaml_config(config)
    apply_fields(values, fields)
    recipe = validate_config(SFTRecipe, values, config)
    print_train_summary("sft", train_sft(recipe))
