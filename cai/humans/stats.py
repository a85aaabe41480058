"""`cai humans stats`: how the raters of a labeling database label, and how well they agree.

Per rater: labels given, median and total seconds per label, gold accuracy, raw agreement with the
other raters on the tasks they shared, and agreement with the AI label of the task (the pair's
``chosen`` when the task pair came from AI feedback or revisions). Per pair of raters and overall:
raw agreement and Krippendorff's alpha (nominal; missing labels allowed), computed by the
``krippendorff`` package. A label is one of three values relative to the task pair: chosen,
rejected or tie.

Agreement with others, and with the AI, counts a tie against a pick as half an agreement (the
same credit the export gives a tie). A rater is flagged when their agreement with the others is
more than ``margin`` below the median rater's, or their gold accuracy is more than ``margin``
below the median gold accuracy.
"""

from __future__ import annotations

import statistics
from itertools import combinations

from cai.humans.export import CREDIT, gold_accuracy
from cai.humans.schema import rater_key
from cai.humans.store import LabelStore

VALUES = {"rejected": 0, "tie": 1, "chosen": 2}
MIN_SHARED = 2  # tasks two raters must share before their pairwise alpha is reported


def _match(a: str, b: str) -> float:
    """Agreement of two labels: 1 equal, 0.5 a tie against a pick, 0 opposite picks."""
    if a == b:
        return 1.0
    return 0.5 if "tie" in (a, b) else 0.0


def alpha(units: list[dict[str, str]]) -> float | None:
    """Krippendorff's alpha (nominal) over units (task → {rater: winner}); None when undefined
    (fewer than two labels on any unit, or a single value in the whole data)."""
    import numpy as np
    import krippendorff

    units = [u for u in units if len(u) >= 2]
    if not units:
        return None
    raters = sorted({r for u in units for r in u})
    data = np.full((len(raters), len(units)), np.nan)
    for j, u in enumerate(units):
        for r, winner in u.items():
            data[raters.index(r), j] = VALUES[winner]
    if len(set(data[~np.isnan(data)].tolist())) < 2:
        return None  # every label the same: alpha is 0/0
    return float(krippendorff.alpha(reliability_data=data, level_of_measurement="nominal"))


def rater_stats(db, *, margin: float = 0.2) -> dict:
    """The agreement report of a labeling database (see the module docstring); CaiError if the
    database is missing or not one."""
    store = LabelStore(db, create=False)
    labels = store.labels()
    units: dict[int, dict[str, str]] = {}
    per: dict[str, dict] = {}
    for d in labels:
        r = per.setdefault(d["labeler"], {"labels": 0, "gold_labels": 0, "seconds": [], "ai": []})
        if d["kind"] == "gold":
            r["gold_labels"] += 1
            continue
        r["labels"] += 1
        if d["seconds"] is not None:
            r["seconds"].append(d["seconds"])
        units.setdefault(d["task"], {})[d["labeler"]] = d["winner"]
        source = d["pair"].get("source", "")
        if source.startswith("ai-"):
            r["ai"].append(CREDIT[d["winner"]])  # the AI's label is the task pair's chosen

    gold = gold_accuracy(store)
    pairwise = []
    for a, b in combinations(sorted(per), 2):
        shared = [u for u in units.values() if a in u and b in u]
        if not shared:
            continue
        pairwise.append({
            "raters": [a, b], "shared": len(shared),
            "agreement": sum(_match(u[a], u[b]) for u in shared) / len(shared),
            "alpha": alpha([{a: u[a], b: u[b]} for u in shared]) if len(shared) >= MIN_SHARED else None,
        })

    raters = {}
    for name, r in sorted(per.items()):
        matches = [_match(u[name], w) for u in units.values() if name in u for o, w in u.items() if o != name]
        secs = r["seconds"]
        raters[name] = {
            "labels": r["labels"], "gold_labels": r["gold_labels"],
            "median_seconds": statistics.median(secs) if secs else None,
            "total_seconds": round(sum(secs), 3) if secs else None,
            "agreement_with_others": sum(matches) / len(matches) if matches else None,
            "compared": len(matches),
            "gold_accuracy": gold[name]["accuracy"] if name in gold else None,
            "agreement_with_ai": sum(r["ai"]) / len(r["ai"]) if r["ai"] else None,
            "ai_compared": len(r["ai"]),
            "flags": [],
        }
    _flag(raters, "agreement_with_others", "agreement with the others", margin)
    _flag(raters, "gold_accuracy", "gold accuracy", margin)

    multi = [u for u in units.values() if len(u) >= 2]
    all_matches = [_match(u[a], u[b]) for u in multi for a, b in combinations(sorted(u), 2)]
    return {
        "db": str(db), "tasks": store.progress()["total"], "labeled_tasks": len(units),
        "multi_rated_tasks": len(multi), "labels": sum(r["labels"] for r in per.values()),
        "overall": {"alpha": alpha(multi), "agreement": sum(all_matches) / len(all_matches) if all_matches else None,
                    "pairs_compared": len(all_matches)},
        "raters": raters, "pairwise": pairwise, "margin": margin, "same_rater": same_rater(per),
    }


def same_rater(names) -> list[list[str]]:
    """Groups of stored rater names that stand for one rater (:func:`rater_key`): possible only
    in databases labeled before names were matched by key."""
    groups: dict[str, list[str]] = {}
    for name in sorted(names):
        groups.setdefault(rater_key(name), []).append(name)
    return [g for g in groups.values() if len(g) > 1]


def _flag(raters: dict[str, dict], key: str, what: str, margin: float) -> None:
    values = {n: r[key] for n, r in raters.items() if r[key] is not None}
    if len(values) < 2:
        return
    median = statistics.median(values.values())
    for name, v in values.items():
        if v < median - margin:
            raters[name]["flags"].append(f"{what} {v:.2f} is more than {margin:g} below the median {median:.2f}")
