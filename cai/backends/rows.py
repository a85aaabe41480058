"""Batch calls where a rejected row fails alone.

A backend rejects a conversation it cannot run (longer than the context, refused by the chat
template) by raising :class:`~cai.backends.base.RowsRejected` for the whole batch, naming the
rows. These helpers run the rest and return the reasons, so a stage can fail those rows (named by
the file line or id it knows them by) and write the others.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from cai.backends.base import Labels, RowsRejected, SamplingConfig


def _call_rows(call: Callable[[list, Any], list], rows: Sequence, extra: Any, per_row: bool
               ) -> tuple[list[Any], dict[int, str]]:
    try:
        return call(list(rows), extra), {}
    except RowsRejected as exc:
        reasons = exc.reasons
        if exc.partial is not None:
            return list(exc.partial), reasons
    keep = [i for i in range(len(rows)) if i not in reasons]
    results: list[Any] = [None] * len(rows)
    if keep:
        sub_extra = [extra[i] for i in keep] if per_row else extra
        again, more = _call_rows(call, [rows[i] for i in keep], sub_extra, per_row)
        reasons = {**reasons, **{keep[j]: why for j, why in more.items()}}
        for j, out in zip(keep, again, strict=True):
            results[j] = out
    return results, dict(sorted(reasons.items()))


def generate_rows(backend, conversations: Sequence, sampling: SamplingConfig | None = None
                  ) -> tuple[list[Any], dict[int, str]]:
    """``backend.generate`` where rejected rows fail alone: ``(outputs, reasons)``, outputs None
    at each rejected row, ``reasons`` mapping those row indices to why."""
    return _call_rows(lambda rows, s: backend.generate(rows, s), conversations, sampling, False)


def score_rows(backend, prompts: Sequence, options: Labels) -> tuple[list[Any], dict[int, str]]:
    """``backend.score_choices`` where rejected rows fail alone: ``(probabilities, reasons)``."""
    per_row = bool(options) and not isinstance(options[0], str)
    return _call_rows(lambda rows, o: backend.score_choices(rows, o), prompts, options, per_row)
