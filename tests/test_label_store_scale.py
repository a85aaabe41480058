"""The label store's work per request does not grow with the tasks it holds (issue 28, item 11),
and schema 2 databases are migrated to the counters that make this so.

Work is counted in SQLite virtual-machine steps (``set_progress_handler`` called every step), not
timed: the same store at 300 and at 3,000 tasks, 90 % of them labeled by three raters, must do
about the same work to hand a rater their next task, to count their progress and to store a label.
Before schema 3, ``next_task`` read every full task in order and ``progress`` grouped every label
(work ~10x at 10x the tasks)."""

from __future__ import annotations

import json
import random
import sqlite3
from datetime import datetime, timezone

from cai.data.pairs import PreferencePair
from cai.humans.store import SCHEMA_VERSION, LabelStore

K = 3


def _pairs(n: int, tag: str = "t") -> list[PreferencePair]:
    return [PreferencePair(prompt=[{"role": "user", "content": f"{tag} question {i}"}],
                           chosen=[{"role": "assistant", "content": f"yes {i}"}],
                           rejected=[{"role": "assistant", "content": f"no {i}"}], source="test") for i in range(n)]


def _label_directly(db_path, rows: list[tuple[int, str]]) -> None:
    """Labels written straight into the file (fast set-up; the triggers keep the counters)."""
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    with sqlite3.connect(db_path) as con:
        con.executemany("INSERT INTO labels (task, labeler, choice, winner, labeled_at) VALUES (?, ?, 'A', 'chosen', ?)",
                        [(n, who, now) for n, who in rows])
    con.close()


def _store(tmp_path, n_tasks: int) -> LabelStore:
    db = tmp_path / f"labels-{n_tasks}.sqlite"
    store = LabelStore(db, raters_per_task=K, gold_rate=0.1)
    store.add_tasks(_pairs(n_tasks), "tasks.jsonl")
    store.add_tasks(_pairs(5, "gold"), "gold.jsonl", kind="gold")
    full = int(n_tasks * 0.9)
    _label_directly(db, [(n, who) for n in range(1, full + 1) for who in ("ann", "bob", "cy")])
    return store


def _steps(store: LabelStore, fn) -> tuple[int, object]:
    """SQLite VM steps ``fn`` runs on this thread's connection of the store."""
    count = [0]

    def tick() -> int:
        count[0] += 1
        return 0

    with store._connect() as db:  # the connection store calls on this thread use
        db.set_progress_handler(tick, 1)
        try:
            out = fn()
        finally:
            db.set_progress_handler(None, 1)
    return count[0], out


def _work(tmp_path, n_tasks: int) -> dict[str, int]:
    store = _store(tmp_path, n_tasks)
    store.rater("dee")  # registered before counting (a one-off write)
    work = {}
    work["next"], task = _steps(store, lambda: store.next_task("dee"))
    assert task is not None and task.n == int(n_tasks * 0.9) + 1  # the first task not yet full
    work["progress"], p = _steps(store, lambda: store.progress("dee"))
    assert (p["total"], p["labeled"], p["labels"]) == (n_tasks, int(n_tasks * 0.9), 3 * int(n_tasks * 0.9))
    work["label"], stored = _steps(store, lambda: store.label("dee", task.pair_id, "A"))
    assert stored
    work["next again"], task2 = _steps(store, lambda: store.next_task("dee"))
    assert task2 is not None and task2.n != task.n
    store.close()
    return work


def test_work_per_request_does_not_grow_with_tasks(tmp_path):
    small, large = _work(tmp_path, 300), _work(tmp_path, 3000)
    for what in small:
        ratio = large[what] / small[what]
        assert ratio < 1.25, f"{what}: {small[what]} VM steps at 300 tasks, {large[what]} at 3000 ({ratio:.1f}x)"


def _counters_match_rows(db_path) -> None:
    with sqlite3.connect(db_path) as con:
        assert con.execute("SELECT n, n_labels FROM tasks ORDER BY n").fetchall() == con.execute(
            "SELECT t.n, COUNT(l.id) FROM tasks t LEFT JOIN labels l ON l.task = t.n GROUP BY t.n ORDER BY t.n").fetchall()
        assert con.execute("SELECT kind, n_labels, tasks FROM task_counts WHERE tasks > 0 ORDER BY 1, 2").fetchall() == \
            con.execute("SELECT kind, n_labels, COUNT(*) FROM tasks GROUP BY 1, 2 ORDER BY 1, 2").fetchall()
        assert con.execute("SELECT labeler, labels, gold FROM rater_counts WHERE labels > 0 ORDER BY 1").fetchall() == \
            con.execute("SELECT l.labeler, COUNT(*), SUM(t.kind = 'gold') FROM labels l JOIN tasks t ON t.n = l.task "
                        "GROUP BY 1 ORDER BY 1").fetchall()
    con.close()


