"""The record: one per prompt, carrying its whole SL-CAI history and provenance."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Status = Literal["ok", "failed"]


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Literal["system", "user", "assistant"]
    content: str


class Step(BaseModel):
    """One critique/revision round under one principle."""

    round: int = Field(description="0-based round index.")
    principle: str = Field(description="principle id@version")
    critique_prompt: str = Field(description="The rendered critique request sent to the critic.")
    critique: str | None = None
    critique_raw: str | None = Field(default=None, description="The critic's raw output, when it held reasoning "
                                     "blocks (<think>…</think>) that the critique leaves out.")
    verdict: Literal["revise", "ok"] | None = Field(default=None, description="The critique's structured verdict, if asked.")
    revision_prompt: str | None = None
    revision: str | None = Field(default=None, description="The parsed revision (None when skipped or failed).")
    revision_raw: str | None = Field(default=None, description="The model's raw revision output.")
    skipped: bool = Field(default=False, description="Revision skipped: the critique found nothing to fix.")
    p_better: float | None = Field(default=None, description=(
        "verify: P(this revision ≻ the response it revised) under the step's principle, asked of the "
        "feedback model in both orders and averaged (cai.judge, as `cai label` asks)."))
    position_consistent: bool | None = Field(default=None, description="verify: both orders preferred the same one.")


class Verification(BaseModel):
    """`cai generate --verify`: is the final revision better than the draft, says the judge?"""

    p_chosen: float | None = Field(default=None, description=(
        "P(final ≻ draft) under the principles of the revising steps (both orders, averaged over "
        "orders then principles); None when the judge's backend rejected the comparison."))
    principles: list[str] = Field(default_factory=list, description="principle id@version of each question asked.")
    position_consistent: bool | None = None
    min_p: float | None = Field(default=None, description="Below this the pair stays out of the preference export.")
    drop_sft: bool = Field(default=False, description="Below min_p the SFT row stays out too.")
    judge: dict[str, Any] = Field(default_factory=dict, description="The judge's provenance (cai.judge).")
    detail: str = ""
    follows: dict[str, float] = Field(default_factory=dict, description=(
        "P(the final revision follows the principle), asked pointwise (YES/NO) per principle it was "
        "revised for (id@version -> P(Yes))."))

    @property
    def better(self) -> bool:
        """The judge prefers the revision (P > 0.5)."""
        return self.p_chosen is not None and self.p_chosen > 0.5

    @property
    def kept(self) -> bool:
        """The revision ≻ draft pair goes into the preference export."""
        return self.p_chosen is not None and (self.min_p is None or self.p_chosen >= self.min_p)


class Check(BaseModel):
    """A check on a record's revision that it did not pass (`cai generate`): why the record is not
    ``ok``. Checks: ``repeated-paragraph``, ``critique-not-revision``, ``echoed-critique``,
    ``repetitive`` (the revision's text); with ``--verify``, ``not-better-than-draft`` and
    ``still-breaks-principle`` (the judge; a judgement that failed the judge-health floor or could
    not be made fails its check too, never passes it)."""

    name: str = Field(description="The check, e.g. repeated-paragraph, not-better-than-draft.")
    why: str = Field(default="", description="What was found (the repeated paragraph, the judge's P).")
    principle: str | None = Field(default=None, description="principle id@version the check was about, if one.")


class Failure(BaseModel):
    kind: str = Field(description="What went wrong, e.g. empty-revision, truncated, prompt-too-long.")
    stage: str = Field(description="draft, critique or revision.")
    detail: str = ""
    raw: str | None = Field(default=None, description="The unusable model output, kept verbatim.")


class Provenance(BaseModel):
    constitution: str = Field(description="name@version")
    constitution_hash: str
    policy_model: str
    critic_model: str
    backend: str
    sampling: dict[str, Any]
    backend_info: dict[str, Any] = Field(default_factory=dict, description="The policy backend's describe(): "
                                         "device, dtype, sampling held neutral, generation_config fields ignored.")
    seed: int
    cai_version: str
    created_at: str = Field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))


class Record(BaseModel):
    """One prompt's trip through draft → critique → revision (× rounds)."""

    id: str
    prompt: list[ChatMessage]
    source: str | None = Field(default=None, description="Where the prompt came from: file:line.")
    draft: str | None = None
    draft_raw: str | None = Field(default=None, description="The policy's raw draft, when it held reasoning "
                                  "blocks (<think>…</think>) that the draft leaves out.")
    steps: list[Step] = Field(default_factory=list)
    final: str | None = Field(default=None, description="The last usable revision (the draft if none was needed).")
    status: Status = "ok"
    failure: Failure | None = None
    tokens: dict[str, int] = Field(default_factory=dict, description="Prompt/completion tokens by stage.")
    flags: list[str] = Field(default_factory=list, description="Notes such as 'critique-prompt-truncated'.")
    provenance: Provenance | None = None
    verification: Verification | None = Field(default=None, description="verify: the judge on final vs draft.")
    checks: list[Check] = Field(default_factory=list, description=(
        "The checks the revision did not pass, each with why (empty when status is ok, except the "
        "judge's checks under keep_unverified, which then only flag)."))

    @property
    def principles(self) -> list[str]:
        return [s.principle for s in self.steps]

    def fail(self, kind: str, stage: str, detail: str = "", raw: str | None = None) -> None:
        self.status = "failed"
        self.failure = Failure(kind=kind, stage=stage, detail=detail, raw=raw)

    def add_tokens(self, stage: str, prompt: int, completion: int) -> None:
        self.tokens[f"{stage}_prompt"] = self.tokens.get(f"{stage}_prompt", 0) + prompt
        self.tokens[f"{stage}_completion"] = self.tokens.get(f"{stage}_completion", 0) + completion


def prompt_id(messages: list[dict], occurrence: int = 0) -> str:
    """A stable id from the prompt's content (and its occurrence, for repeated prompts)."""
    blob = json.dumps([[m["role"], m["content"]] for m in messages], ensure_ascii=False)
    digest = hashlib.sha256(blob.encode()).hexdigest()[:16]
    return digest if occurrence == 0 else f"{digest}-{occurrence}"
