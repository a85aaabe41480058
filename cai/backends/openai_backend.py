"""The ``openai`` backend: any OpenAI-compatible server, ``vllm serve`` first.

One chat-completions request per conversation, all in flight at once up to ``max_concurrency``,
spread over one or several base URLs, retried on 429/5xx/timeouts/connection errors (see
:mod:`cai.backends.http`). The API key, if any, is read from the environment variable
``api_key_env``.

On a vLLM server (detected through ``GET /version``) choice scoring is exact: the server returns
the log-probs of exactly the label token ids (``logprob_token_ids``), as the in-process backends
do; single-token labels take one chat request per prompt, multi-token labels (and prompts that
must be cut) go through ``/tokenize`` and token-id prompts. Other servers (the OpenAI API,
llama.cpp, Ollama, SGLang, TGI) are scored by :class:`~cai.backends.openai_choices.GenericChoices`:
a prompt that ends in a prefilled answer line is rewritten to ask for the label as the first
token of the reply (the answer-first variant; ``prefill: yes`` keeps the prefill for a server
that takes ``continue_final_message``), and the first token's ``top_logprobs`` (at most 20) are
matched to the labels by text (a leading ``▁``/``Ġ`` reads as a space): a label outside the list
counts as at most the last listed token's probability (the row is counted in ``stats``), no label
in the list fails the row (``failure == "labels_missing"``). Each row is a
:class:`~cai.backends.choices.ChoiceProbs` with its label mass and ``source``. A server that
returns no log-probs gets generated verdicts (``choice_source``), said once. Which of these ran
is in ``describe()["choice_scoring"]`` (the judge's provenance). Multi-token labels, continuing
an assistant message in ``generate`` and ``on_overflow: truncate`` need a vLLM server.

Rate limits: ``max_concurrency`` requests in flight, optional ``requests_per_minute`` and
``tokens_per_minute`` (client-side buckets), and a 429/503's ``Retry-After`` waited for in full up
to ``max_retry_wait`` seconds (:mod:`cai.backends.http`). Errors that a retry cannot change
(other 4xx, a missing server feature) are not retried and carry ``permanent = True``. Generation requests to a vLLM server set the
sampling fields outside ``SamplingConfig`` to neutral values (``NEUTRAL_SAMPLING``), which the
server would otherwise take from the model's ``generation_config.json``.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from cai.backends.base import (
    NEUTRAL_SAMPLING,
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
from cai.backends.base import PromptRejected
from cai.backends.chat import fit_prompt, merge_system_once, prompt_budget
from cai.backends.choices import ChoicePlan, combine, label_spellings, plan_choices
from cai.backends.http import HTTPError, ServerCannot, ServerPool, gather_rows, run_sync
from cai.backends.openai_choices import INSTRUCTION, GenericChoices
from cai.backends.openai_wire import (
    _completions,
    _is_overflow,
    _is_template_refusal,
    _refuses_seeded_n,
    _token_id,
    _vllm_neutral,
)
from cai.core.errors import CaiError

log = logging.getLogger("cai.backends")


class OpenAIOptions(BaseModel):
    """Options of the ``openai`` backend."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    base_urls: list[str] = Field(default_factory=lambda: ["http://127.0.0.1:8000/v1"])
    """Server base URLs (ending in ``/v1``); requests are spread across them."""
    api_key_env: str | None = "OPENAI_API_KEY"
    """Environment variable holding the API key (unset: no Authorization header)."""
    max_concurrency: int = Field(16, ge=1)
    """Requests in flight at once, over all base URLs."""
    max_retries: int = Field(3, ge=0)
    """Retries of a failed request (429, 5xx, timeout, connection error) before giving up."""
    timeout: float = Field(120.0, gt=0)
    """Seconds to wait for one answer."""
    backoff: float = Field(0.5, ge=0)
    """Delay before the first retry in seconds; doubles on each retry (with jitter)."""
    max_backoff: float = Field(8.0, ge=0)
    """Longest exponential-backoff delay between retries in seconds (a server's ``Retry-After``
    is honoured beyond it, up to ``max_retry_wait``)."""
    max_retry_wait: float = Field(60.0, ge=0)
    """Longest ``Retry-After`` (429/503) waited for before a retry, in seconds."""
    requests_per_minute: float | None = Field(None, gt=0)
    """Client-side limit on requests sent per minute, over all base URLs (None: no limit)."""
    tokens_per_minute: float | None = Field(None, gt=0)
    """Client-side limit on tokens per minute (prompt characters / 4 + max_tokens; None: no limit)."""
    health_interval: float = Field(5.0, gt=0)
    """Seconds between health probes of a replica marked down (it failed to answer); until one
    succeeds its requests go to the other base URLs."""
    server: Literal["auto", "vllm", "generic"] = "auto"
    """``auto`` detects vLLM servers (exact choice scoring, truncation, prefill)."""
    top_logprobs: int = Field(20, ge=1, le=20)
    """Generic servers: alternatives read per position when scoring choices (the OpenAI API allows 20)."""
    prefill: Literal["auto", "yes", "no"] = "auto"
    """Can the server continue an assistant message (a prefilled answer line)? ``auto``: yes on
    vLLM (detected), no elsewhere, where the judge asks for the label as the first token of the
    reply instead. ``yes``: send ``continue_final_message`` (SGLang, llama.cpp take a final
    assistant message as a prefill). No probe: a server that ignores the field looks the same."""
    choice_source: Literal["auto", "top_logprobs", "generated"] = "auto"
    """Generic servers: how option probabilities are read. ``top_logprobs``: from the first reply
    token's top log-probs (an error if the server returns none). ``generated``: a short greedy
    reply parsed for the label (p 0 or 1, uncalibrated). ``auto``: top_logprobs, falling back to
    generated verdicts (said once) when the server returns no log-probs."""
    verdict_tokens: int = Field(16, ge=1)
    """Generated verdicts: most tokens of the reply parsed for the label."""

    @field_validator("base_urls", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [u.strip() for u in value.split(",") if u.strip()]
        return value


class OpenAIBackend(GenericChoices, Backend):
    name = "openai"
    Options = OpenAIOptions

    def __init__(self, config: BackendConfig):
        super().__init__(config)
        opts: OpenAIOptions = self.options
        headers = {}
        key = os.environ.get(opts.api_key_env) if opts.api_key_env else None
        if key:
            headers["Authorization"] = f"Bearer {key}"
        self.pool = ServerPool(
            opts.base_urls,
            headers=headers,
            timeout=opts.timeout,
            max_retries=opts.max_retries,
            backoff=opts.backoff,
            max_backoff=opts.max_backoff,
            max_concurrency=opts.max_concurrency,
            health_interval=opts.health_interval,
            max_retry_wait=opts.max_retry_wait,
            requests_per_minute=opts.requests_per_minute,
            tokens_per_minute=opts.tokens_per_minute,
        )
        self._said: set[str] = set()  # messages said once (the answer-first variant, no log-probs)
        self.template = None
        if config.chat_template:
            from cai.backends.chat import resolve_chat_template

            self.template = resolve_chat_template(None, config.chat_template, config.model)
        self._is_vllm: bool | None = {"vllm": True, "generic": False}.get(opts.server)
        self.stats: Counter = Counter()
        """Counts of note across calls, e.g. ``choice_rows_label_missing``: prompts scored on a
        generic server where an option label was not among the top log-probs."""
        self._context: int | None = config.max_model_len
        self._seed_per_sample = False  # set once a server refuses ``seed`` with n > 1

    def describe(self) -> dict[str, Any]:
        info = {**super().describe(), "base_urls": self.pool.base_urls}
        if self._is_vllm is None:
            async def detect() -> bool:
                async with self.pool:
                    return await self._vllm()

            run_sync(detect)
        # Only vLLM servers take them; a generic server applies its own defaults.
        info["sampling_extras"] = dict(NEUTRAL_SAMPLING) if self._is_vllm else "server defaults"
        info["choice_scoring"] = self.choice_method(bool(self._is_vllm))
        if not self._is_vllm and self.options.prefill != "yes":
            info["answer_instruction"] = INSTRUCTION
        return info

    # -- server facts -----------------------------------------------------------------------

    async def _vllm(self) -> bool:
        if self._is_vllm is None:
            try:
                answer = await self.pool.request("GET", "/version", root=True)
                self._is_vllm = isinstance(answer, dict) and "version" in answer
            except HTTPError:
                self._is_vllm = False
        return self._is_vllm

    async def _max_model_len(self) -> int:
        if self._context is None:
            models = await self.pool.request("GET", "/models")
            for card in models.get("data", []):
                if card.get("id") == self.config.model and card.get("max_model_len"):
                    self._context = int(card["max_model_len"])
            if self._context is None:
                raise CaiError("openai backend: set max_model_len; the server does not report it")
        return self._context

    def _chat_fields(self, conv: Conversation, vllm: bool) -> dict[str, Any]:
        fields: dict[str, Any] = {"model": self.config.model, "messages": conv}
        if conv[-1]["role"] == "assistant":
            if not vllm and self.options.prefill != "yes":
                raise ServerCannot("continuing an assistant message needs a vLLM server (or -O prefill=yes "
                                   "for a server that takes continue_final_message)")
            fields.update(continue_final_message=True, add_generation_prompt=False)
        if self.template and vllm:
            fields["chat_template"] = self.template
        return fields

    # -- generation -------------------------------------------------------------------------

    def generate(
        self, conversations: Batch, sampling: SamplingConfig | None = None
    ) -> list[list[Completion]]:
        rows = as_conversations(conversations)
        if not rows:
            return []
        s = sampling or SamplingConfig()

        async def run() -> list[list[Completion]]:
            async with self.pool:
                vllm = await self._vllm()
                one = lambda i: self._one(rows[i], s, i, vllm)  # noqa: E731
                return await gather_rows(len(rows), one, "generate")

        return run_sync(run)

    async def _one(
        self, conv: Conversation, s: SamplingConfig, row: int, vllm: bool
    ) -> list[Completion]:
        greedy_copies = s.n if s.temperature == 0 else 1  # servers refuse n > 1 when greedy
        if self._seed_per_sample and s.seed is not None and s.n // greedy_copies > 1:
            return await self._seed_each_sample(conv, s, row, vllm)
        payload = {
            **self._chat_fields(conv, vllm),
            "n": s.n // greedy_copies,
            "temperature": s.temperature,
            "top_p": s.top_p,
            "max_tokens": s.max_tokens,
        }
        if s.stop:
            payload["stop"] = list(s.stop)
        if s.seed is not None:
            payload["seed"] = s.seed
        if vllm:
            payload["return_token_ids"] = True
            payload.update(_vllm_neutral())  # else `vllm serve` takes them from generation_config.json
        if s.repetition_penalty != 1.0 or vllm:  # not an OpenAI field: sent only when it is asked for
            payload["repetition_penalty"] = s.repetition_penalty
        if s.frequency_penalty or vllm:
            payload["frequency_penalty"] = s.frequency_penalty
        truncated = False
        try:
            answer = await self.pool.request("POST", "/chat/completions", payload, row=row)
        except HTTPError as exc:
            if payload.get("seed") is not None and payload["n"] > 1 and _refuses_seeded_n(exc):
                if not self._seed_per_sample:
                    log.warning("the server refuses seed with n > 1 (%s): one request per sample, seeds "
                                "seed, seed+1, ...", exc.detail)
                self._seed_per_sample = True
                return await self._seed_each_sample(conv, s, row, vllm)
            if _is_template_refusal(exc, conv):  # merged once, as the local backends do
                return await self._one(merge_system_once(conv, exc.detail), s, row, vllm)
            if not _is_overflow(exc):
                raise
            if self.config.on_overflow != "truncate":
                raise PromptRejected(
                    f"prompt is longer than the context ({exc.detail}); set "
                    "on_overflow: truncate to cut it from the left"
                ) from None
            if not vllm:
                raise ServerCannot("on_overflow: truncate needs a vLLM server") from None
            budget = prompt_budget(await self._max_model_len(), s.max_tokens)
            payload.update(truncate_prompt_tokens=budget, truncation_side="left")
            answer = await self.pool.request("POST", "/chat/completions", payload, row=row)
            truncated = True
        samples = _completions(answer, truncated)
        return [c.model_copy() for _ in range(greedy_copies) for c in samples]

    async def _seed_each_sample(
        self, conv: Conversation, s: SamplingConfig, row: int, vllm: bool
    ) -> list[Completion]:
        """``n`` requests of one sample each, the i-th seeded ``seed + i`` (as vLLM seeds the i-th of n samples):
        for servers that refuse ``seed`` with n > 1."""
        import asyncio

        one = lambda i: self._one(conv, s.model_copy(update={"n": 1, "seed": s.seed + i}), row, vllm)  # noqa: E731
        return [c for got in await asyncio.gather(*(one(i) for i in range(s.n))) for c in got]

    # -- choice scoring ---------------------------------------------------------------------

    def score_choices(self, prompts: Batch, options: Labels) -> list[dict[str, float]]:
        rows = as_conversations(prompts)
        if not rows:
            return []
        lists = option_lists(options, len(rows))

        async def run() -> list[dict[str, float]]:
            async with self.pool:
                if not await self._vllm():
                    missing = self.stats["choice_rows_label_missing"]
                    got = await gather_rows(
                        len(rows), lambda i: self._score_generic(rows[i], lists[i], i), "score_choices"
                    )
                    if self.stats["choice_rows_label_missing"] > missing:
                        log.warning("%d of %d rows: a label was not among the server's top %d next tokens "
                                    "(counted as at most the last listed token's probability)",
                                    self.stats["choice_rows_label_missing"] - missing, len(rows),
                                    self.options.top_logprobs)
                    return got
                texts = sorted({t for ls in lists for lab in ls for t in label_spellings(lab)})
                tokenize = lambda k: self._tokenize_text(texts[k], k)  # noqa: E731
                vocab = dict(
                    zip(texts, await gather_rows(len(texts), tokenize, "tokenize"), strict=False)
                )
                plans = {tuple(ls): plan_choices(ls, vocab.__getitem__) for ls in lists}
                score = lambda i: self._score_ids(rows[i], plans[tuple(lists[i])], i)  # noqa: E731
                return await gather_rows(len(rows), score, "score_choices")

        return run_sync(run)

    async def _tokenize_text(self, text: str, row: int) -> list[int]:
        payload = {"model": self.config.model, "prompt": text, "add_special_tokens": False}
        return (await self.pool.request("POST", "/tokenize", payload, row=row, root=True))["tokens"]

    async def _score_ids(self, conv: Conversation, plan: ChoicePlan, row: int) -> dict[str, float]:
        fields = self._chat_fields(conv, True)
        if len(plan.queries) == 1:  # single-token labels: one chat request, no /tokenize
            [(_, tokens)] = plan.queries
            payload = {
                **fields,
                "max_tokens": 1,
                "temperature": 0.0,
                "logprobs": True,
                "logprob_token_ids": list(tokens),
                "return_tokens_as_token_ids": True,
            }
            try:
                answer = await self.pool.request("POST", "/chat/completions", payload, row=row)
            except HTTPError as exc:
                if not _is_overflow(exc):
                    raise
            else:
                [step] = answer["choices"][0]["logprobs"]["content"]
                got = {_token_id(e["token"]): e["logprob"] for e in step["top_logprobs"]}
                return combine(plan, [{t: got[t] for t in tokens}])
        fields.setdefault("add_generation_prompt", True)
        rendered = await self.pool.request("POST", "/tokenize", fields, row=row, root=True)
        context = rendered.get("max_model_len") or await self._max_model_len()
        budget = prompt_budget(context, plan.longest)
        ids, cut = fit_prompt(rendered["tokens"], budget, self.config.on_overflow, row, context)
        if cut:
            log.warning("row %d: prompt cut from the left to %d tokens", row, len(ids))
        answers = []
        for prefix, tokens in plan.queries:
            payload = {
                "model": self.config.model,
                "prompt": ids + list(prefix),
                "max_tokens": 1,
                "temperature": 0.0,
                "logprobs": len(tokens),
                "logprob_token_ids": list(tokens),
                "return_tokens_as_token_ids": True,
            }
            answer = await self.pool.request("POST", "/completions", payload, row=row)
            [top] = answer["choices"][0]["logprobs"]["top_logprobs"]
            got = {_token_id(k): float(v) for k, v in top.items()}
            answers.append({t: got[t] for t in tokens})
        return combine(plan, answers)
