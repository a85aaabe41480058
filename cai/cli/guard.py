"""`cai guard data|train|eval`: a guard classifier trained from the constitution's own principles."""

from __future__ import annotations

from typing import Optional

import typer

from cai.cli.common import backend_config, load_yaml_config, merge_overrides, validate_config

app = typer.Typer(help="A guard classifier from the constitution: generate and judge data, train it, measure it.",
                  no_args_is_help=True)


@app.command("data")
def data(
    constitution: Optional[str] = typer.Option(None, help="Constitution YAML or library name (default: default)."),
    principles_dir: Optional[str] = typer.Option(None, help="Principles folder."),
    model: Optional[str] = typer.Option(None, help="The model that writes requests and responses (default: smollm2-135m-instruct)."),
    feedback_model: Optional[str] = typer.Option(None, help="The judge that labels every row (default: the model)."),
    backend: str = typer.Option("auto", help="auto, vllm, transformers or openai."),
    backend_option: list[str] = typer.Option([], "--backend-option", "-O", help="key=value backend option (repeatable)."),
    per_principle: Optional[int] = typer.Option(None, help="Harmful requests per principle (and as many benign look-alikes)."),
    max_principles: Optional[int] = typer.Option(None, help="Only the first K principles."),
    test_size: Optional[float] = typer.Option(None, help="Share of the principles held out as the test split."),
    out: Optional[str] = typer.Option(None, help="Output folder."),
    min_label_mass: Optional[float] = typer.Option(None, help="Judge: judgements with less probability on their answer labels fail."),
    judge_health: Optional[str] = typer.Option(None, help="An unhealthy judge: warn (default) or error."),
    label_by: Optional[str] = typer.Option(None, help="judge (default): the judge's verdict; intended: what each row was written to be, the judge's agreement beside it."),
    config: Optional[str] = typer.Option(None, "--config", help="YAML config; flags override it."),
) -> None:
    """Generate guard data from a constitution: harmful requests, benign look-alikes, responses; judged, split by principle."""
    from cai.guard import GuardDataConfig, run_guard_data

    values = load_yaml_config(config)
    merge_overrides(values, {"constitution": constitution, "principles_dir": principles_dir, "out": out,
                             "per_principle": per_principle, "max_principles": max_principles, "test_size": test_size,
                             "min_label_mass": min_label_mass, "judge_health": judge_health, "label_by": label_by})
    values["model"] = backend_config(values.get("model"), backend, model, backend_option, required=True)
    if feedback_model or values.get("feedback"):
        values["feedback"] = backend_config(values.get("feedback"), backend, feedback_model, backend_option)
    run_guard_data(validate_config(GuardDataConfig, values, config))


@app.command("train")
def train(
    data_: Optional[str] = typer.Option(None, "--data", help="A 'cai guard data' folder (or a JSONL of text, role, label rows)."),
    model: Optional[str] = typer.Option(None, help="Base model folder for sequence classification."),
    out: Optional[str] = typer.Option(None, help="Output folder (a Hugging Face model folder)."),
    max_steps: Optional[int] = typer.Option(None, help="Optimizer steps."),
    batch_size: Optional[int] = typer.Option(None, help="Rows per step."),
    learning_rate: Optional[float] = typer.Option(None, help="AdamW learning rate."),
    target_fpr: Optional[float] = typer.Option(None, help="Threshold: flag at most this share of benign training rows."),
    config: Optional[str] = typer.Option(None, "--config", help="YAML config; flags override it."),
) -> None:
    """Train the guard: a sequence classifier with a role marker for inputs and outputs."""
    from cai.guard import GuardTrainConfig, train_guard

    values = load_yaml_config(config)
    merge_overrides(values, {"data": data_, "model": model, "out": out, "max_steps": max_steps,
                             "batch_size": batch_size, "learning_rate": learning_rate, "target_fpr": target_fpr})
    train_guard(validate_config(GuardTrainConfig, values, config))


@app.command("eval")
def evaluate(
    model: Optional[str] = typer.Option(None, help="A 'cai guard train' folder."),
    data_: Optional[str] = typer.Option(None, "--data", help="Guard data folder (its test split) or JSONL."),
    redteam: list[str] = typer.Option([], "--redteam", help="Suite whose prompts should be caught (repeatable): a 'cai redteam' suite.yaml, harmful."),
    benign: list[str] = typer.Option([], "--benign", help="Suite whose prompts should pass (repeatable), e.g. over-refusal."),
    target_fpr: Optional[float] = typer.Option(None, help="Recalibrate the threshold to this false-positive rate on the data's benign rows."),
    out: Optional[str] = typer.Option(None, help="Output folder."),
    config: Optional[str] = typer.Option(None, "--config", help="YAML config; flags override it."),
) -> None:
    """Measure the guard: catch rate and false-positive rate, with n and intervals."""
    from cai.guard import GuardEvalConfig, run_guard_eval

    values = load_yaml_config(config)
    merge_overrides(values, {"model": model, "data": data_, "redteam": list(redteam) or None,
                             "benign": list(benign) or None, "target_fpr": target_fpr, "out": out})
    run_guard_eval(validate_config(GuardEvalConfig, values, config))
