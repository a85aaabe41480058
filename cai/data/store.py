"""Append-only JSONL record storage that survives being killed at any moment.

Records are appended a batch at a time with one ``write`` followed by flush + fsync. If the
process dies mid-write, the file ends in a torn line; opening the store cuts the file back to its
last complete line, so a rerun resumes with every finished record exactly once.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable, Iterator

from pydantic import ValidationError

from cai.core.errors import CaiError
from cai.data.records import Record


class RecordStore:
    def __init__(self, directory: str | Path, filename: str = "records.jsonl"):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.path = self.dir / filename
        self.done: set[str] = set()
        self.repaired_bytes = 0
        if self.path.exists():
            self._recover()

    def _recover(self) -> None:
        """Drop a torn trailing line and collect the ids already written."""
        good_end = 0
        with open(self.path, "rb") as fh:
            offset = 0
            for lineno, line in enumerate(fh, 1):
                end = offset + len(line)
                if not line.endswith(b"\n"):
                    break  # torn final write
                try:
                    rid = json.loads(line)["id"]
                except (json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError):
                    raise CaiError(
                        "corrupt record line (not written by an interrupted run); move the file aside to start over",
                        path=str(self.path), line=lineno,
                    ) from None
                self.done.add(rid)
                good_end = offset = end
        size = self.path.stat().st_size
        if size != good_end:
            self.repaired_bytes = size - good_end
            with open(self.path, "r+b") as fh:
                fh.truncate(good_end)
                fh.flush()
                os.fsync(fh.fileno())

    def append(self, records: Iterable[Record]) -> int:
        new = [r for r in records if r.id not in self.done]
        if not new:
            return 0
        data = "".join(r.model_dump_json(exclude_none=True) + "\n" for r in new).encode("utf-8")
        with open(self.path, "ab") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        self.done.update(r.id for r in new)
        return len(new)

    def __iter__(self) -> Iterator[Record]:
        yield from iter_records(self.path)


def iter_records(path: str | Path) -> Iterator[Record]:
    """Stream records from a records.jsonl (or a run folder holding one)."""
    path = Path(path)
    if path.is_dir():
        path = path / "records.jsonl"
    if not path.exists():
        raise CaiError(f"no records at {path}: run 'cai generate' first")
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.endswith("\n"):
                break  # torn line of a run still in progress or killed
            try:
                yield Record.model_validate_json(line)
            except ValidationError as exc:
                first = exc.errors()[0]
                raise CaiError(f"invalid record: {'.'.join(map(str, first['loc']))}: {first['msg']}",
                               path=str(path), line=lineno) from None
