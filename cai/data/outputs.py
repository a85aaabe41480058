"""Helpers shared by ``cai route`` and ``cai mix``: output folders swapped in whole, ``SRC=VALUE``
flags, canonical message text."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from cai.core.errors import CaiError
from cai.data.pairs import canonical


@contextmanager
def staged_outputs(out: str | Path, names: list[str]) -> Iterator[Path]:
    """Yield a fresh folder beside ``out`` to write into; on success move ``names`` into ``out``.

    The outputs named in ``names`` that ``out`` already holds are replaced only after every new
    file is complete; on an error ``out`` is left as it was. Other files in ``out`` are untouched.
    """
    out = Path(out).resolve()  # "." has no name to stage beside
    if out.exists() and not out.is_dir():
        raise CaiError("output exists and is not a folder", path=out)
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.new-", dir=out.parent))
    try:
        yield stage
        out.mkdir(exist_ok=True)
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
        for name in names:
            if (out / name).exists():
                os.replace(out / name, old / name)
        for name in names:
            if (stage / name).exists():
                os.replace(stage / name, out / name)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def parse_assignments(values: list[str] | None, flag: str, cast: Callable[[str], object]) -> dict:
    """``["a=1", "b=2,c=3"]`` as ``{"a": cast("1"), ...}``; a malformed item is a one-line error naming the flag."""
    out: dict = {}
    for value in values or []:
        for item in value.split(","):
            if not item.strip():
                continue
            key, sep, raw = item.partition("=")
            key, raw = key.strip(), raw.strip()
            if not sep or not key or not raw:
                raise CaiError(f"{flag} expects NAME=VALUE, got '{item}'")
            try:
                out[key] = cast(raw)
            except ValueError:
                raise CaiError(f"{flag} {key}={raw}: not a valid {cast.__name__}") from None
    return out


def canon(messages) -> str:
    """Messages as a comparable string (role + stripped content), as the pair id hashes them."""
    return json.dumps(canonical(messages), ensure_ascii=False)


def preview(messages, width: int = 70) -> str:
    text = " ".join(" ".join(m.content.split()) for m in messages if m.role != "system")
    return text if len(text) <= width else text[: width - 1] + "…"
