"""Online RL on TRL's trainers: GRPO (Shao et al. 2024, DeepSeekMath: advantages normalised within
the group of K completions of a prompt) and RLOO (Ahmadian et al. 2024: each completion's baseline
is the mean reward of the other K − 1), with cai's reward functions.

The trainer is TRL's ``GRPOTrainer`` / ``RLOOTrainer``; cai adds the reward functions (the
constitution as a live judge through :mod:`cai.judge`, pointwise or groupwise; a `cai train
reward` model; guards on length, end of turn and repetition), the per-step record and
reward-hacking monitor as a TRL callback, resuming, and provenance. One module per concern:
``config`` (the pydantic recipe), ``rewards`` (reward model and guards), ``judging`` (the
constitution reward), ``judge_link`` (principle picks and the judge), ``callback`` (metrics.jsonl
and the monitor), ``summary`` and ``trainer``.

    cai train grpo --model smollm2-135m-instruct --prompts recipes/prompts.jsonl \\
        --reward constitution --constitution constitution/default.yaml --out runs/grpo
    cai train rloo --config recipes/rloo.yaml --reward constitution --reward reward-model=0.5

    from cai.train.online import OnlineConfig, train_online
    summary = train_online(OnlineConfig(model=..., prompts=..., out=..., constitution={"constitution": ...}))

Several processes: ``accelerate launch`` / ``torchrun`` as for PPO; ``batch_size`` is per process
and a multiple of ``num_generations`` so each process judges whole groups.
"""

from __future__ import annotations

from cai.train.online.config import (
    REWARD_SOURCES, ConstitutionReward, GuardConfig, OnlineConfig, RewardModelReward, RewardSpec, parse_reward,
)

__all__ = ["REWARD_SOURCES", "ConstitutionReward", "GuardConfig", "OnlineConfig", "RewardModelReward",
           "RewardSpec", "parse_reward", "train_online"]


def __getattr__(name: str):
    if name == "train_online":  # torch, transformers and TRL load only when training
        from cai.train.online import trainer

        return trainer.train_online
    raise AttributeError(name)
