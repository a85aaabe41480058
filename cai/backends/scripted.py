"""The ``scripted`` backend: pre-scripted outputs for unit tests of rendering and parsing.

No model is loaded. Replies and choice probabilities are taken in order from the script (cycling
when it runs out), or computed by Python functions; every call is recorded in ``calls`` so tests
can assert on exactly what a stage sent. Only the first ``keep_conversations`` conversations are
kept there; later calls are recorded without them (``"rows"``: how many), so a long run on this
backend (benchmarks of the pipeline's own cost) holds flat memory.

    backend = ScriptedBackend.scripted(replies=["Draft.", "Critique: rude.", "Revision."],
                                       choices=[{"A": 0.8, "B": 0.2}])
    [[draft]] = backend.generate(["Hi"])            # draft.text == "Draft."
    backend.calls[0]["conversations"]                # [[{"role": "user", "content": "Hi"}]]

From a config file: ``{backend: scripted, model: scripted, options: {replies: [...]}}``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from cai.backends.base import (
    Backend,
    BackendConfig,
    Batch,
    Completion,
    Conversation,
    Labels,
    SamplingConfig,
    as_conversations,
    option_lists,
)
from cai.backends.choices import ChoiceProbs
from cai.core.errors import CaiError

RESERVED = ("_mass", "_source", "_failure")
"""Keys of a scripted choice row that are not labels (see :attr:`ScriptedOptions.choices`)."""

Respond = Callable[[Conversation, int], str]
"""(conversation, sample index) -> reply text."""
Score = Callable[[Conversation, list[str]], dict[str, Any]]
"""(prompt, labels) -> unnormalized label weights (and the reserved ``_mass``, ``_source``, ``_failure``)."""


class ScriptedOptions(BaseModel):
    """Options of the ``scripted`` backend."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    replies: list[str] = Field(default_factory=list)
    """Reply texts, handed out in order (one per sample), cycling. Empty: echo the last message."""
    choices: list[dict[str, Any]] = Field(default_factory=list)
    """Label weights per scored prompt, in order, cycling; normalized over the asked labels.
    Empty: uniform. Reserved keys set what a real backend reports beside the probabilities
    (:class:`~cai.backends.choices.ChoiceProbs`): ``_mass`` (label mass before normalizing, e.g.
    ``1e-20`` for a judge that is not answering, ``nan``), ``_source`` and ``_failure``."""
    cycle: bool = True
    """Start the script over when it runs out (False: raise)."""
    delay: float = Field(0.0, ge=0.0)
    """Seconds each call sleeps before answering, like a model at work (tests of workers dying
    or servers failing mid-call)."""
    keep_conversations: int = Field(1000, ge=0)
    """Conversations (and scored prompts) kept in ``calls``; later calls keep only their counts."""


class ScriptedBackend(Backend):
    name = "scripted"
    Options = ScriptedOptions

    def __init__(
        self, config: BackendConfig, *, respond: Respond | None = None, score: Score | None = None
    ):
        super().__init__(config)
        self.respond, self.score = respond, score
        self.calls: list[dict[str, Any]] = []
        self._reply_i = self._choice_i = 0
        self._kept = 0  # conversations held in self.calls

    def _record(self, method: str, key: str, rows: list, **extra) -> None:
        """Remember a call; its rows only while under ``keep_conversations`` in all."""
        entry: dict[str, Any] = {"method": method, "rows": len(rows), **extra}
        if self._kept + len(rows) <= self.options.keep_conversations:
            entry[key] = rows
            self._kept += len(rows)
        self.calls.append(entry)

    @classmethod
    def scripted(
        cls,
        replies: Sequence[str] = (),
        choices: Sequence[dict[str, float]] = (),
        *,
        respond: Respond | None = None,
        score: Score | None = None,
        cycle: bool = True,
    ) -> ScriptedBackend:
        """A scripted backend without writing a config."""
        config = BackendConfig(
            backend="scripted",
            model="scripted",
            options={"replies": list(replies), "choices": list(choices), "cycle": cycle},
        )
        return cls(config, respond=respond, score=score)

    def _next(self, script: list, index: int, what: str):
        if index >= len(script) and not self.options.cycle:
            raise CaiError(f"scripted backend: out of scripted {what} after {len(script)}")
        return script[index % len(script)]

    def generate(
        self, conversations: Batch, sampling: SamplingConfig | None = None
    ) -> list[list[Completion]]:
        rows = as_conversations(conversations)
        s = sampling or SamplingConfig()
        self._record("generate", "conversations", rows, sampling=s)
        time.sleep(self.options.delay)
        out = []
        for conv in rows:
            samples = []
            for j in range(s.n):
                if self.respond is not None:
                    text = self.respond(conv, j)
                elif self.options.replies:
                    text = self._next(self.options.replies, self._reply_i, "replies")
                    self._reply_i += 1
                else:
                    text = conv[-1]["content"]
                samples.append(_complete(text, conv, s))
            out.append(samples)
        return out

    def score_choices(self, prompts: Batch, options: Labels) -> list[dict[str, float]]:
        rows = as_conversations(prompts)
        if not rows:
            self.calls.append({"method": "score_choices", "prompts": [], "options": []})
            return []
        lists = option_lists(options, len(rows))
        self._record("score_choices", "prompts", rows, options=lists)
        time.sleep(self.options.delay)
        out = []
        for conv, labels in zip(rows, lists, strict=False):
            if self.score is not None:
                weights = self.score(conv, labels)
            elif self.options.choices:
                weights = self._next(self.options.choices, self._choice_i, "choices")
                self._choice_i += 1
            else:
                weights = {}
            extra = {k: v for k, v in weights.items() if k in RESERVED}
            weights = {k: v for k, v in weights.items() if k not in RESERVED}
            picked = {lab: float(weights.get(lab, 0.0 if weights else 1.0)) for lab in labels}
            total = sum(picked.values())
            if total <= 0:
                raise CaiError(f"scripted backend: no weight on any of the labels {labels}")
            row = ChoiceProbs({lab: w / total for lab, w in picked.items()},
                              mass=float(extra["_mass"]) if "_mass" in extra else None,
                              source=str(extra.get("_source", "logprobs")))
            if extra.get("_failure"):
                row.failure = str(extra["_failure"])
            out.append(row)
        return out


def _complete(text: str, conv: Conversation, s: SamplingConfig) -> Completion:
    """Apply stop strings and max_tokens (one token per whitespace-separated word)."""
    finish = "stop"
    cuts = [text.find(stop) for stop in s.stop if stop and stop in text]
    if cuts:
        text = text[: min(cuts)]
    words = text.split()
    if len(words) > s.max_tokens:
        text, words, finish = " ".join(words[: s.max_tokens]), words[: s.max_tokens], "length"
    prompt_tokens = sum(len(m["content"].split()) for m in conv)
    return Completion(
        text=text, prompt_tokens=prompt_tokens, completion_tokens=len(words), finish_reason=finish
    )
