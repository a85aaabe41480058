"""SQLite connections of the label store: one per thread, kept open, and one writer at a time.

Why (measured with ``benchmarks/labeling_burst.py``, 50 raters at once on 127.0.0.1): a fresh
connection per operation paid for a WAL checkpoint every time the last one closed (about 1 ms
of each request), and writers that found the database locked waited in SQLite's busy handler,
which sleeps in growing steps (up to 100 ms a time) instead of waking when the lock is free:
the 99th percentile of ``/api/next`` and ``/api/label`` reached 1.1-1.4 s while the median was
34 ms. Here each server thread keeps its connection, and writers in this process queue on a
lock (woken the moment it is free) before ``BEGIN IMMEDIATE``, and the log is checkpointed on a
thread of its own rather than inside some writer's commit; writers in other processes (an
export, a second server) still meet SQLite's own lock and busy timeout, so the guarantees of
:mod:`cai.humans.store` stay SQLite's.

Durability is unchanged, and cheaper: a write is on disk before its caller returns. SQLite's
``synchronous=FULL`` calls fsync on every commit (3-6 ms each on this project's CI disk), one
writer after another. Here commits run at ``synchronous=NORMAL`` (in WAL mode a commit is then in
the write-ahead log, safe from a killed process but not yet from a power cut), and each writer,
after its commit and outside the writer lock, waits for one fsync of the log that covers its
commit: a *group commit*, where one fsync serves every writer that committed while the previous
one ran. A store whose database is not in WAL mode (a file system without shared memory) keeps
``synchronous=FULL``.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

_LOCKS: dict[str, threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()
BUSY_TIMEOUT_S = 30.0
CHECKPOINT_EVERY = 200  # commits between checkpoints of the write-ahead log (SQLite's own: ~1000 pages)


def _writer_lock(path: Path) -> threading.Lock:
    """The one in-process writer lock of a database file (shared by every store on that file)."""
    key = str(path.resolve())
    with _LOCKS_GUARD:
        return _LOCKS.setdefault(key, threading.Lock())


class Connections:
    """Per-thread connections to one SQLite file.

    ``read()`` yields this thread's connection (autocommit; each statement sees the latest
    commit); ``write()`` yields it inside ``BEGIN IMMEDIATE`` … ``COMMIT`` (``ROLLBACK`` on any
    exception) while holding the file's in-process writer lock. ``close()`` closes every
    connection opened so far (call it when no thread uses the store any more)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._local = threading.local()
        self._opened: list[sqlite3.Connection] = []
        self._guard = threading.Lock()
        self._lock = _writer_lock(self.path)
        self._wal: bool | None = None      # the database is in WAL mode (decided on first connect)
        self._committed = 0                # commits made through this object
        self._synced = 0                   # commits known to be on disk
        self._sync_lock = threading.Lock()  # one fsync at a time; later writers ride on it
        self._checkpointed = 0             # commits made when the last checkpoint started
        self._checkpointing = False

    def _get(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            # check_same_thread=False only so that close() may run on another thread; each
            # connection is otherwise used by the thread that opened it.
            db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
            if self._wal is None:  # WAL is a property of the file: set once, kept by every connection
                self._wal = db.execute("PRAGMA journal_mode=WAL").fetchone()[0].lower() == "wal"
            db.execute("PRAGMA synchronous=NORMAL" if self._wal else "PRAGMA synchronous=FULL")
            db.execute("PRAGMA foreign_keys=ON")
            if self._wal:
                db.execute("PRAGMA wal_autocheckpoint=0")  # checkpoints run beside the writers: _checkpoint
            self._local.db = db
            with self._guard:
                self._opened.append(db)
        return db

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        yield self._get()

    @contextmanager
    def write(self, durable: bool = True) -> Iterator[sqlite3.Connection]:
        """A write transaction; with ``durable`` (the default) it is on disk when this returns.
        ``durable=False`` is for writes whose loss in a power cut costs nothing (a claim on a
        task, which expires anyway): still atomic, and safe from a killed process."""
        with self._lock:
            db = self._get()
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
            self._committed += 1
            mine = self._committed
        if self._wal and mine - self._checkpointed >= CHECKPOINT_EVERY:
            self._checkpoint()
        if durable:
            self._sync(mine)

    def _checkpoint(self) -> None:
        """Copy the write-ahead log into the database on a thread of its own (PASSIVE: it takes no
        writer lock, so labels go on being stored meanwhile). SQLite's automatic checkpoint would
        run inside a writer's COMMIT, with two fsyncs, while every other writer waits for it."""
        with self._guard:
            if self._checkpointing:
                return
            self._checkpointing, self._checkpointed = True, self._committed

        def run() -> None:
            try:
                db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
                try:
                    db.execute("PRAGMA wal_checkpoint(PASSIVE)")
                finally:
                    db.close()  # not the last connection: the server's stay open
            except sqlite3.Error:
                pass  # the next checkpoint, or the last connection's close, copies the log
            finally:
                self._checkpointing = False

        threading.Thread(target=run, name="cai-humans-checkpoint", daemon=True).start()

    def _sync(self, commit: int) -> None:
        """Return once commit number ``commit`` is on disk: fsync the write-ahead log unless an
        fsync that started after that commit has finished already (group commit)."""
        if not self._wal:
            return  # synchronous=FULL synced it in COMMIT
        with self._sync_lock:
            if self._synced >= commit:
                return  # another writer's fsync covered this commit while we waited
            upto = self._committed  # every commit counted so far is in the log: this fsync covers them all
            try:
                fd = os.open(f"{os.path.realpath(self.path)}-wal", os.O_RDONLY)  # SQLite puts it by the real file
            except FileNotFoundError:
                fd = None  # the log was checkpointed into the database (synced then) and removed
            if fd is not None:
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
            self._synced = upto

    def close(self) -> None:
        with self._guard:
            opened, self._opened = self._opened, []
        for db in opened:
            db.close()
        self._local = threading.local()

    def __del__(self):  # a store dropped without close(): do not leave file handles behind
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass
