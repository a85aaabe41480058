"""The label store under a burst of raters (issue 28, item 11): exactly-once with many threads,
one fsync serving many labels (group commit), no fsync for a claim, and each thread's connection
kept open (closing the last connection of a WAL database checkpoints it: ~1 ms a request)."""

from __future__ import annotations

import json
import sqlite3
import threading
import time

import pytest

import cai.humans.db as dbmod
from cai.data.pairs import read_pairs
from cai.humans.store import LabelStore


def _store(tmp_path, n: int, k: int) -> LabelStore:
    path = tmp_path / "tasks.jsonl"
    path.write_text("".join(json.dumps({"prompt": f"q{i}?", "chosen": f"yes {i}", "rejected": f"no {i}"}) + "\n"
                            for i in range(n)))
    store = LabelStore(tmp_path / "labels.sqlite", raters_per_task=k, gold_rate=0)
    store.add_tasks(read_pairs(path), source=str(path))
    return store


@pytest.fixture
def fsyncs(monkeypatch):
    """Count the store's fsyncs, each made slow (20 ms) like a real disk, so writers pile up."""
    calls = []
    real = dbmod.os.fsync

    def slow_fsync(fd):
        calls.append(time.monotonic())
        time.sleep(0.02)
        real(fd)

    monkeypatch.setattr(dbmod.os, "fsync", slow_fsync)
    return calls


def test_burst_of_threads_stores_each_label_exactly_once(tmp_path, fsyncs):
    store = _store(tmp_path, 20, 3)
    acked: list[tuple[str, str]] = []
    errors: list[BaseException] = []
    start = threading.Barrier(12)

    def rater(name: str) -> None:
        try:
            start.wait()
            while True:
                task = store.next_task(name)
                if task is None:
                    p = store.progress(name)
                    if p["left_for_me"] == 0:
                        return
                    time.sleep(0.01)
                    continue
                if store.label(name, task.pair_id, "A"):
                    acked.append((task.pair_id, name))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=rater, args=(f"r{i}",)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    with sqlite3.connect(store.path) as db:
        rows = db.execute("SELECT t.pair_id, l.labeler FROM labels l JOIN tasks t ON t.n = l.task").fetchall()
        per_task = [c for (c,) in db.execute("SELECT COUNT(*) FROM labels GROUP BY task")]
    assert len(rows) == len(set(rows)) == 60 and per_task == [3] * 20
    assert sorted(rows) == sorted(acked)  # every acknowledged label is stored, nothing else
    # group commit: 60 durable labels (and the task load) took far fewer fsyncs than commits
    assert 0 < len(fsyncs) < 60


def test_claims_are_not_fsynced_labels_are(tmp_path, fsyncs):
    store = _store(tmp_path, 2, 1)
    before = len(fsyncs)
    task = store.next_task("ann")
    store.renew("ann", task.pair_id)
    assert len(fsyncs) == before  # a claim lost in a power cut only re-offers the task
    assert store.label("ann", task.pair_id, "B")
    assert len(fsyncs) == before + 1  # a label is on disk before label() returns


def test_each_thread_keeps_one_connection(tmp_path):
    store = _store(tmp_path, 1, 1)
    with store._connect() as a, store._connect() as b:
        assert a is b
    seen = []
    t = threading.Thread(target=lambda: seen.append(store._connect().__enter__()))
    t.start()
    t.join()
    assert seen[0] is not a
    store.close()
    with pytest.raises(sqlite3.ProgrammingError):
        a.execute("SELECT 1")
    assert store.progress()["total"] == 1  # reopened on use


def test_log_is_checkpointed_beside_the_writers(tmp_path, monkeypatch):
    monkeypatch.setattr(dbmod, "CHECKPOINT_EVERY", 5)
    store = _store(tmp_path, 30, 1)
    with store._connect() as db:
        assert db.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0  # never inside a writer's COMMIT
    for _ in range(30):
        task = store.next_task("ann")
        assert store.label("ann", task.pair_id, "A")
    deadline = time.monotonic() + 10
    while store._db._checkpointing and time.monotonic() < deadline:
        time.sleep(0.01)
    assert store._db._checkpointed >= 5  # checkpoints started as the writes went, not at close
    store.close()
    with sqlite3.connect(store.path) as db:
        assert db.execute("SELECT COUNT(*) FROM labels").fetchone()[0] == 30


def test_fsync_reaches_the_log_of_a_symlinked_database(tmp_path, fsyncs, monkeypatch):
    """SQLite keeps the log beside the real file; the group commit must fsync that one."""
    import os

    (tmp_path / "real").mkdir()
    os.symlink(tmp_path / "real" / "labels.sqlite", tmp_path / "link.sqlite")
    synced = []
    real = dbmod.os.fsync
    monkeypatch.setattr(dbmod.os, "fsync", lambda fd: (synced.append(os.readlink(f"/proc/self/fd/{fd}")), real(fd)))
    path = tmp_path / "tasks.jsonl"
    path.write_text(json.dumps({"prompt": "q?", "chosen": "yes", "rejected": "no"}) + "\n")
    store = LabelStore(tmp_path / "link.sqlite")
    store.add_tasks(read_pairs(path), source=str(path))
    assert synced and set(synced) == {str(tmp_path / "real" / "labels.sqlite-wal")}
