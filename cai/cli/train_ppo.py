"""`cai train ppo`: PPO with a KL penalty to a frozen reference. Parses flags, calls the library."""

from __future__ import annotations

from typing import Optional

import typer

from cai.cli.common import load_yaml_config, validate_config
from cai.cli.fields import apply_fields, takes_fields
from cai.train.ppo.config import PPOConfig

PROMPT_FIELDS = ["prompts", "prompt_format", "prompt_column", "id_column", "hh_turns", "system_prompt"]
"""The :class:`cai.data.prompt_source.PromptSource` fields, flags of every policy run."""

POLICY_FIELDS = ["model", "out", "max_steps", "seed", "temperature", "quiet"]
"""The scalar :class:`cai.train.policy.PolicyRun` fields, flags of `cai train ppo|grpo|rloo`."""

MONITOR_FIELDS = ["enabled", "window", "length_growth", "length_reward_corr", "ngram", "min_distinct",
                  "min_unique_responses", "negative_kl_z"]
"""The reward-hacking monitor's fields; their flags carry the block's name first (monitor.window: monitor-window)."""

MONITOR_FLAGS = {"monitor.enabled": "--monitor/--no-monitor"}
"""The monitor's switch; its other fields are spelled with the block's name first (``prefixed``)."""

_PPO_FIELDS = [
    *PROMPT_FIELDS, *POLICY_FIELDS, "reward_model", "save_every", "keep_checkpoints", "batch_size",
    "max_prompt_length", "max_new_tokens", "top_k", "top_p", "missing_eos_penalty", "reward_max_length",
    "rollout_batch_size", "score_scale", "score_clip", "whiten_rewards", "ppo_epochs", "mini_batch_size",
    "gradient_accumulation_steps", "learning_rate", "weight_decay", "adam_eps", "max_grad_norm", "gamma", "lam",
    "cliprange", "cliprange_value", "vf_coef", "entropy_coef", "whiten_advantages", "value_head_init_std", "dtype",
    "mixed_precision", "cpu",
]
_KL_FIELDS = ["estimator", "controller", "beta", "target", "horizon", "warn_factor", "max_kl"]


@takes_fields(PPOConfig, _PPO_FIELDS, nested={"kl": _KL_FIELDS, "monitor": MONITOR_FIELDS},
              flags=MONITOR_FLAGS, prefixed=("kl", "monitor"))
def ppo(
    config: Optional[str] = typer.Option(None, "--config", help="YAML recipe; flags override it."),
    *, fields: dict,
) -> None:
    """PPO with a KL penalty: train a policy against a reward model, staying close to its reference."""
    from cai.train.ppo import train_ppo

    data = load_yaml_config(config)
    for block in ("kl", "monitor"):
        if block in fields and not isinstance(data.get(block, {}), dict):
            data[block] = {}  # let validation name the field
    apply_fields(data, fields)
    cfg = validate_config(PPOConfig, data, config)
    train_ppo(cfg, show_summary=True)
