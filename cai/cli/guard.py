"""`cai guard data|train|eval`: a guard classifier trained from the constitution's own principles."""

from __future__ import annotations

from typing import Optional

import typer

from cai.cli.common import backend_config, load_yaml_config, validate_config
from cai.cli.fields import apply_fields, takes_fields
from cai.guard.config import GuardDataConfig, GuardEvalConfig, GuardTrainConfig

app = typer.Typer(help="A guard classifier from the constitution: generate and judge data, train it, measure it.",
                  no_args_is_help=True)


@app.command("data")
@takes_fields(GuardDataConfig, ["constitution", "principles_dir", "per_principle", "max_principles", "test_size", "out",
                                "min_label_mass", "judge_health", "label_by"],
              nested={"sampling": ["temperature", "top_p", "max_tokens", "seed", "frequency_penalty"]})
def data(
    model: Optional[str] = typer.Option(None, help="The model that writes requests and responses (default: smollm2-135m-instruct)."),
    feedback_model: Optional[str] = typer.Option(None, help="The judge that labels every row (default: the model)."),
    backend: str = typer.Option("auto", help="auto, vllm, transformers or openai."),
    backend_option: list[str] = typer.Option([], "--backend-option", "-O", help="key=value backend option (repeatable)."),
    config: Optional[str] = typer.Option(None, "--config", help="YAML config; flags override it."),
    *, fields: dict,
) -> None:
    """Generate guard data from a constitution: harmful requests, benign look-alikes, responses; judged, split by principle."""
    from cai.guard import run_guard_data

    values = load_yaml_config(config)
    apply_fields(values, fields)
    values["model"] = backend_config(values.get("model"), backend, model, backend_option, required=True)
    if feedback_model or values.get("feedback"):
        values["feedback"] = backend_config(values.get("feedback"), backend, feedback_model, backend_option)
    run_guard_data(validate_config(GuardDataConfig, values, config))


@app.command("train")
@takes_fields(GuardTrainConfig, ["data", "model", "out", "max_steps", "batch_size", "learning_rate", "max_length", "seed",
                                 "target_fpr"])
def train(
    config: Optional[str] = typer.Option(None, "--config", help="YAML config; flags override it."),
    *, fields: dict,
) -> None:
    """Train the guard: a sequence classifier with a role marker for inputs and outputs."""
    from cai.guard import train_guard

    values = load_yaml_config(config)
    apply_fields(values, fields)
    train_guard(validate_config(GuardTrainConfig, values, config))


@app.command("eval")
@takes_fields(GuardEvalConfig, ["model", "data", "redteam", "benign", "target_fpr", "out", "batch_size"])
def evaluate(
    config: Optional[str] = typer.Option(None, "--config", help="YAML config; flags override it."),
    *, fields: dict,
) -> None:
    """Measure the guard: catch rate and false-positive rate, with n and intervals."""
    from cai.guard import run_guard_eval

    values = load_yaml_config(config)
    apply_fields(values, fields)
    run_guard_eval(validate_config(GuardEvalConfig, values, config))
