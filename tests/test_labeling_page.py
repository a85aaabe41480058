"""The labeling page: the real server (`cai humans serve` in a child process) driven by a real
headless Chromium, plus the store's guarantees (claims, one label per task) and `cai humans export`.

Browser tests skip when Debian's Chromium is missing, unless CAI_REQUIRE_BROWSER=1 (CI), where
they fail instead.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import httpx
import pytest

from cai.cli.main import main
from cai.humans.export import export_labels
from cai.humans.store import LabelConflict, LabelStore, shown_swapped
from cai.data.pairs import pair_from_row, read_pairs

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


# ---------------------------------------------------------------- helpers


def make_tasks(path: Path, n: int) -> dict:
    """A TRL tasks file of n pairs whose shown order alternates: chosen on the left, then on the right.

    Returns {pair id: (chosen text, rejected text)}.
    """
    rows, tasks, i = [], {}, 0
    while len(rows) < n:
        row = {"prompt": f"Question {i}: what is {i} + {i}?", "chosen": f"It is {2 * i}.", "rejected": f"Maybe {i}?"}
        pair = pair_from_row(row)
        if shown_swapped(pair.id) == (len(rows) % 2 == 1):
            rows.append(row)
            tasks[pair.id] = (pair.chosen_text, pair.rejected_text)
        i += 1
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return tasks


class LabelServer:
    """`cai humans serve` as a child process; the URL is read from what it prints."""

    def __init__(self, tasks: Path, db: Path, *args: str, port: int = 0):
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
        cmd = [sys.executable, "-m", "cai.cli.main", "humans", "serve", str(tasks), "--db", str(db),
               "--port", str(port), *args]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        self.output: list[str] = []
        lines: queue.Queue = queue.Queue()
        threading.Thread(target=self._drain, args=(lines,), daemon=True).start()
        deadline = time.monotonic() + 30
        self.url = None
        while self.url is None:
            try:
                line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                self.kill()
                raise RuntimeError("server printed no URL in 30 s:\n" + "".join(self.output)) from None
            if line is None:
                raise RuntimeError(f"server exited with {self.proc.wait()}:\n" + "".join(self.output))
            if line.startswith("labeling page: "):
                self.url = line.split(": ", 1)[1].strip()
        parsed = urlparse(self.url)
        self.port = parsed.port
        self.token = parse_qs(parsed.query).get("token", [None])[0]
        self.base = f"http://127.0.0.1:{self.port}/"  # the same server through loopback

    def _drain(self, lines: queue.Queue) -> None:
        for line in self.proc.stdout:
            self.output.append(line)
            lines.put(line)
        lines.put(None)

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.kill()


def db_labels(db: Path) -> list[tuple]:
    with sqlite3.connect(db) as con:
        return con.execute("SELECT t.pair_id, l.labeler, l.choice, l.winner FROM labels l "
                           "JOIN tasks t ON t.n = l.task ORDER BY l.task").fetchall()


def require_browser(reason: str):
    if os.environ.get("CAI_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{reason}; CAI_REQUIRE_BROWSER=1 says browser tests must run")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM):
        require_browser(f"Debian Chromium is not installed at {CHROMIUM} (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        require_browser("the playwright package is not installed (pip install -e '.[dev]')")
    pw = sync_playwright().start()
    chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    yield chromium
    chromium.close()
    pw.stop()


def open_page(browser, url: str, name: str | None = None):
    page = browser.new_context().new_page()
    page.set_default_timeout(15_000)
    page.goto(url)
    if name:
        page.wait_for_selector("body[data-state=name]")
        page.fill("#labeler", name)
        page.press("#labeler", "Enter")
    page.wait_for_selector("body[data-state=task]")
    return page


def task_id(page) -> str | None:
    return page.get_attribute("#task", "data-task-id")


def shown(page) -> dict:
    return {"id": task_id(page), "a": page.inner_text("#response-a .text"), "b": page.inner_text("#response-b .text")}


def wait_moved_on(page, previous: str) -> None:
    page.wait_for_function(
        "prev => ['task', 'done', 'waiting'].includes(document.body.dataset.state)"
        " && document.querySelector('#task').dataset.taskId !== prev", arg=previous)


def act(page, action) -> dict:
    """Do one labeling action on the shown task; returns what was shown before it."""
    before = shown(page)
    action()
    wait_moved_on(page, before["id"])
    return before


# ---------------------------------------------------------------- the page in a browser


@pytest.mark.browser
def test_label_with_mouse_and_keyboard_then_export(browser, tmp_path, capsys):
    tasks = make_tasks(tmp_path / "tasks.jsonl", 4)
    db = tmp_path / "labels.sqlite"
    with LabelServer(tmp_path / "tasks.jsonl", db) as server:
        page = open_page(browser, server.url, name="alice")
        assert page.inner_text("#progress") == "0 of 4 labeled · 0 by you"

        picks = []
        for n, (how, choice) in enumerate([("click", "A"), ("key", "b"), ("key", "t"), ("click", "B")]):
            s = shown(page)
            chosen, rejected = tasks[s["id"]]
            # The order is the task's own coin flip: tasks 2 and 4 show the pair's rejected as A.
            assert (s["a"], s["b"]) == ((rejected, chosen) if n % 2 else (chosen, rejected))
            if how == "click":
                act(page, lambda c=choice: page.click(f"#pick-{c.lower()}"))
            else:
                act(page, lambda c=choice: page.keyboard.press(c))
            picks.append((s, {"a": "A", "b": "B", "t": "tie"}.get(choice, choice)))
            if n < 3:
                assert page.inner_text("#progress") == f"{n + 1} of 4 labeled · {n + 1} by you"
        assert page.get_attribute("body", "data-state") == "done"
        assert "All 4 tasks are labeled" in page.inner_text("#status")

    assert [(lid, who, choice) for lid, who, choice, _ in db_labels(db)] == [(s["id"], "alice", c) for s, c in picks]

    code = main(["humans", "export", "--db", str(db), "--out", str(tmp_path / "human")])
    line = capsys.readouterr().out
    assert code == 0 and "wrote 4 human labels from 4 labels" in line and "1 ties" in line
    exported = {p.id: p for p in read_pairs(tmp_path / "human")}
    assert set(exported) == set(tasks)  # joinable with any other label of the same comparison
    for s, choice in picks:
        pair = exported[s["id"]]
        assert pair.source == "human" and pair.labeler == "alice" and pair.record_id == s["id"]
        if choice == "tie":
            assert pair.p_chosen == 0.5
        else:
            assert pair.p_chosen == 1.0 and pair.chosen_text == s[choice.lower()]
        assert json.loads(pair.provenance)["db"] == str(db)


@pytest.mark.browser
def test_skip_and_server_killed_mid_labeling(browser, tmp_path):
    make_tasks(tmp_path / "tasks.jsonl", 5)
    db = tmp_path / "labels.sqlite"
    server = LabelServer(tmp_path / "tasks.jsonl", db, "--labeler", "bob")
    try:
        page = open_page(browser, server.url)  # --labeler fills the name in
        assert page.input_value("#labeler") == "bob"
        first = act(page, lambda: page.keyboard.press("s"))  # skipped: bob won't see it again
        assert "1 skipped" in page.inner_text("#progress")
        act(page, lambda: page.keyboard.press("a"))
        act(page, lambda: page.click("#pick-b"))
        assert page.inner_text("#progress").startswith("2 of 5 labeled")
        pending = task_id(page)

        server.kill()  # SIGKILL: no chance to flush or clean up
        page.keyboard.press("a")
        page.wait_for_selector("body[data-state=error]")
        assert "Not saved" in page.inner_text("#status") and task_id(page) == pending
        assert len(db_labels(db)) == 2

        server = LabelServer(tmp_path / "tasks.jsonl", db, "--labeler", "bob", port=server.port)
        act(page, lambda: page.keyboard.press("a"))  # the same page retries the pick that failed
        assert page.inner_text("#progress").startswith("3 of 5 labeled")

        page.reload()  # a fresh page resumes at the next unlabeled task
        page.wait_for_selector("body[data-state=task]")
        assert page.inner_text("#progress").startswith("3 of 5 labeled")
        assert task_id(page) not in {row[0] for row in db_labels(db)} | {first["id"]}
        act(page, lambda: page.keyboard.press("t"))
        page.wait_for_selector("body[data-state=done]")
        assert "Only tasks you skipped are left (1)" in page.inner_text("#status")
        page.click("#unskip")
        page.wait_for_selector("body[data-state=task]")
        assert task_id(page) == first["id"]
    finally:
        server.kill()
    labels = db_labels(db)
    assert len(labels) == 4 and len({row[0] for row in labels}) == 4


@pytest.mark.browser
def test_two_labelers_at_once_label_every_task_once(browser, tmp_path):
    tasks = make_tasks(tmp_path / "tasks.jsonl", 10)
    db = tmp_path / "labels.sqlite"
    with LabelServer(tmp_path / "tasks.jsonl", db, "--lease", "30") as server:
        alice = open_page(browser, server.url, name="alice")
        bob = open_page(browser, server.url, name="bob")
        seen = {"alice": [], "bob": []}
        keys = "abt"
        for step in range(20):
            active = [(n, p) for n, p in (("alice", alice), ("bob", bob))
                      if p.get_attribute("body", "data-state") == "task"]
            if not active:
                break
            if len(active) == 2:
                assert task_id(alice) != task_id(bob)  # never the same task on two screens
            before = {n: task_id(p) for n, p in active}
            for n, p in active:  # both keys go out before either answer is awaited
                seen[n].append(before[n])
                p.keyboard.press(keys[step % 3])
            for n, p in active:
                wait_moved_on(p, before[n])
        for p in (alice, bob):
            p.wait_for_selector("body[data-state=done]")
            assert p.inner_text("#progress").startswith("10 of 10 labeled")

    labels = db_labels(db)
    assert sorted(row[0] for row in labels) == sorted(tasks)  # every task once, none twice
    assert {row[1] for row in labels} == {"alice", "bob"}
    assert sorted(seen["alice"] + seen["bob"]) == sorted(tasks)
    with sqlite3.connect(db) as con:
        assert con.execute("SELECT COUNT(*) FROM claims").fetchone()[0] == 0


@pytest.mark.browser
def test_token_required_off_loopback(browser, tmp_path):
    make_tasks(tmp_path / "tasks.jsonl", 2)
    db = tmp_path / "labels.sqlite"
    with LabelServer(tmp_path / "tasks.jsonl", db, "--host", "0.0.0.0") as server:
        assert server.token and len(server.token) >= 16  # generated and printed in the URL
        for path in ("", "api/next?labeler=eve", "static/label.js"):
            assert httpx.get(server.base + path).status_code == 401
            assert httpx.get(server.base + path, params={"token": "wrong"}).status_code == 401
        r = httpx.post(server.base + "api/label", json={"labeler": "eve", "task": "x", "choice": "A"})
        assert r.status_code == 401
        assert httpx.get(server.base + "api/config", headers={"X-Cai-Token": server.token}).status_code == 200

        page = open_page(browser, f"{server.base}?token={server.token}", name="carol")
        act(page, lambda: page.keyboard.press("a"))  # the page's own API calls pass with the cookie
        assert page.inner_text("#progress").startswith("1 of 2 labeled")
        page.goto(server.base)  # the cookie alone lets the page back in
        page.wait_for_selector("body[data-state=task]")
    assert [row[1] for row in db_labels(db)] == ["carol"]


@pytest.mark.browser
def test_given_token_on_loopback(browser, tmp_path):
    make_tasks(tmp_path / "tasks.jsonl", 1)
    with LabelServer(tmp_path / "tasks.jsonl", tmp_path / "l.sqlite", "--token", "s3cret-token") as server:
        assert server.url.endswith("/?token=s3cret-token")
        assert httpx.get(server.base).status_code == 401
        page = browser.new_context().new_page()
        response = page.goto(server.base)
        assert response.status == 401 and "token required" in page.inner_text("body")
        open_page(browser, server.url, name="dan")


# ---------------------------------------------------------------- the server over plain HTTP


def test_many_clients_at_once_no_lost_or_double_labels(tmp_path):
    """Four threads, two labeler names (two threads share each name), hammering the real server."""
    tasks = make_tasks(tmp_path / "tasks.jsonl", 24)
    db = tmp_path / "labels.sqlite"
    results: list[tuple] = []
    lock = threading.Lock()

    def worker(name: str, seed: int) -> None:
        with httpx.Client(base_url=server.base, timeout=30) as client:
            deadline = time.monotonic() + 60
            k = seed
            while time.monotonic() < deadline:
                data = client.get("api/next", params={"labeler": name}).json()
                if data["task"] is None:
                    if data["progress"]["labeled"] == data["progress"]["total"]:
                        return
                    time.sleep(0.02)
                    continue
                k += 1
                r = client.post("api/label", json={"labeler": name, "task": data["task"]["id"],
                                                   "choice": "AB"[k % 2]})
                with lock:
                    results.append((name, data["task"]["id"], r.status_code, r.json().get("stored")))

    with LabelServer(tmp_path / "tasks.jsonl", db) as server:
        names = ["ann", "ann", "ben", "ben"]
        threads = [threading.Thread(target=worker, args=(name, i)) for i, name in enumerate(names)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        progress = httpx.get(server.base + "api/next", params={"labeler": "ann"}).json()["progress"]

    assert {status for *_, status, _ in results} <= {200, 409}
    stored = [task for _, task, status, ok in results if status == 200 and ok]
    assert sorted(stored) == sorted(tasks)  # each task stored exactly once
    assert sorted(row[0] for row in db_labels(db)) == sorted(tasks)
    assert progress["labeled"] == progress["total"] == 24


def test_loopback_server_refuses_other_hosts_and_bad_requests(tmp_path):
    make_tasks(tmp_path / "tasks.jsonl", 1)
    with LabelServer(tmp_path / "tasks.jsonl", tmp_path / "l.sqlite") as server:
        assert server.token is None and server.url == f"http://127.0.0.1:{server.port}/"
        assert httpx.get(server.base, headers={"Host": "attacker.example"}).status_code == 403
        assert httpx.get(server.base, headers={"Host": f"localhost:{server.port}"}).status_code == 200
        task = httpx.get(server.base + "api/next", params={"labeler": "x"}).json()["task"]["id"]
        form = httpx.post(server.base + "api/label", data={"labeler": "x", "task": task, "choice": "A"})
        assert form.status_code == 415  # a cross-site form cannot post a label
        for body, status in (({"labeler": "", "task": task, "choice": "A"}, 400),
                             ({"labeler": "x", "task": task, "choice": "C"}, 400),
                             ({"labeler": "x", "task": "nope", "choice": "A"}, 404)):
            assert httpx.post(server.base + "api/label", json=body).status_code == status
        assert httpx.get(server.base + "api/next").status_code == 400
        assert httpx.get(server.base + "static/../store.py").status_code == 404


def test_serve_usage_errors(tmp_path, capsys):
    make_tasks(tmp_path / "tasks.jsonl", 1)
    (tmp_path / "bad.jsonl").write_text('{"prompt": "a", "chosen": "b"}\n')
    (tmp_path / "not.sqlite").write_text("hello, I am not a database" * 100)
    for args, phrase in (
        ([str(tmp_path / "bad.jsonl"), "--db", str(tmp_path / "l.sqlite")], "bad.jsonl:1: missing column(s) rejected"),
        ([str(tmp_path / "tasks.jsonl"), "--db", str(tmp_path / "not.sqlite")], "not a cai labels database"),
        ([str(tmp_path / "tasks.jsonl"), "--db", str(tmp_path / "no" / "l.sqlite")], "folder for the labels database"),
        ([str(tmp_path / "tasks.jsonl"), "--db", str(tmp_path / "l.sqlite"), "--labeler", " "], "--labeler"),
    ):
        assert main(["humans", "serve", *args]) == 2
        err = capsys.readouterr().err
        assert phrase in err and len(err.strip().splitlines()) == 1, err


# ---------------------------------------------------------------- store and export


def test_claims_keep_labelers_apart_and_expire(tmp_path):
    make_tasks(tmp_path / "tasks.jsonl", 3)
    store = LabelStore(tmp_path / "l.sqlite", lease_seconds=0.5)
    assert store.add_tasks(read_pairs(tmp_path / "tasks.jsonl"), "t")["added"] == 3
    assert store.add_tasks(read_pairs(tmp_path / "tasks.jsonl"), "t") == {
        "added": 0, "identical": 0, "empty_response": 0, "total": 3}

    a, b = store.next_task("alice"), store.next_task("bob")
    assert (a.n, b.n) == (1, 2) and store.next_task("alice").n == 1  # asking again resumes the same task
    with pytest.raises(LabelConflict, match="being labeled by alice"):
        store.label("bob", a.pair_id, "A")
    time.sleep(0.6)  # alice walked away: her claim expires
    assert store.label("bob", b.pair_id, "B") is True
    assert store.next_task("bob").n == 1
    with pytest.raises(LabelConflict, match="being labeled by bob"):
        store.label("alice", a.pair_id, "A")
    assert store.label("bob", a.pair_id, "tie") is True
    assert store.label("bob", a.pair_id, "tie") is False  # a retried request is stored once
    with pytest.raises(LabelConflict, match="labeled already"):
        store.label("alice", a.pair_id, "A")

    store.skip("carol", store.next_task("carol").pair_id)
    assert store.next_task("carol") is None and store.progress("carol")["skipped"] == 1
    store.unskip("carol")
    assert store.next_task("carol").n == 3

    with sqlite3.connect(store.path) as con:  # the database itself refuses a rater's second label
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        with pytest.raises(sqlite3.IntegrityError):
            con.execute("INSERT INTO labels (task, labeler, choice, winner, labeled_at) "
                        "VALUES (1, 'bob', 'A', 'chosen', 'now')")


def test_export_maps_picks_to_chosen(tmp_path, capsys):
    tasks = make_tasks(tmp_path / "tasks.jsonl", 3)
    db = tmp_path / "l.sqlite"
    store = LabelStore(db)
    store.add_tasks(read_pairs(tmp_path / "tasks.jsonl"), str(tmp_path / "tasks.jsonl"))
    assert main(["humans", "export", "--db", str(db), "--out", str(tmp_path / "out")]) == 2
    assert "no labels yet (3 tasks)" in capsys.readouterr().err

    ids = list(tasks)  # task 1 shows chosen as A, task 2 shows rejected as A
    store.label("ann", ids[0], "B")  # the pair's rejected wins
    store.label("ann", ids[1], "B")  # B is the pair's chosen
    store.label("ben", ids[2], "tie")
    summary = export_labels(db, tmp_path / "out")
    assert summary == {"written": 3, "ties": 1, "agreed": 2, "split": 0, "even_splits": 0, "dropped_splits": 0,
                       "empty_response": 0, "labels": 3, "raters": 2, "dropped_raters": [], "tasks": 3,
                       "unlabeled": 0, "out": str(tmp_path / "out")}

    pairs = list(read_pairs(tmp_path / "out"))
    assert [(p.chosen_text, p.p_chosen, p.labeler) for p in pairs] == [
        (tasks[ids[0]][1], 1.0, "ann"), (tasks[ids[1]][0], 1.0, "ann"), (tasks[ids[2]][0], 0.5, "ben")]
    assert [p.id for p in pairs] == [p.record_id for p in pairs] == ids
    assert [p.weight for p in pairs] == [1.0, 1.0, 1.0]  # one rater each
    prov = json.loads(pairs[0].provenance)
    assert prov["labels"][0]["shown_as"] == "B" and prov["db"] == str(db) and prov["labels"][0]["labeled_at"]

    from datasets import load_from_disk

    assert load_from_disk(str(tmp_path / "out" / "hf"))["source"] == ["human"] * 3
    assert main(["humans", "export", "--db", str(tmp_path / "missing.sqlite"), "--out", str(tmp_path / "x")]) == 2
    assert "no such labels database" in capsys.readouterr().err
