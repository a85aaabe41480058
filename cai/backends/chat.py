"""Chat conversations to prompt token ids, for backends that hold the tokenizer.

The chat template comes from the model's tokenizer, or from ``BackendConfig.chat_template``
(inline Jinja or a ``.jinja`` file) when the model has none or it should be overridden. A
conversation whose last message is from the assistant is continued (a prefilled answer such as
``"The better response is ("``) rather than closed.

Prompts longer than the context are handled per ``on_overflow``: cut from the left (keeping a
leading BOS token) and flagged, or rejected with the row index.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cai.backends.base import Conversation
from cai.backends.local import log
from cai.core.errors import CaiError


def resolve_chat_template(tokenizer: Any, override: str | None, model: str) -> str:
    """The template to use: the override (text or file), else the tokenizer's, else an error."""
    if override:
        if "{" not in override and Path(override).is_file():
            return Path(override).read_text()
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
        try:
            return self.tokenizer.apply_chat_template(
                conversation,
                chat_template=self.template,
                tokenize=False,
                add_generation_prompt=not cont,
                continue_final_message=cont,
            )
        except Exception as exc:  # jinja errors, e.g. a template that rejects a system role
            raise CaiError(f"chat template failed: {exc}") from exc

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
        return [
            fit_prompt(self.ids(c), budget, on_overflow, i, context, self.bos_id)
            for i, c in enumerate(conversations)
        ]

    def choice_queries(
        self, conversations: Sequence[Conversation], plans: Sequence[Any], on_overflow: str, context: int
    ) -> list[tuple[int, list[int], tuple[int, ...]]]:
        """Every next-token query of a ``score_choices`` batch: (row, prompt ids + label prefix,
        tokens to score). Each prompt leaves room for its longest label."""
        queries = []
        for i, (conv, plan) in enumerate(zip(conversations, plans, strict=True)):
            budget = prompt_budget(context, plan.longest)
            ids, cut = fit_prompt(self.ids(conv), budget, on_overflow, i, context, self.bos_id)
            if cut:
                log.warning("row %d: prompt cut from the left to %d tokens", i, len(ids))
            queries += [(i, ids + list(prefix), tokens) for prefix, tokens in plan.queries]
        return queries


def fit_prompt(
    ids: list[int], budget: int, on_overflow: str, row: int, context: int, bos_id: int | None = None
) -> tuple[list[int], bool]:
    """Keep ``ids`` if it fits ``budget``; else cut from the left (``truncate``) or raise."""
    if len(ids) <= budget:
        return ids, False
    if on_overflow != "truncate":
        raise CaiError(
            f"row {row}: prompt has {len(ids)} tokens, more than the {budget} that fit the "
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
