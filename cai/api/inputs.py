"""Inputs the Python API takes in memory, turned into the files the stages read.

The stages read prompts and pairs from files (so a run can be resumed and every row named by its
line); a notebook has a list or a ``datasets.Dataset``. These helpers write such inputs to a JSONL
file in a folder the call owns, keeping each row's position as its line.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from cai.core.errors import CaiError

PromptsLike = Any
"""A path (str or Path) to a prompts file or folder; a list of strings (one user message each), of
message lists (``[{"role", "content"}, ...]``) or of dicts with a ``prompt`` column; or a
``datasets.Dataset`` with a ``prompt`` column."""


def is_path(value: Any) -> bool:
    return isinstance(value, (str, Path)) and not (isinstance(value, str) and "\n" in value)


def prompts_file(prompts: PromptsLike, folder: Path, name: str = "prompts.jsonl") -> tuple[str, str | None]:
    """``(path, id_column)`` of a prompts file for ``prompts``: a path is returned as it is; rows in
    memory are written to ``folder/name`` as JSONL (``{"id", "prompt"}``; a dict row keeps its
    own columns). Raises CaiError naming the row index of a row that is none of the accepted
    shapes."""
    if is_path(prompts):
        if not Path(prompts).exists():
            raise CaiError(f"prompts: '{prompts}' does not exist (pass a file path, a list of prompts or a Dataset)")
        return str(prompts), None
    rows = _rows(prompts, "prompts")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    with open(path, "w", encoding="utf-8") as fh:
        for i, row in enumerate(rows):
            if isinstance(row, str):
                out: dict[str, Any] = {"prompt": row}
            elif isinstance(row, list):
                out = {"messages": row}
            elif isinstance(row, Mapping) and ("prompt" in row or "messages" in row):
                out = dict(row)
            else:
                raise CaiError(f"prompts[{i}]: expected a string, a list of messages or a dict with 'prompt' or 'messages'")
            out.setdefault("id", f"row-{i}")
            fh.write(json.dumps(out, ensure_ascii=False) + "\n")
    return str(path), "id"


_FLAG = re.compile(r"(?<![\w-])--(no-)?([a-z][a-z0-9]*(?:-[a-z0-9]+)*)")


def python_words(text: str) -> str:
    """An error written for the command line, reworded for a Python caller: a flag becomes the
    keyword argument it sets (``--min-p`` -> ``min_p``, ``--no-export`` -> ``export=False``), as
    flags and keywords are the same config fields (:mod:`cai.cli.fields`)."""
    text = text.replace("(pass it as a flag or in --config)", "(pass it as a keyword argument)")
    return _FLAG.sub(lambda m: m.group(2).replace("-", "_") + ("=False" if m.group(1) else ""), text)


@contextlib.contextmanager
def named_in_memory(path: str | None, what: str) -> Iterator[None]:
    """A CaiError that names the temporary file an in-memory input was written to names the row
    instead (``/tmp/cai-x/prompts.jsonl:3: ...`` becomes ``prompts[2]: ...``): that file is gone
    when the call returns (``path`` None: the input was a file). Flags in the message become the
    keyword arguments they set (:func:`python_words`)."""
    try:
        yield
    except CaiError as exc:
        text = python_words(str(exc))
        exc.message, exc.path, exc.line, exc.args = text, None, None, (text,)
        if not path or path not in text:
            raise
        text = re.sub(re.escape(path) + r":(\d+)", lambda m: f"{what}[{int(m.group(1)) - 1}]", text)
        text = text.replace(path, f"{what} (given in memory)")
        exc.message, exc.path, exc.line, exc.args = text, None, None, (text,)
        raise


def check_same_prompts(folder: Path, path: str) -> None:
    """Before resuming ``folder`` with prompts given in memory (written to ``path`` with positional
    ids ``row-N``): every record already there must be of the same row, with the same user turns.
    Otherwise a rerun with other prompts would skip them as done and hand back the old records.
    Raises CaiError naming the first record that differs."""
    records = Path(folder) / "records.jsonl"
    if not records.exists():
        return
    wanted: dict[str, list[str]] = {}
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            wanted[row["id"]] = _user_turns(row)
    with open(records, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue  # a torn last line: the record store repairs it
            rid = rec.get("id")
            have = [m.get("content") for m in rec.get("prompt") or [] if isinstance(m, Mapping) and m.get("role") == "user"]
            if rid not in wanted or not _same_turns(have, wanted[rid]):
                what = "is not among these prompts" if rid not in wanted else "was made from another prompt"
                raise CaiError(f"out={folder}: record {rid} ({records}:{lineno}) {what}; pass the same prompts to "
                               "resume this run, or a new out= folder")


def _same_turns(have: list, wanted: list[str]) -> bool:
    # a one-string prompt may be a transcript (HH "Human: ... Assistant:") the reader split into turns
    return not wanted or have == wanted or (len(wanted) == 1 and bool(have) and str(have[-1]) in wanted[0])


def _user_turns(row: Mapping) -> list[str]:
    value = row.get("messages", row.get("prompt"))
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [m.get("content") for m in value if isinstance(m, Mapping) and m.get("role") == "user"]
    return []


def pairs_file(pairs: Any, folder: Path, name: str = "pairs.jsonl") -> str:
    """A pairs file for ``pairs``: a path as it is, or rows (``PreferencePair`` objects, dicts in
    TRL's prompt/chosen/rejected format, a ``datasets.Dataset``) written as JSONL."""
    if is_path(pairs):
        if not Path(pairs).exists():
            raise CaiError(f"pairs: '{pairs}' does not exist (pass a file path, a list of pairs or a Dataset)")
        return str(pairs)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    with open(path, "w", encoding="utf-8") as fh:
        for i, row in enumerate(_rows(pairs, "pairs")):
            if hasattr(row, "model_dump"):
                row = row.model_dump(mode="json", exclude_none=True)
            if not isinstance(row, Mapping):
                raise CaiError(f"pairs[{i}]: expected a dict with prompt/chosen/rejected or a PreferencePair")
            fh.write(json.dumps(dict(row), ensure_ascii=False) + "\n")
    return str(path)


def _rows(value: Any, what: str) -> Iterable:
    if hasattr(value, "to_list") and hasattr(value, "column_names"):  # datasets.Dataset
        return value.to_list()
    if isinstance(value, (list, tuple)):
        return value
    raise CaiError(f"{what}: expected a path, a list or a datasets.Dataset, got {type(value).__name__}")
