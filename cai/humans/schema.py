"""The label store's schema and small types: tables, counters kept by triggers, the migrations
from every older schema (:func:`open_schema`), tasks, guidelines, and the rules for rater names,
comments and which side a task's responses are shown on.

Schema 3 keeps counts beside the rows they count, so that no request of the labeling page reads
every task or every label (at 5,000 tasks x 3 raters the page spent 10 ms of CPU per request on
such scans, and the 99th percentile reached 1.2 s): ``tasks.n_labels`` (labels of the task),
``task_counts`` (how many tasks of each kind hold each number of labels) and ``rater_counts``
(each rater's labels, and how many on gold tasks), all kept by SQLite triggers on ``labels`` and
``tasks`` inside the transaction that changes them, so they cannot disagree with the rows.

:mod:`cai.humans.store` is the store itself; see its docstring for the guarantees.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timezone



SCHEMA_VERSION = "3"
CHOICES = ("A", "B", "tie")
KINDS = ("task", "gold")
MAX_LABELER = 64
MAX_COMMENT = 2000

_LABELS = """
CREATE TABLE IF NOT EXISTS labels (
    id INTEGER PRIMARY KEY AUTOINCREMENT,        -- the order labels were given in
    task INTEGER NOT NULL REFERENCES tasks(n),
    labeler TEXT NOT NULL,
    choice TEXT NOT NULL CHECK (choice IN ('A', 'B', 'tie')),
    winner TEXT NOT NULL CHECK (winner IN ('chosen', 'rejected', 'tie')),
    seconds REAL,                                -- time the page showed the task before the pick
    labeled_at TEXT NOT NULL,
    comment TEXT NOT NULL DEFAULT '',
    guideline TEXT,                              -- guidelines.hash shown with the task, if any
    UNIQUE (task, labeler)                       -- a rater labels a task once: no doubles
);
"""
_CLAIMS = """
CREATE TABLE IF NOT EXISTS claims (
    task INTEGER NOT NULL REFERENCES tasks(n),
    labeler TEXT NOT NULL,
    expires REAL NOT NULL,                       -- unix time
    PRIMARY KEY (task, labeler)
);
"""
_GUIDELINES = """
CREATE TABLE IF NOT EXISTS guidelines (
    hash TEXT PRIMARY KEY,                       -- sha256 of title, summary and text, 16 hex digits
    title TEXT NOT NULL,
    summary TEXT NOT NULL,                       -- Markdown shown with each task
    text TEXT NOT NULL                           -- Markdown of the full guidelines
);
"""
RATERS = """
CREATE TABLE IF NOT EXISTS raters (
    key TEXT PRIMARY KEY,                        -- rater_key(name): who the rater is
    name TEXT NOT NULL,                          -- the spelling first seen: what labels record
    first_seen TEXT NOT NULL
);
"""
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tasks (
    n INTEGER PRIMARY KEY,                       -- the order tasks are handed out in
    pair_id TEXT NOT NULL UNIQUE,                -- PreferencePair.id (order-independent content hash)
    pair TEXT NOT NULL,                          -- the pair as read from the tasks file (JSON)
    swap INTEGER NOT NULL CHECK (swap IN (0, 1)),-- 1: the pair's rejected response is shown as A
    source TEXT NOT NULL,
    added_at TEXT NOT NULL,
    kind TEXT NOT NULL DEFAULT 'task' CHECK (kind IN ('task', 'gold')),  -- gold: chosen is the known answer
    guideline TEXT,                              -- guidelines.hash of the text it is judged by
    n_labels INTEGER NOT NULL DEFAULT 0          -- labels of this task (kept by the triggers below)
);
CREATE TABLE IF NOT EXISTS skips (
    task INTEGER NOT NULL REFERENCES tasks(n),
    labeler TEXT NOT NULL,
    PRIMARY KEY (task, labeler)
);
""" + _LABELS + _CLAIMS + _GUIDELINES + RATERS

