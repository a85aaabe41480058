"""Rates as people should read them: the share, its n, a 95% interval, and a word on small samples.

A rate alone ("accuracy 100.0%") hides whether it rests on one pair or a thousand. Every rate that
cai prints in a summary or a report goes through :func:`rate_text`, which adds the count and a
Wilson score interval (sound at small n and at 0% or 100%, unlike the normal approximation).
"""

from __future__ import annotations

import math

SMALL_SAMPLE = 30  # below this many items a rate is labelled "small sample"
POSITION_BIAS_BELOW = 0.5  # position consistency under this: the answers follow the order shown


def wilson(successes: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval of ``successes`` out of ``n`` (95% with the default z)."""
    if n <= 0:
        return (0.0, 1.0)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def rate_text(rate: float | None, n: int | None, *, of: str = "") -> str:
    """``62.5% of 8 pairs (95% CI 31-86%, small sample)``; ``n/a`` without a rate or n."""
    if rate is None or not n:
        return "n/a"
    low, high = wilson(rate * n, n)
    small = ", small sample" if n < SMALL_SAMPLE else ""
    things = f" {of}" if of else ""
    return f"{rate:.1%} of {n}{things} (95% CI {low:.0%}-{high:.0%}{small})"


def position_bias_warning(consistency: float | None, n: int | None, who: str = "labeler") -> str | None:
    """A warning when a judge's two orders mostly disagree: its answer follows the position of a
    response rather than the response. None when consistency is fine or unknown."""
    if consistency is None or not n or consistency >= POSITION_BIAS_BELOW:
        return None
    return (f"warning: position consistency {rate_text(consistency, n, of='pairs')}: the {who}'s answers "
            "mostly follow the order the responses are shown in, not the responses; its labels are "
            "close to noise. Use a stronger model, try --cot, or check it against human labels "
            "(cai eval agreement) before training on them.")
