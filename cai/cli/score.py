"""`cai score`: rewards of responses or preference pairs from a trained reward model."""

from __future__ import annotations

from typing import Optional

import typer

from cai.cli.common import load_yaml_config, validate_config
from cai.cli.fields import apply_fields, takes_fields
from cai.train.score import ScoreConfig


@takes_fields(ScoreConfig, ["model", "out", "batch_size", "max_length", "device"])
def score(
    file: Optional[str] = typer.Argument(None, show_default=False, metavar="FILE",
                                         help=f"{ScoreConfig.model_fields['file'].description} (Or file: in --config.)"),
    config: Optional[str] = typer.Option(None, "--config", help="YAML config; flags override it."),
    *, fields: dict,
) -> None:
    """Score with a reward model: pairs get r_chosen, r_rejected and margin; responses get reward."""
    from rich.console import Console

    from cai.train.score import score as run_score

    data = load_yaml_config(config)
    apply_fields(data, fields)
    if file is not None:
        data["file"] = file
    summary = run_score(validate_config(ScoreConfig, data, config))
    if summary["kind"] == "pairs":
        detail = f"accuracy {summary['accuracy']:.3f}, mean margin {summary['mean_margin']:.3f}"
    else:
        detail = f"mean reward {summary['mean_reward']:.3f}"
    if summary.get("truncated"):
        detail += (f"; {summary['truncated']} sequences cut from the left to {summary['max_length']} tokens "
                   "(--max-length or the reward model's context)")
    Console(stderr=True).print(f"cai score: {summary['rows']} {summary['kind']} scored ({detail}) → {summary['out']}",
                               soft_wrap=True)
