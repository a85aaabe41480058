"""Inputs the Python API takes in memory, turned into the files the stages read.

The stages read prompts and pairs from files (so a run can be resumed and every row named by its
line); a notebook has a list or a ``datasets.Dataset``. These helpers write such inputs to a JSONL
file in a folder the call owns, keeping each row's position as its line.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
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
