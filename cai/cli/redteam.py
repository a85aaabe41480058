"""`cai redteam`: attacks written per principle by an attacker model; what breaks the target
becomes a probe suite."""

from __future__ import annotations

from typing import Optional

import typer

from cai.cli.common import backend_config, load_yaml_config, merge_overrides, validate_config


def redteam(
    constitution: Optional[str] = typer.Option(None, help="Constitution YAML or library name whose principles are attacked (default: default)."),
    principles_dir: Optional[str] = typer.Option(None, help="Principles folder (default: beside the constitution, then the library)."),
    attacker_model: Optional[str] = typer.Option(None, help="The model that writes attacks (default: smollm2-135m-instruct)."),
    target_model: Optional[str] = typer.Option(None, help="The model under attack (default: the attacker)."),
    feedback_model: Optional[str] = typer.Option(None, help="The judge (default: none; the refusal detector decides, crudely)."),
    backend: str = typer.Option("auto", help="auto, vllm, transformers or openai (for every model)."),
    backend_option: list[str] = typer.Option([], "--backend-option", "-O", help="key=value backend option (repeatable)."),
    per_principle: Optional[int] = typer.Option(None, help="Attacks per principle, spread over the styles."),
    max_principles: Optional[int] = typer.Option(None, help="Attack only the first K principles."),
    style: list[str] = typer.Option([], "--style", help="Attack style (repeatable): direct, role-play, hypothetical, escalation, obfuscation."),
    out: Optional[str] = typer.Option(None, help="Output folder."),
    min_label_mass: Optional[float] = typer.Option(None, help="Judge: judgements with less probability on their answer labels fail."),
    judge_health: Optional[str] = typer.Option(None, help="An unhealthy judge: warn (default) or error."),
    config: Optional[str] = typer.Option(None, "--config", help="YAML config; flags override it."),
) -> None:
    """Red-team a model against a constitution: attacks per principle, the judge's verdicts, a probe suite of what broke it."""
    from cai.redteam import RedteamConfig, run_redteam

    data = load_yaml_config(config)
    merge_overrides(data, {"constitution": constitution, "principles_dir": principles_dir, "out": out,
                           "per_principle": per_principle, "max_principles": max_principles,
                           "styles": list(style) or None, "min_label_mass": min_label_mass,
                           "judge_health": judge_health})
    data["attacker"] = backend_config(data.get("attacker"), backend, attacker_model, backend_option, required=True)
    if target_model or data.get("target"):
        data["target"] = backend_config(data.get("target"), backend, target_model, backend_option)
    if feedback_model or data.get("feedback"):
        data["feedback"] = backend_config(data.get("feedback"), backend, feedback_model, backend_option)
    cfg = validate_config(RedteamConfig, data, config)
    run_redteam(cfg)
