"""Rater identity on the labeling page (issue 28, item 6; field cases A2, A3 and #13).

- Rater names are data: `cai humans stats` shows `[/bold]eve` and `[red]zed[/red]` as written
  (it crashed on the first and showed the second as `zed`).
- Raters are told apart by a normalised key: `Ana` and `ana` are one rater with one place per task
  (they filled both places of every task and agreement read 1.00).
- The export tells disagreements (raters picked opposite sides) from ties (a rater's "about the
  same") in its summary and in each pair's provenance, and can leave disagreements out.
"""

from __future__ import annotations

import json
import sqlite3

import pytest

from cai.cli.main import main
from cai.data.pairs import provenance_object, read_pairs
from cai.humans.export import export_labels
from cai.humans.stats import rater_stats
from cai.humans.store import LabelConflict, LabelStore


def _store(tmp_path, n: int, k: int) -> tuple[LabelStore, list[str]]:
    path = tmp_path / "tasks.jsonl"
    path.write_text("".join(json.dumps({"prompt": f"q{i}?", "chosen": f"yes {i}", "rejected": f"no {i}"}) + "\n"
                            for i in range(n)))
    store = LabelStore(tmp_path / "labels.sqlite", raters_per_task=k, gold_rate=0)
    store.add_tasks(read_pairs(path), source=str(path))
    return store, [pid for pid, _ in store.pairs()]


def _label_all(store: LabelStore, name: str, choice: str) -> int:
    done = 0
    while (task := store.next_task(name)) is not None:
        done += store.label(name, task.pair_id, choice)
    return done


MARKUP_NAMES = ["[/bold]eve", "[red]zed[/red]", "[link=https://example.invalid]bob[/link]"]


def test_stats_show_markup_names_as_written(tmp_path, capsys):
    store, _ = _store(tmp_path, 2, 3)
    for name in MARKUP_NAMES:
        assert _label_all(store, name, "A") == 2
    assert main(["humans", "stats", "--db", str(store.path)]) == 0  # crashed with rich's MarkupError
    out = capsys.readouterr().out
    for name in MARKUP_NAMES:
        assert name in out
    assert "[red]zed[/red] & [link=https://example.invalid]bob[/link]" in out or "[/bold]eve & [red]zed[/red]" in out
    # a rater whose name is markup cannot pose as another in the table: no bare `zed` row
    assert not any(line.strip().startswith("zed ") for line in out.splitlines())


def test_case_and_width_variants_are_one_rater(tmp_path):
    store, ids = _store(tmp_path, 3, 2)
    assert _label_all(store, "Ana", "A") == 3
    # `ana`, ` ANA ` and full-width `Ａｎａ` are Ana: nothing left for her, no second place taken
    for alias in ("ana", " ANA ", "Ａｎａ", "a\u00a0na".replace("\u00a0", "")):
        assert store.next_task(alias) is None
    assert store.label("ana", ids[0], "A") is False  # the same label again: accepted once, not stored twice
    with pytest.raises(LabelConflict):
        store.label("ANA", ids[0], "B")  # "labeled by you already"
    assert _label_all(store, "ben", "B") == 3
    with sqlite3.connect(store.path) as db:
        names = sorted({r[0] for r in db.execute("SELECT labeler FROM labels")})
    assert names == ["Ana", "ben"]
    report = rater_stats(store.path)
    assert set(report["raters"]) == {"Ana", "ben"} and report["same_rater"] == []
    assert report["overall"]["agreement"] == 0.0  # two different people who disagree, not 1.00
    assert store.progress("ana")["mine"] == 3


def test_old_databases_with_variants_are_flagged(tmp_path, capsys):
    store, ids = _store(tmp_path, 2, 2)
    with sqlite3.connect(store.path) as db:  # labels stored before names were matched by key
        for i, pid in enumerate(ids):
            n = db.execute("SELECT n FROM tasks WHERE pair_id = ?", (pid,)).fetchone()[0]
            for name in ("Ana", "ana"):
                db.execute("INSERT INTO labels (task, labeler, choice, winner, labeled_at) VALUES (?, ?, 'A', "
                           "'chosen', '2026-01-01')", (n, name))
    assert rater_stats(store.path)["same_rater"] == [["Ana", "ana"]]
    assert main(["humans", "stats", "--db", str(store.path)]) == 0
    assert "warning: 'Ana', 'ana' differ only in case" in capsys.readouterr().out


def test_export_tells_disagreements_from_ties(tmp_path, capsys):
    store, ids = _store(tmp_path, 4, 2)
    picks = {"ana": ["A", "A", "tie", "A"], "ben": ["B", "A", "tie", "tie"]}
    for name, choices in picks.items():
        for pid, choice in zip(ids, choices):
            assert store.next_task(name) is not None
            assert store.label(name, pid, choice)
    s = export_labels(store.path, tmp_path / "out")
    # task 0: A vs B is a split (p 0.5: an even one), task 1 agree, task 2 a real tie, task 3 A + tie agree
    assert (s["written"], s["agreed"], s["ties"], s["split"], s["even_splits"]) == (4, 2, 1, 1, 1)
    rows = [json.loads(line) for line in (tmp_path / "out" / "data.jsonl").read_text().splitlines()]
    prov = {r["record_id"]: provenance_object(r["provenance"]) if isinstance(r["provenance"], str) else r["provenance"]
            for r in rows}
    weights = {r["record_id"]: (r["p_chosen"], r["weight"]) for r in rows}
    assert prov[ids[0]]["consensus"] == "split" and prov[ids[0]]["even"] is True
    assert prov[ids[2]]["consensus"] == "tie" and prov[ids[2]]["even"] is False
    assert weights[ids[0]] == weights[ids[2]] == (0.5, 2.0)  # the documented rule: one unit per label
    assert prov[ids[3]]["consensus"] == "agree" and weights[ids[3]] == (0.75, 2.0)
    assert sorted(prov[ids[3]]["votes"].values()) == [0, 1, 1]

    assert main(["humans", "export", "--db", str(store.path), "--out", str(tmp_path / "cli")]) == 0
    line = capsys.readouterr().out
    assert "2 agreed, 1 split (raters picked opposite sides; 1 even, p_chosen 0.5), 1 ties" in line
    assert main(["humans", "export", "--db", str(store.path), "--out", str(tmp_path / "kept"),
                 "--disagreements", "drop"]) == 0
    assert "1 split pairs left out" in capsys.readouterr().out
    kept = (tmp_path / "kept" / "data.jsonl").read_text().splitlines()
    assert len(kept) == 3 and ids[0] not in "".join(kept)
    assert main(["humans", "export", "--db", str(store.path), "--out", str(tmp_path / "x"),
                 "--disagreements", "maybe"]) == 2
