"""Labeling at team scale (issue 15): several raters per task, soft labels, undo, comments,
guidelines on screen, gold tasks, agreement stats, and schema 1 databases migrated in place.

Browser tests drive the real server (`cai humans serve` in a child process) with a real headless
Chromium, like tests/test_labeling_page.py, whose helpers they share.
"""

from __future__ import annotations

import json
import sqlite3

import httpx
import pytest
from test_labeling_page import LabelServer, act, browser, make_tasks, open_page, shown, task_id

from cai.cli.main import main
from cai.humans.export import export_labels
from cai.humans.guidelines import file_guideline, render_markdown
from cai.humans.stats import rater_stats
from cai.humans.store import SCHEMA_VERSION, LabelConflict, LabelStore, shown_swapped
from cai.data.pairs import pair_from_row, read_pairs

__all__ = ["browser"]  # the module-scoped Chromium fixture from test_labeling_page, used here by name

GUIDELINES = """# Team guidelines

Prefer the **more accurate** answer. <script>window.pwned = 1</script><img src=x onerror="window.pwned = 2">

## Details

Ties are fine when [neither](javascript:window.pwned=3) is better.
"""


def db_rows(db) -> list[tuple]:
    with sqlite3.connect(db) as con:
        return con.execute("SELECT t.pair_id, l.labeler, l.choice, l.winner, l.comment FROM labels l "
                           "JOIN tasks t ON t.n = l.task ORDER BY l.id").fetchall()


def write_pairs_file(path, rows) -> dict:
    """rows: (prompt, chosen, rejected); returns {pair id: (chosen, rejected)}."""
    path.write_text("".join(json.dumps({"prompt": p, "chosen": c, "rejected": r}) + "\n" for p, c, r in rows))
    return {pair_from_row({"prompt": p, "chosen": c, "rejected": r}).id: (c, r) for p, c, r in rows}


# ---------------------------------------------------------------- the page in a browser


@pytest.mark.browser
def test_two_raters_disagree_undo_comment_and_guidelines(browser, tmp_path, capsys):
    tasks = make_tasks(tmp_path / "tasks.jsonl", 2)
    (tmp_path / "guide.md").write_text(GUIDELINES)
    db = tmp_path / "labels.sqlite"
    with LabelServer(tmp_path / "tasks.jsonl", db, "--raters-per-task", "2",
                     "--guidelines", str(tmp_path / "guide.md")) as server:
        alice = open_page(browser, server.url + "?rater=alice")  # the name from the URL
        assert alice.input_value("#labeler") == "alice"
        assert alice.inner_text("#progress") == "0 of 2 labeled by 2 raters · 0 by you"

        # The guideline is on screen, its Markdown rendered, its HTML inert.
        assert alice.is_visible("#guideline") and alice.text_content("#guideline-title") == "Team guidelines"
        assert alice.inner_text("#guideline-text strong") == "more accurate"
        assert "<script>window.pwned = 1</script>" in alice.inner_text("#guideline-text")
        assert alice.locator("#guideline-text script, #guideline-text img").count() == 0
        assert alice.evaluate("window.pwned") is None

        first = shown(alice)
        alice.fill("#comment", "A states the sum; B guesses")
        act(alice, lambda: alice.click("#pick-a"))
        bob = open_page(browser, server.url + "?rater=bob")
        assert task_id(bob) == first["id"]  # two raters per task: bob gets the task alice labeled
        act(bob, lambda: bob.keyboard.press("b"))  # ... and disagrees

        second = shown(alice)
        assert second["id"] != first["id"] and alice.input_value("#comment") == ""
        act(alice, lambda: alice.keyboard.press("b"))  # a slip ...
        alice.wait_for_selector("body[data-state=done]")  # bob has not labeled the last task yet
        assert "wait for other raters" in alice.inner_text("#status")
        alice.click("#undo")  # ... undone (the key u does the same): the same task is back
        alice.wait_for_selector("body[data-state=task]")
        assert task_id(alice) == second["id"] and "undone" in alice.inner_text("#status")
        assert alice.inner_text("#progress").endswith("1 by you")
        assert task_id(bob) == second["id"]  # undoing gave alice's place back to her, not to someone else
        act(alice, lambda: alice.keyboard.press("a"))
        act(bob, lambda: bob.keyboard.press("u"))  # bob undoes his disagreement on the first task ...
        assert task_id(bob) == first["id"]
        act(bob, lambda: bob.keyboard.press("b"))  # ... and stands by it
        act(bob, lambda: bob.keyboard.press("a"))
        bob.wait_for_selector("body[data-state=done]")
        assert "All 2 tasks are labeled" in bob.inner_text("#status")

        # The link opens the full guidelines.
        full = alice.context.new_page()
        full.goto(server.url + alice.get_attribute("#guideline-link", "href"))
        assert full.text_content("#guidelines h2") == "Details"
        assert full.locator("#guidelines script, #guidelines img, a[href^='javascript']").count() == 0

    assert len(db_rows(db)) == 4  # the undone label is gone; nothing else is
    assert main(["humans", "export", "--db", str(db), "--out", str(tmp_path / "human")]) == 0
    line = capsys.readouterr().out
    assert "wrote 2 human labels from 4 labels by 2 rater(s)" in line  # the 1-1 split is a split, not a "tie"
    assert "1 agreed, 1 split (raters picked opposite sides; 1 even, p_chosen 0.5), 0 ties" in line
    exported = {p.id: p for p in read_pairs(tmp_path / "human")}
    split, agreed = exported[first["id"]], exported[second["id"]]
    assert (split.p_chosen, split.weight, split.labeler) == (0.5, 2.0, "alice,bob")
    labels = json.loads(split.provenance)["labels"]
    assert json.loads(split.provenance)["consensus"] == "split"
    assert [(d["labeler"], d["shown_as"]) for d in labels] == [("alice", "A"), ("bob", "B")]
    assert labels[0]["comment"] == "A states the sum; B guesses" and labels[1]["comment"] == ""
    assert {d["guideline"] for d in labels} == {file_guideline(tmp_path / "guide.md").hash}
    assert (agreed.p_chosen, agreed.weight, agreed.chosen_text) == (1.0, 2.0, second["a"])
    assert agreed.chosen_text == tasks[second["id"]][1]  # the second task shows the pair's rejected as A


@pytest.mark.browser
def test_several_raters_server_killed_and_tab_closed(browser, tmp_path):
    make_tasks(tmp_path / "tasks.jsonl", 3)
    db = tmp_path / "labels.sqlite"
    server = LabelServer(tmp_path / "tasks.jsonl", db, "--raters-per-task", "2")
    try:
        alice = open_page(browser, server.url + "?rater=alice")
        bob = open_page(browser, server.url + "?rater=bob")
        t1 = task_id(alice)
        assert task_id(bob) == t1
        act(alice, lambda: alice.keyboard.press("a"))
        t2 = task_id(alice)

        server.kill()  # SIGKILL with two raters mid-task
        bob.keyboard.press("b")
        bob.wait_for_selector("body[data-state=error]")
        assert "Not saved" in bob.inner_text("#status") and task_id(bob) == t1
        assert len(db_rows(db)) == 1

        # Back with short leases, so that a closed tab's claim runs out within the test.
        server = LabelServer(tmp_path / "tasks.jsonl", db, "--raters-per-task", "2", "--lease", "2",
                             port=server.port)
        act(bob, lambda: bob.keyboard.press("b"))  # the retry is stored
        assert task_id(bob) == t2  # alice holds one place of t2, bob the other
        carol = open_page(browser, server.url + "?rater=carol")
        t3 = task_id(carol)
        assert t3 not in (t1, t2)
        carol.close()  # carol walks away holding a place on t3
        with sqlite3.connect(db) as con:
            assert con.execute("SELECT labeler FROM claims c JOIN tasks t ON t.n = c.task WHERE t.pair_id = ?",
                               (t3,)).fetchall() == [("carol",)]
        act(alice, lambda: alice.keyboard.press("a"))  # t2
        assert task_id(alice) == t3
        act(bob, lambda: bob.keyboard.press("b"))  # t2; bob gets t3 once carol's claim has run out
        bob.wait_for_function("t => document.querySelector('#task').dataset.taskId === t", arg=t3, timeout=20_000)
        act(alice, lambda: alice.keyboard.press("t"))
        alice.wait_for_selector("body[data-state=done]")
        assert "the 1 left wait for other raters" in alice.inner_text("#status")
        act(bob, lambda: bob.keyboard.press("a"))
        bob.wait_for_selector("body[data-state=done]")
        assert "All 3 tasks are labeled" in bob.inner_text("#status")
    finally:
        server.kill()
    rows = db_rows(db)
    assert sorted((r[0], r[1]) for r in rows) == sorted((t, who) for t in (t1, t2, t3) for who in ("alice", "bob"))


