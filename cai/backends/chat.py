"""Chat conversations to prompt token ids, for backends that hold the tokenizer.

The chat template comes from the model's tokenizer, or from ``BackendConfig.chat_template``
(inline Jinja or a ``.jinja`` file) when the model has none or it should be overridden. A
conversation whose last message is from the assistant is continued (a prefilled answer such as
``"The better response is ("``) rather than closed.

Prompts longer than the context are handled per ``on_overflow``: cut from the left (keeping a
leading BOS token) and flagged, or rejected. A rejected row (too long, or a conversation the
template refuses) is named in a :class:`~cai.backends.base.RowsRejected` raised once every row of
the batch has been rendered, so the caller can fail those rows and run the others.

A template that refuses a system role (Gemma's ``System role not supported``) gets the system
turn merged into the first user turn instead, as llama.cpp does; this is said once per template.
:func:`apply_template` is the one place a chat template is applied, for the backends and for the
reward model and PPO policy in :mod:`cai.train`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cai.backends.base import Conversation, PromptRejected, RowsRejected
from cai.backends.local import log
from cai.core.errors import CaiError

_MERGE_WARNED: set[int] = set()


def merge_system(conversation: Sequence[dict]) -> list[dict]:
    """The conversation with its system messages folded into the first user message (a blank line
    between), or made a user message when no user turn follows: for templates without a system role."""
    system = [m["content"] for m in conversation if m["role"] == "system"]
    rest = [dict(m) for m in conversation if m["role"] != "system"]
    if not system:
        return rest
    head = "\n\n".join(system)
    for m in rest:
        if m["role"] == "user":
            m["content"] = f"{head}\n\n{m['content']}" if m["content"] else head
            return rest
    return [{"role": "user", "content": head}, *rest]


def apply_template(tokenizer: Any, conversation: Sequence[dict], template: str | None = None, **kwargs) -> Any:
    """``tokenizer.apply_chat_template`` with one rule for every caller: when the template raises
    on a conversation that has a system turn, the system turn is merged into the first user turn
    (:func:`merge_system`) and the template is tried again; said once per template. Anything else
    the template rejects raises :class:`PromptRejected` with the template's own message."""
    return _render(tokenizer, conversation, template, kwargs)[0]


def template_input(tokenizer: Any, conversation: Sequence[dict], template: str | None = None, **kwargs) -> list[dict]:
    """The conversation the template takes under :func:`apply_template`'s rule: ``conversation``
    itself, or with its system turn merged (said once); :class:`PromptRejected` otherwise. For
    callers that hand the conversation to code that applies the template itself (TRL's trainers)."""
    return _render(tokenizer, conversation, template, kwargs)[1]


def _render(tokenizer: Any, conversation: Sequence[dict], template: str | None, kwargs: dict) -> tuple[Any, list[dict]]:
    """(the template's output, the conversation it took): the one rule of :func:`apply_template`."""
    if template is not None:
        kwargs["chat_template"] = template
    try:
        return tokenizer.apply_chat_template(list(conversation), **kwargs), list(conversation)
    except Exception as exc:  # jinja errors, e.g. raise_exception('System role not supported')
        first = exc
    if any(m["role"] == "system" for m in conversation):
        merged = merge_system(conversation)
        try:
            out = tokenizer.apply_chat_template(merged, **kwargs)
        except Exception as exc:  # noqa: BLE001 - refused for another reason too: report that one
            raise PromptRejected(f"chat template failed: {_one_line(exc)} (with the system turn merged "
                                 f"into the first user turn, as {_one_line(first)!r} asked)") from None
        else:
            _warn_merge(template or getattr(tokenizer, "chat_template", None) or "", _one_line(first))
            return out, merged
    raise PromptRejected(f"chat template failed: {_one_line(first)}") from None


def _warn_merge(key: str, why: str) -> None:
    if hash(key) not in _MERGE_WARNED:
        _MERGE_WARNED.add(hash(key))
        log.warning("the chat template refuses a system role (%s): the system prompt is merged into the "
                    "first user turn", why)


def merge_system_once(conversation: Sequence[dict], why: str) -> list[dict]:
    """:func:`merge_system` for a server that refused the system turn, said once per process."""
    _warn_merge("server", why)
    return merge_system(conversation)


def _one_line(exc: BaseException) -> str:
    lines = [line for line in str(exc).strip().splitlines() if line.strip()]
    return lines[0].strip() if lines else type(exc).__name__


