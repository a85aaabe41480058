"""Configuration of `cai principles test --pairs` and `cai principles propose`: one pydantic model
each, behind the Python API and the CLI flags."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from cai.backends import BackendConfig, SamplingConfig
from cai.backends.base import over_field_default
from cai.judge.health import HealthPolicy


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)


class VoteOptions(_Config):
    """How principles vote (shared by both commands)."""

    few_shot: int = Field(0, ge=0)
    """Worked comparisons before each question (from the principle's examples; see `cai label`)."""
    pair_first: bool = True
    """Show the pair before the question, so all principles asked about a pair share its text as a
    prompt prefix (False: the constitution's own template, as `cai label` renders it)."""
    chunk_size: int = Field(16, ge=1)
    """Pairs per judge call (every principle and both orders of those pairs go in one call)."""
    n_boot: int = Field(1000, ge=100)
    """Bootstrap resamples for the 95% intervals."""
    seed: int = 0
    """Seed of the bootstrap (and, for propose, of the split and the shown order)."""
    limit: int | None = Field(None, ge=1)
    """Only the first N pairs."""
    skip_invalid: bool = False
    """Skip malformed input rows instead of stopping."""
    min_label_mass: float | None = Field(None, ge=0.0, le=1.0)
    """A vote whose judge put less than this of its probability on the answer labels (before
    normalizing) fails its pair (None: 0.1, or ``CAI_MIN_LABEL_MASS``); see cai.judge.health."""
    judge_health: Literal["warn", "error"] = "warn"
    """An unhealthy judge: ``warn`` (said in the terminal, JSON and HTML) or ``error`` (stop)."""

    def health_policy(self) -> HealthPolicy:
        """The judge-health policy of these options."""
        return HealthPolicy.from_options(self.min_label_mass, self.judge_health)


_PAIRS_ONLY = ("constitution", "worst", "min_strength", *VoteOptions.model_fields)


class PrincipleTestConfig(VoteOptions):
    """`cai principles test`: with ``pairs``, each principle as a voter on pairs people labeled
    (:func:`cai.inverse.run_principle_test`); without, each principle's question asked of its own
    examples (:func:`cai.evals.principle_check.check_principles`, gated by ``min_accuracy``)."""

    pairs: str | None = None
    """Labeled pairs (any format cai reads; ``chosen`` is what people picked). None: test each
    principle on its own ``## Examples`` instead."""
    min_accuracy: float = Field(0.0, ge=0.0, le=1.0)
    """Without pairs: fail (exit 1) when any principle's accuracy on its own examples is below this."""
    judge: BackendConfig
    """The feedback model that votes."""
    constitution: str | None = None
    """Test this constitution's principles (and vote them together as the constitution)."""
    principles: list[str] = Field(default_factory=list)
    """Principle ids or patterns (harm-*) from ``principles_dir`` when no constitution is given
    (default: every principle with a ``## Preference`` question)."""
    principles_dir: str | None = None
    """Principles folder (default: principles/, or beside the constitution folder)."""
    out: str | None = None
    """With pairs: output folder (report.json, report.html, votes.jsonl; resumable); without: the
    results as one JSON file. None: nothing written."""
    worst: int = Field(3, ge=0)
    """Pairs each principle gets most wrong, kept for reading."""
    min_strength: float | None = None
    """With pairs: fail (exit 1) when any principle's strength is below this."""

    @model_validator(mode="after")
    def _one_mode(self) -> PrincipleTestConfig:
        if self.pairs is None:
            given = sorted(f for f in self.model_fields_set & set(_PAIRS_ONLY))
            if given:
                raise ValueError(f"{', '.join(given)}: only with pairs (--pairs); without, each principle is "
                                 "tested on its own examples")
        elif "min_accuracy" in self.model_fields_set:
            raise ValueError("min_accuracy: only without pairs (with pairs, min_strength gates the run)")
        return self


class ProposeConfig(VoteOptions):
    """`cai principles propose`: principles that explain the choices in labeled pairs."""

    pairs: str
    """Labeled pairs (any format cai reads)."""
    out: str
    """Output folder: numbered stage files, principles/, constitution/, report.html (resumable)."""
    proposer: BackendConfig
    """The model that proposes principles."""
    judge: BackendConfig | None = None
    """The model that tests them (default: the proposer)."""
    n: int = Field(5, ge=1)
    """Principles to select, at most."""
    per_pair: int = Field(3, ge=1, le=10)
    """Principles the proposer may write per pair (k)."""
    max_candidates: int = Field(30, ge=1)
    """Clusters of proposals kept as candidates (one representative each)."""
    embedding_model: str | None = None
    """Local model folder whose mean hidden states cluster the proposals (default: TF-IDF)."""
    test_size: float = Field(0.3, ge=0.0, lt=1.0)
    """Share of pairs held out of proposing and selection, for the held-out accuracy (the name
    `cai mix` and `cai train reward` use; ``held_out`` is read too)."""
    sampling: SamplingConfig = Field(default_factory=lambda: SamplingConfig(temperature=0.7, max_tokens=160, seed=0))
    """Sampling of the proposals."""

    @field_validator("sampling", mode="before")
    @classmethod
    def _sampling(cls, value, info):
        return over_field_default(value, info, cls)
    constitution: str | None = None
    """An existing constitution to compare with on the held-out pairs."""
    principles_dir: str | None = None
    """Principles folder of that constitution (default: beside its folder)."""
    name: str = Field("proposed", pattern=r"^[a-z][a-z0-9]*(?:-[a-z0-9]+)*$")
    """Name of the constitution written (OUT/constitution/NAME.yaml)."""

    @model_validator(mode="before")
    @classmethod
    def _old_names(cls, data: Any) -> Any:
        from cai.core.renames import accept_old_names

        return accept_old_names(data, {"held_out": "test_size"})
