"""Export the labels of a labeling database as ``PreferencePair`` rows (``source="human"``).

The human's pick becomes ``chosen`` with ``p_chosen=1.0``; a tie keeps the task's order with
``p_chosen=0.5``. The pair keeps the task's content, so its ``id`` (an order-independent content
hash) equals the task pair's id, which is also the ``record_id``: ``cai mix`` joins human and AI
labels of the same comparison on it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from cai.errors import CaiError
from cai.humans.store import LabelStore
from cai.pairs import PreferencePair, provenance_json, write_pairs


def human_pairs(store: LabelStore) -> Iterator[PreferencePair]:
    for pair, label in store.labeled():
        chosen, rejected = pair["chosen"], pair["rejected"]
        if label["winner"] == "rejected":
            chosen, rejected = rejected, chosen
        yield PreferencePair(
            prompt=pair["prompt"], chosen=chosen, rejected=rejected, source="human",
            p_chosen=0.5 if label["winner"] == "tie" else 1.0,
            record_id=pair["id"], labeler=label["labeler"], origin=pair.get("origin", ""),
            provenance=provenance_json(
                db=str(store.path), task=label["task"], tasks_source=label["tasks_source"],
                labeled_at=label["labeled_at"], seconds=label["seconds"], shown_as=label["choice"],
                swapped=label["swap"], task_source=pair.get("source", ""), task_labeler=pair.get("labeler", ""),
            ),
        )


def export_labels(db: str | Path, out: str | Path) -> dict:
    """Write every human label in ``db`` to the dataset folder ``out``; returns counts."""
    store = LabelStore(db, create=False)
    progress = store.progress()
    if progress["labeled"] == 0:
        raise CaiError(f"no labels yet ({progress['total']} tasks); nothing written", path=str(db))
    counts = {"ties": 0, "empty_response": 0}

    def pairs():
        for pair in human_pairs(store):
            if pair.empty_response:  # a task stored before empty responses were left out: never written
                counts["empty_response"] += 1
                continue
            counts["ties"] += pair.p_chosen == 0.5
            yield pair

    written = write_pairs(pairs(), out)
    return {"written": written, "ties": counts["ties"], "empty_response": counts["empty_response"],
            "tasks": progress["total"],
            "unlabeled": progress["total"] - progress["labeled"], "out": str(out)}
