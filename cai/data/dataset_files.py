"""Write a dataset folder row by row: ``data.jsonl``, ``data.parquet`` and ``hf/`` (``save_to_disk``).

Every export in cai (SL-CAI's SFT and preference sets, ``cai label``, ``cai humans export`` and
``import``, ``cai mix``, ``cai data route``) is such a folder. :class:`DatasetFiles` takes rows one
at a time and writes all three files as it goes, a batch of rows at a time (``datasets``'
``ArrowWriter`` for ``hf/``, its ``ParquetWriter`` for ``data.parquet``, the same writers
``save_to_disk`` and ``to_parquet`` use), so memory is bounded by one batch whatever the row count.

``hf/`` has ``save_to_disk``'s layout (``data-00000-of-0000N.arrow`` shards of at most
``datasets.config.MAX_SHARD_SIZE`` each, ``state.json``, ``dataset_info.json`` with the features)
and loads with ``datasets.load_from_disk``; ``data.parquet`` carries the features in its
``huggingface`` metadata like ``Dataset.to_parquet``'s; its row groups are the writer's batches.

Everything is written in a staging folder inside the target and moved into place only once complete (one
rename a file), so an interrupted or failed write leaves the previous folder as it was. A folder with no rows gets an
empty ``data.jsonl`` and, with ``empty_tables=True``, an empty ``hf/`` (one shard) and Parquet file.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any, Callable, Iterable

from cai.core.errors import CaiError

BATCH_ROWS = 1000  # rows held before a batch goes to Arrow and Parquet (datasets' DEFAULT_MAX_BATCH_SIZE)


class DatasetFiles:
    """An incremental writer of one dataset folder; use as a context manager.

    ``features``: the ``datasets.Features`` of the Arrow and Parquet files (their column order is
    the features' order; a row may leave a column out, which is then null; a column the features
    do not name is an error naming the row). ``arrow_row``: turns a JSONL row into its Arrow row
    (e.g. an object kept as JSON text in Arrow); default: the row as is. ``batch_rows``: rows per
    batch (memory is bounded by one batch).

    Example::

        with DatasetFiles(out, feats) as files:
            for row in rows:
                files.add(row)
        files.count
    """

    def __init__(self, target: str | Path, features, *, arrow_row: Callable[[dict], dict] | None = None,
                 batch_rows: int = BATCH_ROWS, empty_tables: bool = False):
        self.target = Path(target)
        self.features = features
        self.arrow_row = arrow_row
        self.batch_rows = max(1, int(batch_rows))
        self.empty_tables = empty_tables
        self.count = 0
        self._batch: list[dict] = []
        self._stage: Path | None = None
        self._jsonl = None
        self._arrow = None  # current shard's ArrowWriter
        self._parquet = None
        self._shards: list[Path] = []
        self._shard_bytes = 0
        self._bytes = 0

    # ------------------------------------------------------------ lifecycle

    def __enter__(self) -> DatasetFiles:
        self.open()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def open(self) -> None:
        """Start writing into a staging folder inside the target (one a killed write left there is removed)."""
        self.target.mkdir(parents=True, exist_ok=True)
        for old in self.target.glob(".writing-*"):  # left by a write that was killed
            shutil.rmtree(old, ignore_errors=True)
        self._stage = Path(tempfile.mkdtemp(prefix=".writing-", dir=self.target))
        self._jsonl = open(self._stage / "data.jsonl", "w", encoding="utf-8")

    def add(self, row: dict[str, Any]) -> None:
        """Write one row (to JSONL at once, to Arrow and Parquet with its batch)."""
        self._jsonl.write(json.dumps(row, ensure_ascii=False) + "\n")
        self._batch.append(self.arrow_row(row) if self.arrow_row is not None else row)
        self.count += 1
        if len(self._batch) >= self.batch_rows:
            self._flush()

    def close(self) -> int:
        """Finish every file and move them into the target (replacing the old ones); returns the row count."""
        self._flush()
        self._jsonl.flush()
        os.fsync(self._jsonl.fileno())
        self._jsonl.close()
        if self.count == 0 and self.empty_tables:
            self._open_tables()  # an empty shard and Parquet file with the schema
        hf = None
        if self._arrow is not None:
            self._finish_shard()
            self._parquet.finalize()
            self._parquet.close()
            hf = self._stage / "hf"
            hf.mkdir()
            n = len(self._shards)
            files = []
            for i, shard in enumerate(self._shards):
                name = f"data-{i:05d}-of-{n:05d}.arrow"
                os.replace(shard, hf / name)
                files.append({"filename": name})
            self._write_meta(hf, files)
        # Swap in: each file is replaced in one rename (the old hf/ first moved into the staging
        # folder, which goes last), so a reader sees the old or the new version of each file.
        old_hf = self.target / "hf"
        if old_hf.is_dir():
            os.replace(old_hf, self._stage / "hf.old")
        elif old_hf.exists():
            old_hf.unlink()
        if hf is not None:
            os.replace(self._stage / "data.parquet", self.target / "data.parquet")
            os.replace(hf, self.target / "hf")
        else:
            (self.target / "data.parquet").unlink(missing_ok=True)
        os.replace(self._stage / "data.jsonl", self.target / "data.jsonl")
        shutil.rmtree(self._stage, ignore_errors=True)
        self._stage = None
        return self.count

    def abort(self) -> None:
        """Drop everything written so far; the target keeps its previous files."""
        for writer in (self._arrow, self._parquet):
            if writer is not None:
                try:
                    writer.close()
                except Exception:  # noqa: BLE001 - already failing; the staging folder goes anyway
                    pass
        if self._jsonl is not None and not self._jsonl.closed:
            self._jsonl.close()
        if self._stage is not None:
            shutil.rmtree(self._stage, ignore_errors=True)
            self._stage = None

    # ------------------------------------------------------------ batches

    def _open_tables(self) -> None:
        from datasets.arrow_writer import ParquetWriter

        self._parquet = ParquetWriter(features=self.features, path=str(self._stage / "data.parquet"),
                                      writer_batch_size=self.batch_rows)
        self._new_shard()

    def _new_shard(self) -> None:
        from datasets.arrow_writer import ArrowWriter

        path = self._stage / f"shard-{len(self._shards):05d}.arrow"
        self._shards.append(path)
        self._arrow = ArrowWriter(features=self.features, path=str(path), writer_batch_size=self.batch_rows)
        self._shard_bytes = 0

    def _finish_shard(self) -> None:
        self._arrow.finalize()  # with no rows, a shard holding only the schema
        self._arrow.close()
        self._arrow = None

    def _flush(self) -> None:
        if not self._batch:
            return
        import pyarrow as pa
        from datasets import config
        from datasets.utils.py_utils import convert_file_size_to_int

        first = self.count - len(self._batch) + 1  # the batch's first row, counted from 1
        columns = self.features.keys()
        for i, r in enumerate(self._batch):
            if not r.keys() <= columns:
                extra = ", ".join(k for k in r if k not in columns)
                raise CaiError(f"row {first + i}: column(s) {extra} not in the dataset's features "
                               f"({', '.join(columns)})", path=str(self.target))
        schema = self.features.arrow_schema
        try:
            table = pa.Table.from_pydict({c: [r.get(c) for r in self._batch] for c in columns}, schema=schema)
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError):
            for i, r in enumerate(self._batch):  # name the first row that does not fit
                try:
                    pa.Table.from_pylist([r], schema=schema)
                except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError) as exc:
                    raise CaiError(f"row {first + i}: {exc}", path=str(self.target)) from None
            raise
        self._batch = []
        if self._arrow is None:
            self._open_tables()
        elif self._shard_bytes and self._shard_bytes + table.nbytes > convert_file_size_to_int(config.MAX_SHARD_SIZE):
            self._finish_shard()
            self._new_shard()
        self._arrow.write_table(table)
        self._parquet.write_table(table)
        self._shard_bytes += table.nbytes
        self._bytes += table.nbytes

    def _write_meta(self, hf: Path, files: list[dict]) -> None:
        """``state.json`` and ``dataset_info.json`` as ``save_to_disk`` writes them."""
        from dataclasses import asdict

        from datasets import DatasetInfo

        state = {"_data_files": files, "_fingerprint": uuid.uuid4().hex[:16], "_format_columns": None,
                 "_format_kwargs": {}, "_format_type": None, "_output_all_columns": False, "_split": "train"}
        (hf / "state.json").write_text(json.dumps(state, indent=2, sort_keys=True), encoding="utf-8")
        info = DatasetInfo(features=self.features, dataset_size=self._bytes, size_in_bytes=self._bytes,
                           splits=[{"name": "train", "num_bytes": self._bytes, "num_examples": self.count}])
        info_dict = asdict(info)
        with open(hf / "dataset_info.json", "w", encoding="utf-8") as fh:
            json.dump({k: info_dict[k] for k in sorted(info_dict)}, fh, indent=2)


def write_dataset(rows: Iterable[dict], target: str | Path, features, *, arrow_row: Callable[[dict], dict] | None = None,
                  batch_rows: int = BATCH_ROWS, empty_tables: bool = False) -> int:
    """Write ``rows`` as the dataset folder ``target`` (see :class:`DatasetFiles`); returns the row count.

    With no rows, ``target`` gets an empty ``data.jsonl`` and no ``hf/`` or Parquet (or empty ones
    with ``empty_tables``); either way the old ones are gone.
    """
    with DatasetFiles(target, features, arrow_row=arrow_row, batch_rows=batch_rows, empty_tables=empty_tables) as files:
        for row in rows:
            files.add(row)
    return files.count
