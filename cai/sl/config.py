"""Configuration of `cai generate`: one pydantic model behind the Python API, YAML configs and CLI flags."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from cai.backends import BackendConfig, SamplingConfig
from cai.backends.base import over_field_default
from cai.data.prompt_source import PromptSource


class GenerateConfig(PromptSource):
    """`cai generate` (SL-CAI): its prompt input (:class:`PromptSource`), constitution, models and gates."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    constitution: str = Field(description="Constitution YAML file (or a name under constitution/).")
    principles_dir: str | None = Field(default=None, description="Principles folder (default: beside the constitution folder).")
    out: str = Field(description="Output folder.")
    policy: BackendConfig = Field(description="The model that drafts and revises.")
    critic: BackendConfig | None = Field(default=None, description="The model that critiques (default: the policy).")
    sampling: SamplingConfig = Field(default_factory=lambda: SamplingConfig(temperature=0.7, max_tokens=256),
                                     description="Sampling for every stage (n is always 1 here).")
    max_tokens_per_stage: dict[Literal["draft", "critique", "revision"], int] = Field(
        default_factory=dict, description=(
            "Token budget per stage, overriding sampling.max_tokens (e.g. short critiques: {critique: 96})."))
    truncated: Literal["trim", "fail"] = Field(default="trim", description=(
        "A draft or revision that ran out of tokens: cut it after its last complete sentence and flag the "
        "record (trim; a revision with no usable sentence still fails as truncated-revision), or fail it."))
    retries: int = Field(default=0, ge=0, le=5, description=(
        "Resample a revision that echoed the critique, looped, ran out of tokens or was only a preamble "
        "up to this many times (new seed each time) before the record fails; not with greedy decoding."))
    rounds: int | None = Field(default=None, ge=1, le=16, description="Critique/revision rounds (default: the constitution's).")
    skip_ok: bool = Field(default=False, description="Skip the revision when the critique's verdict is 'ok'.")
    chunk_size: int = Field(default=256, ge=1, description="Prompts per stage batch, at most (memory stays flat).")
    flush_seconds: float | None = Field(default=120.0, gt=0, description=(
        "Append finished records at least about this often: chunks shrink below chunk_size on a slow "
        "machine so a crash loses at most this much work (None: fixed chunks)."))
    limit: int | None = Field(default=None, ge=1, description="Only the first N prompts.")
    export: bool = Field(default=True, description="Write the SFT and preference exports at the end.")
    verify: bool = Field(default=False, description=(
        "After each revision the feedback model compares it with the response it revised, with the "
        "principle's preference question in both orders (cai.judge, as `cai label` does): P(revision ≻ "
        "draft) is kept on the record and becomes the exported pair's p_chosen."))
    feedback: BackendConfig | None = Field(default=None, description="The judge for verify (default: the critic).")
    min_p: float | None = Field(default=0.5, ge=0.0, le=1.0, description=(
        "verify: a revision the judge prefers with P below this stays out of the preference export "
        "(flag revision-not-better; the record keeps everything). None: keep every pair."))
    verify_sft: bool = Field(default=False, description=(
        "verify with keep_unverified: a revision below min_p keeps its record ok, and its SFT row stays out too."))
    keep_unverified: bool = Field(default=False, description=(
        "verify: keep a revision that fails a judge check (not better than its draft, still breaking "
        "its principle, or a judgement that failed) as an ok record with the checks as flags, so its "
        "SFT row is exported (its pair still stays out below min_p). Default: such a record fails, "
        "out of the SFT export as well as the preferences."))
    min_follows: float | None = Field(default=0.5, ge=0.0, le=1.0, description=(
        "verify: the judge is asked (YES/NO) whether the final revision follows each principle it was "
        "revised for; P(Yes) below this fails the check still-breaks-principle. None: not asked."))
    min_label_mass: float | None = Field(default=None, ge=0.0, le=1.0, description=(
        "A judgement (verify, pick: applicable) putting less of its probability on the answer labels "
        "fails its check, never passes it (None: 0.1, or CAI_MIN_LABEL_MASS)."))
    judge_health: Literal["warn", "error"] = Field(default="warn", description=(
        "An unhealthy judge (many failed judgements, answers that follow the shown order): warn says so "
        "in the summary, error stops the run after the chunk it was seen in (records written are kept)."))
    pick: Literal["constitution", "applicable"] = Field(default="constitution", description=(
        "Which principles critique a prompt: the constitution's sampling (constitution), or only those "
        "the judge (feedback model, else the critic) finds apply to the prompt, asked YES/NO per "
        "principle, then drawn by the constitution's sampling among them (applicable); a prompt none "
        "applies to is not critiqued (flag no-principle-applies)."))
    min_applies: float = Field(default=0.5, ge=0.0, le=1.0, description=(
        "pick: applicable: a principle applies when the judge's P(Yes) is at least this."))
    verify_few_shot: int = Field(default=2, ge=0, description=(
        "verify: worked comparisons before each question (as `cai label`'s few_shot)."))

    @field_validator("sampling", mode="before")
    @classmethod
    def _sampling(cls, value, info):
        return over_field_default(value, info, cls)

    @model_validator(mode="after")
    def _verify_fields(self) -> GenerateConfig:
        """A verify setting without verify (or a judge setting without a judge) would be silently
        ignored: refuse it by name."""
        if not self.verify:
            only = ("min_p", "verify_sft", "verify_few_shot", "keep_unverified", "min_follows")
            if self.pick != "applicable":
                only += ("feedback", "min_label_mass", "judge_health")
            given = [f for f in only if f in self.model_fields_set]
            if given:
                raise ValueError(f"{given[0]}: only read with verify: true (--verify); without it no revision is judged")
        if self.pick != "applicable" and "min_applies" in self.model_fields_set:
            raise ValueError("min_applies: only read with pick: applicable (--pick applicable)")
        return self
