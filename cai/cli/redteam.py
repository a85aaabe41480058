"""`cai redteam`: attacks written per principle by an attacker model; what breaks the target
becomes a probe suite."""

from __future__ import annotations

from typing import Optional

import typer

from cai.cli.common import backend_config, load_yaml_config, validate_config
from cai.cli.fields import apply_fields, takes_fields
from cai.redteam.config import RedteamConfig

_REDTEAM_FIELDS = [
    "constitution", "principles_dir", "out", "per_principle", "max_principles", "styles", "near_duplicate",
    "broke_at", "min_label_mass", "judge_health",
]


@takes_fields(RedteamConfig, _REDTEAM_FIELDS)
def redteam(
    attacker_model: Optional[str] = typer.Option(None, help="The model that writes attacks (default: smollm2-135m-instruct)."),
    target_model: Optional[str] = typer.Option(None, help="The model under attack (default: the attacker)."),
    feedback_model: Optional[str] = typer.Option(None, help="The judge (default: none; the refusal detector decides, crudely)."),
    backend: str = typer.Option("auto", help="auto, vllm, transformers or openai (for every model)."),
    backend_option: list[str] = typer.Option([], "--backend-option", "-O", help="key=value backend option (repeatable)."),
    config: Optional[str] = typer.Option(None, "--config", help="YAML config; flags override it."),
    *, fields: dict,
) -> None:
    """Red-team a model against a constitution: attacks per principle, the judge's verdicts, a probe suite of what broke it."""
    from cai.redteam import run_redteam

    data = load_yaml_config(config)
    apply_fields(data, fields)
    data["attacker"] = backend_config(data.get("attacker"), backend, attacker_model, backend_option, required=True)
    if target_model or data.get("target"):
        data["target"] = backend_config(data.get("target"), backend, target_model, backend_option)
    if feedback_model or data.get("feedback"):
        data["feedback"] = backend_config(data.get("feedback"), backend, feedback_model, backend_option)
    cfg = validate_config(RedteamConfig, data, config)
    run_redteam(cfg)
