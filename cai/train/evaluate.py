"""Held-out evaluation of a reward model: accuracy per source, calibration, margin distribution.

With Δ = r_chosen − r_rejected, the model's probability that chosen is better is σ(Δ).

- accuracy: share of pairs where the model prefers the labeled winner (Δ > 0 when p_chosen > 0.5;
  a tie Δ = 0 counts half). Pairs labeled exactly 0.5 have no winner and are left out.
- ece: expected calibration error of the model's confidence in its own pick, max(σ(Δ), 1 − σ(Δ)),
  against how often that pick is the labeled winner (``bins`` equal-width bins over [0.5, 1]).
- ece_soft: the same bins, against the *label's* probability for the model's pick (p_chosen or
  1 − p_chosen): how well σ(Δ) reproduces soft AI labels.
- loss: mean soft-label Bradley–Terry loss (unweighted).
- margin: mean, std and quantiles of Δ.

The functions here take plain lists, so they are tested without a model.
"""

from __future__ import annotations

import math
from typing import Sequence

QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


def _log_sigmoid(x: float) -> float:
    return -math.log1p(math.exp(-x)) if x >= 0 else x - math.log1p(math.exp(x))


def _quantile(sorted_values: list[float], q: float) -> float:
    """Linear interpolation between order statistics (numpy's default)."""
    pos = q * (len(sorted_values) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def margin_stats(margins: Sequence[float]) -> dict[str, float]:
    values = sorted(float(m) for m in margins)
    n = len(values)
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / n)
    out = {"mean": mean, "std": std, "min": values[0], "max": values[-1]}
    out.update({f"p{round(q * 100):02d}": _quantile(values, q) for q in QUANTILES})
    return out


def calibration(margins: Sequence[float], p_chosen: Sequence[float], bins: int = 10) -> dict[str, float]:
    """ECE against outcomes and against soft labels, on confidence bins over [0.5, 1]."""
    hard = [[0, 0.0, 0.0] for _ in range(bins)]  # per bin: count, sum of confidence, sum of outcome
    soft = [[0, 0.0, 0.0] for _ in range(bins)]  # per bin: count, sum of confidence, sum of label prob
    for d, p in zip(margins, p_chosen):
        q = _sigmoid(float(d))
        pick_chosen = q >= 0.5
        conf = q if pick_chosen else 1.0 - q
        b = min(int((conf - 0.5) * 2 * bins), bins - 1)
        _add(soft[b], conf, p if pick_chosen else 1.0 - p)
        if p != 0.5:
            _add(hard[b], conf, 1.0 if pick_chosen == (p > 0.5) else 0.0)
    return {"ece": _ece(hard), "ece_soft": _ece(soft)}


def _add(acc: list, conf: float, target: float) -> None:
    acc[0] += 1
    acc[1] += conf
    acc[2] += target


def _ece(acc: list[list]) -> float:
    n = sum(a[0] for a in acc)
    return sum(abs(a[1] - a[2]) for a in acc) / n if n else None


def group_metrics(margins: Sequence[float], p_chosen: Sequence[float], bins: int = 10) -> dict:
    """Every metric for one group of pairs."""
    decided = [(d, p) for d, p in zip(margins, p_chosen) if p != 0.5]
    correct = [0.5 if d == 0 else float((d > 0) == (p > 0.5)) for d, p in decided]
    loss = [-_log_sigmoid(d) + (1.0 - p) * d for d, p in zip(margins, p_chosen)]
    return {
        "n": len(margins),
        "accuracy": sum(correct) / len(correct) if correct else None,
        **calibration(margins, p_chosen, bins),
        "loss": sum(loss) / len(loss),
        "mean_p_chosen": sum(p_chosen) / len(p_chosen),
        "margin": margin_stats(margins),
    }


def reward_metrics(margins: Sequence[float], p_chosen: Sequence[float], sources: Sequence[str],
                   bins: int = 10) -> dict:
    """``{"all": metrics, "by_source": {source: metrics}}`` for a held-out set."""
    if not margins:
        return {"all": None, "by_source": {}}
    by_source = {}
    for source in sorted(set(sources)):
        idx = [i for i, s in enumerate(sources) if s == source]
        by_source[source] = group_metrics([margins[i] for i in idx], [p_chosen[i] for i in idx], bins)
    return {"all": group_metrics(margins, p_chosen, bins), "by_source": by_source}


def evaluate_reward_model(model, tokenizer, pairs, *, batch_size: int = 16, bins: int = 10,
                          max_length: int | None = None, accelerator=None) -> dict:
    """Score held-out PreferencePairs with the model and compute :func:`reward_metrics`.

    With an ``accelerator`` over several processes (``accelerate launch``, ``torchrun``), every
    process must call this with its *wrapped* training model (DDP, FSDP or DeepSpeed engine): each
    scores every N-th pair (shards padded to one length, so every process runs the same number of
    forward passes, which FSDP and ZeRO-3 need: their forward passes gather the sharded weights
    collectively), the margins are gathered, and every process returns the metrics of the whole
    set, equal to a single process's.
    """
    from cai.train.score import score_pairs

    world = accelerator.num_processes if accelerator is not None else 1
    rank = accelerator.process_index if accelerator is not None else 0
    index = list(range(len(pairs)))[rank::world]
    if world > 1:
        index += index[:1] * (math.ceil(len(pairs) / world) - len(index))  # pad; dropped below
    was_training = model.training
    model.eval()
    try:
        chosen, rejected = score_pairs(model, tokenizer, [pairs[i] for i in index], batch_size=batch_size,
                                       max_length=max_length)
    finally:
        model.train(was_training)
    scored = list(zip(index, (c - r for c, r in zip(chosen, rejected))))
    if world > 1:
        from accelerate.utils import gather_object

        scored = gather_object([scored])  # one list per process, in rank order
        scored = [item for part in scored for item in part]
    margin_of = dict(scored)  # a padded repeat maps to the same margin
    margins = [margin_of[i] for i in range(len(pairs))]
    return reward_metrics(margins, [p.p_chosen for p in pairs], [p.source for p in pairs], bins)
