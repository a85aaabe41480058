"""What every online policy run shares: the fields of `cai train ppo` and `cai train grpo|rloo` that
have one name, one meaning and one default in both (issue 27 item 4).

A policy run reads prompts (:class:`~cai.data.prompt_source.PromptSource`), samples responses from
the policy, scores them and updates the policy, with a frozen copy as the reference. The fields below
are declared once here, so the YAML key, the flag (generated from the field: :mod:`cai.cli.fields`)
and the Python argument are the same in both trainers.

Fields that look alike but differ stay in each config: ``learning_rate`` (PPO 1e-5, GRPO/RLOO 1e-6),
``batch_size`` (PPO: prompts per rollout; GRPO/RLOO: completions, a multiple of the group), ``dtype``
(PPO: the frozen models' weights, float32; GRPO/RLOO: the policy's, TRL's default) and
``reward_model`` (PPO: a folder; GRPO/RLOO: a block). ``save_every``/``save_steps`` and
``max_new_tokens``/``max_completion_length`` mean the same but keep their names (recipes use them).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from cai.data.prompt_source import PromptSource


class MonitorConfig(BaseModel):
    """Reward-hacking monitor: warnings when the reward may be rising for the wrong reasons."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    enabled: bool = True
    """Run the reward-hacking monitor each step (its warnings are logged and stored in metrics.jsonl)."""
    window: int = Field(5, ge=2)
    """Steps averaged for the baseline (first steps) and the current value (latest steps)."""
    length_growth: float = Field(1.5, gt=1.0)
    """Warn when the reward rose while the mean response length grew by this factor over the baseline ..."""
    length_reward_corr: float = Field(0.8, ge=-1.0, le=1.0)
    """... and reward and length moved together (Pearson correlation over the steps so far at least this)."""
    ngram: int = Field(3, ge=1)
    """n of the distinct-n / repeated n-gram statistic."""
    min_distinct: float = Field(0.5, ge=0.0, le=1.0)
    """Warn when the mean share of distinct n-grams within a response falls below this."""
    min_unique_responses: float = Field(0.25, ge=0.0, le=1.0)
    """Warn when the share of distinct responses in a batch falls below this (mode collapse)."""
    negative_kl_z: float = Field(3.0, gt=0.0)
    """Warn when the running k1 KL estimate (last ``window`` steps) is below zero by more than this
    many standard errors: the samples do not come from the policy (e.g. top_k/top_p sampling)."""


class PolicyRun(PromptSource):
    """The fields `cai train ppo` and `cai train grpo|rloo` share: the policy, the output folder, how
    long, the seed, the sampling temperature, the reward-hacking monitor and the progress display."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    model: str
    """Policy to train: a local folder, hub id, .gguf file or known name (cai models list); the frozen
    reference is a copy of it."""
    out: str
    """Output folder: metrics.jsonl, checkpoints, the final policy/ and summary.json (rerun the same
    command to resume from the newest checkpoint)."""
    max_steps: int = Field(100, ge=1)
    """Training steps: each samples one batch of responses from the policy, scores them and updates
    the policy on them (PPO: ``ppo_epochs`` passes over its minibatches)."""
    seed: int = 0
    """Seed of prompt order and sampling (and of PPO's minibatch order and value head, GRPO/RLOO's
    principle picks)."""
    temperature: float = Field(1.0, gt=0.0)
    """Sampling temperature of the policy; log-probabilities of policy and reference are taken at
    the same temperature."""
    monitor: MonitorConfig = Field(default_factory=MonitorConfig)
    """Reward-hacking monitor (warnings in the log and metrics.jsonl)."""
    quiet: bool = False
    """No live progress display or per-step lines (metrics.jsonl is still written)."""
