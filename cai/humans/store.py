"""The SQLite store behind the labeling page: tasks, short claims, and each rater's label.

Guarantees, each enforced by SQLite rather than by the web server's memory:

- **Nothing is lost.** Every label is its own committed transaction, fsynced (WAL, group commit:
  :mod:`cai.humans.db`) before the page is told it was saved; killing the server, or closing the
  browser, loses at most the click that had not been answered yet.
- **One rater, one identity.** Names are matched by :func:`rater_key` (NFKC, case, spacing):
  ``ana`` after ``Ana`` is ``Ana``, so one person cannot fill two places of a task.
- **No doubles.** ``labels`` is unique on (task, labeler): a rater labels a task at most once (the
  same label sent twice is accepted once), and a task takes at most ``raters_per_task`` (K) labels
  from different raters (K = 1: one label per task, whoever gives it).
- **No more raters on a task than it needs.** Handing out a task is a claim (a row in ``claims``
  with an expiry, renewed while the page shows it) taken inside ``BEGIN IMMEDIATE``: a task is
  offered while its labels plus the live claims of other raters are fewer than K, so two raters
  asking at once are served one after the other. A claim that has expired (a closed browser)
  frees its place for the next rater who asks; the page keeps its own claim alive.
- **Gold tasks** (``kind='gold'``, pairs whose ``chosen`` is the known answer) are offered to every
  rater once, mixed in at ``gold_rate`` of each rater's labels; they are scored, never exported.

Each task carries the guideline it is judged by (``guidelines``: hash, title, summary and full
text as Markdown); every label records the hash of the guideline shown with it.

The order a task's two responses are shown in (which one is "A") is a pure function of the pair
id: the same for everyone and every restart, and "chosen" is not always on the left.

Databases of an older schema (1: one label per task; 2: no label counters) are migrated in place
to schema 3 when opened (:func:`~cai.humans.schema.open_schema`).
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Iterable, Iterator

from cai.core.errors import CaiError, looked_at
from cai.data.pairs import PreferencePair
from cai.humans.db import Connections
from cai.humans.schema import (  # noqa: F401  (re-exported: the store's public types)
    CHOICES,
    KINDS,
    SCHEMA_VERSION,
    Guideline,
    LabelConflict,
    Task,
    UnknownTask,
    _now_iso,
    clean_comment,
    clean_labeler,
    open_schema,
    rater_key,
    shown_swapped,
)

_TASK_COLUMNS = "t.n, t.pair_id, t.pair, t.swap, g.title, g.summary, g.text"
_TASK_FROM = "tasks t LEFT JOIN guidelines g ON g.hash = t.guideline"
_UNLABELED_BY_ME = "NOT EXISTS (SELECT 1 FROM labels l WHERE l.task = t.n AND l.labeler = :me)"
_OPEN_FOR_ME = f"{_UNLABELED_BY_ME} AND NOT EXISTS (SELECT 1 FROM skips s WHERE s.task = t.n AND s.labeler = :me)"


class LabelStore:
    """Tasks and human labels in one SQLite file (see the module docstring for the guarantees).

    ``raters_per_task`` (K): how many different raters label each task. ``gold_rate``: the share
    of each rater's labels given to gold tasks (when there are any).
    """

    def __init__(self, path: str | Path, *, lease_seconds: float = 120.0, create: bool = True,
                 raters_per_task: int = 1, gold_rate: float = 0.1):
        self.path = Path(path)
        self.lease_seconds = float(lease_seconds)
        if raters_per_task < 1:
            raise CaiError(f"--raters-per-task must be 1 or more, got {raters_per_task}")
        if not 0.0 <= gold_rate < 1.0:
            raise CaiError(f"--gold-rate must be in [0, 1), got {gold_rate}")
        self.raters_per_task = int(raters_per_task)
        self.gold_rate = float(gold_rate)
        self._db = Connections(self.path)
        if not self.path.exists():
            if not create:
                raise CaiError(f"no such labels database{looked_at(self.path)}", path=str(self.path))
            if not self.path.parent.is_dir():
                raise CaiError("the folder for the labels database does not exist", path=str(self.path))
        try:
            with self._connect() as db:
                found = open_schema(db, create=create)
        except sqlite3.DatabaseError as exc:
            raise CaiError(f"not a cai labels database: {exc}", path=str(self.path)) from None
        if found != SCHEMA_VERSION:
            raise CaiError(f"not a cai labels database (schema {found or 'missing'})", path=str(self.path))
        self._raters: dict[str, str] = {}

    def rater(self, name: str | None, *, register: bool = True) -> str:
        """The stored name of the rater behind ``name``: the spelling first seen for its
        :func:`~cai.humans.schema.rater_key` (so ``ana`` after ``Ana`` is ``Ana``, one rater with
        one place per task). ValueError for a name :func:`clean_labeler` refuses. With
        ``register=False`` an unseen name is returned as given, not recorded."""
        name = clean_labeler(name)
        key = rater_key(name)
        if key not in self._raters:
            with self._connect() as db:
                row = db.execute("SELECT name FROM raters WHERE key = ?", (key,)).fetchone()
            if row is None and not register:
                return name
            if row is None:  # not fsynced alone: the rater's first label, fsynced, is later in the same log
                with self._write(durable=False) as db:
                    db.execute("INSERT OR IGNORE INTO raters (key, name, first_seen) VALUES (?, ?, ?)",
                               (key, name, _now_iso()))
                    row = db.execute("SELECT name FROM raters WHERE key = ?", (key,)).fetchone()
            self._raters[key] = row[0]
        return self._raters[key]

    # ------------------------------------------------------------ connections

    def _connect(self):
        """This thread's connection, kept open (see :mod:`cai.humans.db`)."""
        return self._db.read()

    def _write(self, durable: bool = True):
        """One transaction that holds the write lock from its first statement (BEGIN IMMEDIATE);
        ``durable=False`` for claims only (see :meth:`cai.humans.db.Connections.write`)."""
        return self._db.write(durable)

    def close(self) -> None:
        """Close the store's connections (it reopens them when used again)."""
        self._db.close()

    # ------------------------------------------------------------ tasks

    def add_tasks(self, pairs: Iterable[PreferencePair], source: str, *, kind: str = "task") -> dict:
        """Add pairs as tasks (a pair already present, by id, is kept as it is); one transaction.

        ``kind="gold"``: pairs whose ``chosen`` is the known answer, used to score raters.
        Pairs with identical responses or an empty response are left out and counted."""
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}")
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
                    "INSERT OR IGNORE INTO tasks (pair_id, pair, swap, source, added_at, kind) VALUES (?, ?, ?, ?, ?, ?)",
                    (pair.id, json.dumps(pair.row(), ensure_ascii=False), int(shown_swapped(pair.id)), source, now,
                     kind))
                added += cur.rowcount
            if kind == "task":
                db.execute("INSERT OR REPLACE INTO meta VALUES ('tasks_source', ?)", (source,))
            total = db.execute("SELECT COALESCE(SUM(tasks), 0) FROM task_counts WHERE kind = ?", (kind,)).fetchone()[0]
        return {"added": added, "identical": identical, "empty_response": empty, "total": total}

    def pairs(self, kind: str = "task") -> Iterator[tuple[str, dict]]:
        """(pair id, pair row) of every task of this kind, in task order."""
        with self._connect() as db:
            rows = db.execute("SELECT pair_id, pair FROM tasks WHERE kind = ? ORDER BY n", (kind,)).fetchall()
        for pair_id, pair_json in rows:
            yield pair_id, json.loads(pair_json)

    def set_guidelines(self, by_pair: dict[str, Guideline | None]) -> int:
        """Set the guideline each task is judged by (pair id → Guideline, None for none); returns
        how many tasks changed. Labels already given keep the hash they were given under."""
        changed = 0
        with self._write() as db:
            for pair_id, g in by_pair.items():
                if g is not None:
                    db.execute("INSERT OR IGNORE INTO guidelines (hash, title, summary, text) VALUES (?, ?, ?, ?)",
                               (g.hash, g.title, g.summary, g.text))
                cur = db.execute("UPDATE tasks SET guideline = ? WHERE pair_id = ? AND guideline IS NOT ?",
                                 (g.hash if g else None, pair_id, g.hash if g else None))
                changed += cur.rowcount
        return changed

    def guideline(self, hash_: str) -> Guideline | None:
        with self._connect() as db:
            row = db.execute("SELECT title, summary, text FROM guidelines WHERE hash = ?", (hash_,)).fetchone()
        return Guideline(*row) if row else None

    def _task(self, row) -> Task:
        n, pair_id, pair_json, swap, g_title, g_summary, g_text = row
        pair = json.loads(pair_json)
        a, b = (pair["rejected"], pair["chosen"]) if swap else (pair["chosen"], pair["rejected"])
        guideline = Guideline(g_title, g_summary, g_text) if g_title is not None else None
        return Task(n=n, pair_id=pair_id, prompt=pair["prompt"], a=a, b=b, guideline=guideline)

    def _wants_gold(self, db: sqlite3.Connection, labeler: str) -> bool:
        """Whether the rater's next task should be gold: their gold share would stay within gold_rate."""
        if self.gold_rate <= 0:
            return False
        row = db.execute("SELECT gold, labels FROM rater_counts WHERE labeler = ?", (labeler,)).fetchone()
        gold, total = row or (0, 0)
        return gold + 1 <= self.gold_rate * (total + 1)

    def _first_open(self, db: sqlite3.Connection, labeler: str, now: float) -> tuple | None:
        """The first regular task (lowest n) the labeler has neither labeled nor skipped whose
        labels plus other raters' live claims are fewer than K. One ordered index lookup per
        label count c < K (index ``tasks_open``: kind, n_labels, n), the lowest n of the K answers
        kept: tasks that have their K labels are never read, however many there are. Each lookup
        passes over only the tasks held by live claims, and those this rater labeled or skipped."""
        k, best = self.raters_per_task, None
        for c in range(k):
            row = db.execute(
                f"SELECT {_TASK_COLUMNS} FROM tasks t INDEXED BY tasks_open LEFT JOIN guidelines g ON g.hash = t.guideline "
                f"WHERE t.kind = 'task' AND t.n_labels = :c AND t.n < :below AND {_OPEN_FOR_ME} "
                "AND (SELECT COUNT(*) FROM claims cl WHERE cl.task = t.n AND cl.expires > :now) < :k - :c "
                "ORDER BY t.n LIMIT 1",
                {"c": c, "below": best[0] if best else 2 ** 62, "me": labeler, "now": now, "k": k}).fetchone()
            best = row or best
        return best

    def next_task(self, labeler: str) -> Task | None:
        """The labeler's current task (their live claim), else claim a task they have not labeled
        whose labels plus other raters' live claims are fewer than K (or a gold task, at the gold
        rate); None if none. Indexed lookups only: the cost does not grow with the tasks stored."""
        labeler = self.rater(labeler)
        now = time.time()
        expires = now + self.lease_seconds
        with self._write(durable=False) as db:  # a claim: lost in a power cut, the task is offered again
            row = db.execute(
                f"SELECT {_TASK_COLUMNS} FROM claims c JOIN tasks t ON t.n = c.task "
                "LEFT JOIN guidelines g ON g.hash = t.guideline "
                f"WHERE c.labeler = :me AND c.expires > :now AND {_UNLABELED_BY_ME} ORDER BY t.n LIMIT 1",
                {"me": labeler, "now": now}).fetchone()
            if row is None:
                db.execute("DELETE FROM claims WHERE labeler = ?", (labeler,))
                regular = row = self._first_open(db, labeler, now)
                if regular is not None and self._wants_gold(db, labeler):
                    gold = db.execute(
                        f"SELECT {_TASK_COLUMNS} FROM tasks t INDEXED BY tasks_kind "
                        f"LEFT JOIN guidelines g ON g.hash = t.guideline WHERE t.kind = 'gold' AND {_OPEN_FOR_ME} "
                        "ORDER BY t.n LIMIT 1", {"me": labeler}).fetchone()
                    row = gold or regular
                if row is None:
                    return None
            db.execute("DELETE FROM claims WHERE task = ? AND expires <= ?", (row[0], now))
            db.execute("INSERT OR REPLACE INTO claims (task, labeler, expires) VALUES (?, ?, ?)",
                       (row[0], labeler, expires))
        return self._task(row)

    def _task_n(self, db: sqlite3.Connection, pair_id: str) -> tuple[int, int, str, str | None]:
        row = db.execute("SELECT n, swap, kind, guideline FROM tasks WHERE pair_id = ?", (pair_id,)).fetchone()
        if row is None:
            raise UnknownTask(pair_id)
        return row

    def renew(self, labeler: str, pair_id: str) -> bool:
        """Extend the labeler's live claim on a task; False if they no longer hold it (it expired:
        its place may have gone to someone else)."""
        labeler = self.rater(labeler)
        now = time.time()
        with self._write(durable=False) as db:
            n = self._task_n(db, pair_id)[0]
            cur = db.execute("UPDATE claims SET expires = ? WHERE task = ? AND labeler = ? AND expires > ?",
                             (now + self.lease_seconds, n, labeler, now))
            return cur.rowcount == 1

    def label(self, labeler: str, pair_id: str, choice: str, seconds: float | None = None,
              comment: str = "") -> bool:
        """Store one label in its own transaction. Returns False if this exact label was stored
        already (a retried request); raises LabelConflict if the rater labeled the task differently,
        the task has its K labels, or its free places are claimed by other raters; UnknownTask for
        an unknown id; ValueError for a bad choice or comment."""
        labeler = self.rater(labeler)
        if choice not in CHOICES:
            raise ValueError(f"choice must be one of {', '.join(CHOICES)}")
        comment = clean_comment(comment)
        now = time.time()
        with self._write() as db:
            n, swap, kind, guideline = self._task_n(db, pair_id)
            mine = db.execute("SELECT choice FROM labels WHERE task = ? AND labeler = ?", (n, labeler)).fetchone()
            if mine is not None:
                if mine[0] == choice:
                    return False
                raise LabelConflict(f"task {n} is labeled by you already ({mine[0]}); undo it first")
            if kind == "task":
                done = db.execute("SELECT labeler FROM labels WHERE task = ? ORDER BY id", (n,)).fetchall()
                if len(done) >= self.raters_per_task:
                    raise LabelConflict(f"task {n} is labeled already (by {', '.join(r[0] for r in done)})")
                others = [r[0] for r in db.execute(
                    "SELECT labeler FROM claims WHERE task = ? AND labeler != ? AND expires > ? ORDER BY labeler",
                    (n, labeler, now))]
                held = db.execute("SELECT 1 FROM claims WHERE task = ? AND labeler = ? AND expires > ?",
                                  (n, labeler, now)).fetchone()
                if held is None and len(done) + len(others) >= self.raters_per_task:
                    raise LabelConflict(f"task {n} is being labeled by {', '.join(others)}")
            winner = "tie" if choice == "tie" else ("chosen" if (choice == "A") != bool(swap) else "rejected")
            db.execute("INSERT INTO labels (task, labeler, choice, winner, seconds, labeled_at, comment, guideline) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                       (n, labeler, choice, winner, seconds, _now_iso(), comment, guideline))
            db.execute("DELETE FROM claims WHERE task = ? AND labeler = ?", (n, labeler))
        return True

    def undo(self, labeler: str, pair_id: str) -> Task:
        """Take back the rater's own label of a task and hand the task back to them (claimed, so
        its place is theirs); other raters' labels are untouched. LabelConflict if the rater has
        no label on it, UnknownTask for an unknown id."""
        labeler = self.rater(labeler)
        with self._write() as db:
            n = self._task_n(db, pair_id)[0]
            cur = db.execute("DELETE FROM labels WHERE task = ? AND labeler = ?", (n, labeler))
            if cur.rowcount == 0:
                raise LabelConflict(f"task {n} has no label of yours to undo")
            db.execute("DELETE FROM claims WHERE labeler = ?", (labeler,))
            db.execute("INSERT INTO claims (task, labeler, expires) VALUES (?, ?, ?)",
                       (n, labeler, time.time() + self.lease_seconds))
            row = db.execute(f"SELECT {_TASK_COLUMNS} FROM {_TASK_FROM} WHERE t.n = ?", (n,)).fetchone()
        return self._task(row)

    def skip(self, labeler: str, pair_id: str) -> None:
        """Pass a task on: this labeler won't be offered it again (others will)."""
        labeler = self.rater(labeler)
        with self._write() as db:
            n = self._task_n(db, pair_id)[0]
            db.execute("INSERT OR IGNORE INTO skips (task, labeler) VALUES (?, ?)", (n, labeler))
            db.execute("DELETE FROM claims WHERE task = ? AND labeler = ?", (n, labeler))

    def unskip(self, labeler: str) -> None:
        """Offer the labeler's skipped tasks again."""
        labeler = self.rater(labeler)
        with self._write() as db:
            db.execute("DELETE FROM skips WHERE labeler = ?", (labeler,))

    # ------------------------------------------------------------ reading

    def progress(self, labeler: str | None = None) -> dict:
        """Counts over regular tasks: ``labeled`` (tasks with their K labels), ``total``, ``labels``;
        for a labeler also ``mine`` (their labels, gold included), ``skipped`` and ``left_for_me``
        (unfinished tasks they have not labeled, skipped ones included)."""
        labeler = self.rater(labeler, register=False) if labeler else labeler
        k = self.raters_per_task
        # one statement, one snapshot, read from the counters the triggers keep (schema 3): the
        # work grows with this rater's own labels and skips, never with the tasks or all labels
        with self._connect() as db:
            total, labeled, labels, mine_open, mine, skipped = db.execute(
                "WITH h AS (SELECT n_labels, tasks FROM task_counts WHERE kind = 'task') "
                "SELECT (SELECT COALESCE(SUM(tasks), 0) FROM h), "
                "       (SELECT COALESCE(SUM(tasks), 0) FROM h WHERE n_labels >= :k), "
                "       (SELECT COALESCE(SUM(tasks * n_labels), 0) FROM h), "
                "       (SELECT COUNT(*) FROM labels l INDEXED BY labels_by_labeler CROSS JOIN tasks t ON t.n = l.task "
                "        WHERE l.labeler = :me AND t.kind = 'task' AND t.n_labels < :k), "
                "       COALESCE((SELECT labels FROM rater_counts WHERE labeler = :me), 0), "
                "       (SELECT COUNT(*) FROM skips s INDEXED BY skips_by_labeler CROSS JOIN tasks t ON t.n = s.task "
                "        WHERE s.labeler = :me AND t.n_labels < :k "
                "        AND NOT EXISTS (SELECT 1 FROM labels l WHERE l.task = s.task AND l.labeler = :me))",
                {"me": labeler or "", "k": k}).fetchone()
        left = total - labeled - mine_open
        if not labeler:
            mine = skipped = left = 0
        return {"labeled": labeled, "total": total, "labels": labels, "raters_per_task": k,
                "mine": mine, "skipped": skipped, "left_for_me": left}

    def labels(self) -> list[dict]:
        """Every label, in the order given: task n, kind, pair id, the task's pair row, labeler,
        choice, winner ('chosen'/'rejected'/'tie' relative to the task pair), seconds, labeled_at,
        comment, guideline hash."""
        with self._connect() as db:
            rows = db.execute(
                "SELECT t.n, t.kind, t.pair_id, t.pair, t.swap, t.source, l.labeler, l.choice, l.winner, l.seconds, "
                "l.labeled_at, l.comment, l.guideline FROM labels l JOIN tasks t ON t.n = l.task ORDER BY l.id").fetchall()
        keys = ("task", "kind", "pair_id", "pair", "swap", "tasks_source", "labeler", "choice", "winner", "seconds",
                "labeled_at", "comment", "guideline")
        out = []
        for row in rows:
            d = dict(zip(keys, row))
            d["pair"], d["swap"] = json.loads(d["pair"]), bool(d["swap"])
            out.append(d)
        return out

    def labeled(self) -> Iterator[tuple[dict, list[dict]]]:
        """(task pair row, its labels) for every regular task with at least one label, in task order."""
        by_task: dict[int, list[dict]] = {}
        for d in self.labels():
            if d["kind"] == "task":
                by_task.setdefault(d["task"], []).append(d)
        for n in sorted(by_task):
            labels = by_task[n]
            yield labels[0]["pair"], labels
