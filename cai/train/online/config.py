"""Configuration of `cai train grpo` and `cai train rloo`: one pydantic model behind the Python API,
YAML recipes, the ``grpo:``/``rloo:`` blocks of `cai run` and the CLI flags.

Unknown keys are rejected by name, at the top level and in every block, so a typo fails before a
model is loaded. Further fields of TRL's ``GRPOConfig``/``RLOOConfig`` go unchanged under ``trl:``.
"""

from __future__ import annotations

import math
import re
from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator, model_validator

from cai.backends import BackendConfig
from cai.train.config import LoraSettings
from cai.train.policy import PolicyRun

REWARD_SOURCES = ("constitution", "reward-model", "guard", "length", "eos", "repetition")
"""Reward sources a run can combine: the constitution as judge, a trained reward model, a guard
classifier (`cai guard train`), three rule-based guards."""


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)


class RewardSpec(_Config):
    """One reward source and its weight in the sum TRL forms (``reward_weights``)."""

    name: Literal["constitution", "reward-model", "guard", "length", "eos", "repetition"]
    """Which source."""
    weight: float = Field(1.0, ge=0.0, allow_inf_nan=False)
    """Its weight in the summed reward: a finite number, 0 or more (0: computed and logged, not
    optimised; a negative weight would turn a guard's penalty into a bonus)."""
    path: str | None = None
    """``guard`` only (``--reward guard=PATH``, or ``guard_model``): the guard classifier's folder."""


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def parse_reward(text: str) -> RewardSpec:
    """``NAME`` or ``NAME=WEIGHT`` (the ``--reward`` flag) as a :class:`RewardSpec`; ValueError otherwise."""
    name, sep, weight = text.partition("=")
    name = name.strip()
    if name not in REWARD_SOURCES:
        raise ValueError(f"unknown reward '{name}'; expected one of {', '.join(REWARD_SOURCES)} (NAME or NAME=WEIGHT)")
    if name == "guard" and sep and not _is_number(weight):  # --reward guard=PATH: the classifier folder
        return RewardSpec(name="guard", weight=1.0, path=weight.strip())
    try:
        value = float(weight) if sep else 1.0
    except ValueError:
        raise ValueError(f"reward '{text}': the weight must be a number (NAME=WEIGHT)") from None
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"reward '{text}': the weight must be a finite number, 0 or more (NAME=WEIGHT)")
    return RewardSpec(name=name, weight=value)  # type: ignore[arg-type]


class ConstitutionReward(_Config):
    """The constitution as a live judge (Lee et al. 2023, "direct RLAIF"): the feedback model rates
    or compares the policy's completions against principles sampled from the constitution."""

    constitution: str | None = None
    """Constitution YAML file (or a name under constitution/); required when ``constitution`` is a reward."""
    principles_dir: str | None = None
    """Principles folder (default: beside the constitution folder)."""
    feedback: BackendConfig | None = None
    """The feedback model and its backend (default: the embedded model on the transformers backend)."""
    mode: Literal["pointwise", "groupwise"] = "pointwise"
    """``pointwise``: each completion's expected rating over the rating tokens, one forward pass each;
    ``groupwise``: the K completions of a prompt compared pairwise in both orders, then ``group_score``."""
    scale: Literal["ratings-5", "yes-no"] = "ratings-5"
    """Pointwise: a 1..5 rating (mapped to 0..1) or P(Yes) that the completion follows the principle."""
    group_score: Literal["bradley-terry", "win-rate"] = "bradley-terry"
    """Groupwise: a Bradley–Terry strength fit to the soft comparisons (centred log-strengths), or
    each completion's mean probability of beating the others."""
    principles_per_completion: int | Literal["all"] | None = None
    """Principles each judgement averages: a number, ``all``, or None for the constitution's sampling."""
    few_shot: int = Field(2, ge=0)
    """Worked comparisons before each question (as `cai label`)."""
    seed: int = 0
    """Seed of the judge (groupwise comparisons are always asked in both orders and averaged)."""
    retries: int = Field(2, ge=0)
    """A failed judge call is retried this many times, then the step fails with a one-line error."""
    retry_seconds: float = Field(2.0, ge=0.0)
    """Wait before the first retry (doubled each time)."""
    min_label_mass: float | None = Field(None, ge=0.0, le=1.0)
    """Label-mass floor (None: ``CAI_MIN_LABEL_MASS`` or 0.1): a judgement that puts less of the judge's
    next-token probability on the answer labels, or a NaN one, is a failure and stops the step, never
    a reward (:mod:`cai.judge.health`)."""
    judge_health: Literal["warn", "error"] = Field("warn", validation_alias=AliasChoices("judge_health", "on_unhealthy"))
    """A judge whose health turns unhealthy (failures, answers following the shown order): ``warn``
    says so and goes on, ``error`` stops the step (``--judge-health``)."""


