"""How well a voter's picks match the choices people made: relevance, accuracy, strength.

A *voter* (one principle asked of a judge, a whole constitution, or an AI labeler) looks at each
pair and either picks the response people chose (vote ``+1``), picks the one they rejected
(``-1``), or abstains because it does not apply (``0``). Over ``N`` pairs with ``a`` agreeing and
``d`` disagreeing votes, following Feedback Forensics (Findeis et al., *docs/method/metrics.md*
in rdnfn/feedback-forensics; the measures of Findeis et al. 2024, *Inverse Constitutional AI*):

- relevance ``(a + d) / N``: how often the voter applies at all;
- accuracy ``a / (a + d)``: how often it is right where it applies;
- Cohen's kappa ``(p_o - p_e) / (1 - p_e)`` with chance agreement ``p_e = 1/2``: the votes come
  from both orders of the responses, so the voter cannot know the position of the chosen one,
  which is the case where Feedback Forensics fixes ``p_e`` at one half; so ``kappa = 2 acc - 1``;
- strength ``kappa x relevance``, which works out as ``(a - d) / N``: the mean vote.

Each comes with a percentile bootstrap 95% interval over the pairs (seeded); the pairs are
resampled once for all voters, so intervals of different principles rest on the same draws.
Where the bootstrap collapses to a single value (every resample alike: all votes agree, or a
handful of pairs), the Wilson score interval stands in (mapped onto [-1, 1] for kappa and
strength; Newcombe's for a difference), so no interval is ever zero-width.
A measure resting on fewer than :data:`SMALL_SAMPLE` votes is marked ``small_sample``.

Voters together: the *set vote* on a pair is the sign of the sum of its members' votes (a
majority; a tie or no vote at all is a coin flip), and the set's accuracy counts a coin flip as
half right, so it is comparable with a judge that always answers. One principle alone has set
accuracy ``(1 + strength) / 2``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from cai.core.rates import difference, proportion, wilson

AGREE, ABSTAIN, DISAGREE = 1, 0, -1
N_BOOT = 1000
SMALL_SAMPLE = 30
MEASURES = ("relevance", "accuracy", "kappa", "strength")


def as_votes(values: Sequence[int] | np.ndarray) -> np.ndarray:
    """Votes as an int8 array (one row per voter when 2-D), checked to be -1, 0 or +1."""
    v = np.asarray(values, dtype=np.int8)
    if v.size and not np.isin(v, (AGREE, ABSTAIN, DISAGREE)).all():
        raise ValueError("votes must be +1 (agrees), 0 (abstains) or -1 (disagrees)")
    return v


def vote_from_p(p_chosen: float) -> int:
    """A soft label's vote: +1 above one half, -1 below, 0 (no preference) at exactly one half."""
    return AGREE if p_chosen > 0.5 else DISAGREE if p_chosen < 0.5 else ABSTAIN


def _stats(agree: np.ndarray, disagree: np.ndarray, n: int) -> dict[str, np.ndarray]:
    applied = agree + disagree
    with np.errstate(invalid="ignore", divide="ignore"):
        accuracy = np.where(applied > 0, agree / np.maximum(applied, 1), np.nan)
    return {"relevance": applied / n, "accuracy": accuracy, "kappa": 2 * accuracy - 1,
            "strength": (agree - disagree) / n}


def _rounded(x: float) -> float | None:
    return None if x != x else round(float(x), 4)


def boot_indices(n: int, n_boot: int = N_BOOT, seed: int = 0) -> np.ndarray:
    """``(n_boot, n)`` resampled pair indices, seeded: share them between voters."""
    return np.random.default_rng(seed).integers(0, n, size=(n_boot, n)) if n else np.zeros((n_boot, 0), int)


def _interval(draws: np.ndarray) -> list[float] | None:
    draws = draws[~np.isnan(draws)]
    if not draws.size:
        return None
    lo, hi = np.percentile(draws, [2.5, 97.5])
    return [round(float(lo), 4), round(float(hi), 4)]


def _wilson(successes: float, n: int, signed: bool = False) -> list[float]:
    """The Wilson 95% interval of a share (``signed``: mapped to 2 x share - 1, on [-1, 1])."""
    lo, hi = wilson(successes, n)
    if signed:
        lo, hi = 2 * lo - 1, 2 * hi - 1
    return [round(lo, 4), round(hi, 4)]


def _spread(ci: list[float] | None, fallback: list[float]) -> list[float]:
    """``ci`` unless it is missing or zero-width, else ``fallback``."""
    return fallback if ci is None or ci[1] - ci[0] <= 0 else ci


