"""Configs of the evaluation commands (one pydantic model per command: the Python API, a
``--config`` YAML and the CLI flags share it)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from cai.backends import BackendConfig, SamplingConfig
from cai.backends.base import over_field_default


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)


def greedy() -> SamplingConfig:
    return SamplingConfig(temperature=0.0, max_tokens=256, seed=0)


class BehaviorConfig(_Config):
    """`cai eval behavior`: run the probe suites on a model (and a baseline), judge, report."""

    out: str
    """Output folder: summary.json, probes.jsonl, report.html."""
    model: BackendConfig | None = None
    """The model under test (the candidate)."""
    responses: str | None = None
    """Judge these responses instead of generating (JSONL or XSTest completions CSV)."""
    baseline: BackendConfig | None = None
    """A model to compare with (e.g. the policy before the CAI run)."""
    baseline_responses: str | None = None
    """The baseline's responses, instead of generating them."""
    judge: BackendConfig | None = None
    """The judge model; without one only the model-free detector judges."""
    suites: list[str] = Field(default_factory=list)
    """Suite names or files (default: every built-in suite); the flag takes them comma-separated or
    repeated."""
    sampling: SamplingConfig = Field(default_factory=greedy)
    """How responses are sampled (greedy by default, so reruns give the same responses); a partial
    block (``temperature: 0.7``) keeps this default's other fields (max_tokens 256, seed 0)."""
    constitution: str = "default"
    """The constitution that judges the pairwise win rate (a YAML file or a name under constitution/)."""
    principles_dir: str | None = None
    """Principles folder (default: beside the constitution folder)."""
    few_shot: int = Field(0, ge=0)
    """Worked comparisons before each pairwise question."""
    n_boot: int = Field(2000, ge=100)
    """Bootstrap resamples per interval."""
    seed: int = 0
    """Seed of the bootstrap."""
    limit: int | None = Field(None, ge=1)
    """Only the first N probes of each suite."""
    worst: int = Field(3, ge=0)
    """Worst examples shown per suite in the report."""
    guard: str | None = None
    """A `cai guard train` folder: its flags on the harmful and over-refusal suites' responses are
    reported beside the detector's and the judge's."""

    @field_validator("sampling", mode="before")
    @classmethod
    def _sampling(cls, value, info):
        return over_field_default(value, info, cls)

    @model_validator(mode="after")
    def _inputs(self) -> BehaviorConfig:
        if (self.model is None) == (self.responses is None):
            raise ValueError("give the model to test (--model) or its responses (--responses), not both")
        if self.baseline is not None and self.baseline_responses is not None:
            raise ValueError("give --baseline or --baseline-responses, not both")
        return self


class RewardAuditConfig(_Config):
    """`cai eval reward-model`: does a reward model pay for the failure modes?"""

    reward_model: str
    """A sequence-classification reward model folder (e.g. what `cai train reward` wrote)."""
    out: str
    """Output folder: summary.json, pairs.jsonl, report.html."""
    suites: list[str] = Field(default_factory=list)
    """Suites the controlled pairs are built from (default: every built-in suite); the flag takes
    them comma-separated or repeated."""
    batch_size: int = Field(16, ge=1)
    """Conversations per forward pass of the reward model."""
    max_length: int | None = Field(None, ge=8)
    """Tokens per scored conversation (left-truncated)."""
    device: str | None = None
    """Device of the reward model: cpu or cuda (default: cuda when available)."""
    n_boot: int = Field(2000, ge=100)
    """Bootstrap resamples per interval."""
    seed: int = 0
    """Seed of the bootstrap."""
