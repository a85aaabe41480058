"""Stage manifests (``RUN/<stage>/stage.json``): what a stage was run with, so a rerun can tell
whether to skip it, continue it, or redo it and everything after it.

A manifest is written when a stage starts (``status: running``) and rewritten when it ends
(``status: done`` with a fresh ``output_id``, its seconds and the summary its library function
returned). A stage's *key* is its config (minus settings that change how, not what, it computes)
plus its inputs: the ``output_id`` of every earlier stage it reads and a fingerprint of every
external file or model. Later stages name an earlier one by its ``output_id``, so redoing a stage
changes the key of everything after it, even when the redo reproduces the same bytes.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

from cai import __version__
from cai.core.runs import write_atomic

MANIFEST = "stage.json"

# Settings that change how a stage computes (memory, checkpoints, logging), not what it computes.
VOLATILE = {"flush_seconds", "chunk_size", "quiet", "workers", "ray_address", "save_every", "keep_checkpoints",
            "logging_steps", "eval_batch_size", "rollout_batch_size"}

# Files at most this big are fingerprinted by content; bigger ones (model weights) by size and mtime.
CONTENT_LIMIT = 32 * 2**20


def config_dump(config: Any) -> Any:
    """A stage config as plain JSON data, without :data:`VOLATILE` fields."""
    if hasattr(config, "model_dump"):
        config = config.model_dump(mode="json")
    if isinstance(config, dict):
        return {k: config_dump(v) for k, v in config.items() if k not in VOLATILE}
    if isinstance(config, list | tuple):
        return [config_dump(v) for v in config]
    return config


def digest(data: Any) -> str:
    """sha256 of canonical JSON."""
    return hashlib.sha256(json.dumps(data, sort_keys=True, separators=(",", ":"), default=str).encode()).hexdigest()


def fingerprint(spec: str) -> str:
    """A file's sha256, a folder's digest over its files (content up to :data:`CONTENT_LIMIT`,
    size and mtime beyond), or the spec itself when it is not a path (a hub id, a known model name).
    A SQLite database's write-ahead log (``FILE-wal``) counts with the file: the labeling page's
    store commits there, so the database file alone can stay the same while labels are added."""
    path = Path(spec)
    if path.is_file():
        wal = path.with_name(path.name + "-wal")  # a SQLite database in WAL mode: new rows live there
        if wal.is_file() and wal.stat().st_size:  # until a checkpoint copies them into the file itself
            return digest([_file_fingerprint(path), _file_fingerprint(wal)])
        return _file_fingerprint(path)
    if path.is_dir():
        parts = [(str(p.relative_to(path)), _file_fingerprint(p)) for p in sorted(path.rglob("*"))
                 if p.is_file() and not p.name.startswith(".")]
        return digest(parts)
    return f"name:{spec}"


def _file_fingerprint(path: Path) -> str:
    st = path.stat()
    if st.st_size > CONTENT_LIMIT:
        return f"size:{st.st_size}:mtime:{st.st_mtime_ns}"
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(2**20), b""):
            h.update(block)
    return h.hexdigest()


def read(folder: Path) -> dict | None:
    """The manifest of a stage folder, or None (missing or unreadable: treated as never run)."""
    try:
        data = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def write(folder: Path, data: dict) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    write_atomic(folder / MANIFEST, [json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n"])


def started(folder: Path, stage: str, round_index: int, key: dict) -> dict:
    """Write and return the ``running`` manifest of a stage that starts (or resumes)."""
    data = {"stage": stage, "round": round_index, "status": "running", "cai_version": __version__,
            "config": key["config"], "inputs": key["inputs"], "key": digest(key),
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    write(folder, data)
    return data


def finished(folder: Path, data: dict, seconds: float, summary: dict) -> dict:
    """Mark a stage done: a new ``output_id`` that later stages' keys will name."""
    data = {**data, "status": "done", "output_id": uuid.uuid4().hex, "seconds": round(seconds, 2),
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "summary": summary}
    write(folder, data)
    return data


def changes(old: dict, key: dict) -> list[str]:
    """What differs between a manifest and a new key, in words: ``config generate.sampling.seed``,
    ``input prompts``, ``input stage:sample``."""
    out = [f"config {p}" for p in _diff(old.get("config"), key["config"], "")]
    old_inputs, new_inputs = old.get("inputs") or {}, key["inputs"]
    out += [f"input {name}" for name in sorted(set(old_inputs) | set(new_inputs))
            if old_inputs.get(name) != new_inputs.get(name)]
    return out


def _diff(a: Any, b: Any, where: str) -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        found = []
        for k in sorted(set(a) | set(b)):
            found += _diff(a.get(k), b.get(k), f"{where}.{k}" if where else k)
        return found
    return [] if a == b else [where or "(all)"]


def discard(folder: Path, run: Path) -> None:
    """Remove a stage folder so that a crash midway never leaves a folder whose manifest
    outlives its outputs: it is renamed into ``RUN/.trash-*`` first (atomic), then deleted."""
    from cai.core.runs import release_run

    if not folder.exists():
        return
    release_run(folder)
    trash = run / f".trash-{folder.name}-{uuid.uuid4().hex[:8]}"
    folder.rename(trash)
    shutil.rmtree(trash, ignore_errors=True)


def empty_trash(run: Path) -> None:
    """Delete what an interrupted :func:`discard` left behind."""
    for leftover in run.glob(".trash-*"):
        shutil.rmtree(leftover, ignore_errors=True)