def resolve_chat_template(tokenizer: Any, override: str | None, model: str) -> str:
    """The template to use: the override (text or file), else the tokenizer's, else an error."""
    if override:
        if "{" not in override and Path(override).is_file():
            return Path(override).read_text(encoding="utf-8-sig")
        if "{" not in override:
            raise CaiError(f"chat_template {override!r} is neither a Jinja template nor a file")
        return override
    template = getattr(tokenizer, "chat_template", None)
    if isinstance(template, dict):  # named templates: take the default one
        template = template.get("default")
    if not template:
        raise CaiError(
            f"model {model!r} has no chat template: set chat_template in the backend config "
            "(inline Jinja or a .jinja file)"
        )
    return template


class ChatRenderer:
    """Renders conversations with one tokenizer and one template."""

    def __init__(self, tokenizer: Any, template: str):
        self.tokenizer = tokenizer
        self.template = template
        self.bos_id = getattr(tokenizer, "bos_token_id", None)

    def text(self, conversation: Conversation) -> str:
        """The prompt text; an assistant last message is continued, else a turn is opened."""
        cont = conversation[-1]["role"] == "assistant"
        return apply_template(self.tokenizer, conversation, self.template, tokenize=False,
                              add_generation_prompt=not cont, continue_final_message=cont)

    def encode_text(self, text: str) -> list[int]:
        """Token ids of text, no special tokens added (templates write their own)."""
        return list(self.tokenizer.encode(text, add_special_tokens=False))

    def ids(self, conversation: Conversation) -> list[int]:
        return self.encode_text(self.text(conversation))

    def fit(
        self, conversations: Sequence[Conversation], reserve: int, on_overflow: str, context: int
    ) -> list[tuple[list[int], bool]]:
        """Each conversation's prompt ids, leaving ``reserve`` tokens of ``context`` for the
        completion: (ids, truncated)."""
        budget = prompt_budget(context, reserve)
        out, rejected = [], {}
        for i, c in enumerate(conversations):
            try:
                out.append(fit_prompt(self.ids(c), budget, on_overflow, i, context, self.bos_id))
            except PromptRejected as exc:
                rejected[i] = exc.message
                out.append(([], False))
        if rejected:
            raise RowsRejected(rejected)
        return out

    def choice_queries(
        self, conversations: Sequence[Conversation], plans: Sequence[Any], on_overflow: str, context: int
    ) -> list[tuple[int, list[int], tuple[int, ...]]]:
        """Every next-token query of a ``score_choices`` batch: (row, prompt ids + label prefix,
        tokens to score). Each prompt leaves room for its longest label."""
        queries, rejected = [], {}
        for i, (conv, plan) in enumerate(zip(conversations, plans, strict=True)):
            budget = prompt_budget(context, plan.longest)
            try:
                ids, cut = fit_prompt(self.ids(conv), budget, on_overflow, i, context, self.bos_id)
            except PromptRejected as exc:
                rejected[i] = exc.message
                continue
            if cut:
                log.warning("row %d: prompt cut from the left to %d tokens", i, len(ids))
            queries += [(i, ids + list(prefix), tokens) for prefix, tokens in plan.queries]
        if rejected:
            raise RowsRejected(rejected)
        return queries


def fit_prompt(
    ids: list[int], budget: int, on_overflow: str, row: int, context: int, bos_id: int | None = None
) -> tuple[list[int], bool]:
    """Keep ``ids`` if it fits ``budget``; else cut from the left (``truncate``) or raise."""
    if len(ids) <= budget:
        return ids, False
    if on_overflow != "truncate":
        raise PromptRejected(
            f"prompt has {len(ids)} tokens, more than the {budget} that fit the "
            f"context of {context} (set on_overflow: truncate to cut it from the left)"
        )
    if bos_id is not None and ids and ids[0] == bos_id and budget > 1:
        return [bos_id, *ids[len(ids) - budget + 1 :]], True
    return ids[len(ids) - budget :], True


def prompt_budget(context: int, reserve: int) -> int:
    """Tokens left for the prompt when ``reserve`` are kept for the completion."""
    budget = context - reserve
    if budget < 1:
        raise CaiError(
            f"max_tokens={reserve} leaves no room for a prompt in a context of {context} tokens"
        )
    return budget