# Schema 3: counters and the indexes that make every question of the page a lookup. Created
# before the triggers, so that a migration can fill them from the rows first.
_COUNTERS = """
CREATE TABLE IF NOT EXISTS task_counts (
    kind TEXT NOT NULL,
    n_labels INTEGER NOT NULL,
    tasks INTEGER NOT NULL,                      -- tasks of this kind holding n_labels labels
    PRIMARY KEY (kind, n_labels)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS rater_counts (
    labeler TEXT PRIMARY KEY,                    -- labels.labeler
    labels INTEGER NOT NULL,
    gold INTEGER NOT NULL                        -- of which on gold tasks
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS tasks_open ON tasks (kind, n_labels, n);  -- next task with c labels, in order
CREATE INDEX IF NOT EXISTS tasks_kind ON tasks (kind, n);            -- next gold task, in order
CREATE INDEX IF NOT EXISTS labels_by_labeler ON labels (labeler, task);
CREATE INDEX IF NOT EXISTS skips_by_labeler ON skips (labeler, task);
CREATE INDEX IF NOT EXISTS claims_by_labeler ON claims (labeler);
"""
_COUNT_TASK = ("INSERT INTO task_counts (kind, n_labels, tasks) VALUES (NEW.kind, NEW.n_labels, 1) "
               "ON CONFLICT (kind, n_labels) DO UPDATE SET tasks = tasks + 1;")
_UNCOUNT_TASK = "UPDATE task_counts SET tasks = tasks - 1 WHERE kind = OLD.kind AND n_labels = OLD.n_labels;"
_COUNT_LABEL = """
    UPDATE tasks SET n_labels = n_labels + 1 WHERE n = NEW.task;
    INSERT INTO rater_counts (labeler, labels, gold)
        VALUES (NEW.labeler, 1, (SELECT kind = 'gold' FROM tasks WHERE n = NEW.task))
        ON CONFLICT (labeler) DO UPDATE SET labels = labels + 1, gold = gold + excluded.gold;"""
_UNCOUNT_LABEL = """
    UPDATE tasks SET n_labels = n_labels - 1 WHERE n = OLD.task;
    UPDATE rater_counts SET labels = labels - 1, gold = gold - (SELECT kind = 'gold' FROM tasks WHERE n = OLD.task)
        WHERE labeler = OLD.labeler;"""
_TRIGGERS = f"""
CREATE TRIGGER IF NOT EXISTS tasks_added AFTER INSERT ON tasks BEGIN {_COUNT_TASK} END;
CREATE TRIGGER IF NOT EXISTS tasks_removed AFTER DELETE ON tasks BEGIN {_UNCOUNT_TASK} END;
CREATE TRIGGER IF NOT EXISTS tasks_changed AFTER UPDATE OF kind, n_labels ON tasks BEGIN
    {_UNCOUNT_TASK} {_COUNT_TASK}
    UPDATE rater_counts SET gold = gold + (NEW.kind = 'gold') - (OLD.kind = 'gold')
        WHERE OLD.kind != NEW.kind AND labeler IN (SELECT labeler FROM labels WHERE task = NEW.n);
END;
CREATE TRIGGER IF NOT EXISTS labels_added AFTER INSERT ON labels BEGIN {_COUNT_LABEL} END;
CREATE TRIGGER IF NOT EXISTS labels_removed AFTER DELETE ON labels BEGIN {_UNCOUNT_LABEL} END;
CREATE TRIGGER IF NOT EXISTS labels_changed AFTER UPDATE OF task, labeler ON labels BEGIN
    {_UNCOUNT_LABEL} {_COUNT_LABEL}
END;
"""


def _fill_counters(db: sqlite3.Connection) -> None:
    """Counters from the rows (a migration; the triggers keep them from then on)."""
    db.execute("UPDATE tasks SET n_labels = (SELECT COUNT(*) FROM labels l WHERE l.task = tasks.n)")
    db.execute("DELETE FROM task_counts")
    db.execute("INSERT INTO task_counts (kind, n_labels, tasks) SELECT kind, n_labels, COUNT(*) FROM tasks "
               "GROUP BY kind, n_labels")
    db.execute("DELETE FROM rater_counts")
    db.execute("INSERT INTO rater_counts (labeler, labels, gold) SELECT l.labeler, COUNT(*), SUM(t.kind = 'gold') "
               "FROM labels l JOIN tasks t ON t.n = l.task GROUP BY l.labeler")


def _migrate_1_to_2(db: sqlite3.Connection) -> None:
    """Schema 1 (one label per task, one claim per task) to 2, keeping every label; one transaction."""
    db.execute("ALTER TABLE tasks ADD COLUMN kind TEXT NOT NULL DEFAULT 'task' CHECK (kind IN ('task', 'gold'))")
    db.execute("ALTER TABLE tasks ADD COLUMN guideline TEXT")
    db.execute("ALTER TABLE labels RENAME TO labels_v1")
    db.execute("ALTER TABLE claims RENAME TO claims_v1")
    for ddl in (_LABELS, _CLAIMS, _GUIDELINES):
        db.execute(ddl)
    db.execute("INSERT INTO labels (task, labeler, choice, winner, seconds, labeled_at) "
               "SELECT task, labeler, choice, winner, seconds, labeled_at FROM labels_v1 ORDER BY labeled_at, task")
    db.execute("INSERT INTO claims (task, labeler, expires) SELECT task, labeler, expires FROM claims_v1")
    db.execute("DROP TABLE labels_v1")
    db.execute("DROP TABLE claims_v1")
    db.execute("UPDATE meta SET value = '2' WHERE key = 'schema'")


