"""Configuration of `cai train ppo`: one pydantic model behind the Python API, YAML recipes and CLI flags.

Unknown keys are rejected (by name), so a typo in a recipe fails before any model is loaded.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from cai.train.policy import MonitorConfig, PolicyRun

__all__ = ["KLConfig", "MonitorConfig", "PPOConfig"]  # MonitorConfig lives in cai.train.policy (shared)


class KLConfig(BaseModel):
    """The KL penalty to the reference model and how its coefficient β is controlled."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    estimator: Literal["k1", "k3"] = "k1"
    """Per-token estimator of KL(policy‖reference) from sampled tokens: ``k1`` = log π − log π_ref
    (unbiased, can be negative), ``k3`` = (r − 1) − log r with r = π_ref/π (unbiased, never negative)."""
    controller: Literal["adaptive", "fixed"] = "adaptive"
    """``adaptive``: proportional control of β towards ``target`` (Ziegler et al. 2019); ``fixed``: β stays at ``beta``."""
    beta: float = Field(0.05, ge=0.0)
    """Initial (adaptive) or constant (fixed) KL coefficient. ``controller: fixed`` with ``beta: 0`` disables the penalty."""
    target: float = Field(6.0, gt=0.0)
    """Adaptive controller: target KL per response, in nats (summed over response tokens)."""
    horizon: int = Field(10000, ge=1)
    """Adaptive controller: number of samples over which β may change by a factor of about e^0.2."""
    warn_factor: float = Field(3.0, gt=1.0)
    """Monitor: warn when the KL passes ``warn_factor × target`` (adaptive) or ``max_kl`` (any controller)."""
    max_kl: float | None = Field(None, gt=0.0)
    """Monitor: an absolute KL bound in nats per response (default: ``warn_factor × target`` when adaptive, none when fixed)."""


class PPOConfig(PolicyRun):
    """Everything `cai train ppo` needs. Batch sizes are per process; the global batch is ×processes.

    The prompt input, ``model``, ``out``, ``max_steps``, ``seed``, ``temperature``, ``monitor`` and
    ``quiet`` are :class:`~cai.train.policy.PolicyRun`'s (shared with `cai train grpo|rloo`)."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    # --- inputs and outputs (model, out: PolicyRun)
    reward_model: str
    """Reward model: a sequence-classification model folder with ``num_labels=1`` and its tokenizer."""

    # --- schedule
    save_every: int = Field(50, ge=1)
    """Write a checkpoint every this many steps (and always after the last one)."""
    keep_checkpoints: int = Field(2, ge=1)
    """How many of the latest checkpoints to keep."""

    # --- rollout
    batch_size: int = Field(16, ge=1)
    """Prompts per rollout per process (one response each)."""
    max_prompt_length: int = Field(512, ge=1)
    """Prompts longer than this many tokens are cut from the left."""
    max_new_tokens: int = Field(64, ge=1)
    """Most tokens per response."""
    top_k: int = Field(0, ge=0)
    """Top-k sampling (0: off). Anything but 0/1.0 makes the sampler differ from the policy PPO optimizes
    (warned at start; the monitor warns when the KL estimate then goes negative)."""
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    """Nucleus sampling (1.0: off); see ``top_k``."""

    def sampling_warnings(self) -> list[str]:
        """Why the rollout sampler is not the policy being optimised, if it is not (one line each)."""
        cut = [f"top_k={self.top_k}"] if self.top_k != 0 else []
        cut += [f"top_p={self.top_p}"] if self.top_p < 1.0 else []
        if not cut:
            return []
        return [f"{' and '.join(cut)}: responses are sampled from a truncated distribution, not from the policy "
                "PPO optimises; the KL penalty and policy gradient are biased and KL estimates can go negative "
                "(set top_k: 0 and top_p: 1.0 for on-policy sampling)"]
    missing_eos_penalty: float | None = None
    """Subtracted from the reward-model score of responses that hit ``max_new_tokens`` without EOS."""
    reward_max_length: int = Field(4096, ge=2)
    """Token limit of the reward model's input (prompt + response, capped by its tokenizer's
    ``model_max_length``); longer inputs lose the start of the prompt, never the response, and are
    counted (``response/reward_input_cut``)."""
    rollout_batch_size: int | None = Field(None, ge=1)
    """Sequences per forward pass when scoring rollouts (default: ``batch_size``)."""

    # --- reward shaping
    score_scale: float = Field(1.0, gt=0.0)
    """Multiply reward-model scores by this."""
    score_clip: float | None = Field(None, gt=0.0)
    """Clip (scaled) scores to ±this."""
    whiten_rewards: bool = False
    """Whiten per-token rewards (scale only, mean kept) over the batch before GAE."""
    kl: KLConfig = Field(default_factory=KLConfig)
    """KL penalty and controller."""

    # --- optimisation
    ppo_epochs: int = Field(4, ge=1)
    """Passes over each rollout batch."""
    mini_batch_size: int = Field(8, ge=1)
    """Sequences per optimizer step (per process)."""
    gradient_accumulation_steps: int = Field(1, ge=1)
    """Micro-batches per minibatch (each minibatch is split in this many parts)."""
    learning_rate: float = Field(1e-5, gt=0.0)
    """AdamW learning rate (constant)."""
    weight_decay: float = Field(0.0, ge=0.0)
    """AdamW weight decay."""
    adam_eps: float = Field(1e-8, gt=0.0)
    """AdamW epsilon."""
    max_grad_norm: float | None = Field(1.0, gt=0.0)
    """Clip the global gradient norm to this (None: no clipping)."""
    gamma: float = Field(1.0, ge=0.0, le=1.0)
    """Discount factor of GAE."""
    lam: float = Field(0.95, ge=0.0, le=1.0)
    """λ of GAE."""
    cliprange: float = Field(0.2, gt=0.0)
    """ε of the clipped policy objective."""
    cliprange_value: float = Field(0.2, gt=0.0)
    """Clip range of the value-function update around the rollout values."""
    vf_coef: float = Field(0.1, ge=0.0)
    """Weight of the value loss."""
    entropy_coef: float = Field(0.0, ge=0.0)
    """Weight of the entropy bonus (0: entropy is only reported)."""
    whiten_advantages: bool = True
    """Whiten advantages over the batch (masked) before the updates."""
    value_head_init_std: float = Field(0.0, ge=0.0)
    """Std of the value head's weight at initialisation (0: zeros, so initial values are 0)."""

    # --- devices
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    """Weights dtype of the frozen reference and reward models (the policy trains in float32)."""
    mixed_precision: Literal["no", "bf16", "fp16"] = "no"
    """Autocast of the policy's forward passes (through accelerate)."""
    cpu: bool = False
    """Force the CPU even when a GPU is present."""

    @model_validator(mode="after")
    def _check_batches(self) -> PPOConfig:
        if self.batch_size % self.mini_batch_size:
            raise ValueError(f"batch_size ({self.batch_size}) must be a multiple of mini_batch_size ({self.mini_batch_size})")
        if self.mini_batch_size % self.gradient_accumulation_steps:
            raise ValueError(f"mini_batch_size ({self.mini_batch_size}) must be a multiple of "
                             f"gradient_accumulation_steps ({self.gradient_accumulation_steps})")
        return self

    def identity(self) -> dict:
        """Fields that must not change when a run resumes from its checkpoints."""
        keys = ("model", "reward_model", "prompts", "seed", "batch_size", "max_new_tokens", "mini_batch_size",
                "ppo_epochs", "learning_rate")
        return {k: getattr(self, k) for k in keys} | {"kl": self.kl.model_dump(mode="json")}
