"""Reading an OpenAI-compatible server's answers: top-logprob tokens as text, option mass from
``top_logprobs``, completions from choices (with reasoning and truncation), and which HTTP errors
mean "prompt too long" or "seeded n refused"."""

from __future__ import annotations

import math
from typing import Any

from cai.backends.base import NEUTRAL_SAMPLING, Completion
from cai.backends.choices import label_spellings
from cai.backends.http import HTTPError


# Leading-space markers of SentencePiece (U+2581) and byte-level BPE (U+0120) vocabularies.
_SPACE_MARKERS = ("\u2581", "\u0120")


def token_text(token: str) -> str:
    """A ``top_logprobs`` token as text: a leading ``▁`` or ``Ġ`` (how SentencePiece and GPT-2
    style vocabularies spell a leading space, which some servers return raw) becomes a space."""
    return " " + token[1:] if token[:1] in _SPACE_MARKERS else token


def top_logprob_mass(top: list[dict], labels: list[str]) -> tuple[dict[str, float], list[str]]:
    """``(mass, missing)``: each label's probability from one position's ``top_logprobs``
    (``[{"token", "logprob"}]``), summed over its spellings, and the labels not listed.

    A label that is not listed is not improbable, only less probable than the last listed token:
    it counts as the smaller of two upper bounds, the last listed token's probability and the
    mass the list leaves over (``1 - sum``). Counting it as zero would turn missing data into a
    confident label (probability 1 for the other option).
    """

    mass = {lab: 0.0 for lab in labels}
    found: set[str] = set()
    probs = []
    for alt in top:
        p = math.exp(float(alt["logprob"]))
        probs.append(p)
        text = token_text(alt["token"])
        for lab in labels:
            if text in label_spellings(lab):
                mass[lab] += p
                found.add(lab)
    missing = [lab for lab in labels if lab not in found]
    if probs:
        bound = max(0.0, min(min(probs), 1.0 - sum(probs)))
        for lab in missing:
            mass[lab] = bound
    return mass, missing


def _vllm_neutral() -> dict[str, Any]:
    """NEUTRAL_SAMPLING as vLLM request fields: sent explicitly, because ``vllm serve`` fills
    unset ones from the model's ``generation_config.json`` (unless started with
    ``--generation-config vllm``). ``top_k: -1`` means off on every vLLM version."""
    return {**NEUTRAL_SAMPLING, "top_k": -1}


def _token_id(token: str) -> int:
    """``token_id:468`` (``return_tokens_as_token_ids``) -> 468."""
    return int(token.split(":", 1)[1])


def _refuses_seeded_n(exc: HTTPError) -> bool:
    """A 400/422 that names ``seed``: the server will not take a seed with n > 1."""
    return exc.status in (400, 422) and "seed" in exc.detail.lower()


def _is_template_refusal(exc: HTTPError, conv: list[dict]) -> bool:
    """A 400 from the server's chat template about the system role, for a conversation that has one."""
    text = exc.detail.lower()
    return exc.status == 400 and "system" in text and any(m["role"] == "system" for m in conv)


def _is_overflow(exc: HTTPError) -> bool:
    text = exc.detail.lower()
    return exc.status == 400 and ("maximum context length" in text or "context_length" in text)


def _completions(answer: dict, truncated: bool) -> list[Completion]:
    choices = sorted(answer["choices"], key=lambda c: c.get("index", 0))
    usage = answer.get("usage") or {}
    out = []
    for choice in choices:
        token_ids = choice.get("token_ids")
        if token_ids is not None:
            n_tokens = len(token_ids)
        else:  # usage counts all choices together
            n_tokens = int(usage.get("completion_tokens", 0)) // max(1, len(choices))
        out.append(
            Completion(
                text=_with_reasoning(choice.get("message") or {}, choice.get("finish_reason")),
                prompt_tokens=int(usage.get("prompt_tokens", 0)),
                completion_tokens=n_tokens,
                finish_reason="length" if choice.get("finish_reason") == "length" else "stop",
                truncated=truncated,
            )
        )
    return out


def _with_reasoning(message: dict, finish_reason: str | None) -> str:
    """The answer, behind a ``<think>`` block holding the reasoning when the server returned it in
    a field of its own (``reasoning_content``: vLLM's reasoning parsers, DeepSeek; ``reasoning``:
    newer vLLM, OpenRouter), so every backend's text reads the same to :mod:`cai.sl.parsing`. A
    budget spent inside the reasoning (no answer, ``finish_reason == "length"``) leaves the block
    unclosed."""
    content = message.get("content") or ""
    reasoning = message.get("reasoning_content") or message.get("reasoning")
    if not isinstance(reasoning, str) or not reasoning.strip():
        return content
    if not content.strip() and finish_reason == "length":
        return f"<think>\n{reasoning.strip()}"
    return f"<think>\n{reasoning.strip()}\n</think>\n\n{content}"
