"""Choosing a set of principles by how well they reconstruct people's choices *together*.

ICAI (Findeis et al. 2024) keeps the candidates with the best individual scores, so two
principles that say the same thing can both be kept while a rarer one that explains the pairs
they miss is not. Here the set is built greedily by its own accuracy: start empty; at each step
add the candidate whose addition gives the highest set accuracy on the train pairs (the set
votes by majority, :func:`cai.feedback.forensics.set_votes`; a tie or no vote is a coin flip,
half right); ties go to the higher strength, then the id. It stops at ``n`` principles, or
earlier when no candidate raises the set accuracy at all (the ``stopped`` reason says which).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from cai.feedback.forensics import set_accuracy, set_votes


def greedy_select(votes: np.ndarray, names: Sequence[str], n: int) -> dict:
    """``{"chosen": [indices], "steps": [{"added", "accuracy"}], "stopped"}`` for a (candidates,
    pairs) vote matrix on the train pairs."""
    if votes.ndim != 2 or votes.shape[1] == 0:
        return {"chosen": [], "steps": [], "stopped": "no train pairs"}
    strength = votes.mean(axis=1)
    rank = {name: k for k, name in enumerate(sorted(names))}  # ties: the first id in order
    chosen: list[int] = []
    current = set_accuracy(set_votes(votes, chosen))
    steps = []
    stopped = f"reached n={n}"
    while len(chosen) < n:
        best = None
        for i in range(len(names)):
            if i in chosen:
                continue
            acc = set_accuracy(set_votes(votes, chosen + [i]))
            key = (acc, float(strength[i]), -rank[names[i]])
            if best is None or key > best[0]:
                best = (key, i, acc)
        if best is None:
            stopped = "no candidates left"
            break
        _, i, acc = best
        if acc <= current + 1e-12:
            stopped = "no candidate raises the set accuracy"
            break
        chosen.append(i)
        steps.append({"added": names[i], "accuracy": round(acc, 4)})
        current = acc
    return {"chosen": chosen, "steps": steps, "stopped": stopped}