def test_counters_follow_labels_undos_and_skips(tmp_path):
    """Labels given and taken back at random, gold among them: the counters always equal a count
    of the rows, and progress agrees with them."""
    rng = random.Random(7)
    store = LabelStore(tmp_path / "l.sqlite", raters_per_task=2, gold_rate=0.3)
    store.add_tasks(_pairs(12), "t")
    store.add_tasks(_pairs(3, "gold"), "g", kind="gold")
    raters = ["ann", "bob", "cy", "dee"]
    given: list[tuple[str, str]] = []
    for _ in range(60):
        who = rng.choice(raters)
        if given and rng.random() < 0.25:
            w, pid = given.pop(rng.randrange(len(given)))
            store.undo(w, pid)
            store.skip(w, pid)
            continue
        task = store.next_task(who)
        if task is not None and store.label(who, task.pair_id, rng.choice("AB")):
            given.append((who, task.pair_id))
    _counters_match_rows(tmp_path / "l.sqlite")
    labels = store.labels()
    regular = [d for d in labels if d["kind"] == "task"]
    per_task: dict[int, int] = {}
    for d in regular:
        per_task[d["task"]] = per_task.get(d["task"], 0) + 1
    p = store.progress("ann")
    assert (p["total"], p["labels"], p["labeled"]) == (12, len(regular), sum(c >= 2 for c in per_task.values()))
    assert p["mine"] == sum(d["labeler"] == "ann" for d in labels)


SCHEMA_2 = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE tasks (n INTEGER PRIMARY KEY, pair_id TEXT NOT NULL UNIQUE, pair TEXT NOT NULL,
    swap INTEGER NOT NULL CHECK (swap IN (0, 1)), source TEXT NOT NULL, added_at TEXT NOT NULL,
    kind TEXT NOT NULL DEFAULT 'task' CHECK (kind IN ('task', 'gold')), guideline TEXT);
CREATE TABLE skips (task INTEGER NOT NULL REFERENCES tasks(n), labeler TEXT NOT NULL, PRIMARY KEY (task, labeler));
CREATE TABLE labels (id INTEGER PRIMARY KEY AUTOINCREMENT, task INTEGER NOT NULL REFERENCES tasks(n),
    labeler TEXT NOT NULL, choice TEXT NOT NULL CHECK (choice IN ('A', 'B', 'tie')),
    winner TEXT NOT NULL CHECK (winner IN ('chosen', 'rejected', 'tie')), seconds REAL, labeled_at TEXT NOT NULL,
    comment TEXT NOT NULL DEFAULT '', guideline TEXT, UNIQUE (task, labeler));
CREATE TABLE claims (task INTEGER NOT NULL REFERENCES tasks(n), labeler TEXT NOT NULL, expires REAL NOT NULL,
    PRIMARY KEY (task, labeler));
CREATE TABLE guidelines (hash TEXT PRIMARY KEY, title TEXT NOT NULL, summary TEXT NOT NULL, text TEXT NOT NULL);
INSERT INTO meta VALUES ('schema', '2');
"""


def test_schema_2_database_is_migrated_to_counters(tmp_path):
    """A database written by the previous release (schema 2, no raters table): it opens, every
    label is kept, the counters are filled from the rows, and the page goes on where it was."""
    db = tmp_path / "old.sqlite"
    pairs = _pairs(4) + _pairs(1, "gold")
    with sqlite3.connect(db) as con:
        con.executescript(SCHEMA_2)
        for n, p in enumerate(pairs, 1):
            con.execute("INSERT INTO tasks (n, pair_id, pair, swap, source, added_at, kind) VALUES (?, ?, ?, 0, 's', 'then', ?)",
                        (n, p.id, json.dumps(p.row()), "gold" if n == 5 else "task"))
        for n, who in [(1, "ann"), (1, "bob"), (2, "ann"), (5, "ann")]:
            con.execute("INSERT INTO labels (task, labeler, choice, winner, labeled_at) VALUES (?, ?, 'A', 'chosen', 't')",
                        (n, who))
        con.execute("INSERT INTO skips VALUES (3, 'bob')")
    con.close()

    store = LabelStore(db, create=False, raters_per_task=2, gold_rate=0.0)  # export and stats open it like this
    with sqlite3.connect(db) as con:
        assert con.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()[0] == SCHEMA_VERSION == "3"
        assert con.execute("SELECT n, n_labels FROM tasks ORDER BY n").fetchall() == [(1, 2), (2, 1), (3, 0), (4, 0), (5, 1)]
        assert con.execute("SELECT COUNT(*) FROM raters").fetchone() == (0,)
    con.close()
    _counters_match_rows(db)
    assert [(d["task"], d["labeler"]) for d in store.labels()] == [(1, "ann"), (1, "bob"), (2, "ann"), (5, "ann")]
    assert store.progress("bob") == {"labeled": 1, "total": 4, "labels": 3, "raters_per_task": 2, "mine": 1,
                                     "skipped": 1, "left_for_me": 3}
    assert store.next_task("bob").n == 2  # task 1 is full, 3 is skipped by bob
    assert store.label("bob", pairs[1].id, "B")
    assert store.next_task("ann").n == 3
    _counters_match_rows(db)
    LabelStore(db).close()  # opening again is a no-op
    _counters_match_rows(db)