class RewardModelReward(_Config):
    """A reward model from `cai train reward` (sequence classification, one output)."""

    path: str | None = None
    """The reward model folder; required when ``reward-model`` is a reward."""
    max_length: int | None = Field(4096, ge=2)
    """Token limit of its input; longer inputs lose the start of the prompt, never the completion."""
    batch_size: int = Field(16, ge=1)
    """Sequences per forward pass."""


class GuardConfig(_Config):
    """The guards people always add, each its own reward source (weights in ``rewards``)."""

    length_ratio: float = Field(1.5, gt=0.0)
    """``length``: −(L/L_ref − ratio) per completion longer than ``ratio`` × the reference length L_ref
    (the mean completion length of the first step, when policy and reference are the same model); 0 else."""
    eos_penalty: float = Field(1.0, ge=0.0)
    """``eos``: −this for a completion that hit the token limit without its end-of-turn token."""
    ngram: int = Field(3, ge=1)
    """``repetition``: n of the distinct-n statistic."""
    min_distinct: float = Field(0.5, ge=0.0, le=1.0)
    """``repetition``: −(min_distinct − distinct-n) for a completion whose share of distinct n-grams is below this."""


class OnlineConfig(PolicyRun, _Config):
    """Everything `cai train grpo|rloo` needs. Batch sizes are per process (as TRL's).

    The prompt input, ``model``, ``out``, ``max_steps``, ``seed``, ``temperature``, ``monitor`` and
    ``quiet`` are :class:`~cai.train.policy.PolicyRun`'s (shared with `cai train ppo`)."""

    algorithm: Literal["grpo", "rloo"] = "grpo"
    """TRL trainer: GRPO (Shao et al. 2024, group-normalised advantages) or RLOO (Ahmadian et al. 2024,
    leave-one-out baseline)."""

    rewards: list[RewardSpec] = Field(default_factory=lambda: [RewardSpec(name="constitution")])
    """Reward sources and weights, summed by TRL (each logged under its own name)."""
    constitution: ConstitutionReward = Field(default_factory=ConstitutionReward)
    """The ``constitution`` reward."""
    reward_model: RewardModelReward = Field(default_factory=RewardModelReward)
    """The ``reward-model`` reward."""
    guards: GuardConfig = Field(default_factory=GuardConfig)
    """The ``length``, ``eos`` and ``repetition`` rewards."""
    guard_model: str | None = None
    """The ``guard`` reward's classifier: a `cai guard train` folder. Its reward is −P(violation) of
    each completion, in [−1, 0] (a completion the guard flags costs up to 1)."""

    num_generations: int = Field(4, ge=2)
    """Completions per prompt (the group GRPO normalises over, RLOO's K)."""
    batch_size: int = Field(8, ge=2)
    """Completions per process per step; a multiple of ``num_generations`` (whole groups per process)."""
    beta: float = Field(0.05, ge=0.0)
    """KL coefficient to the reference (TRL's ``beta``; 0: no reference model is loaded in GRPO)."""
    learning_rate: float = Field(1e-6, gt=0.0)
    """AdamW learning rate."""
    max_completion_length: int = Field(64, ge=1)
    """Most tokens per completion."""
    save_steps: int = Field(50, ge=1)
    """Checkpoint every this many steps (a rerun resumes from the newest)."""
    lora: LoraSettings | None = None
    """Train LoRA adapters (peft) instead of all weights; merged when saving."""
    dtype: Literal["float32", "bfloat16", "float16", "auto"] | None = None
    """Weights dtype of the policy (default: TRL's)."""
    min_judge_rm_corr: float = Field(0.0, ge=-1.0, le=1.0)
    """Monitor, with both ``constitution`` and ``reward-model``: warn when their correlation over the
    last ``monitor.window`` steps' completions falls below this (they disagree about what is better)."""
    min_judge_spread: float = Field(0.01, ge=0.0)
    """Warn (summary and terminal) when the constitution reward's mean within-group standard deviation
    over the run is below this: its K completions score alike, so it gives GRPO/RLOO (almost) nothing
    to learn from and any gain comes from the other sources."""
    trl: dict[str, Any] = Field(default_factory=dict)
    """Further fields of TRL's GRPOConfig/RLOOConfig, passed unchanged; a field cai sets itself
    (``trl_owned``: e.g. ``reward_weights``, ``num_generations``) is refused."""

    @field_validator("rewards", mode="before")
    @classmethod
    def _rewards(cls, value):
        if isinstance(value, str):
            value = [value]
        if isinstance(value, list):
            return [parse_reward(v) if isinstance(v, str) else v for v in value]
        return value

    @model_validator(mode="after")
    def _check(self) -> OnlineConfig:
        if not self.rewards:
            raise ValueError("rewards: at least one reward source is needed")
        names = [r.name for r in self.rewards]
        if len(set(names)) != len(names):
            raise ValueError(f"rewards: a source appears twice ({', '.join(names)})")
        if not any(r.weight for r in self.rewards):
            raise ValueError("rewards: every weight is 0, so the policy has nothing to learn from")
        if self.batch_size % self.num_generations:
            raise ValueError(f"batch_size ({self.batch_size}) must be a multiple of num_generations "
                             f"({self.num_generations}): each process judges whole groups")
        if "constitution" in names and not self.constitution.constitution:
            raise ValueError("constitution.constitution: the constitution reward needs a constitution (--constitution)")
        guard = next((r for r in self.rewards if r.name == "guard"), None)
        if guard is not None and guard.path:
            if self.guard_model and self.guard_model != guard.path:
                raise ValueError(f"guard_model: two guard classifiers given ({self.guard_model} and {guard.path})")
            self.guard_model = guard.path
        if guard is not None and not self.guard_model:
            raise ValueError("guard_model: the guard reward needs a classifier folder: pass --reward guard=PATH "
                             "with a folder that 'cai guard train' wrote")
        if any(r.path for r in self.rewards if r.name != "guard"):
            raise ValueError("rewards: only the guard reward takes a path (guard=PATH)")
        if "reward-model" in names and not self.reward_model.path:
            raise ValueError("reward_model.path: the reward-model reward needs a model (--reward-model)")
        if not re.fullmatch(r"[^\n]+", self.out):
            raise ValueError("out: must be one line")
        return self

    @property
    def reward_names(self) -> list[str]:
        return [r.name for r in self.rewards]

    def trl_owned(self) -> dict[str, str]:
        """TRL GRPOConfig/RLOOConfig fields cai sets, derives or checks (TRL name -> the cai field or
        rule); a ``trl:`` key among them is refused (:func:`cai.train.config.check_trl_keys`)."""
        same = ("max_steps", "num_generations", "beta", "learning_rate", "max_completion_length", "temperature",
                "seed", "save_steps")
        return {k: k for k in same} | {
            "output_dir": "out", "per_device_train_batch_size": "batch_size",
            "reward_weights": "set each weight in `rewards` as NAME=WEIGHT, a finite number >= 0 per source",
            "logging_steps": "metrics.jsonl and the reward-hacking monitor need a log row every step",
            # TRL lets generation_kwargs take precedence over its own sampling fields
            "generation_kwargs.temperature": "temperature", "generation_kwargs.max_new_tokens": "max_completion_length",
            "generation_kwargs.max_length": "max_completion_length",
            "generation_kwargs.num_return_sequences": "num_generations",
        }

    def identity(self) -> dict:
        """Fields that must not change when a run resumes from its checkpoints."""
        keys = ("algorithm", "model", "prompts", "seed", "num_generations", "batch_size", "learning_rate",
                "beta", "max_completion_length")
        # what each reward in use computes: a rerun that judged with another constitution, mode or
        # reward model would mix two rewards in one run's curves
        judge = self.constitution.model_dump(mode="json", exclude={"retries", "retry_seconds", "feedback",
                                                                   "min_label_mass", "judge_health"})
        judge["model"] = self.constitution.feedback.model if self.constitution.feedback else None  # not its URLs
        setup = {"constitution": judge,
                 "reward-model": self.reward_model.model_dump(mode="json", exclude={"batch_size"}),
                 "guard": self.guard_model,
                 "length": self.guards.length_ratio, "eos": self.guards.eos_penalty,
                 "repetition": [self.guards.ngram, self.guards.min_distinct]}
        return {k: getattr(self, k) for k in keys} | {"rewards": [r.model_dump() for r in self.rewards],
                                                      "reward_setup": {n: setup[n] for n in self.reward_names}}
