"""Reading prompts: JSONL, CSV, Hugging Face dataset folders, Anthropic HH-RLHF transcripts.

Prompts are streamed row by row (never all held), each as chat messages with a stable id and the
``file:line`` it came from, so a malformed row is reported where it is.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Literal

from cai.core.errors import CaiError, looked_at
from cai.core.files import csv_rows, open_text, unencodable
from cai.data.content import check_media, text_content
from cai.data.records import prompt_id

log = logging.getLogger("cai.data.prompts")
_SAID: set = set()  # (file, line), column of the blank rows already named

PromptFormat = Literal["auto", "jsonl", "csv", "hf", "hh"]
HH_TURN = re.compile(r"\n\n(Human|Assistant):(?: |$)")  # a final "Assistant:" may lack the space


@dataclass
class PromptRow:
    id: str
    messages: list[dict]
    source: str


def parse_hh_transcript(text: str) -> list[dict]:
    """Turn ``"\\n\\nHuman: …\\n\\nAssistant: …"`` into chat messages (empty list if not a transcript).

    A transcript ending in ``"\\n\\nAssistant:"`` (with or without a space) ends in an assistant
    message with empty content, never in a human turn with ``"Assistant:"`` glued to it.
    """
    text = text.rstrip()
    text = text if text.startswith("\n\n") else "\n\n" + text.lstrip()
    parts = HH_TURN.split(text)
    if len(parts) < 3 or parts[0].strip():
        return []
    messages = []
    for speaker, content in zip(parts[1::2], parts[2::2]):
        messages.append({"role": "user" if speaker == "Human" else "assistant", "content": content.strip()})
    return messages


def hh_prompt(messages: list[dict], turns: str = "first") -> list[dict]:
    """The prompt part of an HH conversation: the first human turn, or everything up to the last one."""
    if turns == "first":
        first = next((m for m in messages if m["role"] == "user"), None)
        return [first] if first else []
    last_user = max((i for i, m in enumerate(messages) if m["role"] == "user"), default=-1)
    return messages[: last_user + 1]


def detect_format(path: Path) -> str:
    if path.is_dir():
        return "hf"
    name = path.name.lower().removesuffix(".gz")
    if name.endswith(".csv"):
        return "csv"
    if name.endswith((".jsonl", ".json", ".ndjson")):
        return "jsonl"
    raise CaiError(f"cannot tell the format of {path}; pass --prompt-format jsonl|csv|hf|hh")


def media_in(row: dict) -> str | None:
    """Why a prompt row cannot be read as text (an ``images``/``image``/``videos``/``audio``
    column), or None: its prompt would be about something no text model sees."""
    try:
        check_media(row)
    except ValueError as err:
        return str(err)
    return None


class PromptReader:
    """Iterate prompts from a file or dataset folder.

    ``column`` names the prompt text column (a string: a user message, or an HH transcript);
    a ``messages`` column (a list of {role, content}) is used when present. ``id_column`` names a
    column holding ids; without it a row's ``id`` field is its id when present and non-empty, and
    other ids are derived from the prompt content. Files are read by
    :func:`cai.core.files.open_text` (UTF-8, a byte-order mark dropped, ``.gz`` read through).

    A row that cannot be used fails alone and the others are read: a blank prompt cell, or text
    that cannot be encoded (a lone surrogate such as JSON's ``"\\ud83d"``, which no tokenizer or
    server takes: :func:`cai.core.files.unencodable`). Each is logged once, named by ``file:line``,
    and listed in :attr:`skipped` / :attr:`left_out` (``(file:line, why)``) after a pass; every
    stage reads its prompts here, so no backend ever sees such text.
    """

    def __init__(self, path: str | Path, fmt: PromptFormat = "auto", column: str = "prompt",
                 id_column: str | None = None, hh_turns: str = "first", system_prompt: str | None = None):
        self.path = Path(path)
        if not self.path.exists():
            raise CaiError(f"prompts not found: {self.path}{looked_at(self.path)}")
        self.fmt = detect_format(self.path) if fmt in ("auto", "hh") else fmt
        self.hh = fmt == "hh"
        self.column, self.id_column, self.hh_turns = column, id_column, hh_turns
        self.system_prompt = system_prompt
        self.skipped: list[str] = []  # file:line of rows left out, from the last pass
        self.left_out: list[tuple[str, str]] = []  # (file:line, why) of the same rows

    def __iter__(self) -> Iterator[PromptRow]:
        seen: dict[str, int] = {}
        count = 0
        self.skipped = []
        self.left_out = []
        for where, row in self._rows():
            why = media_in(row)  # a prompt about an image nobody sees: that row fails alone
            messages = self._messages(row, where) if why is None else []
            if why is not None:
                messages = None
            for i, m in enumerate(messages or []):
                why = why or unencodable(m["content"], "the prompt" if len(messages) == 1 else f"message {i + 1}")
            if messages is not None:
                why = why or unencodable(row.get(self.id_column or "id"), "the id")
            if messages is None or why:  # a blank prompt cell or unencodable text: that row fails alone
                why = why or f"no text in column '{self.column}'"
                self.skipped.append(f"{where[0]}:{where[1]}")
                self.left_out.append((f"{where[0]}:{where[1]}", why))
                if (where, self.column) not in _SAID:  # once per process: a run reads its prompts several times
                    _SAID.add((where, self.column))
                    log.warning("%s:%s: row left out: %s", where[0], where[1], why)
                continue
            if self.system_prompt and messages[0]["role"] != "system":
                messages = [{"role": "system", "content": self.system_prompt}] + messages
            own = row.get("id") if self.id_column is None else None  # an `id` field is used when present
            if self.id_column or own not in (None, ""):
                if self.id_column and (self.id_column not in row or row[self.id_column] in (None, "")):
                    raise CaiError(f"missing id column '{self.id_column}'", path=where[0], line=where[1])
                rid = str(row[self.id_column] if self.id_column else own)
                if rid in seen:
                    raise CaiError(f"duplicate id '{rid}'", path=where[0], line=where[1])
                seen[rid] = 1
            else:
                base = prompt_id(messages)
                rid = prompt_id(messages, seen.get(base, 0))
                seen[base] = seen.get(base, 0) + 1
            count += 1
            yield PromptRow(rid, messages, f"{where[0]}:{where[1]}")
        if count == 0:
            blank = f" ({len(self.skipped)} rows left out; first: {self.left_out[0][0]}: {self.left_out[0][1]})" \
                if self.skipped else ""
            raise CaiError(f"no prompts in {self.path}{blank}")

    def _messages(self, row: dict, where) -> list[dict] | None:
        path, line = where
        conversational = isinstance(row.get(self.column), list) and not self.hh  # TRL's prompt-only format
        if (isinstance(row.get("messages"), list) or conversational) and not self.hh:
            msgs = row["messages"] if isinstance(row.get("messages"), list) else row[self.column]
            field = "messages" if isinstance(row.get("messages"), list) else self.column
            try:  # text-only typed content parts ([{"type": "text", "text": ...}]) are joined
                msgs = [{**m, "content": text_content(m.get("content"), f"'{field}' message {i + 1}")}
                        if isinstance(m, dict) else m for i, m in enumerate(msgs)]
            except ValueError as err:
                raise CaiError(str(err), path=path, line=line) from None
            if not msgs or not all(isinstance(m, dict) and m.get("role") in ("system", "user", "assistant")
                                   and isinstance(m.get("content"), str) for m in msgs):
                raise CaiError(f"'{field}' must be a list of {{role, content}}", path=path, line=line)
            return [{"role": m["role"], "content": m["content"]} for m in msgs]
        column = self.column
        if column not in row and self.hh and "chosen" in row:
            column = "chosen"
        value = row.get(column)
        if column in row and (value is None or isinstance(value, str) and not value.strip()):
            return None
        if not isinstance(value, str) or not value.strip():
            keys = ", ".join(map(str, row)) or "none"
            raise CaiError(f"row has no text in column '{column}' (columns: {keys}; pass --prompt-column)",
                           path=path, line=line)
        if self.hh or HH_TURN.search(value) and value.lstrip().startswith(("Human:", "\n\nHuman:")):
            messages = hh_prompt(parse_hh_transcript(value), self.hh_turns)
            if not messages:
                raise CaiError(f"column '{column}' is not an HH transcript ('\\n\\nHuman: …')", path=path, line=line)
            return messages
        return [{"role": "user", "content": value.strip()}]

    def _rows(self) -> Iterator[tuple[tuple[str, int], dict]]:
        path = str(self.path)
        if self.fmt == "hf":
            from datasets import load_from_disk

            try:
                ds = load_from_disk(path)
            except Exception as exc:  # datasets raises several types for a bad folder
                raise CaiError(f"not a Hugging Face dataset folder (save_to_disk): {exc}", path=path) from None
            if hasattr(ds, "keys"):  # a DatasetDict: use its first split
                ds = ds[next(iter(ds.keys()))]
            for i, row in enumerate(ds):
                yield (path, i + 1), row
            return
        if self.fmt == "csv":  # the one CSV rule: BOM dropped, ';' sheets, a row's first line
            for line, row in csv_rows(self.path):
                yield (path, line), row
            return
        try:
            with open_text(path, newline="") as fh:  # one rule for every text input: BOM dropped
                for i, line in enumerate(fh, 1):
                    if not line.strip():
                        continue
                    try:
                        row = json.loads(line)
                    except json.JSONDecodeError as exc:
                        raise CaiError(f"malformed JSON: {exc.msg}", path=path, line=i) from None
                    if not isinstance(row, dict):
                        raise CaiError("each line must be a JSON object", path=path, line=i)
                    yield (path, i), row
        except UnicodeDecodeError:
            raise CaiError("prompts file is not valid UTF-8", path=path) from None
