"""Prompts for PPO: read once with :class:`cai.data.prompts.PromptReader`, then served in a fixed order.

The order depends only on the seed and the step number: step s (1-based) takes global positions
``(s−1)·G … s·G−1`` of an endless sequence of shuffled passes over the prompts (G = batch size ×
processes; each pass is a fresh permutation seeded by ``seed + pass``), and process r takes its
slice of them. A resumed run therefore sees exactly the prompts the uninterrupted one would.
"""

from __future__ import annotations

import torch



def load_prompt_rows(cfg) -> list:
    """Every prompt as a :class:`~cai.data.prompts.PromptRow` (messages, id, ``file:line``)."""
    return list(cfg.reader())


def usable_prompts(rows: list, tokenizer, scorer) -> tuple[list[list[dict]], list[str]]:
    """The prompts both chat templates take (the policy's, and the reward model's with a response),
    checked before any rollout: ``(prompts, ["file:line: why", ...])`` for the rows left out. A
    refused system turn is merged by :func:`cai.backends.chat.apply_template` and is no refusal."""
    from cai.backends.base import PromptRejected

    kept, dropped = [], []
    for row in rows:
        try:
            render_prompt(tokenizer, row.messages)
            scorer.render(row.messages, "ok")
        except PromptRejected as exc:
            dropped.append(f"{row.source}: {exc.message}")
            continue
        kept.append(row.messages)
    return kept, dropped


class PromptOrder:
    def __init__(self, n: int, seed: int):
        self.n, self.seed = n, seed
        self._perms: dict[int, list[int]] = {}

    def _perm(self, epoch: int) -> list[int]:
        if epoch not in self._perms:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._perms = {epoch: torch.randperm(self.n, generator=g).tolist()}  # keep one pass
        return self._perms[epoch]

    def indices(self, step: int, batch_size: int, rank: int = 0, world: int = 1) -> list[int]:
        """Prompt indices of process ``rank`` at ``step`` (1-based)."""
        start = (step - 1) * batch_size * world + rank * batch_size
        return [self._perm(p // self.n)[p % self.n] for p in range(start, start + batch_size)]


def render_prompt(tokenizer, messages: list[dict]) -> tuple[str, bool]:
    """Prompt text for the policy and whether the tokenizer should add its special tokens."""
    if tokenizer.chat_template:
        from cai.backends.chat import apply_template

        return apply_template(tokenizer, messages, tokenize=False, add_generation_prompt=True), False
    return "\n".join(m["content"] for m in messages) + "\n", True