def measure(votes: Sequence[int] | np.ndarray, *, idx: np.ndarray | None = None, seed: int = 0) -> dict:
    """Relevance, accuracy, kappa and strength of one voter, each ``{"value", "ci"}``, with the
    counts; ``idx`` are shared bootstrap draws (:func:`boot_indices`)."""
    v = as_votes(votes)
    n = int(v.size)
    a, d = int((v == AGREE).sum()), int((v == DISAGREE).sum())
    out: dict = {"n": n, "agree": a, "disagree": d, "abstain": n - a - d}
    if n == 0:
        return out | {m: {"value": None, "ci": None} for m in MEASURES} | {"small_sample": True}
    point = _stats(np.array(a), np.array(d), n)
    idx = boot_indices(n, seed=seed) if idx is None else idx
    sample = v[idx]
    draws = _stats((sample == AGREE).sum(axis=1), (sample == DISAGREE).sum(axis=1), n)
    for m in MEASURES:
        out[m] = {"value": _rounded(point[m]), "ci": _interval(draws[m])}
    fallback = {"relevance": _wilson(a + d, n), "accuracy": _wilson(a, a + d) if a + d else None,
                "kappa": _wilson(a, a + d, signed=True) if a + d else None,
                "strength": _wilson(a + (n - a - d) / 2, n, signed=True)}
    for m in MEASURES:
        if fallback[m] is not None and out[m]["value"] is not None:
            out[m]["ci"] = _spread(out[m]["ci"], fallback[m])
    out["small_sample"] = a + d < SMALL_SAMPLE
    return out


def set_votes(votes: np.ndarray, members: Sequence[int]) -> np.ndarray:
    """The set's vote on each pair: the sign of the sum of its members' votes (``votes`` is
    (voters, pairs)); 0 where they tie or none applies."""
    if not len(members):
        return np.zeros(votes.shape[1], dtype=np.int8)
    return np.sign(votes[list(members)].sum(axis=0, dtype=np.int32)).astype(np.int8)


def set_accuracy(votes: Sequence[int] | np.ndarray) -> float | None:
    """Share of pairs a voter that must always answer gets right: a vote of 0 is a coin flip,
    half right. ``(1 + mean vote) / 2``."""
    v = as_votes(votes)
    return None if not v.size else float((1 + v.mean()) / 2)


def agreement(votes: Sequence[int] | np.ndarray, *, idx: np.ndarray | None = None, seed: int = 0) -> dict:
    """``{"value", "ci", "n", "small_sample"}`` of :func:`set_accuracy`, bootstrapped over pairs."""
    v = as_votes(votes)
    if not v.size:
        return {"value": None, "ci": None, "n": 0, "small_sample": True}
    idx = boot_indices(v.size, seed=seed) if idx is None else idx
    draws = (1 + v[idx].mean(axis=1)) / 2
    ci = _spread(_interval(draws), _wilson((v.size + int(v.sum())) / 2, v.size))
    return {"value": _rounded(set_accuracy(v)), "ci": ci, "n": int(v.size), "small_sample": v.size < SMALL_SAMPLE}


def agreement_gap(a: Sequence[int], b: Sequence[int], *, idx: np.ndarray | None = None, seed: int = 0) -> dict:
    """Set accuracy of ``a`` minus that of ``b`` on the same pairs, with a paired bootstrap interval."""
    x, y = as_votes(a).astype(float), as_votes(b).astype(float)
    if x.shape != y.shape:
        raise ValueError(f"paired votes differ in length: {x.size} vs {y.size}")
    if not x.size:
        return {"value": None, "ci": None, "n": 0}
    idx = boot_indices(x.size, seed=seed) if idx is None else idx
    draws = (x[idx].mean(axis=1) - y[idx].mean(axis=1)) / 2
    newcombe = difference(proportion((x.size + float(x.sum())) / 2, x.size),
                          proportion((y.size + float(y.sum())) / 2, y.size))
    ci = _spread(_interval(draws), [float(c) for c in newcombe["ci"]])
    return {"value": _rounded((x.mean() - y.mean()) / 2), "ci": ci, "n": int(x.size)}


def wilson_upper(successes: float, n: int, z: float = 1.96) -> float:
    """The upper end of the Wilson score interval of ``successes`` out of ``n``."""
    if n <= 0:
        return 1.0
    p = successes / n
    centre = p + z * z / (2 * n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return min(1.0, (centre + half) / (1 + z * z / n))


def relations(votes: np.ndarray, names: Sequence[str], min_both: int = 5) -> list[dict]:
    """How every two voters relate: on how many pairs both apply (``both``), the share of those on
    which they pick the same response (``same``), and the Pearson correlation of their votes over
    all pairs (abstentions count as 0; None for a constant voter). ``contradict``: both apply on at
    least ``min_both`` pairs and they pick opposite responses on more than half of them, clearly:
    the upper end of the Wilson 95% interval of ``same`` is below one half."""
    v = np.asarray(votes, dtype=float)
    out = []
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            both = (v[i] != 0) & (v[j] != 0)
            n_both = int(both.sum())
            same = float((v[i][both] == v[j][both]).mean()) if n_both else None
            corr = None
            if v.shape[1] >= 3 and v[i].std() > 0 and v[j].std() > 0:
                corr = round(float(np.corrcoef(v[i], v[j])[0, 1]), 4)
            out.append({"a": names[i], "b": names[j], "both": n_both,
                        "same": None if same is None else round(same, 4), "correlation": corr,
                        "contradict": bool(n_both >= min_both and same is not None
                                           and wilson_upper(same * n_both, n_both) < 0.5)})
    return out