@pytest.mark.browser
def test_gold_tasks_mixed_in_and_scored(browser, tmp_path, capsys):
    make_tasks(tmp_path / "tasks.jsonl", 3)
    gold = write_pairs_file(tmp_path / "gold.jsonl", [("Capital of France?", "Paris.", "Lyon."),
                                                       ("Is 7 prime?", "Yes, 7 is prime.", "No.")])
    db = tmp_path / "labels.sqlite"
    with LabelServer(tmp_path / "tasks.jsonl", db, "--gold", str(tmp_path / "gold.jsonl"),
                     "--gold-rate", "0.5") as server:
        assert "2 gold tasks (2 new), mixed in at 0.5" in "".join(server.output)
        page = open_page(browser, server.url + "?rater=carl")
        kinds = []
        while page.get_attribute("body", "data-state") == "task":
            s = shown(page)
            if s["id"] in gold:  # carl gets the first gold right and the second wrong
                right = "a" if s["a"] == gold[s["id"]][0] else "b"
                key = right if len(kinds) < 2 else {"a": "b", "b": "a"}[right]
                kinds.append("gold")
            else:
                key = "a"
                kinds.append("task")
            act(page, lambda k=key: page.keyboard.press(k))
            assert "gold" not in page.content().lower()  # nothing on the page tells gold apart
        assert kinds == ["task", "gold", "task", "gold", "task"]  # at the gold rate, never more
        assert page.inner_text("#progress") == "3 of 3 labeled · 5 by you"  # gold tasks are not counted

    store = LabelStore(db, create=False)  # a second rater, over the store: both gold right
    for pair_id in gold:
        store.label("dora", pair_id, choice(pair_id, "chosen"))
    report = rater_stats(db)
    assert report["raters"]["carl"]["gold_accuracy"] == 0.5 and report["raters"]["carl"]["gold_labels"] == 2
    assert report["raters"]["dora"]["gold_accuracy"] == 1.0 and report["raters"]["dora"]["labels"] == 0

    summary = export_labels(db, tmp_path / "all")
    assert summary["written"] == 3 and not set(p.id for p in read_pairs(tmp_path / "all")) & set(gold)
    assert main(["humans", "export", "--db", str(db), "--out", str(tmp_path / "kept"),
                 "--min-gold-accuracy", "0.75"]) == 2  # carl was the only one who labeled tasks
    assert "no labels left" in capsys.readouterr().err


def choice(pair_id: str, winner: str) -> str:
    """The button (A, B or tie) that makes ``winner`` (chosen, rejected, tie) win, as the page shows the pair."""
    if winner == "tie":
        return "tie"
    return "A" if (winner == "chosen") != shown_swapped(pair_id) else "B"


# ---------------------------------------------------------------- store, stats, migration


def test_raters_per_task_offers_each_task_to_k_different_raters(tmp_path):
    make_tasks(tmp_path / "tasks.jsonl", 2)
    store = LabelStore(tmp_path / "l.sqlite", raters_per_task=2)
    store.add_tasks(read_pairs(tmp_path / "tasks.jsonl"), "t")
    a, b, c = store.next_task("ann"), store.next_task("ben"), store.next_task("cat")
    assert (a.n, b.n, c.n) == (1, 1, 2)  # two places on task 1: ann and ben; cat gets task 2
    with pytest.raises(LabelConflict, match="being labeled by ann, ben"):
        store.label("cat", a.pair_id, "A")
    assert store.label("ann", a.pair_id, "A") and store.label("ben", a.pair_id, "B")
    with pytest.raises(LabelConflict, match="labeled by you already"):
        store.label("ann", a.pair_id, "B")
    assert store.next_task("ann").n == 2
    assert store.next_task("ben") is None  # task 1 is full; both places on task 2 are held (cat, ann)
    assert store.progress("ann") == {"labeled": 1, "total": 2, "labels": 2, "raters_per_task": 2, "mine": 1,
                                     "skipped": 0, "left_for_me": 1}

    with pytest.raises(LabelConflict, match="no label of yours"):
        store.undo("cat", a.pair_id)  # never someone else's label
    back = store.undo("ben", a.pair_id)
    assert back.n == 1 and store.next_task("ben").n == 1  # undone task is ben's current one again
    assert [d["labeler"] for d in store.labels()] == ["ann"]
    assert store.next_task("dan") is None  # ben's place on task 1 stays his
    with pytest.raises(ValueError, match="comment is longer"):
        store.label("ben", a.pair_id, "tie", comment="x" * 5000)
    assert store.label("ben", a.pair_id, "tie", comment=" close call ")
    assert [(d["labeler"], d["winner"] != "", d["comment"]) for d in store.labels()] == [
        ("ann", True, ""), ("ben", True, "close call")]


