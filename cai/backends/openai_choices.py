"""Choice scoring on OpenAI-compatible servers that are not vLLM (the OpenAI API, llama.cpp,
Ollama, SGLang, TGI...): the answer-first template variant, ``top_logprobs``, generated verdicts.

The judge's templates end in a prefilled answer line (``The answer is: (``) sent as the start of
the assistant's turn, so the option label is the model's very next token. Only a server that
continues an assistant message can take that (vLLM's ``continue_final_message``). For the others
the question is rewritten once per prompt (:func:`answer_first`): the prefilled line is dropped
and the user's message ends with an instruction to reply with the label alone, so the label is
the first token of a fresh reply; its probability is read from that token's ``top_logprobs``
(at most 20, as the OpenAI API allows). Earlier demonstration turns that end in such a line
(``The answer is: (B)``) become the bare label, so the examples teach the same answer shape.

Where the server returns no log-probs at all (Ollama before 0.12, some proxies) or refuses to (a
400/422 naming log-probs, as the OpenAI API answers for its reasoning models), the verdict can
be generated instead (:func:`parse_verdict`): a short greedy reply, parsed for the label. Its
probabilities are 0 or 1 and uncalibrated, the row's ``source`` is ``"generated"`` and its label
mass unknown (None); a reply with no readable label is a failed judgement (NaN probabilities and
NaN mass, as a NaN judge gives, so the judge-health record counts it as failed, never as a label).
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Sequence

from cai.backends.choices import ChoiceProbs
from cai.backends.http import HTTPError, ServerCannot
from cai.backends.openai_wire import _with_reasoning, top_logprob_mass

log = logging.getLogger("cai.backends")

INSTRUCTION = "Answer with only the {kind} of your choice: {labels}."
"""The answer-first instruction: ``{kind}`` is ``letter``, ``number`` or ``label``, ``{labels}`` the
label list (``A or B``). Measured on the embedded SmolLM2-135M (pairs3.jsonl, default constitution,
12 comparisons): median label mass 0.26 with this wording, 0.05 with "Reply with the label of your
answer alone (A or B), ..." and with "(A or B)" in parentheses, which prime a "(" first token."""


def instruction(labels: Sequence[str]) -> str:
    """The answer-first instruction for these labels, e.g. ``Answer with only the letter of your
    choice: A or B.``"""
    labels = list(labels)
    kind = ("letter" if all(lab.isalpha() and len(lab) == 1 for lab in labels)
            else "number" if all(lab.isdigit() for lab in labels) else "label")
    listed = labels[0] if len(labels) == 1 else ", ".join(labels[:-1]) + " or " + labels[-1]
    return INSTRUCTION.format(kind=kind, labels=listed)


def _demo_answer(content: str, labels: Sequence[str]) -> str | None:
    """The bare label of a demonstration answer ``<prefix>(X)`` (one line ending in ``(X)``)."""
    text = content.strip()
    if "\n" in text:
        return None
    m = re.search(r"\(\s*([^()\s]+)\s*\)$", text)
    return m.group(1) if m and m.group(1) in labels else None


def answer_first(conversation: list[dict], labels: Sequence[str]) -> list[dict]:
    """The conversation as a server that cannot continue an assistant message can take it.

    A final assistant message (the prefilled answer) goes: its last line, when it ends with ``(``
    (the answer line), is dropped; whatever is left (a chain-of-thought's reasoning) stays as an
    assistant turn followed by a user turn holding the instruction; with nothing left, the
    instruction ends the last user message. Earlier assistant turns ``<prefix>(X)`` become ``X``.
    A conversation that ends with a user message is returned unchanged (its template already
    asks what it asks)."""
    if not conversation or conversation[-1]["role"] != "assistant":
        return conversation
    ask = instruction(labels)
    *head, last = conversation
    out = []
    for m in head:
        bare = _demo_answer(m["content"], labels) if m["role"] == "assistant" else None
        out.append({**m, "content": bare} if bare is not None else dict(m))
    before, _, line = last["content"].rpartition("\n")
    kept = before.rstrip() if line.rstrip().endswith("(") else last["content"].rstrip()
    if kept.strip():
        return out + [{"role": "assistant", "content": kept}, {"role": "user", "content": ask}]
    if out and out[-1]["role"] == "user":
        out[-1] = {**out[-1], "content": f"{out[-1]['content'].rstrip()}\n\n{ask}"}
        return out
    return out + [{"role": "user", "content": ask}]


_THINK = re.compile(r"<think>.*?</think>", re.S)


def parse_verdict(text: str, labels: Sequence[str]) -> str | None:
    """The label a generated reply gives, or None.

    Read, in order: the reply (after any closed ``<think>`` block) starting with the label, bare
    or in parentheses, optionally after ``Answer:`` / ``The answer is``; else exactly one label
    written as ``(X)`` anywhere in it. An unclosed ``<think>`` (the budget ran out while
    reasoning) gives None."""
    text = _THINK.sub("", text or "")
    if "<think>" in text:
        return None
    text = text.strip()
    alts = "|".join(re.escape(lab) for lab in sorted(labels, key=len, reverse=True))
    lead = re.match(rf"^(?:(?:the\s+)?answer(?:\s+is)?\s*:?\s*)?[\*\"'\s]*\(?\s*({alts})(?![\w])", text, re.I)
    if lead and lead.group(1) in labels:
        return lead.group(1)
    found = {m.group(1) for m in re.finditer(rf"\(\s*({alts})\s*\)", text)}
    return found.pop() if len(found) == 1 else None


def failed_row(labels: Sequence[str], reason: str, source: str, mass: float | None = None) -> ChoiceProbs:
    """A row that is no judgement: NaN probabilities, ``failure`` = ``reason`` (read by
    :func:`cai.judge.health.judgement_failure`: ``"parse"``, ``"labels_missing"``)."""
    row = ChoiceProbs({lab: math.nan for lab in labels}, mass=mass, source=source)
    row.failure = reason
    return row


def generated_probs(label: str | None, labels: Sequence[str]) -> ChoiceProbs:
    """A generated verdict as a row: 1 on the label given, 0 elsewhere, mass unknown (None);
    no label: a failed row (``failure == "parse"``)."""
    if label is None:
        return failed_row(labels, "parse", "generated")
    return ChoiceProbs({lab: float(lab == label) for lab in labels}, mass=None, source="generated")


def top_logprobs_probs(top: list[dict], labels: Sequence[str]) -> tuple[ChoiceProbs, list[str]]:
    """``(row, missing)`` from one position's ``top_logprobs``: probabilities normalized over the
    labels, ``mass`` their sum before normalizing (an upper bound when a label is missing: each
    missing label counts as the bound of :func:`~cai.backends.openai_wire.top_logprob_mass`),
    ``source == "top_logprobs"``. With no label listed the row is failed (``"labels_missing"``):
    the list says nothing about which label the judge prefers."""
    mass, missing = top_logprob_mass(top, list(labels))
    total = sum(mass.values())
    if len(missing) == len(labels) or total <= 0:
        return failed_row(labels, "labels_missing", "top_logprobs", mass=min(1.0, total)), missing
    return ChoiceProbs({lab: m / total for lab, m in mass.items()}, mass=min(1.0, total),
                       source="top_logprobs"), missing


class GenericChoices:
    """Choice scoring for :class:`~cai.backends.openai_backend.OpenAIBackend` on a server that is
    not vLLM (a mixin: it uses the backend's ``pool``, ``options``, ``config`` and ``stats``).

    Per row: the answer-first variant (unless the server can continue an assistant message,
    ``prefill``), then one ``max_tokens: 1`` request reading ``top_logprobs``; with
    ``choice_source: generated`` (or ``auto`` once a server has answered without log-probs) one
    greedy request of ``verdict_tokens`` tokens, parsed. Each switch is said once."""

    _said: set

    def _say_once(self, key: str, message: str, *args) -> None:
        if key not in self._said:
            self._said.add(key)
            log.warning(message, *args)

    def choice_method(self, vllm: bool) -> str:
        """How choices are read: for provenance (``describe()['choice_scoring']``). Before the
        first answer, ``auto`` cannot know whether the server returns log-probs and says so."""
        if vllm:
            return "logprobs (vLLM: exact label token ids)"
        how = "prefilled answer line" if self.options.prefill == "yes" else "answer-first template variant"
        if self._generated:
            return f"generated verdicts ({how}, up to {self.options.verdict_tokens} tokens; uncalibrated, p 0/1)"
        unsure = self.options.choice_source == "auto" and "logprobs_seen" not in self._said
        return (f"top_logprobs ({how}, top {self.options.top_logprobs}"
                + ("; generated verdicts if the server returns no log-probs)" if unsure else ")"))

    @property
    def _generated(self) -> bool:
        return self.options.choice_source == "generated" or "no_logprobs" in self._said

    async def _score_generic(self, conv: list[dict], labels: list[str], row: int) -> ChoiceProbs:
        if conv[-1]["role"] == "assistant" and self.options.prefill != "yes":
            self._say_once("variant", "%s cannot continue an assistant message (not vLLM): the judge asks for the "
                           "label as the first token of the reply and reads its top_logprobs (set -O prefill=yes "
                           "if the server takes continue_final_message)", self.pool.base_urls[0])
            conv = answer_first(conv, labels)
        if self._generated:
            return await self._score_generated(conv, labels, row)
        payload = {**self._chat_fields(conv, False), "max_tokens": 1, "temperature": 0.0,
                   "logprobs": True, "top_logprobs": self.options.top_logprobs}
        try:
            answer = await self.pool.request("POST", "/chat/completions", payload, row=row)
        except HTTPError as exc:  # "logprobs is not supported with this model" (reasoning models)
            if exc.status not in (400, 422) or "logprob" not in exc.detail.lower():
                raise
            answer = {"choices": [{}]}
        content = (answer["choices"][0].get("logprobs") or {}).get("content") or []
        if not content:
            if self.options.choice_source == "top_logprobs":
                raise ServerCannot("the server returned no log-probs (set -O choice_source=generated to judge "
                                   "from generated verdicts: p 0/1, uncalibrated)")
            self._say_once("no_logprobs", "%s returned no log-probs: the judge falls back to generated verdicts "
                           "(a short reply parsed for the label; p is 0 or 1 and uncalibrated, source 'generated'; "
                           "-O choice_source=top_logprobs makes this an error)", self.pool.base_urls[0])
            return await self._score_generated(conv, labels, row)
        self._said.add("logprobs_seen")
        probs, missing = top_logprobs_probs(content[0].get("top_logprobs") or [], labels)
        if missing:
            self.stats["choice_rows_label_missing"] += 1
        return probs

    async def _score_generated(self, conv: list[dict], labels: list[str], row: int) -> ChoiceProbs:
        payload = {**self._chat_fields(conv, False), "max_tokens": self.options.verdict_tokens,
                   "temperature": 0.0}
        answer = await self.pool.request("POST", "/chat/completions", payload, row=row)
        choice = answer["choices"][0]
        text = _with_reasoning(choice.get("message") or {}, choice.get("finish_reason"))
        probs = generated_probs(parse_verdict(text, labels), labels)
        self.stats["choice_rows_generated"] += 1
        if getattr(probs, "failure", None):
            self.stats["choice_rows_unparsed"] += 1
        return probs
