"""Export the labels of a labeling database as ``PreferencePair`` rows (``source="human"``).

One row per labeled task, aggregating every rater's label into a soft label:
``p_chosen`` is the share of raters preferring the exported ``chosen`` (a "tie", a rater's explicit
"about the same", counts half for each side), and the row is oriented so that ``p_chosen >= 0.5``
(an even split keeps the task's order). Every rater's label (name, pick, seconds, comment, the
hash of the guideline shown) stays in ``provenance.labels``.

**How a pair is weighted.** ``weight`` is the number of raters: each label counts once. With the
soft-label Bradley-Terry loss ``-w [p log s(d) + (1-p) log s(-d)]`` this is exactly the loss of
training on every rater's label as its own pair, so aggregating changes nothing. One rater gives
``p_chosen`` 1.0 (or 0.5 for a tie) and weight 1.

**Disagreements are not ties.** ``provenance.consensus`` says what the raters did:
``agree`` (picks on one side only, ties aside), ``tie`` (every rater said "about the same") or
``split`` (raters picked opposite responses: a disagreement; ``even`` when as many picked each
side, which gives ``p_chosen`` 0.5 like a tie but means "people disagree", not "equally good").
``provenance.votes`` counts the picks. ``disagreements="drop"`` leaves split pairs out (counted);
the default keeps them under the rule above, so a 1-1 split of two raters is two labels pulling
toward "equal", as each of the two labels would alone.

Gold tasks are never exported; ``min_gold_accuracy`` leaves out every label of raters whose
accuracy on gold tasks is below it (raters who met no gold task are kept).

The pair keeps the task's content, so its ``id`` (an order-independent content hash) equals the
task pair's id, which is also the ``record_id``: ``cai mix`` joins human and AI labels of the
same comparison on it.
"""

from __future__ import annotations

import json
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


def consensus(labels: list[dict]) -> tuple[str, dict[str, int]]:
    """What the raters of one task did: (``agree`` | ``tie`` | ``split``, pick counts by winner)."""
    votes = {w: sum(d["winner"] == w for d in labels) for w in ("chosen", "rejected", "tie")}
    if votes["chosen"] and votes["rejected"]:
        return "split", votes
    return ("tie" if votes["tie"] == len(labels) else "agree"), votes


def human_pairs(store: LabelStore, *, drop: set[str] = frozenset(), labeled=None,
                disagreements: str = "keep") -> Iterator[PreferencePair]:
    """One aggregated pair per labeled task (labels of raters in ``drop`` left out; with
    ``disagreements="drop"`` split tasks are left out too); ``labeled``: ``store.labeled()`` when
    already read. Weighting and ``provenance.consensus``: see the module docstring."""
    if disagreements not in ("keep", "drop"):
        raise ValueError(f"disagreements must be keep or drop, not {disagreements!r}")
    for pair, labels in (store.labeled() if labeled is None else labeled):
        labels = [d for d in labels if d["labeler"] not in drop]
        if not labels:
            continue
        kind, votes = consensus(labels)
        if kind == "split" and disagreements == "drop":
            continue
        p = sum(CREDIT[d["winner"]] for d in labels) / len(labels)
        chosen, rejected = pair["chosen"], pair["rejected"]
        if p < 0.5:
            chosen, rejected, p = rejected, chosen, 1.0 - p
            votes = {"chosen": votes["rejected"], "rejected": votes["chosen"], "tie": votes["tie"]}
        first = labels[0]
        yield PreferencePair(
            prompt=pair["prompt"], chosen=chosen, rejected=rejected, source="human",
            p_chosen=round(p, 6), weight=float(len(labels)),
            record_id=pair["id"], labeler=",".join(d["labeler"] for d in labels), origin=pair.get("origin", ""),
            provenance=provenance_json(
                db=str(store.path), task=first["task"], tasks_source=first["tasks_source"], swapped=first["swap"],
                raters=len(labels), task_source=pair.get("source", ""), task_labeler=pair.get("labeler", ""),
                consensus=kind, even=kind == "split" and votes["chosen"] == votes["rejected"], votes=votes,
                weight_rule="one unit per rater's label",
                labels=[{"labeler": d["labeler"], "winner": d["winner"], "shown_as": d["choice"],
                         "seconds": d["seconds"], "labeled_at": d["labeled_at"], "comment": d["comment"],
                         "guideline": d["guideline"]} for d in labels],
            ),
        )


def export_labels(db: str | Path, out: str | Path, *, min_gold_accuracy: float | None = None,
                  disagreements: str = "keep") -> dict:
    """Write the human labels in ``db`` to the dataset folder ``out``, one aggregated pair per
    task; returns counts: written, agreed, ties (every rater said "about the same"), split
    (raters picked opposite sides), even_splits (split with p_chosen 0.5), dropped_splits
    (left out by ``disagreements="drop"``), labels, raters, dropped raters, tasks, unlabeled, out."""
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
    counts = {"agree": 0, "tie": 0, "split": 0, "even": 0, "labels": 0, "empty_response": 0}

    def pairs():
        for pair in human_pairs(store, drop=drop, labeled=labeled, disagreements=disagreements):
            if pair.empty_response:  # a task stored before empty responses were left out: never written
                counts["empty_response"] += 1
                continue
            prov = json.loads(pair.provenance)
            counts[prov["consensus"]] += 1
            counts["even"] += prov["even"]
            counts["labels"] += int(pair.weight)
            yield pair

    written = write_pairs(pairs(), out)
    dropped_splits = 0
    if disagreements == "drop":
        kept = [[d for d in labels if d["labeler"] not in drop] for _, labels in labeled]
        dropped_splits = sum(1 for labels in kept if labels and consensus(labels)[0] == "split")
    unlabeled = progress["total"] - written - counts["empty_response"] - dropped_splits
    return {"written": written, "agreed": counts["agree"], "ties": counts["tie"], "split": counts["split"],
            "even_splits": counts["even"], "dropped_splits": dropped_splits, "empty_response": counts["empty_response"],
            "labels": counts["labels"], "raters": len(raters), "dropped_raters": sorted(drop),
            "tasks": progress["total"], "unlabeled": unlabeled, "out": str(out)}


def summary_line(s: dict) -> str:
    """The one-line account of :func:`export_labels`'s counts (names shown as written)."""
    split = f"{s['split']} split (raters picked opposite sides; {s['even_splits']} even, p_chosen 0.5)"
    if s["dropped_splits"]:
        split = f"{s['dropped_splits']} split pairs left out (--disagreements drop)"
    dropped = f"; left out raters under the gold threshold: {', '.join(s['dropped_raters'])}" if s["dropped_raters"] else ""
    return (f"wrote {s['written']} human labels from {s['labels']} labels by {s['raters']} rater(s) to {s['out']}: "
            f"{s['agreed']} agreed, {split}, {s['ties']} ties (every rater said \"about the same\"); "
            f"weight = raters per pair (each label counts once); "
            f"{s['unlabeled']} of {s['tasks']} tasks unlabeled{dropped}")
