"""Run folders shared by every stage: chunked streaming, refusing to resume a folder that holds a
different run, and fsync'd file replacement."""

from __future__ import annotations

import functools

import itertools
import json
import os
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from cai.core.errors import CaiError


def chunks(iterable: Iterable, size: int) -> Iterator[list]:
    """Lists of up to ``size`` items, drawn lazily (memory stays flat however long the input)."""
    it = iter(iterable)
    while chunk := list(itertools.islice(it, size)):
        yield chunk


def timed_chunks(iterable: Iterable, size: int, seconds: float | None, start: int = 8) -> Iterator[list]:
    """Like :func:`chunks`, but each chunk is also sized to take about ``seconds`` of the
    caller's work, so the work a crash loses is bounded by time as well as by count.

    The time is measured between yields (the caller processes a chunk, then asks for the next):
    the first chunk has ``min(start, size)`` items, later ones ``seconds / (seconds per item)``,
    growing at most 4x per chunk, never above ``size``. ``seconds=None`` gives fixed chunks.
    """
    if not seconds:
        yield from chunks(iterable, size)
        return
    it = iter(iterable)
    n = max(1, min(start, size))
    while chunk := list(itertools.islice(it, n)):
        t0 = time.monotonic()
        yield chunk
        per_item = max(time.monotonic() - t0, 1e-6) / len(chunk)
        n = max(1, min(size, int(seconds / per_item), 4 * len(chunk)))


_HELD: dict[str, object] = {}  # run folders this process holds the lock of (open lock files)


def lock_run(out: Path) -> None:
    """Hold an exclusive lock on the run folder ``out`` for the rest of this process, so two
    processes never append to the same run (they would write every record twice). Raises
    CaiError when another process holds it. The OS drops the lock when the process ends, even
    on SIGKILL, so a killed run never blocks its rerun."""
    import fcntl

    key = str(out.resolve())
    if key in _HELD:
        return
    fh = open(out / ".lock", "a")
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.close()
        raise CaiError(f"another cai process is writing {out}; wait for it to finish or use another "
                       "--out folder") from None
    _HELD[key] = fh


def release_run(out: Path) -> None:
    """Drop this process's lock on ``out`` (taken by :func:`lock_run`), e.g. before the folder is
    removed and made anew; a later :func:`lock_run` locks the new folder."""
    fh = _HELD.pop(str(out.resolve()), None)
    if fh is not None:
        fh.close()


def check_resume(out: Path, identity: dict) -> None:
    """Record what defines this run in ``run.json``; a rerun must match it to resume. Takes the
    run folder's lock first (:func:`lock_run`)."""
    if out.exists() and not out.is_dir():
        raise CaiError("--out must be a folder, and this is a file", path=str(out))
    out.mkdir(parents=True, exist_ok=True)
    lock_run(out)
    identity = by_content(identity)
    path = out / "run.json"
    if path.exists():
        try:
            previous = json.loads(path.read_text())
        except json.JSONDecodeError:
            raise CaiError("run.json is not valid JSON; use a new --out folder", path=str(path)) from None
        diffs = [k for k in identity if previous.get(k) != identity[k]]
        if diffs:
            raise CaiError(f"{out} holds a run with a different {', '.join(diffs)}; "
                           "use a new --out folder to start another run")
        return
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(path, [json.dumps(identity, indent=2, sort_keys=True) + "\n"])


def by_content(value):
    """``value`` (a run identity: dicts, lists, strings) with every string that names an existing
    ``.gguf`` file replaced by ``gguf sha256:<digest>``: a model file is the same run wherever it
    lies, and a different one when the file at a path was replaced."""
    if isinstance(value, dict):
        return {k: by_content(v) for k, v in value.items()}
    if isinstance(value, list):
        return [by_content(v) for v in value]
    if isinstance(value, str) and value.lower().endswith(".gguf"):
        path = Path(value).expanduser()
        if path.is_file():
            stat = path.stat()
            return f"gguf sha256:{_sha256(str(path.resolve()), stat.st_size, stat.st_mtime_ns)}"
    return value


@functools.lru_cache(maxsize=16)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    """The file's sha256 (cached per path, size and modification time: a GGUF is hundreds of MB)."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_atomic(path: Path, texts: Iterable[str]) -> int:
    """Write text to ``path`` through a temporary file (fsync'd, then renamed): readers see the old
    file or the complete new one, never a partial one. Returns how many texts were written."""
    tmp = path.with_name(f".{path.name}.tmp")
    count = 0
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            for text in texts:
                fh.write(text)
                count += 1
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)  # the previous file is untouched
        raise
    os.replace(tmp, path)
    return count


def write_json(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
