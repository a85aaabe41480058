"""Token-id rows as one padded batch: the ids and attention mask every local model call needs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal


def pad_rows(rows: Sequence[Sequence[int]], pad_id: int, side: Literal["left", "right"] = "left"):
    """``(ids, mask)``, both ``(B, T)`` long tensors on the CPU, ``T`` the longest row.

    Left padding lines the last tokens up for generation; right padding keeps positions from 0,
    which is what sequence-classification heads that read the last real token expect.
    """
    import torch

    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for b, r in enumerate(rows):
        span = slice(width - len(r), width) if side == "left" else slice(0, len(r))
        ids[b, span] = torch.tensor(list(r), dtype=torch.long)
        mask[b, span] = 1
    return ids, mask


def align_pad_id(tokenizer, model=None, *, name: str = "model") -> int:
    """The one pad rule wherever cai loads a model (TRL's RewardTrainer uses the same): pad with
    the tokenizer's pad token, else its end-of-text token; and make the model's config name that
    same id. A sequence-classification head reads the last token that is not ``config.pad_token_id``:
    if the config named another id than the one padded with, a reward would be read at a pad token
    and change with what else is in the batch. Returns the pad id; raises CaiError when the tokenizer
    has neither token."""
    from cai.core.errors import CaiError

    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise CaiError(f"the tokenizer of {name!r} has neither a pad nor an end-of-text token")
        tokenizer.pad_token = tokenizer.eos_token
    pad = tokenizer.pad_token_id
    if model is not None:
        model.config.pad_token_id = pad
        text = model.config.get_text_config() if hasattr(model.config, "get_text_config") else None
        if text is not None and text is not model.config:
            text.pad_token_id = pad
        generation = getattr(model, "generation_config", None)
        if generation is not None:
            generation.pad_token_id = pad
    return pad