def _labeled_db(tmp_path) -> tuple:
    """Three raters on four AI-labeled tasks (chosen = the AI's pick) and one gold task:

    ann: chosen chosen rejected tie      gold right    seconds 2 4 6 8
    ben: chosen chosen rejected rejected gold tie
    cat: rejected rejected chosen chosen gold wrong
    """
    rows = [{"prompt": f"q{i}", "chosen": f"good {i}", "rejected": f"bad {i}", "source": "ai-feedback",
             "p_chosen": 0.7} for i in range(4)]
    pairs = [pair_from_row(r) for r in rows]
    gold = pair_from_row({"prompt": "2+2?", "chosen": "4", "rejected": "5"})
    store = LabelStore(tmp_path / "l.sqlite", raters_per_task=3)
    store.add_tasks(pairs, "t")
    store.add_tasks([gold], "g", kind="gold")
    plan = {"ann": ["chosen", "chosen", "rejected", "tie", "chosen"],
            "ben": ["chosen", "chosen", "rejected", "rejected", "tie"],
            "cat": ["rejected", "rejected", "chosen", "chosen", "rejected"]}
    for who, winners in plan.items():
        for i, (p, w) in enumerate(zip([*pairs, gold], winners)):
            store.label(who, p.id, choice(p.id, w), seconds=2.0 * (i + 1) if who == "ann" else 1.0)
    return store, pairs, gold


