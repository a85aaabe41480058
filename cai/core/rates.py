"""Rates as people should read them: the share, its n, a 95% interval, and a word on small samples.

A rate alone ("accuracy 100.0%") hides whether it rests on one pair or a thousand. Every rate that
cai prints in a summary or a report goes through :func:`rate_text` (or :func:`estimate_text` for a
rate dict), which adds the count and a Wilson score interval (Wilson, 1927; sound at small n and at
0% or 100%, unlike the normal approximation or a percentile bootstrap, which collapses to a
zero-width ``[1.000, 1.000]`` when every item agrees). Below :data:`MIN_N` items a rate is printed
as "too few to estimate" with its count, never as a bare percentage.
"""

from __future__ import annotations

import math

SMALL_SAMPLE = 30  # below this many items a rate is labelled "small sample"
MIN_N = 5
"""Below this many items a rate is "too few to estimate": its count is shown, its interval is kept
in the JSON (it spans most of [0, 1]), but no share is headlined."""
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


def proportion(successes: float, n: int) -> dict | None:
    """A share as a rate dict: ``{"value", "ci": [lo, hi], "n", "k", "method": "wilson", "too_few"}``.

    ``successes`` may be fractional (a sum of values in [0, 1], e.g. win probabilities: the Wilson
    interval around their mean is conservative, since such a mean varies no more than a share of
    0/1 values). The interval is the Wilson score interval, never zero-width for a finite n;
    ``too_few`` is True below :data:`MIN_N`. None when ``n`` is 0. Raises ValueError when
    ``successes`` is outside [0, n]."""
    if not n:
        return None
    if not 0 <= successes <= n + 1e-9:
        raise ValueError(f"{successes} successes out of {n}")
    low, high = wilson(successes, n)
    return {"value": round(successes / n, 4), "ci": [round(low, 4), round(high, 4)], "n": int(n),
            "k": round(successes, 4), "method": "wilson", "too_few": n < MIN_N}


def share_of(values) -> dict | None:
    """:func:`proportion` of values in [0, 1] (0/1 outcomes or probabilities): their mean with a
    Wilson interval and n. None for no values."""
    values = [float(v) for v in values]
    return proportion(sum(values), len(values)) if values else None


def difference(a: dict | None, b: dict | None) -> dict | None:
    """``a - b`` of two :func:`proportion` dicts with Newcombe's hybrid score interval (Newcombe,
    1998, method 10), built from each side's Wilson interval. It treats the sides as independent,
    which is conservative (wider) for paired probes; it is never zero-width. None if either is None."""
    if not a or not b:
        return None
    (pa, (la, ua)), (pb, (lb, ub)) = (a["value"], a["ci"]), (b["value"], b["ci"])
    d = pa - pb
    low = d - math.sqrt((pa - la) ** 2 + (ub - pb) ** 2)
    high = d + math.sqrt((ua - pa) ** 2 + (pb - lb) ** 2)
    n = min(a["n"], b["n"])
    return {"value": round(d, 4), "ci": [round(max(-1.0, low), 4), round(min(1.0, high), 4)], "n": n,
            "method": "newcombe", "too_few": n < MIN_N}


def estimate_text(rate: dict | None, *, digits: int = 3, percent: bool = False) -> str:
    """A rate dict (``value``, ``ci``, ``n``; from :func:`proportion` or a bootstrap) as text:
    ``0.667 [0.208, 0.939] (n=3)``; ``too few to estimate (2 of 3)`` below :data:`MIN_N`; ``n/a``
    for None. A zero-width interval is never printed: it says ``no spread in n=...`` instead."""
    if not rate or rate.get("value") is None:
        return "n/a"
    n = rate.get("n")

    def f(x: float) -> str:
        return f"{x:.{max(digits - 2, 0)}%}" if percent else f"{x:.{digits}f}"

    if n is not None and n < MIN_N:
        k = rate.get("k")
        count = f"{k:g} of {n}" if k is not None else f"n={n}"
        return f"too few to estimate ({count})"
    ci = rate.get("ci")
    if not ci:
        return f"{f(rate['value'])} (n={n})" if n else f(rate["value"])
    if ci[1] - ci[0] <= 0:
        return f"{f(rate['value'])} (no spread in n={n}: interval not estimable)"
    return f"{f(rate['value'])} [{f(ci[0])}, {f(ci[1])}]" + (f" (n={n})" if n else "")


def rate_text(rate: float | None, n: int | None, *, of: str = "") -> str:
    """``62.5% of 8 pairs (95% CI 31-86%, small sample)``; below :data:`MIN_N` items
    ``100.0% of 3 pairs (95% CI 44-100%, small sample: too few to estimate)``; ``n/a`` without a
    rate or n."""
    if rate is None or not n:
        return "n/a"
    low, high = wilson(rate * n, n)
    small = (", small sample: too few to estimate" if n < MIN_N else ", small sample" if n < SMALL_SAMPLE else "")
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
