"""What a row's content may be: text, or text-only typed parts; never media cai cannot show.

Shared by the prompt reader and the pair readers, so a row about an image is refused, and typed
text parts are joined, the same way everywhere.
"""

from __future__ import annotations

from typing import Any


MEDIA_COLUMNS = ("images", "image", "videos", "video", "audios", "audio")
"""Columns of vision/audio preference data (TRL's ``images``, ms-swift, oumi): a row that fills one
is about media cai cannot show a judge, a rater or a text model, so it is refused (never read as
a text-only pair whose prompt still says ``<image>``)."""


def check_media(row: dict) -> None:
    """Raise ValueError naming the column when ``row`` carries images, video or audio."""
    for column in MEDIA_COLUMNS:
        value = row.get(column)
        if value is not None and value != "" and value != [] and value != {}:
            raise ValueError(f"column '{column}' holds media cai cannot use: read as text only, the row's "
                             f"answers would depend on {column} nobody sees; leave such rows out")


def text_content(content: Any, where: str) -> Any:
    """A message's content as text: typed content parts that are all text
    (``[{"type": "text", "text": ...}]``, as TRL and OpenAI write them) are joined with newlines;
    an image, audio or other part is a ValueError naming ``where``. Other values pass unchanged
    (the pair model reports them)."""
    if not isinstance(content, list):
        return content
    texts = []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else type(part).__name__
        if kind != "text" or not isinstance(part.get("text"), str):
            raise ValueError(f"{where} has a '{kind}' content part: cai reads text only; leave such rows out")
        texts.append(part["text"])
    return "\n".join(texts)
