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
