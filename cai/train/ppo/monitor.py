"""Reward-hacking monitor: signs that the reward rises for reasons the reward model did not intend.

It watches the per-step metrics and raises three kinds of warning:

- ``length``: the reward rose while the mean response length grew by ``length_growth`` over the
  first steps and moved together with the reward (Pearson correlation ≥ ``length_reward_corr``)
  — the classic verbosity exploit of reward models;
- ``kl``: the KL to the reference passed its bound (``warn_factor × target`` for the adaptive
  controller, or ``max_kl``) — the policy left the region where the reward model is trustworthy;
- ``repetition``: responses collapse to repeated n-grams (mean distinct-n below ``min_distinct``)
  or to a few identical responses (distinct responses below ``min_unique_responses``);
- ``negative-kl``: the running mean of the k1 KL estimate (over the last ``window`` steps) is below
  zero by more than ``negative_kl_z`` standard errors. KL(π‖π_ref) is never negative and k1 is
  unbiased only for samples drawn from π itself, so this says the samples do not come from the
  policy being optimised (``top_k``/``top_p`` sampling, a generation config, a stale rollout):
  KL penalty and policy gradient are then estimated on the wrong distribution.

Warnings are returned each step they hold (stored in metrics.jsonl under ``monitor/warnings``);
:meth:`RewardHackingMonitor.observe` also says which ones are new, so the trainer logs a warning
when it starts rather than every step.
"""

from __future__ import annotations

import math


def distinct_ngrams(tokens: list[int], n: int) -> float:
    """Share of distinct n-grams among a sequence's n-grams (1.0 when it has none)."""
    grams = [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 1.0


def repetition_stats(responses: list[list[int]], n: int) -> dict[str, float]:
    """``response/distinct_n``: mean share of distinct n-grams per response (1 − repeated n-gram ratio);
    ``response/unique_frac``: share of distinct responses in the batch."""
    if not responses:
        return {"response/distinct_n": 1.0, "response/unique_frac": 1.0}
    return {
        "response/distinct_n": sum(distinct_ngrams(r, n) for r in responses) / len(responses),
        "response/unique_frac": len({tuple(r) for r in responses}) / len(responses),
    }


def _corr(xs: list[float], ys: list[float]) -> float:
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys))
    sxx = sum((x - mx) ** 2 for x in xs)
    syy = sum((y - my) ** 2 for y in ys)
    return sxy / math.sqrt(sxx * syy) if sxx > 0 and syy > 0 else 0.0


class RewardHackingMonitor:
    def __init__(self, cfg, kl_bound: float | None):
        self.cfg, self.kl_bound = cfg, kl_bound
        self.rewards: list[float] = []
        self.lengths: list[float] = []
        self.kl_k1: list[tuple[float, float, int]] = []  # per step: mean, std, samples
        self.active: set[str] = set()

    def observe(self, metrics: dict) -> tuple[list[str], list[str]]:
        """Record one step's metrics; returns ``(warnings now, warnings that were not active last step)``."""
        if not self.cfg.enabled:
            return [], []
        self.rewards.append(float(metrics["objective/reward_mean"]))
        self.lengths.append(float(metrics["response/length_mean"]))
        warnings = []
        if msg := self._length():
            warnings.append(msg)
        kl = float(metrics["objective/kl"])
        if self.kl_bound is not None and kl > self.kl_bound:
            warnings.append(f"kl: KL {kl:.2f} nats is above its bound {self.kl_bound:.2f}")
        if "objective/kl_k1" in metrics:
            self.kl_k1.append((float(metrics["objective/kl_k1"]), float(metrics.get("objective/kl_k1_std", 0.0)),
                               int(metrics.get("rollout/samples", 1))))
            if msg := self._negative_kl():
                warnings.append(msg)
        distinct = metrics.get("response/distinct_n", 1.0)
        unique = metrics.get("response/unique_frac", 1.0)
        if distinct < self.cfg.min_distinct:
            warnings.append(f"repetition: distinct-{self.cfg.ngram} {distinct:.2f} < {self.cfg.min_distinct}"
                            " (responses repeat themselves)")
        elif unique < self.cfg.min_unique_responses:
            warnings.append(f"repetition: only {unique:.0%} of responses are distinct (mode collapse)")
        kinds = {w.split(":", 1)[0] for w in warnings}
        new = [w for w in warnings if w.split(":", 1)[0] not in self.active]
        self.active = kinds
        return warnings, new

    def _length(self) -> str | None:
        w = self.cfg.window
        if len(self.lengths) < 2 * w:
            return None
        base_len, cur_len = sum(self.lengths[:w]) / w, sum(self.lengths[-w:]) / w
        base_rew, cur_rew = sum(self.rewards[:w]) / w, sum(self.rewards[-w:]) / w
        growth = cur_len / max(base_len, 1e-9)
        corr = _corr(self.rewards, self.lengths)
        if cur_rew > base_rew and growth >= self.cfg.length_growth and corr >= self.cfg.length_reward_corr:
            return (f"length: reward rose {base_rew:.3g}→{cur_rew:.3g} while responses grew {growth:.1f}× "
                    f"({base_len:.0f}→{cur_len:.0f} tokens, correlation {corr:.2f})")
        return None

    def _negative_kl(self) -> str | None:
        """The running k1 KL (mean of the last ``window`` steps' means) against its standard error
        (√Σ std²/n over those steps, divided by their number)."""
        recent = self.kl_k1[-self.cfg.window:]
        mean = sum(m for m, _, _ in recent) / len(recent)
        se = math.sqrt(sum(sd * sd / max(n, 1) for _, sd, n in recent)) / len(recent)
        if mean < 0 and mean < -self.cfg.negative_kl_z * se:
            return (f"negative-kl: running KL estimate {mean:.3g} nats is below zero by more than "
                    f"{self.cfg.negative_kl_z:g} standard errors ({se:.2g}); the samples do not come from the "
                    "policy being optimised (top_k/top_p sampling?)")
        return None

    def state_dict(self) -> dict:
        return {"rewards": self.rewards, "lengths": self.lengths, "kl_k1": self.kl_k1, "active": sorted(self.active)}

    def load_state_dict(self, state: dict) -> None:
        self.rewards, self.lengths = list(state["rewards"]), list(state["lengths"])
        self.kl_k1 = [tuple(x) for x in state.get("kl_k1", [])]  # absent in checkpoints of older runs
        self.active = set(state["active"])
