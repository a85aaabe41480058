"""Reading the text files people author, with the checks every such file gets.

One reading rule for every text input (prompts, pairs, labels, probes, responses, principle files,
constitutions, recipes, guidelines, chat templates): UTF-8, with or without a byte-order mark
(Excel and Notepad write one), ``.gz`` read through. :func:`open_text` opens such a file; the
mark never reaches a column name, a JSON parser or a front-matter check.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

from cai.core.diagnostics import Diagnostic
from cai.core.errors import CaiError

MAX_FILE_BYTES = 1 << 20  # 1 MiB: principle and constitution files are prose, not data dumps


def open_text(path: str | Path, newline: str | None = None):
    """Open a text input for reading by the one rule: UTF-8, a leading byte-order mark dropped,
    ``.gz`` decompressed. ``newline=""`` for the csv module."""
    import gzip

    path = Path(path)
    if path.name.endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8-sig", newline=newline)
    return open(path, encoding="utf-8-sig", newline=newline)


def unencodable(value, _where: str = "") -> str | None:
    """Where ``value`` (a string, or the strings inside a list or dict, keys included) cannot be
    written as UTF-8, or None when it can.

    JSON allows escapes such as ``"\\ud83d"``: half of a surrogate pair with no other half (a *lone
    surrogate*, from a truncated emoji). ``json.loads`` accepts it, but no tokenizer, file or HTTP
    body can encode it, so a row holding one has to fail alone, named by its line, before any
    backend sees it. Returns e.g. ``"lone surrogate U+D83D at character 41 of 'the prompt'"`` (``_where``
names the value; inside lists and dicts, the path to the string is added).
    """
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            of = f" of '{_where}'" if _where else ""
            return f"lone surrogate U+{ord(value[exc.start]):04X} at character {exc.start + 1}{of}"
        return None
    if isinstance(value, dict):
        for k, v in value.items():
            found = unencodable(k, _where) or unencodable(v, f"{_where}.{k}" if _where else str(k))
            if found:
                return found
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            found = unencodable(v, f"{_where}.{i}" if _where else str(i))
            if found:
                return found
    return None


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


def _delimiter(opener, path: Path) -> str:
    """',' unless the header line has none and has ';' or a tab: Excel in many locales saves
    "CSV" with semicolons, and a tab-separated export is common too."""
    try:
        with opener(path, "rt", encoding="utf-8-sig", newline="") as fh:
            header = fh.readline()
    except (UnicodeDecodeError, OSError, EOFError):
        return ","  # the reader reports it
    if "," in header:
        return ","
    return ";" if header.count(";") >= max(header.count("\t"), 1) else "\t" if "\t" in header else ","


def csv_rows(path: Path, check_header: Callable[[list[str]], None] | None = None) -> Iterator[tuple[int, dict]]:
    """``(line, row)`` for each row of a CSV file (UTF-8 with or without BOM; ``.gz`` too; cells split
    by ',', or by ';' or a tab when the header line has no comma), where
    ``line`` is the line the row starts on (a quoted cell may span lines). ``check_header`` sees
    the column names before any row. Raises CaiError naming the file when it is not UTF-8, is
    malformed CSV or cannot be read (a truncated ``.gz``)."""
    import csv
    import gzip

    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rt", encoding="utf-8-sig", newline="") as fh:
            reader = csv.DictReader(fh, delimiter=_delimiter(opener, path))
            header = reader.fieldnames or []  # reads the header line
            if check_header is not None:
                check_header(list(header))
            start = reader.line_num + 1
            for row in reader:
                line, start = start, reader.line_num + 1
                yield line, row
    except UnicodeDecodeError:
        raise CaiError("not UTF-8 text", path=str(path)) from None
    except csv.Error as exc:
        raise CaiError(f"malformed CSV: {exc}", path=str(path)) from None
    except (OSError, EOFError) as exc:
        raise CaiError(f"cannot read: {exc}", path=str(path)) from None


def jsonl_rows(path: str | Path, on_error: Callable[[int, str], None] | None = None) -> Iterator[tuple[int, dict]]:
    """``(line, row)`` for each JSON object of a JSONL file read by the one rule (:func:`open_text`),
    blank lines skipped. A line that is not JSON, or not a JSON object, raises a CaiError naming the
    file and line; with ``on_error`` it is reported there as ``(line, message)`` and skipped, so one
    bad row fails alone. Raises CaiError when the file is not UTF-8 or cannot be read."""
    import json

    def bad(lineno: int, message: str) -> None:
        if on_error is None:
            raise CaiError(message, path=str(path), line=lineno)
        on_error(lineno, message)

    try:
        with open_text(path) as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    bad(lineno, f"invalid JSON: {exc.msg}")
                    continue
                if not isinstance(row, dict):
                    bad(lineno, "a row must be a JSON object")
                    continue
                yield lineno, row
    except UnicodeDecodeError:
        raise CaiError("not UTF-8 text", path=str(path)) from None
    except (OSError, EOFError) as exc:  # e.g. a truncated .gz
        raise CaiError(f"cannot read: {exc}", path=str(path)) from None

