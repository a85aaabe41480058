"""Reading the text files people author, with the checks every such file gets."""

from __future__ import annotations

import os

from cai.diagnostics import Diagnostic

MAX_FILE_BYTES = 1 << 20  # 1 MiB: principle and constitution files are prose, not data dumps


def read_text_file(path: str) -> tuple[str | None, list[Diagnostic]]:
    """Return ``(text, [])`` or ``(None, [diagnostic])`` for a missing, huge, empty or non-UTF-8 file."""
    try:
        size = os.path.getsize(path)
    except OSError as exc:
        return None, [Diagnostic(path, None, f"cannot read file: {exc.strerror or exc}")]
    if size > MAX_FILE_BYTES:
        return None, [Diagnostic(path, 1, f"file is {size} bytes; the limit is {MAX_FILE_BYTES} (1 MiB)")]
    with open(path, "rb") as fh:
        raw = fh.read()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        return None, [Diagnostic(path, line, f"file is not valid UTF-8 (byte 0x{raw[exc.start]:02x} at offset {exc.start})")]
    if not text.strip():
        return None, [Diagnostic(path, 1, "file is empty")]
    return text.replace("\r\n", "\n"), []
