"""From the pairwise verdicts of K responses to one score each: win rate, or a Bradley-Terry fit.

The judge compares every pair (i, j), i < j, in both orders; ``P[i][j]`` = P(i ≻ j) and
``P[j][i]`` = 1 - P[i][j]. The *win rate* of i is its mean P(i ≻ j) over the others. The
*Bradley-Terry* strengths maximize sum over i != j of P[i][j] log sigmoid(s_i - s_j) (soft outcomes),
with a small ridge penalty so that unanimous groups stay finite; they are reported with mean 0.
Pure functions of the numbers.
"""

from __future__ import annotations

import math

from cai.judge.items import GroupScores, PairVerdict

RIDGE = 0.01


def pairs(k: int) -> list[tuple[int, int]]:
    """Every unordered pair of K responses, i < j."""
    return [(i, j) for i in range(k) for j in range(i + 1, k)]


def matrix(k: int, verdicts: dict[tuple[int, int], PairVerdict]) -> list[list[float]]:
    m = [[0.5] * k for _ in range(k)]
    for (i, j), v in verdicts.items():
        m[i][j], m[j][i] = v.p_x, 1.0 - v.p_x
    return m


def win_rate(m: list[list[float]]) -> list[float]:
    k = len(m)
    if k < 2:
        return [0.5] * k
    return [sum(m[i][j] for j in range(k) if j != i) / (k - 1) for i in range(k)]


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


def bradley_terry(m: list[list[float]], ridge: float = RIDGE, iterations: int = 500, tol: float = 1e-10) -> list[float]:
    """Bradley-Terry strengths from soft pairwise outcomes (Newton's method; mean 0)."""
    k = len(m)
    s = [0.0] * k
    for _ in range(iterations):
        grad = [-ridge * s[i] for i in range(k)]
        hess = [[0.0] * k for _ in range(k)]
        for i in range(k):
            hess[i][i] = -ridge
            for j in range(k):
                if j == i:
                    continue
                q = _sigmoid(s[i] - s[j])
                grad[i] += m[i][j] - q
                w = q * (1.0 - q)
                hess[i][i] -= w
                hess[i][j] += w
        # + 1/k on every entry: the fit is shift-invariant (singular without a ridge); the step's
        # shift is removed at the end anyway.
        step = _solve([[-h + 1.0 / k for h in row] for row in hess], grad)
        s = [a + b for a, b in zip(s, step, strict=True)]
        if max((abs(g) for g in grad), default=0.0) < tol:
            break
    mean = sum(s) / k if k else 0.0
    return [x - mean for x in s]


def _solve(a: list[list[float]], b: list[float]) -> list[float]:
    """Solve a x = b (Gaussian elimination with partial pivoting; a is small and positive definite)."""
    n = len(b)
    a = [row[:] + [b[i]] for i, row in enumerate(a)]
    for c in range(n):
        p = max(range(c, n), key=lambda r: abs(a[r][c]))
        a[c], a[p] = a[p], a[c]
        for r in range(c + 1, n):
            f = a[r][c] / a[c][c]
            for cc in range(c, n + 1):
                a[r][cc] -= f * a[c][cc]
    x = [0.0] * n
    for r in range(n - 1, -1, -1):
        x[r] = (a[r][n] - sum(a[r][cc] * x[cc] for cc in range(r + 1, n))) / a[r][r]
    return x


def scores(k: int, verdicts: dict[tuple[int, int], PairVerdict], method: str = "bradley-terry",
           failed: str | None = None) -> GroupScores:
    """One score per response (``method``: ``bradley-terry`` or ``win-rate``). ``failed``: a pair's
    judgement failed, so the group is not ranked: NaN scores (never 0.5 standing in for a verdict)."""
    if failed is not None:
        nan = float("nan")
        return GroupScores([nan] * k, [nan] * k, [[nan] * k for _ in range(k)], None, dict(verdicts), failed)
    m = matrix(k, verdicts)
    wins = win_rate(m)
    score = bradley_terry(m) if method == "bradley-terry" else wins
    consistent = [v.position_consistent for v in verdicts.values() if v.position_consistent is not None]
    share = sum(consistent) / len(consistent) if consistent else None
    return GroupScores(score, wins, m, share, dict(verdicts))
