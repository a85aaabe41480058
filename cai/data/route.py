"""``cai route``: pick, within a budget, the AI-labeled pairs most worth a human look.

Each AI-labeled pair gets three component scores in [0, 1]:

- ``uncertainty``: how close the soft label is to a coin flip, ``1 - 2|p_chosen - 0.5|``.
- ``disagreement``: how much the principles disagree, the mean of ``principle_split`` (the
  share of principles on the minority side of 0.5, scaled so an even split is 1) and
  ``principle_spread`` (highest minus lowest per-principle p). Needs two or more principle scores.
- ``position``: order bias, 1 when the labeler flagged the pair position-inconsistent or a
  principle's two presentation orders fall on opposite sides of 0.5, otherwise the largest
  ``|p_first - p_second|``.

The routing score is their weighted mean. Ties are broken by a seeded hash of the pair id, so a
seed gives one ranking whatever the input order. With ``diversity`` > 0, each pair already picked
for the same *focus principle* (the principle least in favour of the chosen response) discounts
the next one's score by ``(1 - diversity)``, spreading the budget across principles; at 1 the
principles take turns.

The selected pairs are written as a pairs folder (``data.jsonl``, ``data.parquet``, ``hf/``) that
the labeling page reads as tasks, with ``report.csv`` and ``route.json`` saying why each was picked.
"""

from __future__ import annotations

import csv
import hashlib
from collections import Counter
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from cai.data.outputs import preview, staged_outputs
from cai.core.errors import CaiError
from cai.data.pairs import PreferencePair, read_pairs, write_pairs
from cai.core.runs import write_json

COMPONENTS = ("uncertainty", "disagreement", "position")
OUTPUTS = ["data.jsonl", "data.parquet", "hf", "report.csv", "route.json"]
HUMAN = "human"


class RouteConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    pairs: str = Field(description="AI-labeled pairs: a file or a folder (`cai label` output).")
    budget: int = Field(ge=1, description="Most pairs to send to people.")
    out: str = Field(description="Output folder: the tasks (a pairs folder) plus report.csv and route.json.")
    weights: dict[str, float] = Field(default_factory=lambda: dict.fromkeys(COMPONENTS, 1.0),
                                      description="Weight of each component: uncertainty, disagreement, position.")
    diversity: float = Field(default=0.0, ge=0.0, le=1.0,
                             description="0-1: discount per pair already picked for the same focus principle "
                             "(0: off; 1: the principles take turns).")
    seed: int = Field(default=0, description="Seed of the tie-breaking order.")
    exclude: list[str] = Field(default_factory=list, description="Pairs files whose ids are skipped (e.g. pairs people have labeled); repeatable.")
    skip_invalid: bool = Field(default=False, description="Skip bad rows instead of stopping at the first.")

    @field_validator("weights")
    @classmethod
    def _check_weights(cls, value: dict[str, float]) -> dict[str, float]:
        # CaiError (not ValueError) so the message reaches the user as is, naming the flag.
        unknown = sorted(set(value) - set(COMPONENTS))
        if unknown:
            raise CaiError(f"--weights {unknown[0]}: unknown component (expected {', '.join(COMPONENTS)})")
        for name, w in value.items():
            if w < 0:
                raise CaiError(f"--weights {name}={w:g}: a weight must be >= 0")
        full = {name: float(value.get(name, 1.0)) for name in COMPONENTS}  # unnamed components keep 1
        if sum(full.values()) <= 0:
            raise CaiError("--weights: at least one weight must be > 0")
        return full


class PairScore(BaseModel):
    """Why a pair was (or was not) picked."""

    id: str
    score: float
    uncertainty: float
    disagreement: float
    principle_split: float
    principle_spread: float
    position: float
    focus_principle: str = Field(description="The principle least in favour of the chosen response.")
    tiebreak: str = Field(description="Seeded hash that orders equal scores.")


def score_pair(pair: PreferencePair, weights: dict[str, float], seed: int = 0) -> PairScore:
    """The component scores of one pair and their weighted mean."""
    uncertainty = 1.0 - 2.0 * abs(pair.p_chosen - 0.5)
    ps = [s.p for s in pair.scores]
    split = spread = 0.0
    if len(ps) >= 2:
        above = sum(p > 0.5 for p in ps)
        below = sum(p < 0.5 for p in ps)
        split = 2.0 * min(above, below) / len(ps)
        spread = max(ps) - min(ps)
    disagreement = (split + spread) / 2.0
    both = [(s.p_first, s.p_second) for s in pair.scores if s.p_first is not None and s.p_second is not None]
    flipped = any((a - 0.5) * (b - 0.5) < 0 for a, b in both)
    if pair.position_consistent is False or flipped:
        position = 1.0
    else:
        position = max((abs(a - b) for a, b in both), default=0.0)
    parts = {"uncertainty": uncertainty, "disagreement": disagreement, "position": position}
    score = sum(weights[k] * parts[k] for k in COMPONENTS) / sum(weights.values())
    focus = focus_principle(pair)
    tiebreak = hashlib.sha256(f"{seed}:{pair.id}".encode()).hexdigest()[:16]
    return PairScore(id=pair.id, score=round(score, 6), uncertainty=round(uncertainty, 6),
                     disagreement=round(disagreement, 6), principle_split=round(split, 6),
                     principle_spread=round(spread, 6), position=round(position, 6),
                     focus_principle=focus, tiebreak=tiebreak)


