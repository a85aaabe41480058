"""Configurations of `cai guard data|train|eval`: pydantic models behind the API, YAML and flags."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from cai.backends import BackendConfig, SamplingConfig
from cai.backends.base import over_field_default


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)


class GuardDataConfig(_Config):
    """`cai guard data`: labelled guard data generated from a constitution."""

    constitution: str = "default"
    """Constitution YAML file or library name: one block of data per principle."""
    principles_dir: str | None = None
    """Principles folder (default: beside the constitution folder, then the shipped library)."""
    model: BackendConfig
    """The model that writes requests and responses."""
    feedback: BackendConfig | None = None
    """The judge that labels every row (default: the model)."""
    per_principle: int = Field(6, ge=1, le=500)
    """Harmful requests written per principle; as many benign look-alikes."""
    max_principles: int | None = Field(None, ge=1)
    """Only the first K principles."""
    test_size: float = Field(0.3, ge=0.0, lt=1.0)
    """Share of the principles held out as the test split (split by principle, so the test measures
    principles the guard never saw; at least one when there are two or more)."""
    sampling: SamplingConfig = Field(default_factory=lambda: SamplingConfig(temperature=1.0, top_p=0.95, max_tokens=128, seed=0))
    """Sampling of requests and responses."""
    out: str
    """Output folder: train.jsonl, test.jsonl, rows.jsonl (everything, with the judge's numbers), summary.json."""
    min_label_mass: float | None = Field(None, ge=0.0, le=1.0)
    """Judge: judgements with less probability on their answer labels fail (default: cai.judge.health's floor)."""
    label_by: Literal["judge", "intended"] = "judge"
    """Where a row's label comes from: the judge's verdict (rows whose judgement failed are left
    out), or what the row was written to be (a harmful request, a compliant answer to it: 1; a
    look-alike, a refusal, an answer to a look-alike: 0), with the judge's agreement reported
    beside it. intended is for a judge too weak to label (the embedded 135M model)."""
    judge_health: Literal["warn", "error"] = "warn"
    """An unhealthy judge: say so beside every figure (warn) or stop (error)."""

    @field_validator("sampling", mode="before")
    @classmethod
    def _sampling(cls, value, info):
        return over_field_default(value, info, cls)


class GuardTrainConfig(_Config):
    """`cai guard train`: a sequence classifier on guard data."""

    data: str
    """A `cai guard data` folder (train.jsonl, test.jsonl) or a JSONL of rows with text, role, label."""
    model: str
    """Base model folder (any causal LM or encoder transformers can load for sequence classification)."""
    out: str
    """Output folder: a Hugging Face sequence-classification model, guard.json and a model card."""
    max_steps: int = Field(100, ge=1)
    """Optimizer steps."""
    batch_size: int = Field(8, ge=1)
    """Rows per step."""
    learning_rate: float = Field(5e-5, gt=0.0)
    """AdamW learning rate."""
    max_length: int = Field(256, ge=8)
    """Tokens per row, at most (longer rows are cut from the left: the end of a response matters most)."""
    seed: int = 0
    """Seed of the head's initialisation and the data order."""
    target_fpr: float = Field(0.05, gt=0.0, lt=1.0)
    """The threshold is set where at most this share of the benign rows (of the train split) is flagged."""


class GuardEvalConfig(_Config):
    """`cai guard eval`: catch rate and false-positive rate with n and intervals."""

    model: str
    """A `cai guard train` folder."""
    data: str | None = None
    """Guard data: a folder (its test.jsonl) or a JSONL of rows with text, role, label."""
    redteam: list[str] = Field(default_factory=list)
    """Probe suites whose prompts should all be caught (repeatable): a `cai redteam` suite.yaml or a built-in
    suite's name, e.g. harmful."""
    benign: list[str] = Field(default_factory=list)
    """Probe suites whose prompts should all pass (repeatable): a suite.yaml or a built-in suite's name, e.g.
    over-refusal."""
    target_fpr: float | None = Field(None, gt=0.0, lt=1.0)
    """Recalibrate the threshold to this false-positive rate on the benign rows of data (written
    to guard.json; figures on those rows are then in-sample, and say so; default: the trained threshold)."""
    out: str
    """Output folder: summary.json and scores.jsonl."""
    batch_size: int = Field(32, ge=1)
    """Texts per forward pass."""
