"""Smoke test of benchmarks/labeling_burst.py (issue 28, item 11) at a tiny size: a real
`cai humans serve` on 127.0.0.1, 5 raters at once on 10 tasks x 3 raters each, so raters wait for
tasks held by others (the poll path) and every task fills all its places, as at the default size.
Asserts what the script counts (every label stored once, none lost or duplicated), never a time."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks/labeling_burst.py"


def test_labeling_burst_at_tiny_size(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    done = subprocess.run([sys.executable, str(SCRIPT), "--raters", "5", "--tasks", "10", "--raters-per-task", "3",
                           "--json", str(tmp_path / "burst.json"), "--timeout", "120"],
                          cwd=tmp_path, capture_output=True, text=True, env=env, timeout=300)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-3000:]
    assert "labels stored 30 of 30 expected; acknowledged 30; lost 0; duplicated 0" in out
    for endpoint in ("next", "label"):
        assert re.search(rf"^/api/{endpoint}\s+\d+(\s+[\d.]+){{4}}$", out, re.M), out
    figures = json.loads((tmp_path / "burst.json").read_text())
    assert (figures["stored"], figures["lost"], figures["duplicated"], figures["errors"]) == (30, 0, 0, [])
    assert figures["latency_ms"]["label"]["n"] == 30 and figures["latency_ms"]["next"]["n"] >= 30


def test_audit_counts_lost_and_duplicated(tmp_path):
    """The audit itself: a label acknowledged but missing is lost; a (task, rater) held twice or a
    task over K labels is duplicated."""
    import sqlite3

    sys.path.insert(0, str(SCRIPT.parent))
    try:
        from labeling_burst import audit
    finally:
        sys.path.remove(str(SCRIPT.parent))
    db = tmp_path / "l.sqlite"
    with sqlite3.connect(db) as con:
        con.execute("CREATE TABLE tasks (n INTEGER PRIMARY KEY, pair_id TEXT)")
        con.execute("CREATE TABLE labels (task INTEGER, labeler TEXT)")
        con.executemany("INSERT INTO tasks VALUES (?, ?)", [(1, "t1"), (2, "t2")])
        con.executemany("INSERT INTO labels VALUES (?, ?)", [(1, "a"), (1, "a"), (1, "b"), (2, "a")])
    figures = audit(db, [("a", "t1"), ("b", "t1"), ("b", "t2")], k=2)
    assert figures == {"stored": 4, "lost": 1, "duplicated": 2, "acked": 3}
