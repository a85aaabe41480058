"""The label store's schema and small types: tables, the schema-1 migration, tasks, guidelines,
and the rules for rater names, comments and which side a task's responses are shown on.

:mod:`cai.humans.store` is the store itself; see its docstring for the guarantees.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timezone



SCHEMA_VERSION = "2"
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
    guideline TEXT                               -- guidelines.hash of the text it is judged by
);
CREATE TABLE IF NOT EXISTS skips (
    task INTEGER NOT NULL REFERENCES tasks(n),
    labeler TEXT NOT NULL,
    PRIMARY KEY (task, labeler)
);
""" + _LABELS + _CLAIMS + _GUIDELINES + RATERS


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
