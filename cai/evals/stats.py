"""Bootstrap intervals and correlations over per-probe values (numpy only).

Intervals are percentile bootstrap intervals (Efron & Tibshirani, 1993): resample the probes with
replacement ``n_boot`` times with a seeded generator, take the statistic each time, and read the
2.5th and 97.5th percentiles. A difference between two models on the same probes resamples the
probes once for both (a paired bootstrap), so probe difficulty cancels out.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

N_BOOT = 2000
LEVEL = 0.95


def _interval(stats: np.ndarray, level: float) -> list[float]:
    tail = (1.0 - level) / 2 * 100
    lo, hi = np.percentile(stats, [tail, 100 - tail])
    return [round(float(lo), 4), round(float(hi), 4)]


def bootstrap_mean(values: Sequence[float], *, n_boot: int = N_BOOT, seed: int = 0,
                   level: float = LEVEL) -> dict | None:
    """``{"value", "ci": [lo, hi], "n"}`` for the mean of ``values``; None when there are none."""
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        return None
    idx = np.random.default_rng(seed).integers(0, x.size, size=(n_boot, x.size))
    return {"value": round(float(x.mean()), 4), "ci": _interval(x[idx].mean(axis=1), level), "n": int(x.size)}


def bootstrap_diff(a: Sequence[float], b: Sequence[float], *, n_boot: int = N_BOOT, seed: int = 0,
                   level: float = LEVEL) -> dict | None:
    """Paired difference mean(a) - mean(b) over the same probes, with its interval."""
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.shape != y.shape:
        raise ValueError(f"paired values differ in length: {x.size} vs {y.size}")
    if x.size == 0:
        return None
    idx = np.random.default_rng(seed).integers(0, x.size, size=(n_boot, x.size))
    diffs = x[idx].mean(axis=1) - y[idx].mean(axis=1)
    return {"value": round(float(x.mean() - y.mean()), 4), "ci": _interval(diffs, level), "n": int(x.size)}


def rank(values: Sequence[float]) -> np.ndarray:
    """Ranks from 1, ties sharing their average rank."""
    x = np.asarray(values, dtype=float)
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(x.size)
    ranks[order] = np.arange(1, x.size + 1)
    for v in np.unique(x):
        tied = x == v
        if tied.sum() > 1:
            ranks[tied] = ranks[tied].mean()
    return ranks


def correlations(x: Sequence[float], y: Sequence[float]) -> dict:
    """Pearson and Spearman correlation; None where undefined (fewer than 3 points, or a constant)."""
    a, b = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if a.size < 3 or a.std() == 0 or b.std() == 0:
        return {"pearson": None, "spearman": None, "n": int(a.size)}
    pearson = float(np.corrcoef(a, b)[0, 1])
    spearman = float(np.corrcoef(rank(a), rank(b))[0, 1])
    return {"pearson": round(pearson, 4), "spearman": round(spearman, 4), "n": int(a.size)}