def focus_principle(pair: PreferencePair) -> str:
    """The principle ref (``id@version``) least in favour of the chosen response, else the pair's
    first principle id; "" if it names none. The labeling page shows this principle's question."""
    if pair.scores:
        return min(pair.scores, key=lambda s: (s.p, s.principle)).principle
    return pair.principle_ids[0] if pair.principle_ids else ""


def select(scored: list[PairScore], budget: int, diversity: float = 0.0) -> list[PairScore]:
    """The ``budget`` best pairs, greedily; with diversity, repeats of a focus principle are discounted."""
    groups: dict[str, list[PairScore]] = {}
    for s in sorted(scored, key=lambda s: (-s.score, s.tiebreak)):
        groups.setdefault(s.focus_principle, []).append(s)
    heads = dict.fromkeys(groups, 0)  # next index per group (= pairs already picked from it)
    chosen: list[PairScore] = []
    while len(chosen) < budget:
        best_key, best_group = None, None
        for g, items in groups.items():
            k = heads[g]
            if k == len(items):
                continue
            s = items[k]
            turn = k if diversity >= 1.0 else 0  # diversity 1: principles take turns
            key = (turn, -s.score * (1.0 - diversity) ** k, -s.score, s.tiebreak)
            if best_key is None or key < best_key:
                best_key, best_group = key, g
        if best_group is None:
            break
        chosen.append(groups[best_group][heads[best_group]])
        heads[best_group] += 1
    return chosen


def _read(path: str, skip_invalid: bool, counts: dict) -> list[PreferencePair]:
    return list(read_pairs(path, skip_invalid=skip_invalid, counts=counts))


def run_route(cfg: RouteConfig) -> dict:
    """Score, select and write the tasks and the report; returns the summary (also in route.json)."""
    invalid: dict = {}  # read_pairs' counts: invalid, empty_response (dropped), prompt_repeated (stripped)
    pairs = _read(cfg.pairs, cfg.skip_invalid, invalid)
    excluded_ids: set[str] = set()
    for path in cfg.exclude:
        excluded_ids.update(p.id for p in _read(path, cfg.skip_invalid, invalid))
    excluded_ids.update(p.id for p in pairs if p.source == HUMAN)  # a human already labeled it

    counts = Counter(read=len(pairs))
    candidates: dict[str, PreferencePair] = {}
    for p in pairs:
        if p.source == HUMAN:
            counts["human_skipped"] += 1
        elif p.id in excluded_ids:
            counts["excluded"] += 1
        elif p.id in candidates:
            counts["duplicates"] += 1
        else:
            candidates[p.id] = p
    scored = [score_pair(p, cfg.weights, cfg.seed) for p in candidates.values()]
    picked = select(scored, cfg.budget, cfg.diversity)

    summary = {
        "pairs": cfg.pairs, "out": cfg.out, "budget": cfg.budget, "seed": cfg.seed, "weights": cfg.weights,
        "diversity": cfg.diversity, "exclude": cfg.exclude,
        "counts": {"read": counts["read"], "invalid": invalid["invalid"], "empty_response": invalid["empty_response"],
                   "prompt_repeated": invalid["prompt_repeated"], "human_skipped": counts["human_skipped"],
                   "excluded": counts["excluded"], "duplicates": counts["duplicates"],
                   "eligible": len(candidates), "selected": len(picked)},
        "by_principle": dict(Counter(s.focus_principle or "(none)" for s in picked).most_common()),
        "selected": [{"rank": i, **s.model_dump()} for i, s in enumerate(picked, 1)],
    }
    with staged_outputs(cfg.out, OUTPUTS) as stage:
        write_pairs((candidates[s.id] for s in picked), stage)
        _write_csv(stage / "report.csv", picked, candidates)
        write_json(stage / "route.json", summary)
    return summary


CSV_COLUMNS = ["rank", "id", "score", *COMPONENTS, "principle_split", "principle_spread", "focus_principle",
               "p_chosen", "position_consistent", "source", "labeler", "origin", "prompt"]


def _write_csv(path: Path, picked: list[PairScore], pairs: dict[str, PreferencePair]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        for rank, s in enumerate(picked, 1):
            p = pairs[s.id]
            row = {**s.model_dump(exclude={"tiebreak"}), "rank": rank, "p_chosen": p.p_chosen,
                   "position_consistent": "" if p.position_consistent is None else p.position_consistent,
                   "source": p.source, "labeler": p.labeler, "origin": p.origin, "prompt": preview(p.prompt)}
            writer.writerow(row)
