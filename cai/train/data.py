"""Datasets for the trainers: preference pairs (reward model, DPO) and SFT conversations.

A data argument is either a folder with ``train/`` and ``test/`` splits (each a preference or SFT
folder, e.g. written by :func:`cai.data.pairs.write_pairs` or ``cai mix``), or a single folder/file. A
single preference dataset is split by a hash of each pair's id, so the same pair always lands on
the same side whatever order the rows come in.

Every problem with the data is a one-line :class:`CaiError` naming the file and, for missing
columns, the columns a trainer expects.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path
from typing import Any

from cai.core.errors import CaiError, looked_at
from cai.data.pairs import PreferencePair, read_pairs, resolve_pairs_path

PREFERENCE_COLUMNS = ("prompt", "chosen", "rejected")
PREFERENCE_OPTIONAL = ("p_chosen", "weight", "source")
SFT_FORMATS = ("messages", "prompt+completion", "text")


def split_dirs(data: str | Path) -> tuple[Path, Path | None]:
    """``(train, test)`` for a folder with ``train/`` (and maybe ``test/``), else ``(data, None)``."""
    p = Path(data)
    if not p.exists():
        raise CaiError(f"no such file or folder{looked_at(p)}", path=str(p))
    if p.is_dir() and (p / "train").exists():
        test = p / "test"
        return p / "train", test if test.exists() else None
    return p, None


def column_names(path: Path) -> list[str]:
    """Columns of a JSONL file (keys of its first row), a CSV file, a Parquet file or a save_to_disk folder."""
    if path.is_dir():
        info = path / "dataset_info.json"
        if info.is_file():
            features = json.loads(info.read_text(encoding="utf-8")).get("features") or {}
            return list(features)
        raise CaiError("not a dataset folder (no dataset_info.json)", path=str(path))
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        return list(pq.read_schema(path).names)
    from cai.core.files import jsonl_rows, open_text

    if path.name.lower().removesuffix(".gz").endswith(".csv"):
        import csv

        with open_text(path, newline="") as fh:
            return list(next(csv.reader(fh), []))
    for _, row in jsonl_rows(path):
        return list(row)
    raise CaiError("the dataset is empty", path=str(path))


# ---------------------------------------------------------------- preference pairs


def _read_preferences(path: Path, allow_empty: bool = False, counts: dict | None = None) -> list[PreferencePair]:
    file = resolve_pairs_path(path)
    if allow_empty and file.suffix == ".jsonl" and file.stat().st_size == 0:
        return []  # e.g. `cai mix --test-size 0` writes an empty test split
    columns = column_names(file)
    missing = [c for c in ("chosen", "rejected") if c not in columns]
    if missing:
        raise CaiError(
            f"missing column(s) {', '.join(missing)}; a preference dataset needs "
            f"{', '.join(PREFERENCE_COLUMNS)} (optional: {', '.join(PREFERENCE_OPTIONAL)})",
            path=str(file),
        )
    counts = counts if counts is not None else {}
    pairs = list(read_pairs(file, counts=counts))
    if not pairs:
        empty = counts["empty_response"]
        raise CaiError("the dataset is empty" + (f" ({empty} pairs with an empty response dropped)" if empty else ""),
                       path=str(file))
    return pairs


def in_test_split(pair_id: str, fraction: float, seed: int) -> bool:
    """Deterministic held-out membership from the pair's content id."""
    if fraction <= 0:
        return False
    digest = hashlib.sha256(f"{seed}:{pair_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


def load_preference_splits(data: str | Path, *, test_fraction: float = 0.0, seed: int = 0,
                           counts: dict | None = None) -> tuple[list[PreferencePair], list[PreferencePair]]:
    """Training and held-out pairs: the ``train/``/``test/`` folders, or one dataset split by id hash.

    ``counts`` (both splits together) gets read_pairs' counts: ``empty_response`` (pairs dropped),
    ``prompt_repeated`` (rows whose responses repeated the prompt, stripped), ``invalid``.
    """
    counts = counts if counts is not None else {}
    train_path, test_path = split_dirs(data)
    train = _read_preferences(train_path, counts=counts)
    if test_path is not None:
        return train, _read_preferences(test_path, allow_empty=True, counts=counts)
    if test_fraction <= 0:
        return train, []
    test = [p for p in train if in_test_split(p.id, test_fraction, seed)]
    keep = [p for p in train if not in_test_split(p.id, test_fraction, seed)]
    if not keep:
        raise CaiError(f"test_size {test_fraction} leaves no training pairs", path=str(train_path))
    return keep, test


def source_counts(pairs: list[PreferencePair]) -> dict[str, int]:
    return dict(sorted(Counter(p.source for p in pairs).items()))


def _messages(messages) -> list[dict[str, str]]:
    return [{"role": m.role, "content": m.content} for m in messages]


def preference_dataset(pairs: list[PreferencePair], *, extra: bool = True):
    """A ``datasets.Dataset`` in TRL's conversational preference format.

    With ``extra``, the soft label and weight columns (``p_chosen``, ``weight``) come along.
    """
    from datasets import Dataset

    rows: list[dict[str, Any]] = []
    for p in pairs:
        row: dict[str, Any] = {"prompt": _messages(p.prompt), "chosen": _messages(p.chosen),
                               "rejected": _messages(p.rejected)}
        if extra:
            row.update(p_chosen=float(p.p_chosen), weight=float(p.weight))
        rows.append(row)
    return Dataset.from_list(rows)


# ---------------------------------------------------------------- SFT conversations


def _sft_file(path: Path) -> Path:
    """An SFT dataset file or folder: a run folder's ``sft/``, ``hf/``, ``data.jsonl`` or ``data.parquet``."""
    if path.is_file():
        return path
    if (path / "sft").is_dir():
        path = path / "sft"
    for cand in (path, path / "hf"):
        if (cand / "dataset_info.json").is_file():
            return cand
    for cand in ("data.jsonl", "data.parquet"):
        if (path / cand).is_file():
            return path / cand
    raise CaiError("no SFT data found (expected sft/, hf/, data.jsonl or data.parquet)", path=str(path))


def _load_table(file: Path):
    """The table and each row's name: ``file:line`` in a JSONL file, ``file:N`` (N-th row) otherwise."""
    from datasets import Dataset, load_from_disk

    if file.is_dir() or file.suffix == ".parquet":
        ds = load_from_disk(str(file)) if file.is_dir() else Dataset.from_parquet(str(file))
        return ds, [f"{file}:{i}" for i in range(1, len(ds) + 1)]
    from cai.core.files import jsonl_rows

    rows, names = [], []
    for lineno, row in jsonl_rows(file):
        rows.append(row)
        names.append(f"{file}:{lineno}")
    return Dataset.from_list(rows), names


def _sft_dataset(path: Path, completion_only: bool, names: list | None = None):
    file = _sft_file(path)
    columns = column_names(file)
    if "messages" in columns:
        keep = ["messages"]
    elif "prompt" in columns and "completion" in columns:
        keep = ["prompt", "completion"]
    elif "text" in columns:
        keep = ["text"]
    else:
        raise CaiError(
            f"no SFT columns among {', '.join(columns) or 'none'}; expected messages "
            "(or prompt and completion, or text)", path=str(file))
    ds, row_names = _load_table(file)
    ds = ds.select_columns(keep)
    if names is not None:
        names.extend(row_names)
    if len(ds) == 0:
        raise CaiError("the dataset is empty", path=str(file))
    if keep == ["messages"] and completion_only:
        ds = ds.map(_split_last_turn, remove_columns=["messages"])
    return ds


def _split_last_turn(row: dict) -> dict:
    """``messages`` as TRL's conversational prompt/completion: the last assistant turn is the completion."""
    messages = row["messages"]
    if not messages or messages[-1]["role"] != "assistant":
        raise CaiError("an SFT conversation must end with an assistant message")
    return {"prompt": messages[:-1], "completion": messages[-1:]}


def load_sft_splits(data: str | Path, *, completion_only: bool = True, names: dict | None = None):
    """Training and (if there is a ``test/`` folder) evaluation datasets for SFTTrainer. ``names``
    gets each split's row names (``names["train"]``, ``names["test"]``: ``file:line``)."""
    names = names if names is not None else {}
    train_path, test_path = split_dirs(data)
    train = _sft_dataset(train_path, completion_only, names.setdefault("train", []))
    test = _sft_dataset(test_path, completion_only, names.setdefault("test", [])) if test_path is not None else None
    return train, test
