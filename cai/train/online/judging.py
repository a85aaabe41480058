"""The constitution as a live reward: the feedback model judges the policy's completions against
principles sampled from the constitution, during RL (Lee et al. 2023, "direct RLAIF": the labeler
scores the policy's samples itself instead of being distilled into a reward model first).

Both modes go through the one judge, :class:`cai.judge.Judge` (opened by
:func:`cai.train.online.judge_link.open_judge`), so a score means what it means in `cai label`:

- ``pointwise``: each completion's expected rating over the rating tokens (one forward pass per
  completion × principle), in [0, 1];
- ``groupwise``: the K completions of one prompt (TRL hands them over as consecutive rows)
  compared pairwise, every pair in both orders and averaged, as `cai label` compares a pair; the
  K×K matrix of P(i ≻ j) becomes one score per completion by a Bradley–Terry fit (centred
  log-strengths) or the win rate.

A judge call that fails (a server down, a backend error) is retried ``retries`` times with a
doubling wait, then the step fails with a one-line :class:`~cai.core.errors.CaiError`: a reward is
never silently zero. An error that a retry cannot change (``exc.permanent``: a 4xx, a server that
cannot do what is asked) stops the step at once. A judgement the judge itself fails (NaN log-probs,
label mass below the floor, no answer label: :mod:`cai.judge.health`) stops the step the same way,
before any optimizer step, naming the reason; a judge whose health turns unhealthy stops it under
``judge_health: error`` and is warned about under ``warn``. Calls, judgements and seconds are
counted for the per-step metrics.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence

from cai.core.errors import CaiError
from cai.train.online.rewards import RewardFunction, completion_text, prompt_messages


def groups(prompts: Sequence, size: int) -> list[range]:
    """Consecutive runs of ``size`` rows sharing one prompt (TRL's order); a CaiError otherwise."""
    if len(prompts) % size:
        raise CaiError(f"constitution reward (groupwise): {len(prompts)} completions are not whole groups of {size}")
    out = []
    for start in range(0, len(prompts), size):
        block = range(start, start + size)
        if any(prompts[i] != prompts[start] for i in block):
            raise CaiError("constitution reward (groupwise): a group's completions do not share one prompt "
                           "(each process must get whole groups: batch_size a multiple of num_generations)")
        out.append(block)
    return out


def with_retries(call: Callable, retries: int, wait: float, what: str):
    """``call()``, retried ``retries`` times after a doubling ``wait``; the last failure becomes a
    one-line CaiError naming ``what`` and the cause."""
    from cai.backends.base import PromptRejected, RowsRejected

    for attempt in range(retries + 1):
        try:
            return call()
        except (PromptRejected, RowsRejected) as exc:  # the same rows fail the same way: no retry
            raise CaiError(f"{what}: the judge cannot take this step's completions ({str(exc).splitlines()[0]}); "
                           "the step is stopped rather than given a zero reward") from None
        except Exception as exc:  # noqa: BLE001 - any backend failure is retried, then reported
            text = str(exc).strip()
            cause = text.splitlines()[0] if text else type(exc).__name__
            if getattr(exc, "permanent", False):  # a 4xx, a missing server feature: the same again
                raise CaiError(f"{what}: the judge call failed ({cause}); not retried, as the same call would "
                               "fail the same way; the step is stopped rather than given a zero reward") from None
            if attempt == retries:
                raise CaiError(f"{what}: the judge call failed {retries + 1} times ({cause}); the step is stopped "
                               "rather than given a zero reward") from None
            time.sleep(wait * 2 ** attempt)


class ConstitutionJudgeReward(RewardFunction):
    """TRL reward function ``constitution``.

    ``judge``: a :class:`cai.train.online.judge_link.ConstitutionJudge` (``rate(prompts,
    responses) -> list[float]``, ``rank(prompts, groups) -> list[GroupScores]``, ``stats``).
    Returns one float per completion: the rating in [0, 1] (pointwise) or the group score
    (groupwise: Bradley–Terry log-strength, mean 0 per group, or win rate in [0, 1]).
    ``position_consistency`` counts the groupwise comparisons whose two orders agreed.
    """

    name = "constitution"

    def __init__(self, judge, *, mode: str, num_generations: int, retries: int = 2, retry_seconds: float = 2.0):
        super().__init__()
        self.judge, self.mode, self.k = judge, mode, num_generations
        self.retries, self.retry_seconds = retries, retry_seconds
        self.warned: str | None = None  # the health status last warned about

    def _check_health(self, n: int, what: str) -> None:
        """After a judge call: a failed judgement (NaN, label mass below the floor, no labels) stops
        the step with one line (it is never a reward: TRL would sum a NaN to 0); an unhealthy judge
        stops it under ``judge_health: error``, and a weak or unhealthy one is warned about once per
        status under ``warn``."""
        from collections import Counter

        failures = self.judge.failures if hasattr(self.judge, "failures") else {}
        if failures:
            codes = Counter(getattr(self.judge, "failure_reasons", {}).values())
            why = ", ".join(f"{k} {v}" for k, v in sorted(codes.items()))
            first = failures[min(failures)]
            self.counts["failed_judgements"] += len(failures)
            raise CaiError(f"constitution reward ({self.mode}): the judgement of {len(failures)} of {n} {what} "
                           f"failed{f' ({why})' if why else ''}; first: {first}. The step is stopped before any "
                           "optimizer step: a failed judgement is never a reward")
        health = getattr(self.judge, "health", None)
        if health is None:
            return
        message = health.raise_if_unhealthy(getattr(self.judge, "health_policy", None), who="constitution judge")
        if message and health.status in ("weak", "unhealthy") and health.status != self.warned:
            self.warned = health.status
            print(message, file=sys.stderr, flush=True)

    @property
    def judge_calls(self) -> int:
        return int(self.judge.stats["calls"])

    @property
    def judgements(self) -> int:
        return int(self.judge.stats["ratings"] + self.judge.stats["comparisons"])

    def _ask(self, method: str, *args):
        return with_retries(lambda: getattr(self.judge, method)(*args), self.retries, self.retry_seconds,
                            f"constitution reward ({self.mode})")

    def score(self, prompts, completions, completion_ids, **kwargs) -> list[float]:
        messages = [prompt_messages(p) for p in prompts]
        texts = [completion_text(c) for c in completions]
        if self.mode == "pointwise":
            values = self._ask("rate", messages, texts)
            if len(values) != len(texts):
                raise CaiError(f"constitution reward: the judge returned {len(values)} ratings for {len(texts)} completions")
            self._check_health(len(texts), "completions")
            return values
        blocks = groups(messages, self.k)
        ranked = self._ask("rank", [messages[b[0]] for b in blocks], [[texts[i] for i in b] for b in blocks])
        self._check_health(len(blocks), "groups")
        out: list[float] = []
        for g in ranked:
            out += g.scores
            for v in g.verdicts.values():
                if v.position_consistent is not None:
                    self.counts["consistent_comparisons"] += v.position_consistent
                    self.counts["comparisons_both_orders"] += 1
        return out
