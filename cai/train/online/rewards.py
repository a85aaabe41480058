"""Reward functions TRL's GRPOTrainer/RLOOTrainer call: the trained reward model and the guards.

Each is a callable ``(prompts, completions, completion_ids, **columns) -> list[float]`` (TRL's
contract: one float per completion, in order) with a ``__name__``, under which TRL logs
``rewards/NAME/mean`` and ``/std``. Prompts and completions are conversational (lists of
``{role, content}``); ``completion_ids`` are the policy's token ids, end-of-turn token included
when the completion ended. Every function keeps its last values (``last``), calls and seconds, so
the callback can report them and compare sources.

The constitution as judge lives in :mod:`cai.train.online.judging`.
"""

from __future__ import annotations

import math
import time
from collections import Counter

from cai.core.errors import CaiError

from cai.train.ppo.monitor import distinct_ngrams


class RewardFunction:
    """Base: timing, call counts and the last batch's values (for the monitor)."""

    name = "reward"

    def __init__(self) -> None:
        self.__name__ = self.name  # TRL names reward functions by __name__
        self.calls = 0
        self.seconds = 0.0
        self.last: list[float] = []
        self.last_ids: list[list[int]] = []
        self.counts: Counter = Counter()

    def __call__(self, prompts, completions, completion_ids=None, **kwargs) -> list[float]:
        started = time.perf_counter()
        values = [float("nan") if v is None else float(v) for v in self.score(prompts, completions, completion_ids, **kwargs)]
        if bad := [i for i, v in enumerate(values) if not math.isfinite(v)]:
            # TRL sums the sources with nansum: a NaN would train as a reward of 0
            raise CaiError(f"reward '{self.name}' is NaN or infinite for {len(bad)} of {len(values)} completions "
                           f"(first: row {bad[0]}); the step is stopped before "
                           "any optimizer step rather than trained on a reward of 0")
        self.seconds += time.perf_counter() - started
        self.calls += 1
        self.last = values
        self.last_ids = [list(ids) for ids in completion_ids] if completion_ids is not None else []
        return values

    def score(self, prompts, completions, completion_ids, **kwargs) -> list[float]:
        raise NotImplementedError


def completion_text(completion) -> str:
    """The text of one completion, conversational (``[{role, content}]``) or plain."""
    if isinstance(completion, str):
        return completion
    return "".join(m["content"] for m in completion if m.get("role", "assistant") == "assistant")


def prompt_messages(prompt) -> list[dict]:
    """A prompt as chat messages (a plain string becomes one user turn)."""
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    return [{"role": m["role"], "content": m["content"]} for m in prompt]


class RewardModelScore(RewardFunction):
    """The scalar head of a `cai train reward` model on prompt + completion, built exactly as
    `cai score` builds it (chat template, cut from the left to ``max_length`` keeping BOS, right
    padding): :func:`cai.train.score.score_conversations`. Inputs it cut are counted
    (``counts["truncated"]``)."""

    name = "reward-model"

    def __init__(self, path: str, *, max_length: int | None = 4096, batch_size: int = 16, device: str | None = None):
        super().__init__()
        from cai.train.score import load_reward_model

        self.model, self.tokenizer = load_reward_model(path, device=device)
        self.max_length, self.batch_size = max_length, batch_size

    def score(self, prompts, completions, completion_ids, **kwargs) -> list[float]:
        from cai.train.score import score_conversations

        convs = [prompt_messages(p) + [{"role": "assistant", "content": completion_text(c)}]
                 for p, c in zip(prompts, completions, strict=True)]
        return score_conversations(self.model, self.tokenizer, convs, batch_size=self.batch_size,
                                   max_length=self.max_length, counts=self.counts)


class GuardClassifierReward(RewardFunction):
    """−P(violation) of each completion under a `cai guard train` classifier (its ``output`` role),
    in [−1, 0]: what the constitution forbids costs up to 1, at serving-time cost rather than a
    judge's (Anthropic's Constitutional Classifiers, 2025, used as a reward). Flagged completions
    (at the guard's calibrated threshold) are counted (``counts["flagged"]``)."""

    name = "guard"

    def __init__(self, path: str, *, batch_size: int = 32):
        super().__init__()
        from cai.guard import Guard

        self.guard = Guard(path, batch_size=batch_size)

    def score(self, prompts, completions, completion_ids, **kwargs) -> list[float]:
        scores = self.guard.scores([completion_text(c) for c in completions], "output")
        self.counts["flagged"] += sum(s >= self.guard.threshold for s in scores)
        return [-s for s in scores]


class EndOfTurnGuard(RewardFunction):
    """−``penalty`` for a completion that does not end in an end-of-turn token (it hit the limit)."""

    name = "eos"

    def __init__(self, eos_ids: set[int], penalty: float):
        super().__init__()
        self.eos_ids, self.penalty = set(eos_ids), penalty

    def score(self, prompts, completions, completion_ids, **kwargs) -> list[float]:
        out = []
        for ids in completion_ids:
            ended = bool(ids) and ids[-1] in self.eos_ids
            self.counts["missing_eos"] += not ended
            out.append(0.0 if ended else -self.penalty)
        return out


class RepetitionGuard(RewardFunction):
    """−(``min_distinct`` − distinct-n) for a completion whose share of distinct n-grams of tokens
    (the PPO monitor's statistic) is below ``min_distinct``; 0 otherwise."""

    name = "repetition"

    def __init__(self, n: int, min_distinct: float):
        super().__init__()
        self.n, self.min_distinct = n, min_distinct

    def score(self, prompts, completions, completion_ids, **kwargs) -> list[float]:
        return [min(0.0, distinct_ngrams(list(ids), self.n) - self.min_distinct) for ids in completion_ids]


class LengthGuard(RewardFunction):
    """−(L/L_ref − ``ratio``) for a completion of L tokens longer than ``ratio`` × L_ref, 0 otherwise.

    L_ref is the mean completion length (tokens) of the first batch, over all processes: at step 1
    the policy is the reference model, so this is the reference's length on these prompts. It is
    kept in ``state`` (the trainer saves it beside the checkpoints, so a resumed run keeps it).
    """

    name = "length"

    def __init__(self, ratio: float, reference_length: float | None = None, on_reference=None):
        super().__init__()
        self.ratio = ratio
        self.reference_length = reference_length
        self.on_reference = on_reference  # called once with L_ref when it is measured

    def score(self, prompts, completions, completion_ids, **kwargs) -> list[float]:
        lengths = [len(ids) for ids in completion_ids]
        if self.reference_length is None:
            total, count = _global_sum([float(sum(lengths)), float(len(lengths))])
            self.reference_length = max(total / max(count, 1.0), 1.0)
            if self.on_reference is not None:
                self.on_reference(self.reference_length)
        return [-max(0.0, n / self.reference_length - self.ratio) for n in lengths]


def _global_sum(values: list[float]) -> list[float]:
    """``values`` summed over the processes of a distributed run (unchanged in one process)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return values
    import torch

    t = torch.tensor(values, dtype=torch.float64)
    dist.all_reduce(t)
    return t.tolist()