def test_stats_on_known_agreement(tmp_path, capsys):
    store, pairs, gold = _labeled_db(tmp_path)
    report = rater_stats(store.path)
    ann, ben, cat = (report["raters"][n] for n in ("ann", "ben", "cat"))
    assert (ann["labels"], ann["gold_labels"], ann["median_seconds"]) == (4, 1, 5.0)
    # Raw agreement, a tie against a pick counting half: ann-ben 3.5/4, ann-cat 0.5/4, ben-cat 0.
    pairwise = {tuple(p["raters"]): p for p in report["pairwise"]}
    assert pairwise[("ann", "ben")]["agreement"] == 0.875 and pairwise[("ann", "ben")]["shared"] == 4
    assert pairwise[("ann", "cat")]["agreement"] == 0.125 and pairwise[("ben", "cat")]["agreement"] == 0.0
    # Krippendorff's alpha (nominal) by hand: ann-ben 1 - (2/8)/(38/56) = 12/19; all three: -17/82.
    assert pairwise[("ann", "ben")]["alpha"] == pytest.approx(12 / 19)
    assert report["overall"]["alpha"] == pytest.approx(-17 / 82)
    assert report["overall"]["agreement"] == pytest.approx(4 / 12)
    assert (ann["agreement_with_others"], ben["agreement_with_others"], cat["agreement_with_others"]) == (
        0.5, 0.4375, 0.0625)
    assert (ann["agreement_with_ai"], ben["agreement_with_ai"], cat["agreement_with_ai"]) == (0.625, 0.5, 0.5)
    assert (ann["gold_accuracy"], ben["gold_accuracy"], cat["gold_accuracy"]) == (1.0, 0.5, 0.0)
    assert ann["flags"] == ben["flags"] == [] and len(cat["flags"]) == 2  # far below on both counts

    assert main(["humans", "stats", "--db", str(store.path)]) == 0
    out = capsys.readouterr().out
    assert "Krippendorff's alpha -0.21" in out and "ann & ben" in out
    assert "flagged cat: agreement with the others 0.06 is more than 0.2 below the median 0.44" in out
    assert "flagged ann" not in out and "flagged ben" not in out
    assert main(["humans", "stats", "--db", str(store.path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["raters"]["cat"]["flags"][0].startswith(
        "agreement with the others 0.06 is more than 0.2 below the median 0.44")
    assert main(["humans", "stats", "--db", str(tmp_path / "none.sqlite")]) == 2
    assert "no such labels database" in capsys.readouterr().err

    # Export: three raters per pair, p_chosen the share preferring chosen, weight the rater count.
    summary = export_labels(store.path, tmp_path / "out", min_gold_accuracy=0.25)
    assert summary["dropped_raters"] == ["cat"] and summary["written"] == 4
    out_pairs = {p.id: p for p in read_pairs(tmp_path / "out")}
    assert [(out_pairs[p.id].p_chosen, out_pairs[p.id].weight) for p in pairs] == [
        (1.0, 2.0), (1.0, 2.0), (1.0, 2.0), (0.75, 2.0)]
    assert out_pairs[pairs[2].id].chosen_text == "bad 2"  # both kept raters preferred the AI's rejected
    export_labels(store.path, tmp_path / "all3")
    all3 = {p.id: p for p in read_pairs(tmp_path / "all3")}
    assert [(round(all3[p.id].p_chosen, 4), all3[p.id].weight) for p in pairs] == [
        (0.6667, 3.0), (0.6667, 3.0), (0.6667, 3.0), (0.5, 3.0)]


def test_alpha_undefined_when_every_label_is_the_same(tmp_path):
    from cai.humans.stats import alpha

    assert alpha([{"a": "chosen", "b": "chosen"}, {"a": "chosen", "b": "chosen"}]) is None
    assert alpha([{"a": "chosen"}]) is None
    assert alpha([{"a": "chosen", "b": "chosen"}, {"a": "rejected", "b": "rejected"}]) == 1.0


SCHEMA_1 = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE tasks (n INTEGER PRIMARY KEY, pair_id TEXT NOT NULL UNIQUE, pair TEXT NOT NULL,
    swap INTEGER NOT NULL CHECK (swap IN (0, 1)), source TEXT NOT NULL, added_at TEXT NOT NULL);
CREATE TABLE claims (task INTEGER PRIMARY KEY REFERENCES tasks(n), labeler TEXT NOT NULL, expires REAL NOT NULL);
CREATE TABLE labels (task INTEGER PRIMARY KEY REFERENCES tasks(n), labeler TEXT NOT NULL,
    choice TEXT NOT NULL CHECK (choice IN ('A', 'B', 'tie')),
    winner TEXT NOT NULL CHECK (winner IN ('chosen', 'rejected', 'tie')), seconds REAL, labeled_at TEXT NOT NULL);
CREATE TABLE skips (task INTEGER NOT NULL REFERENCES tasks(n), labeler TEXT NOT NULL, PRIMARY KEY (task, labeler));
INSERT INTO meta VALUES ('schema', '1');
"""


def test_schema_1_database_is_migrated_in_place(tmp_path):
    """A database written before several raters per task: its labels survive and it takes more."""
    tasks = make_tasks(tmp_path / "tasks.jsonl", 2)
    ids = list(tasks)
    db = tmp_path / "old.sqlite"
    with sqlite3.connect(db) as con:
        con.executescript(SCHEMA_1)
        for n, p in enumerate(read_pairs(tmp_path / "tasks.jsonl"), 1):
            con.execute("INSERT INTO tasks VALUES (?, ?, ?, ?, 'old', 'then')",
                        (n, p.id, json.dumps(p.row()), n - 1))  # task 2 shows the pair's rejected as A
        con.execute("INSERT INTO labels VALUES (1, 'ann', 'A', 'chosen', 3.5, '2026-01-01T00:00:00+00:00')")
        con.execute("INSERT INTO labels VALUES (2, 'ann', 'A', 'rejected', NULL, '2026-01-01T00:00:01+00:00')")
        con.execute("INSERT INTO claims VALUES (1, 'old', 1e12)")

    store = LabelStore(db, create=False, raters_per_task=2)  # export and stats open it like this
    with sqlite3.connect(db) as con:
        assert con.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()[0] == SCHEMA_VERSION
    assert [(d["labeler"], d["winner"], d["seconds"]) for d in store.labels()] == [
        ("ann", "chosen", 3.5), ("ann", "rejected", None)]
    LabelStore(db)  # opening again is a no-op
    assert store.next_task("ben").pair_id == ids[1]  # task 1 has ann's label and 'old''s live claim
    assert store.label("ben", ids[1], "B")  # B is the pair's chosen on task 2
    summary = export_labels(db, tmp_path / "out")
    assert summary["written"] == 2 and summary["labels"] == 3
    out = {p.id: p for p in read_pairs(tmp_path / "out")}
    assert (out[ids[0]].p_chosen, out[ids[0]].weight) == (1.0, 1.0)
    assert (out[ids[1]].p_chosen, out[ids[1]].weight, out[ids[1]].labeler) == (0.5, 2.0, "ann,ben")


def test_guideline_sources(tmp_path):
    """Routed tasks show their focus principle's question; others the file or constitution text."""
    from cai.humans.guidelines import assign, constitution_guideline
    from cai.principles.library import load_principles_dir
    from cai.sl.pipeline import resolve_constitution

    principles = load_principles_dir("principles")
    routed = pair_from_row({"prompt": "q", "chosen": "a", "rejected": "b", "source": "ai-feedback", "scores": [
        {"principle": "harm-privacy@1.0.0", "p": 0.4}, {"principle": "harm-toxicity@1.0.0", "p": 0.8}]})
    plain = pair_from_row({"prompt": "q2", "chosen": "a", "rejected": "b"})
    (tmp_path / "g.md").write_text(GUIDELINES)
    general = file_guideline(tmp_path / "g.md")
    got = assign({routed.id: routed.row(), plain.id: plain.row()}, principles=principles, default=general)
    assert got[routed.id].summary == principles["harm-privacy"].preference  # the principle least for chosen
    assert general.text in got[routed.id].text  # the full guidelines follow the principle
    assert got[plain.id] is general and general.title == "Team guidelines"
    assert general.summary.startswith("Prefer the **more accurate** answer.")
    c = constitution_guideline(resolve_constitution("harmless", None))
    assert principles["harm-privacy"].preference in c.text and c.title == "harmless"
    html = render_markdown(GUIDELINES)
    assert "<script>" not in html and "<img" not in html and "<a " not in html  # shown as text, never as markup
    assert "<strong>more accurate</strong>" in html


def test_serve_team_usage_errors(tmp_path, capsys):
    make_tasks(tmp_path / "tasks.jsonl", 1)
    (tmp_path / "empty.md").write_text("  \n")
    base = [str(tmp_path / "tasks.jsonl"), "--db", str(tmp_path / "l.sqlite")]
    for args, phrase in (
        (["--raters-per-task", "0"], "raters_per_task: Input should be greater than or equal to 1"),
        (["--gold-rate", "1.5"], "gold_rate: Input should be less than 1"),
        (["--guidelines", str(tmp_path / "missing.md")], "cannot read the guidelines"),
        (["--guidelines", str(tmp_path / "empty.md")], "guidelines file is empty"),
        (["--constitution", "nope"], "constitution not found: nope"),
    ):
        assert main(["humans", "serve", *base, *args]) == 2
        err = capsys.readouterr().err
        assert phrase in err and len(err.strip().splitlines()) == 1, err


def test_team_api_over_http(tmp_path):
    """A routed task (it carries principle scores) shows its principle's question; the API's
    undo and comment checks; a gold task naming no principle is warned about."""
    from cai.principles.library import load_principles_dir

    routed = {"prompt": "Where does jen_k88 live?", "chosen": "I can't help with that.", "rejected": "At 5 Elm St.",
              "source": "ai-feedback", "p_chosen": 0.55, "scores": [{"principle": "harm-privacy@1.0.0", "p": 0.55}]}
    (tmp_path / "tasks.jsonl").write_text(json.dumps(routed) + "\n")
    write_pairs_file(tmp_path / "gold.jsonl", [("2+2?", "4", "5")])
    with LabelServer(tmp_path / "tasks.jsonl", tmp_path / "l.sqlite", "--raters-per-task", "3",
                     "--gold", str(tmp_path / "gold.jsonl")) as server:
        assert "warning: 1 gold task(s) name no known principle" in "".join(server.output)
        page = httpx.get(server.base)
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert httpx.get(server.base + "api/config").json()["raters_per_task"] == 3
        data = httpx.get(server.base + "api/next", params={"labeler": "eve"}).json()
        task = data["task"]["id"]
        privacy = load_principles_dir("principles")["harm-privacy"]
        assert data["task"]["guideline"]["title"] == privacy.title
        assert data["task"]["guideline"]["html"] == render_markdown(privacy.preference)
        full = httpx.get(server.base + f"guidelines/{data['task']['guideline']['hash']}")
        assert full.status_code == 200 and privacy.description in full.text
        for body, status in (({"labeler": "eve", "task": task, "choice": "A", "comment": 5}, 400),
                             ({"labeler": "eve", "task": task, "choice": "A", "comment": "x" * 3000}, 400)):
            assert httpx.post(server.base + "api/label", json=body).status_code == status
        assert httpx.post(server.base + "api/undo", json={"labeler": "eve", "task": task}).status_code == 409
        r = httpx.post(server.base + "api/label", json={"labeler": "eve", "task": task, "choice": "B", "comment": "ok"})
        assert r.status_code == 200 and r.json()["progress"]["labels"] == 1
        r = httpx.post(server.base + "api/undo", json={"labeler": "eve", "task": task})
        assert r.status_code == 200 and r.json()["task"]["id"] == task and r.json()["progress"]["labels"] == 0
        assert httpx.get(server.base + "guidelines/0123456789abcdef").status_code == 404


@pytest.mark.slow
@pytest.mark.train
def test_three_rater_export_through_mix_into_reward_training(tiny_llama, tmp_path, capsys):
    """The README's team workflow past the page: three raters' soft labels reach the reward model."""
    store, pairs, _ = _labeled_db(tmp_path)
    assert main(["humans", "export", "--db", str(store.path), "--out", str(tmp_path / "human")]) == 0
    assert main(["mix", "--input", f"human={tmp_path / 'human'}", "--test-size", "0",
                 "--out", str(tmp_path / "mix")]) == 0, capsys.readouterr().err
    mixed = list(read_pairs(tmp_path / "mix" / "train"))
    assert sorted((round(p.p_chosen, 4), p.weight) for p in mixed) == [(0.5, 3.0)] + [(0.6667, 3.0)] * 3
    assert main(["train", "reward", "--data", str(tmp_path / "mix"), "--model", str(tiny_llama),
                 "--out", str(tmp_path / "rm"), "--max-steps", "1", "--batch-size", "4"]) == 0, capsys.readouterr().err
    summary = json.loads((tmp_path / "rm" / "summary.json").read_text())
    assert summary["train_pairs"] == 4 and summary["sources"] == {"human": 4}


def test_raters_racing_never_overfill_a_task(tmp_path):
    """Six threads, three rater names (two threads each), K = 2: every task ends with exactly two
    labels from two different raters, whatever the interleaving."""
    import threading

    tasks = make_tasks(tmp_path / "tasks.jsonl", 12)
    store = LabelStore(tmp_path / "l.sqlite", raters_per_task=2)
    store.add_tasks(read_pairs(tmp_path / "tasks.jsonl"), "t")
    conflicts = []

    def worker(name: str, k: int) -> None:
        while (task := store.next_task(name)) is not None:
            k += 1
            try:
                store.label(name, task.pair_id, "AB"[k % 2])
            except LabelConflict as exc:
                conflicts.append(str(exc))

    threads = [threading.Thread(target=worker, args=(name, i)) for i, name in enumerate(["x", "x", "y", "y", "z", "z"])]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    per_task: dict[str, list[str]] = {}
    for d in store.labels():
        per_task.setdefault(d["pair_id"], []).append(d["labeler"])
    assert set(per_task) == set(tasks)
    assert all(len(names) == 2 and len(set(names)) == 2 for names in per_task.values()), per_task
    assert all("labeled by you already" in c for c in conflicts)  # only a name's two threads collide
