"""Configuration of `cai sample`, `cai label` and `cai eval agreement`: one pydantic model each,
behind the Python API, YAML ``--config`` files and the CLI flags."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from cai.backends import BackendConfig, SamplingConfig
from cai.backends.base import over_field_default as _over_defaults
from cai.core.errors import CaiError
from cai.data.prompt_source import PromptFormat, PromptSource  # noqa: F401  (PromptFormat: re-exported)
from cai.judge.health import HealthPolicy

Pairing = Literal["all", "adjacent", "random"]


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)




class SampleConfig(PromptSource, _Config):
    """`cai sample`: K responses per prompt, then unlabeled pairs among them."""

    out: str
    """Output folder: samples.jsonl (resumable), pairs.jsonl, summary.json."""
    policy: BackendConfig
    """The model that samples the responses."""
    n: int = Field(4, ge=2)
    """Responses per prompt (K), sampled in one request."""
    sampling: SamplingConfig = Field(
        default_factory=lambda: SamplingConfig(temperature=1.0, max_tokens=256, seed=0))
    """Sampling of the responses (its n is replaced by ``n``)."""
    pairing: Pairing = "all"
    """Which pairs to form among a prompt's distinct responses: every pair (K choose 2, as in
    InstructGPT), neighbours in sample order (K-1 pairs), or ``max_pairs`` random pairs."""
    max_pairs: int | None = Field(None, ge=1)
    """At most this many pairs per prompt (a seeded random subset); required by ``random``."""
    drop_truncated: bool = False
    """Leave out responses cut off by max_tokens."""
    chunk_size: int = Field(64, ge=1)
    """Prompts per backend call (at most)."""
    flush_seconds: float | None = Field(120.0, gt=0)
    """Write results at least about this often (seconds): chunks shrink below ``chunk_size`` on a
    slow machine so a crash loses at most this much work. None: fixed chunks."""
    limit: int | None = Field(None, ge=1)
    """Only the first N prompts."""

    @field_validator("sampling", mode="before")
    @classmethod
    def _sampling(cls, value, info):
        return _over_defaults(value, info, cls)

    @model_validator(mode="after")
    def _random_needs_count(self) -> SampleConfig:
        if self.pairing == "random" and self.max_pairs is None:
            raise ValueError("pairing 'random' needs max_pairs (pairs per prompt)")
        if self.sampling.temperature == 0:  # CaiError: reaches the user as is, naming the flags
            raise CaiError(f"--temperature 0 (greedy decoding) gives the same response --n {self.n} times, so no "
                           "pairs: set --temperature (sampling.temperature) above 0, e.g. 0.7")
        return self


class CotConfig(_Config):
    """Chain-of-thought before the answer: generate a short reasoning, then score the options
    after it. CoT probabilities are extreme, so they are clamped into a band (CAI paper: 40-60%)."""

    enabled: bool = False
    """Reason before answering."""
    prompt: str = "Let's think step by step:"
    """Start of the feedback model's turn; the reasoning continues it."""
    sampling: SamplingConfig = Field(
        default_factory=lambda: SamplingConfig(temperature=0.7, max_tokens=128, seed=0,
                                               stop=["The answer is"]))
    """Sampling of the reasoning (n is always 1)."""
    clamp: tuple[float, float] = (0.4, 0.6)
    """Each principle's probability is clamped into [low, high]."""

    @field_validator("sampling", mode="before")
    @classmethod
    def _sampling(cls, value, info):
        return _over_defaults(value, info, cls)

    @model_validator(mode="after")
    def _band(self) -> CotConfig:
        low, high = self.clamp
        if not 0.0 <= low <= 0.5 <= high <= 1.0:
            raise ValueError("clamp must be [low, high] with 0 <= low <= 0.5 <= high <= 1")
        return self


class LabelOptions(_Config):
    """How pairs are compared (shared by `cai label` and `cai eval agreement`)."""

    principles_dir: str | None = None
    """Principles folder (default: beside the constitution folder)."""
    principles_per_pair: int | Literal["all"] | None = None
    """Principles each pair is compared under (averaged): a number, ``all``, or None for the
    constitution's own sampling (strategy and per_round). Picks are seeded by the pair id."""
    both_orders: bool = True
    """Score each comparison with the responses in both positions and average (position bias)."""
    few_shot: int = Field(2, ge=0)
    """Worked comparisons put before each question, from the principle's examples (violating
    response vs its revision), then the constitution's critique/revision exemplars (the critiqued
    answer vs its revision, after the conversation it answered; other shapes are skipped)."""
    cot: CotConfig = Field(default_factory=CotConfig)
    """Optional chain-of-thought."""
    seed: int = 0
    """Seed for the shown order when only one order is scored."""
    chunk_size: int = Field(64, ge=1)
    """Pairs per backend call, at most (every order and principle of a chunk goes in one call)."""
    flush_seconds: float | None = Field(120.0, gt=0)
    """Write results at least about this often (seconds): chunks shrink below ``chunk_size`` on a
    slow machine so a crash loses at most this much work. None: fixed chunks."""
    min_label_mass: float | None = Field(None, ge=0.0, le=1.0)
    """A judgement whose probability on the answer labels (before normalizing) is below this fails:
    its pair is counted by id/line and not labeled (None: 0.1, or ``CAI_MIN_LABEL_MASS``)."""
    judge_health: Literal["warn", "error"] = "warn"
    """An unhealthy judge (many failed judgements, answers that follow the shown order): ``warn``
    says so in the summary, ``error`` stops the run with a one-line error."""

    def health_policy(self) -> HealthPolicy:
        """The judge-health policy of these options (:class:`cai.judge.health.HealthPolicy`)."""
        return HealthPolicy.from_options(self.min_label_mass, self.judge_health)


class LabelConfig(LabelOptions):
    """`cai label`: AI preference labels for pairs of responses."""

    pairs: str
    """Pairs to label: `cai sample` output, any preference dataset, or an SL-CAI run folder."""
    constitution: str
    """Constitution YAML file (or a name under constitution/)."""
    out: str
    """Output folder: labels.jsonl (resumable), data.jsonl/data.parquet/hf, summary.json."""
    labeler: BackendConfig
    """The feedback model."""
    limit: int | None = Field(None, ge=1)
    """Only the first N pairs."""
    skip_invalid: bool = False
    """Skip malformed input rows instead of stopping."""


class AgreementConfig(LabelOptions):
    """`cai eval agreement`: AI labels against human labels on the same pairs."""

    file: str
    """Human pairwise labels (any format read_pairs reads) or a multiple-choice file
    (rows with prompt, corrects, incorrects)."""
    labels: str | None = None
    """Use these `cai label` outputs (joined on pair id) instead of running the model."""
    constitution: str | None = None
    """Constitution (needed to label pairs with the model)."""
    labeler: BackendConfig | None = None
    """The feedback model (not needed with ``labels``)."""
    limit: int | None = Field(None, ge=1)
    """Only the first N rows."""
    bins: int = Field(10, ge=1)
    """Confidence bins of the expected calibration error."""
    out: str | None = None
    """Write the report as JSON here."""
