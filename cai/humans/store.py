"""The SQLite store behind the labeling page: tasks, short claims, and one label per task.

Guarantees, each enforced by SQLite rather than by the web server's memory:

- **Nothing is lost.** Every label is its own committed transaction (WAL, ``synchronous=FULL``)
  before the page is told it was saved; killing the server, or closing the browser, loses at
  most the click that had not been answered yet.
- **No doubles.** ``labels.task`` is the primary key: a task gets one human label, whoever gives
  it. A second label for the same task is refused (the same label sent twice is accepted once).
- **No two people on one task.** Handing out a task is a claim (a row in ``claims`` with an expiry,
  renewed while the page shows it) taken inside ``BEGIN IMMEDIATE``, so two labelers asking at once
  are served one after the other and get different tasks. A claim that has expired (a closed
  browser) is handed to the next labeler who asks; the page keeps its own claim alive.

The order a task's two responses are shown in (which one is "A") is a pure function of the pair
id: the same for everyone and every restart, and "chosen" is not always on the left.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable, Iterator

from cai.errors import CaiError
from cai.pairs import PreferencePair

SCHEMA_VERSION = "1"
CHOICES = ("A", "B", "tie")
MAX_LABELER = 64

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tasks (
    n INTEGER PRIMARY KEY,                       -- the order tasks are handed out in
    pair_id TEXT NOT NULL UNIQUE,                -- PreferencePair.id (order-independent content hash)
    pair TEXT NOT NULL,                          -- the pair as read from the tasks file (JSON)
    swap INTEGER NOT NULL CHECK (swap IN (0, 1)),-- 1: the pair's rejected response is shown as A
    source TEXT NOT NULL,
    added_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS claims (
    task INTEGER PRIMARY KEY REFERENCES tasks(n),
    labeler TEXT NOT NULL,
    expires REAL NOT NULL                        -- unix time
);
CREATE TABLE IF NOT EXISTS labels (
    task INTEGER PRIMARY KEY REFERENCES tasks(n),-- one label per task: no doubles
    labeler TEXT NOT NULL,
    choice TEXT NOT NULL CHECK (choice IN ('A', 'B', 'tie')),
    winner TEXT NOT NULL CHECK (winner IN ('chosen', 'rejected', 'tie')),
    seconds REAL,                                -- time the page showed the task before the pick
    labeled_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS skips (
    task INTEGER NOT NULL REFERENCES tasks(n),
    labeler TEXT NOT NULL,
    PRIMARY KEY (task, labeler)
);
"""


class LabelConflict(Exception):
    """The label cannot be stored: the task is labeled already or claimed by someone else."""


class UnknownTask(KeyError):
    pass


@dataclass
class Task:
    n: int
    pair_id: str
    prompt: list[dict]
    a: list[dict]
    b: list[dict]

    def public(self) -> dict:
        """What the page gets: never which response was the pair's "chosen"."""
        return {"n": self.n, "id": self.pair_id, "prompt": self.prompt, "a": self.a, "b": self.b}


def shown_swapped(pair_id: str) -> bool:
    """Whether the pair's rejected response is shown as A: a coin flip seeded by the pair id."""
    return hashlib.sha256(f"cai-humans-order:{pair_id}".encode()).digest()[0] & 1 == 1