def _migrate_2_to_3(db: sqlite3.Connection) -> None:
    """Schema 2 to 3: label counters kept by triggers, and indexes; every row kept as it is."""
    db.execute(RATERS)  # schema 2 databases made before raters were told apart by key lack it
    db.execute("ALTER TABLE tasks ADD COLUMN n_labels INTEGER NOT NULL DEFAULT 0")
    _run(db, _COUNTERS)
    _fill_counters(db)
    _run(db, _TRIGGERS)
    db.execute("UPDATE meta SET value = '3' WHERE key = 'schema'")


_MIGRATIONS = {"1": _migrate_1_to_2, "2": _migrate_2_to_3}


def _run(db: sqlite3.Connection, script: str) -> None:
    """Run a script statement by statement inside the open transaction (``executescript`` would
    commit it first)."""
    stmt = ""
    for line in script.splitlines(keepends=True):
        stmt += line
        if sqlite3.complete_statement(stmt):
            db.execute(stmt)
            stmt = ""
    if stmt.strip():
        raise ValueError(f"incomplete SQL statement: {stmt.strip()[:60]}")


def open_schema(db: sqlite3.Connection, *, create: bool) -> str | None:
    """Make the database's schema the current one, in one ``BEGIN IMMEDIATE`` transaction: create
    it in an empty file (with ``create``), or migrate an older schema step by step (1 to 2 to 3),
    keeping every row. Returns the schema version found afterwards (None: no ``meta`` table, or
    no schema row: not a label store), which the caller checks against SCHEMA_VERSION."""
    def version() -> str | None:
        if db.execute("SELECT 1 FROM sqlite_master WHERE name = 'meta'").fetchone() is None:
            return None
        row = db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
        return row[0] if row else None

    found = version()
    if found == SCHEMA_VERSION or (found is None and not create) or (found is not None and found not in _MIGRATIONS):
        return found
    db.execute("BEGIN IMMEDIATE")
    try:
        found = version()  # another process may have created or migrated it meanwhile
        if found is None and create and db.execute("SELECT 1 FROM sqlite_master WHERE name = 'meta'").fetchone() is None:
            _run(db, _SCHEMA + _COUNTERS + _TRIGGERS)
            db.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (SCHEMA_VERSION,))
        while found in _MIGRATIONS:
            _MIGRATIONS[found](db)
            found = version()
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
    return version()


class LabelConflict(Exception):
    """The label cannot be stored: the rater labeled the task already, it has its K labels, or
    its remaining places are claimed by other raters."""


class UnknownTask(KeyError):
    pass


@dataclass
class Guideline:
    """The text a task is judged by: a short ``summary`` shown with the task and the full ``text``
    (both Markdown). ``hash`` (16 hex digits of sha256 over title, summary and text) is what labels
    record."""

    title: str
    summary: str
    text: str

    @property
    def hash(self) -> str:
        blob = json.dumps([self.title, self.summary, self.text], ensure_ascii=False)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]


@dataclass
class Task:
    n: int
    pair_id: str
    prompt: list[dict]
    a: list[dict]
    b: list[dict]
    guideline: Guideline | None = None

    def public(self) -> dict:
        """What the page gets: never which response was the pair's "chosen", nor whether it is gold."""
        out = {"n": self.n, "id": self.pair_id, "prompt": self.prompt, "a": self.a, "b": self.b, "guideline": None}
        if self.guideline is not None:
            out["guideline"] = {"hash": self.guideline.hash, "title": self.guideline.title,
                                "summary": self.guideline.summary}
        return out


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


def rater_key(name: str) -> str:
    """Who a rater name stands for: NFKC-normalised, case-folded, inner whitespace collapsed.
    ``Ana``, ``ana``, `` ANA `` and the full-width ``Ａｎａ`` are one rater; the page, the store and
    the stats tell raters apart by this key, never by the spelling typed."""
    return " ".join(unicodedata.normalize("NFKC", name).casefold().split())


def clean_comment(text: str | None) -> str:
    """A free-text comment as stored (stripped); ValueError if longer than MAX_COMMENT characters."""
    text = (text or "").strip()
    if len(text) > MAX_COMMENT:
        raise ValueError(f"comment is longer than {MAX_COMMENT} characters")
    return text


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
