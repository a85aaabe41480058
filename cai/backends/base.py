"""The backend protocol: batch-first generation and multiple-choice scoring.

A backend turns a whole stage's chat conversations into completions in one call
(:meth:`Backend.generate`), and reads, for multiple-choice prompts, the probability of each option
label as the next token (:meth:`Backend.score_choices`). Concurrency and batching are the
backend's business; callers hand over everything at once.

    from cai.backends import BackendConfig, SamplingConfig, load_backend

    backend = load_backend(BackendConfig(backend="transformers", model="path/to/model"))
    [[draft]] = backend.generate([[{"role": "user", "content": "Hi"}]], SamplingConfig(n=1))
    [probs] = backend.score_choices([[{"role": "user", "content": "A or B?"}]], ["A", "B"])
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from cai.core.errors import CaiError

Message = dict[str, str]
"""One chat message: ``{"role": "system"|"user"|"assistant", "content": str}``."""
Conversation = list[Message]
"""A chat conversation. If its last message is from the assistant, that message is continued."""
Batch = Sequence[Conversation | str]
"""Conversations for one call; a plain string is a single user message."""
Labels = Sequence[str] | Sequence[Sequence[str]]
"""Option labels: one list for every prompt, or one list per prompt."""


class PromptRejected(CaiError):
    """One conversation cannot be sent to the model: longer than the context, or refused by the
    chat template. The message says why, without a row number (the caller names the row)."""


class RowsRejected(CaiError):
    """Some rows of a batch were rejected (:class:`PromptRejected`) and none was run, unless
    ``partial`` holds the results of the others (None at the rejected rows). ``reasons`` maps each
    rejected row's index in the batch to why; :func:`cai.backends.rows.generate_rows` and
    :func:`~cai.backends.rows.score_rows` turn this into per-row failures."""

    def __init__(self, reasons: dict[int, str], partial: list[Any] | None = None):
        self.reasons, self.partial = dict(sorted(reasons.items())), partial
        first = next(iter(self.reasons))
        more = f" (and {len(reasons) - 1} more rows)" if len(reasons) > 1 else ""
        super().__init__(f"row {first}: {self.reasons[first]}{more}")


class SamplingConfig(BaseModel):
    """How to sample completions; the same fields mean the same thing for every backend."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True, frozen=True)

    temperature: float = Field(1.0, ge=0.0)
    """Softmax temperature; 0 means greedy decoding."""
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    """Nucleus sampling: keep the smallest set of tokens whose probability reaches top_p."""
    max_tokens: int = Field(256, ge=1)
    """Most tokens to generate per completion."""
    n: int = Field(1, ge=1)
    """Completions to sample per conversation."""
    stop: list[str] = Field(default_factory=list)
    """Strings that end a completion; they are not included in its text."""
    seed: int | None = None
    """Random seed for sampling (None: not reproducible). Per request, as vLLM's: sample j of a
    conversation is drawn with seed + j, so its text depends on the conversation, the sampling
    settings, the model and the device, never on the other conversations in the call."""
    repetition_penalty: float = Field(1.0, gt=0.0)
    """Divide the logits of tokens already in the prompt or the output by this (>1: less
    repetition; the CTRL penalty, Keskar et al. 2019, as vLLM and transformers implement it).
    It also counts the prompt's special tokens, so it can keep a chat model from ending its turn;
    prefer ``frequency_penalty``. 1.0: off."""
    frequency_penalty: float = Field(0.0, ge=-2.0, le=2.0)
    """Subtract this times a token's count in the output so far from its logit (OpenAI's
    definition; only generated tokens count, so the end-of-turn token is never penalised).
    Small models at low temperature fall into loops without it. 0: off."""

    @field_validator("stop", mode="before")
    @classmethod
    def _one_stop(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


NEUTRAL_SAMPLING: dict[str, Any] = {
    "repetition_penalty": 1.0, "presence_penalty": 0.0, "frequency_penalty": 0.0, "top_k": 0, "min_p": 0.0,
}
"""Sampling settings outside :class:`SamplingConfig`, held neutral on every backend. A model's
``generation_config.json`` may set them (``repetition_penalty: 1.1``, ``top_k: 20``) and
transformers' ``generate`` and ``vllm serve`` apply such defaults unless told otherwise, while an
in-process vLLM engine does not: the same recipe would give different text per backend. Every
model backend reports them in ``describe()`` (``sampling_extras``)."""

GENERATION_CONFIG_SAMPLING = (
    "do_sample", "temperature", "top_p", "top_k", "min_p", "typical_p", "epsilon_cutoff", "eta_cutoff",
    "repetition_penalty", "presence_penalty", "frequency_penalty", "no_repeat_ngram_size",
    "encoder_repetition_penalty", "length_penalty", "min_new_tokens", "min_length", "max_new_tokens", "max_length",
    "bad_words_ids", "suppress_tokens", "begin_suppress_tokens", "sequence_bias",
)
"""Fields of a Hugging Face ``generation_config.json`` that change what is sampled; a backend that
leaves them out says so in ``describe()`` (``generation_config_ignored``)."""


class Completion(BaseModel):
    """One sampled completion of one conversation."""

    model_config = ConfigDict(use_attribute_docstrings=True)

    text: str
    """The generated text, without the stop string or end-of-turn token. A reasoning model's
    reasoning stays in it as a ``<think>…</think>`` block (a server's separate reasoning field is
    put back that way); :func:`cai.sl.parsing.split_reasoning` separates the two."""
    prompt_tokens: int
    """Tokens in the prompt as sent to the model (after truncation)."""
    completion_tokens: int
    """Tokens generated."""
    finish_reason: Literal["stop", "length"]
    """``stop``: end of turn or a stop string; ``length``: hit ``max_tokens`` or the context."""
    truncated: bool = False
    """The prompt was longer than the context and was cut from the left."""


class BackendConfig(BaseModel):
    """Which backend runs which model, and how. The same object backs the Python API, config
    files and the CLI flags (``--backend``, ``--model``, ``--backend-option key=value``)."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    backend: str = "auto"
    """Backend name: ``auto``, ``vllm``, ``transformers``, ``openai``, ``scripted`` or a registered
    one. ``auto`` becomes ``vllm`` when a CUDA device and vLLM are present, else ``transformers``,
    when the config is validated (so provenance records the backend that ran)."""
    model: str
    """Local model directory or hub id; for ``openai``, the model name the server serves."""
    dtype: str = "auto"
    """Weights dtype for local backends: ``auto``, ``float32``, ``bfloat16``, ``float16``."""
    max_model_len: int | None = Field(None, ge=2)
    """Context length in tokens (prompt + completion); None: the model's own."""
    on_overflow: Literal["truncate", "error"] = "error"
    """A prompt too long for the context: cut it from the left and flag the completion
    (``truncate``), or fail naming the row (``error``)."""
    chat_template: str | None = None
    """Jinja chat template (inline, or a path to a ``.jinja`` file) for models without one or to
    override theirs."""
    seed: int = 0
    """Seed for the backend's own randomness (engine seed)."""
    options: dict[str, Any] = Field(default_factory=dict)
    """Backend-specific options, validated by the backend's ``Options`` model."""
    workers: int = Field(1, ge=1)
    """Ray actors each holding one copy of this backend; above 1 (or with ``ray_address``) every
    batch call is split across them and gathered in order (needs ``cai-constitution[ray]``)."""
    ray_address: str | None = None
    """Ray cluster to run the workers on (``auto``, ``HOST:6379`` or ``ray://HOST:10001``); None
    with ``workers`` above 1: start a local Ray instance."""
    worker_gpus: float | None = Field(None, ge=0)
    """GPUs reserved per Ray worker; None: the vLLM tensor-parallel size (1 for other backends)
    when the cluster has GPUs, else 0."""
    auto_reason: str | None = Field(None, exclude=True)
    """Set when ``backend`` was chosen by ``auto``: why that backend (not part of the config)."""

    @model_validator(mode="before")
    @classmethod
    def _choose_backend(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and data.get("backend", "auto") == "auto":
            from cai.backends.registry import auto_backend

            name, reason = auto_backend()
            data = {**data, "backend": name, "auto_reason": reason}
        return data

    @model_validator(mode="after")
    def _check_options(self) -> BackendConfig:
        from cai.backends.registry import backend_options_model

        from pydantic import ValidationError

        model = backend_options_model(self.backend)  # unknown name -> ValueError
        if model is not None:
            try:
                model.model_validate(self.options)
            except ValidationError as exc:  # name it under options, not as a field of this block
                err = exc.errors(include_url=False)[0]
                key = ".".join(str(p) for p in err["loc"])
                top = f"; {key} is a field of the backend block itself, beside options" \
                    if err["loc"] and err["loc"][0] in type(self).model_fields else ""
                raise ValueError(f"options.{key}: {err['msg']} ({self.backend} backend){top}") from None
        return self

    def backend_options(self) -> BaseModel:
        """The options, validated and typed by the backend's ``Options`` model."""
        from cai.backends.registry import backend_options_model

        model = backend_options_model(self.backend)
        return model.model_validate(self.options) if model is not None else BaseModel()


def over_field_default(value, info, model: type[BaseModel]):
    """A ``field_validator(mode="before")`` body for a nested config field whose default differs
    from its type's (``GenerateConfig.sampling`` defaults to temperature 0.7, ``SamplingConfig`` to
    1.0): a partial mapping (a config file, or a flag setting one field) keeps the FIELD's defaults
    for the rest. Without it ``--max-tokens 64`` silently sampled at temperature 1.0."""
    if isinstance(value, dict):
        default = model.model_fields[info.field_name].get_default(call_default_factory=True)
        if isinstance(default, BaseModel):
            return {**default.model_dump(exclude_unset=False), **value}
    return value


class NoOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Backend(abc.ABC):
    """A model behind the two batch-first calls. Subclasses set ``name`` and ``Options``."""

    name: ClassVar[str]
    Options: ClassVar[type[BaseModel]] = NoOptions

    def __init__(self, config: BackendConfig):
        self.config = config
        self.options = config.backend_options()

    @abc.abstractmethod
    def generate(
        self, conversations: Batch, sampling: SamplingConfig | None = None
    ) -> list[list[Completion]]:
        """Complete every conversation ``sampling.n`` times; result[i][j] is sample j of row i."""

    @abc.abstractmethod
    def score_choices(self, prompts: Batch, options: Labels) -> list[dict[str, float]]:
        """For each prompt, the probability of each option label as the assistant's next token(s),
        normalized over the options. ``options`` is one label list for all prompts or one per
        prompt. Labels count with and without a leading space; multi-token labels sum log-probs.
        """

    def describe(self) -> dict[str, Any]:
        """Provenance: what generated the outputs. Model backends add the sampling settings they
        hold neutral beyond :class:`SamplingConfig` (``sampling_extras``, :data:`NEUTRAL_SAMPLING`)."""
        out = {"backend": self.name, "model": self.config.model, "dtype": self.config.dtype}
        path = getattr(self, "model_path", None)
        if path and path != self.config.model:
            out["model_path"] = path
        return out

    def close(self) -> None:
        """Release the model (engine processes, GPU memory). Safe to call twice."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def as_conversations(rows: Batch) -> list[Conversation]:
    """Check and normalize a batch: a plain string is one user message."""
    if isinstance(rows, (str, Mapping)):
        raise CaiError("expected a list of conversations, got a single one")
    out = []
    for i, row in enumerate(rows):
        if isinstance(row, str):
            out.append([{"role": "user", "content": row}])
            continue
        if not isinstance(row, Sequence) or not row:
            raise CaiError(f"row {i}: a conversation is a non-empty list of messages")
        for message in row:
            if (
                not isinstance(message, Mapping)
                or not isinstance(message.get("role"), str)
                or not isinstance(message.get("content"), str)
            ):
                raise CaiError(f"row {i}: each message needs a string 'role' and 'content'")
        out.append([{"role": m["role"], "content": m["content"]} for m in row])
    return out


def option_lists(options: Labels, n_rows: int) -> list[list[str]]:
    """One label list per row, checked: non-empty, distinct, at least two labels."""
    if isinstance(options, str):
        raise CaiError("options must be a list of labels, e.g. ['A', 'B']")
    shared = all(isinstance(o, str) for o in options)
    lists = [list(options)] * n_rows if shared else [list(o) for o in options]
    if len(lists) != n_rows:
        raise CaiError(f"got {len(lists)} option lists for {n_rows} prompts")
    for i, labels in enumerate(lists):
        if len(labels) < 2 or len(set(labels)) != len(labels) or not all(labels):
            raise CaiError(f"row {i}: options must be two or more distinct non-empty labels")
    return lists