def clean_labeler(name: str | None) -> str:
    """A labeler name as stored; ValueError if empty, too long or holding control characters."""
    name = (name or "").strip()
    if not name:
        raise ValueError("labeler name is empty: type your name on the page or pass --labeler")
    if len(name) > MAX_LABELER:
        raise ValueError(f"labeler name is longer than {MAX_LABELER} characters")
    if any(not ch.isprintable() for ch in name):
        raise ValueError("labeler name has control characters")
    return name


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class LabelStore:
    """Tasks and human labels in one SQLite file (see the module docstring for the guarantees)."""

    def __init__(self, path: str | Path, *, lease_seconds: float = 120.0, create: bool = True):
        self.path = Path(path)
        self.lease_seconds = float(lease_seconds)
        if not self.path.exists():
            if not create:
                raise CaiError("no such labels database", path=str(self.path))
            if not self.path.parent.is_dir():
                raise CaiError("the folder for the labels database does not exist", path=str(self.path))
        try:
            with self._connect() as db:
                db.execute("PRAGMA journal_mode=WAL")
                if create:
                    db.executescript(_SCHEMA)
                    db.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (SCHEMA_VERSION,))
                row = db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
        except sqlite3.DatabaseError as exc:
            raise CaiError(f"not a cai labels database: {exc}", path=str(self.path)) from None
        if row is None or row[0] != SCHEMA_VERSION:
            raise CaiError(f"not a cai labels database (schema {row[0] if row else 'missing'})", path=str(self.path))

    # ------------------------------------------------------------ connections

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        # One short-lived connection per operation: safe across server threads and processes.
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        try:
            db.execute("PRAGMA synchronous=FULL")
            db.execute("PRAGMA foreign_keys=ON")
            yield db
        finally:
            db.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One transaction that holds the write lock from its first statement (BEGIN IMMEDIATE)."""
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    # ------------------------------------------------------------ tasks

    def add_tasks(self, pairs: Iterable[PreferencePair], source: str) -> dict:
        """Add pairs as tasks (a pair already present, by id, is kept as it is); one transaction.
        Pairs with identical responses or an empty response are left out and counted."""
        added = identical = empty = 0
        now = _now_iso()
        with self._write() as db:
            for pair in pairs:
                if pair.empty_response:
                    empty += 1
                    continue
                if pair.identical:
                    identical += 1
                    continue
                cur = db.execute(
                    "INSERT OR IGNORE INTO tasks (pair_id, pair, swap, source, added_at) VALUES (?, ?, ?, ?, ?)",
                    (pair.id, json.dumps(pair.row(), ensure_ascii=False), int(shown_swapped(pair.id)), source, now))
                added += cur.rowcount
            db.execute("INSERT OR REPLACE INTO meta VALUES ('tasks_source', ?)", (source,))
            total = db.execute("SELECT COUNT(*) FROM tasks").fetchone()[0]
        return {"added": added, "identical": identical, "empty_response": empty, "total": total}

    def _task(self, row) -> Task:
        n, pair_id, pair_json, swap = row
        pair = json.loads(pair_json)
        a, b = (pair["rejected"], pair["chosen"]) if swap else (pair["chosen"], pair["rejected"])
        return Task(n=n, pair_id=pair_id, prompt=pair["prompt"], a=a, b=b)

    def next_task(self, labeler: str) -> Task | None:
        """The labeler's current task (their live claim), else claim the first free one; None if none."""
        now = time.time()
        expires = now + self.lease_seconds
        with self._write() as db:
            row = db.execute(
                "SELECT t.n, t.pair_id, t.pair, t.swap FROM claims c JOIN tasks t ON t.n = c.task "
                "WHERE c.labeler = ? AND c.expires > ? AND NOT EXISTS (SELECT 1 FROM labels l WHERE l.task = t.n) "
                "ORDER BY t.n LIMIT 1", (labeler, now)).fetchone()
            if row is None:
                db.execute("DELETE FROM claims WHERE labeler = ?", (labeler,))
                row = db.execute(
                    "SELECT t.n, t.pair_id, t.pair, t.swap FROM tasks t "
                    "WHERE NOT EXISTS (SELECT 1 FROM labels l WHERE l.task = t.n) "
                    "AND NOT EXISTS (SELECT 1 FROM claims c WHERE c.task = t.n AND c.expires > ?) "
                    "AND NOT EXISTS (SELECT 1 FROM skips s WHERE s.task = t.n AND s.labeler = ?) "
                    "ORDER BY t.n LIMIT 1", (now, labeler)).fetchone()
                if row is None:
                    return None
            db.execute("INSERT OR REPLACE INTO claims (task, labeler, expires) VALUES (?, ?, ?)",
                       (row[0], labeler, expires))
        return self._task(row)

    def _task_n(self, db: sqlite3.Connection, pair_id: str) -> tuple[int, int]:
        row = db.execute("SELECT n, swap FROM tasks WHERE pair_id = ?", (pair_id,)).fetchone()
        if row is None:
            raise UnknownTask(pair_id)
        return row

    def renew(self, labeler: str, pair_id: str) -> bool:
        """Extend the labeler's claim on a task; False if they no longer hold it."""
        with self._write() as db:
            n, _ = self._task_n(db, pair_id)
            cur = db.execute("UPDATE claims SET expires = ? WHERE task = ? AND labeler = ?",
                             (time.time() + self.lease_seconds, n, labeler))
            return cur.rowcount == 1

    def label(self, labeler: str, pair_id: str, choice: str, seconds: float | None = None) -> bool:
        """Store one label in its own transaction. Returns False if this exact label was stored
        already (a retried request); raises LabelConflict if the task is labeled differently or is
        claimed by another labeler, UnknownTask for an unknown id."""
        if choice not in CHOICES:
            raise ValueError(f"choice must be one of {', '.join(CHOICES)}")
        with self._write() as db:
            n, swap = self._task_n(db, pair_id)
            done = db.execute("SELECT labeler, choice FROM labels WHERE task = ?", (n,)).fetchone()
            if done is not None:
                if tuple(done) == (labeler, choice):
                    return False
                raise LabelConflict(f"task {n} is labeled already (by {done[0]})")
            claim = db.execute("SELECT labeler, expires FROM claims WHERE task = ?", (n,)).fetchone()
            if claim is not None and claim[0] != labeler and claim[1] > time.time():
                raise LabelConflict(f"task {n} is being labeled by {claim[0]}")
            winner = "tie" if choice == "tie" else ("chosen" if (choice == "A") != bool(swap) else "rejected")
            db.execute("INSERT INTO labels (task, labeler, choice, winner, seconds, labeled_at) "
                       "VALUES (?, ?, ?, ?, ?, ?)",
                       (n, labeler, choice, winner, seconds, _now_iso()))
            db.execute("DELETE FROM claims WHERE task = ?", (n,))
        return True

    def skip(self, labeler: str, pair_id: str) -> None:
        """Pass a task on: this labeler won't be offered it again (others will)."""
        with self._write() as db:
            n, _ = self._task_n(db, pair_id)
            db.execute("INSERT OR IGNORE INTO skips (task, labeler) VALUES (?, ?)", (n, labeler))
            db.execute("DELETE FROM claims WHERE task = ? AND labeler = ?", (n, labeler))

    def unskip(self, labeler: str) -> None:
        """Offer the labeler's skipped tasks again."""
        with self._write() as db:
            db.execute("DELETE FROM skips WHERE labeler = ?", (labeler,))

    # ------------------------------------------------------------ reading

    def progress(self, labeler: str | None = None) -> dict:
        with self._connect() as db:
            total = db.execute("SELECT COUNT(*) FROM tasks").fetchone()[0]
            labeled = db.execute("SELECT COUNT(*) FROM labels").fetchone()[0]
            mine = skipped = 0
            if labeler:
                mine = db.execute("SELECT COUNT(*) FROM labels WHERE labeler = ?", (labeler,)).fetchone()[0]
                skipped = db.execute(
                    "SELECT COUNT(*) FROM skips s WHERE s.labeler = ? "
                    "AND NOT EXISTS (SELECT 1 FROM labels l WHERE l.task = s.task)", (labeler,)).fetchone()[0]
        return {"labeled": labeled, "total": total, "mine": mine, "skipped": skipped}

    def labeled(self) -> Iterator[tuple[dict, dict]]:
        """(task pair row, label) for every labeled task, in task order."""
        with self._connect() as db:
            rows = db.execute(
                "SELECT t.n, t.pair, t.swap, t.source, l.labeler, l.choice, l.winner, l.seconds, l.labeled_at "
                "FROM labels l JOIN tasks t ON t.n = l.task ORDER BY t.n").fetchall()
        for n, pair_json, swap, source, labeler, choice, winner, seconds, labeled_at in rows:
            yield json.loads(pair_json), {
                "task": n, "swap": bool(swap), "tasks_source": source, "labeler": labeler, "choice": choice,
                "winner": winner, "seconds": seconds, "labeled_at": labeled_at,
            }
