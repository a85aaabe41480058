"""`cai train ppo`: PPO with a KL penalty to a frozen reference. Parses flags, calls the library."""

from __future__ import annotations

from typing import Optional

import typer

from cai.cli.common import load_yaml_config, merge_overrides, validate_config


def ppo(
    prompts: Optional[str] = typer.Option(None, help="Prompts: JSONL, CSV or an HF dataset folder."),
    model: Optional[str] = typer.Option(None, help="Policy to train (folder, hub id, .gguf file or known name); the reference is a frozen copy."),
    reward_model: Optional[str] = typer.Option(None, help="Reward model folder (sequence classification, num_labels=1)."),
    out: Optional[str] = typer.Option(None, help="Output folder (rerun the same command to resume)."),
    max_steps: Optional[int] = typer.Option(None, help="PPO steps."),
    batch_size: Optional[int] = typer.Option(None, help="Prompts per rollout per process."),
    mini_batch_size: Optional[int] = typer.Option(None, help="Sequences per optimizer step per process."),
    learning_rate: Optional[float] = typer.Option(None, help="AdamW learning rate."),
    max_new_tokens: Optional[int] = typer.Option(None, help="Most tokens per response."),
    kl_controller: Optional[str] = typer.Option(None, help="adaptive or fixed."),
    kl_beta: Optional[float] = typer.Option(None, help="Initial (adaptive) or constant (fixed) KL coefficient."),
    kl_target: Optional[float] = typer.Option(None, help="Target KL per response in nats (adaptive)."),
    kl_estimator: Optional[str] = typer.Option(None, help="k1 or k3."),
    save_every: Optional[int] = typer.Option(None, help="Checkpoint every N steps."),
    seed: Optional[int] = typer.Option(None, help="Seed."),
    prompt_format: Optional[str] = typer.Option(None, help="auto, jsonl, csv, hf or hh."),
    prompt_column: Optional[str] = typer.Option(None, help="Column with the prompt."),
    quiet: Optional[bool] = typer.Option(None, "--quiet/--no-quiet", help="No live progress display."),
    config: Optional[str] = typer.Option(None, "--config", help="YAML recipe; flags override it."),
) -> None:
    """PPO with a KL penalty: train a policy against a reward model, staying close to its reference."""
    from cai.train.ppo import PPOConfig, train_ppo

    data = load_yaml_config(config)
    merge_overrides(data, {
        "prompts": prompts, "model": model, "reward_model": reward_model, "out": out, "max_steps": max_steps,
        "batch_size": batch_size, "mini_batch_size": mini_batch_size, "learning_rate": learning_rate,
        "max_new_tokens": max_new_tokens, "save_every": save_every, "seed": seed, "prompt_format": prompt_format,
        "prompt_column": prompt_column, "quiet": quiet,
    })
    if not isinstance(data.get("kl", {}), dict):
        data["kl"] = {}  # let validation name the field
    merge_overrides(data.setdefault("kl", {}), {"controller": kl_controller, "beta": kl_beta, "target": kl_target,
                                                "estimator": kl_estimator})
    cfg = validate_config(PPOConfig, data, config)
    train_ppo(cfg, show_summary=True)
