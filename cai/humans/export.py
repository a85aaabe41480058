"""Export the labels of a labeling database as ``PreferencePair`` rows (``source="human"``).

One row per labeled task, aggregating every rater's label into a soft label:
``p_chosen`` is the share of raters preferring the exported ``chosen`` (a tie counts half for
each side), and the row is oriented so that ``p_chosen >= 0.5`` (an even split keeps the task's
order). ``weight`` is the number of raters, so a comparison three people agreed on counts three
times one person's pick in the soft-label reward model; one rater gives ``p_chosen`` 1.0 (or 0.5
for a tie) and weight 1. Every rater's label (name, pick, seconds, comment, the hash of the
guideline shown) stays in ``provenance.labels``.

Gold tasks are never exported; ``min_gold_accuracy`` leaves out every label of raters whose
accuracy on gold tasks is below it (raters who met no gold task are kept).

The pair keeps the task's content, so its ``id`` (an order-independent content hash) equals the
task pair's id, which is also the ``record_id``: ``cai mix`` joins human and AI labels of the
same comparison on it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from cai.core.errors import CaiError
from cai.humans.store import LabelStore
from cai.data.pairs import PreferencePair, provenance_json, write_pairs

CREDIT = {"chosen": 1.0, "tie": 0.5, "rejected": 0.0}  # a winner, as credit to the task pair's chosen


def gold_accuracy(store: LabelStore) -> dict[str, dict]:
    """Per rater: ``{"n": gold tasks labeled, "accuracy": mean credit}`` where picking the gold
    pair's chosen scores 1, a tie 0.5 and the other response 0."""
    out: dict[str, dict] = {}
    for d in store.labels():
        if d["kind"] == "gold":
            r = out.setdefault(d["labeler"], {"n": 0, "correct": 0.0})
            r["n"] += 1
            r["correct"] += CREDIT[d["winner"]]
    return {name: {"n": r["n"], "accuracy": r["correct"] / r["n"]} for name, r in out.items()}


def human_pairs(store: LabelStore, *, drop: set[str] = frozenset(), labeled=None) -> Iterator[PreferencePair]:
    """One aggregated pair per labeled task (labels of raters in ``drop`` left out); ``labeled``:
    ``store.labeled()`` when already read."""
    for pair, labels in (store.labeled() if labeled is None else labeled):
        labels = [d for d in labels if d["labeler"] not in drop]
        if not labels:
            continue
        p = sum(CREDIT[d["winner"]] for d in labels) / len(labels)
        chosen, rejected = pair["chosen"], pair["rejected"]
        if p < 0.5:
            chosen, rejected, p = rejected, chosen, 1.0 - p
        first = labels[0]
        yield PreferencePair(
            prompt=pair["prompt"], chosen=chosen, rejected=rejected, source="human",
            p_chosen=round(p, 6), weight=float(len(labels)),
            record_id=pair["id"], labeler=",".join(d["labeler"] for d in labels), origin=pair.get("origin", ""),
            provenance=provenance_json(
                db=str(store.path), task=first["task"], tasks_source=first["tasks_source"], swapped=first["swap"],
                raters=len(labels), task_source=pair.get("source", ""), task_labeler=pair.get("labeler", ""),
                labels=[{"labeler": d["labeler"], "winner": d["winner"], "shown_as": d["choice"],
                         "seconds": d["seconds"], "labeled_at": d["labeled_at"], "comment": d["comment"],
                         "guideline": d["guideline"]} for d in labels],
            ),
        )


def export_labels(db: str | Path, out: str | Path, *, min_gold_accuracy: float | None = None) -> dict:
    """Write the human labels in ``db`` to the dataset folder ``out``, one aggregated pair per
    task; returns counts (written, ties, labels, raters, dropped raters, tasks, unlabeled, out)."""
    store = LabelStore(db, create=False)
    progress = store.progress()
    if progress["labels"] == 0:
        raise CaiError(f"no labels yet ({progress['total']} tasks); nothing written", path=str(db))
    drop: set[str] = set()
    if min_gold_accuracy is not None:
        drop = {name for name, g in gold_accuracy(store).items() if g["accuracy"] < min_gold_accuracy}
    labeled = list(store.labeled())
    raters = {d["labeler"] for _, labels in labeled for d in labels} - drop
    if not raters:
        raise CaiError(f"no labels left after leaving out raters under --min-gold-accuracy "
                       f"({', '.join(sorted(drop))}); nothing written", path=str(db))
    counts = {"ties": 0, "labels": 0, "empty_response": 0}

    def pairs():
        for pair in human_pairs(store, drop=drop, labeled=labeled):
            if pair.empty_response:  # a task stored before empty responses were left out: never written
                counts["empty_response"] += 1
                continue
            counts["ties"] += pair.p_chosen == 0.5
            counts["labels"] += int(pair.weight)
            yield pair

    written = write_pairs(pairs(), out)
    unlabeled = progress["total"] - written - counts["empty_response"]
    return {"written": written, "ties": counts["ties"], "empty_response": counts["empty_response"],
            "labels": counts["labels"], "raters": len(raters), "dropped_raters": sorted(drop),
            "tasks": progress["total"], "unlabeled": unlabeled, "out": str(out)}
