"""What ``max_length`` did to a training set: examples cut, examples dropped, and a clear stop
when nothing trainable is left.

TRL applies the limit while it prepares a dataset, each trainer its own way: SFTTrainer cuts every
sequence to ``max_length`` and drops those left without a completion token; RewardTrainer drops
pairs whose chosen or rejected sequence is longer; DPOTrainer drops pairs whose prompt alone fills
the limit and cuts the rest in its collator. Left alone, a data set that is all too long trains on
nothing (TRL stops with "num_samples=0") or on prompts without their answers. :func:`check_limits`
reads the prepared dataset against the rows given, counts both kinds, warns when more than
:data:`WARN_SHARE` of the rows were affected, and raises :class:`CaiError` when none is left.
"""

from __future__ import annotations

import logging

from cai.core.errors import CaiError

log = logging.getLogger("cai.train")

WARN_SHARE = 0.1
"""Warn when more than this share of a split was cut or dropped by ``max_length``."""


def _count_cut(ds, kind: str, max_length: int) -> int:
    """Rows of a prepared dataset that ``max_length`` cuts (read in batches of 1,000 rows)."""
    if kind == "reward":  # pairs over the limit are dropped, the rest fit
        return 0
    columns = ["input_ids"] if kind == "sft" else ["prompt_ids", "chosen_ids", "rejected_ids"]
    n = 0
    for batch in ds.select_columns(columns).iter(batch_size=1000):
        if kind == "sft":  # cut while preparing: a row at the limit lost its end (or fit exactly)
            n += sum(len(ids) >= max_length for ids in batch["input_ids"])
        else:  # dpo, cut in the collator: prompt + the longer response over the limit
            n += sum(len(p) + max(len(c), len(r)) > max_length
                     for p, c, r in zip(batch["prompt_ids"], batch["chosen_ids"], batch["rejected_ids"]))
    return n


def check_limits(trainer, given: dict[str, int], kind: str, max_length: int | None, data: str) -> dict:
    """Counts per split (``train``, ``eval``) of rows ``cut`` and ``dropped`` by ``max_length``.

    ``given``: rows handed to the trainer per split; ``kind``: ``sft``, ``reward`` or ``dpo``.
    Raises CaiError (naming ``data``) when no training row is left; logs a warning when more than
    WARN_SHARE of a split was cut or dropped, and drops an evaluation set left empty (the run then
    has no evaluation). Returns ``{split: {"cut": n, "dropped": n}}``.
    """
    if max_length is None:
        return {}
    datasets = {"train": trainer.train_dataset, "eval": trainer.eval_dataset}
    out: dict[str, dict[str, int]] = {}
    for split, n in given.items():
        ds = datasets.get(split)
        if ds is None or not n:
            continue
        kept = len(ds)
        cut = _count_cut(ds, kind, max_length) if kept else 0
        out[split] = {"cut": cut, "dropped": n - kept}
        if split == "eval" and kept == 0:  # evaluating an empty set fails in TRL: go on without it
            log.warning("eval split: all %d rows are over max_length=%d; no evaluation", n, max_length)
            trainer.eval_dataset = None
            continue
        if split == "train" and kept == 0:
            raise CaiError(
                f"nothing to train on: all {n} training {'pairs' if kind != 'sft' else 'examples'} are over "
                f"max_length={max_length} tokens ({'no completion token is left' if kind == 'sft' else 'dropped'}); "
                "raise max_length or shorten the data", path=data)
        if (cut + n - kept) > WARN_SHARE * n:
            log.warning("%s split: max_length=%d cut %d and dropped %d of %d rows", split, max_length, cut,
                        n - kept, n)
    return out


def pairs_within(pairs: list, tokenizer, max_length: int | None) -> list:
    """The pairs RewardTrainer keeps under ``max_length``: both conversations (prompt + response,
    through the chat template as :func:`cai.train.score.tokenize_conversation` builds them) fit.
    The held-out metrics are computed on these, so they describe the rows the counts describe."""
    if max_length is None:
        return list(pairs)
    from cai.train.score import tokenize_conversation

    kept = []
    for pair in pairs:
        prompt = [m.model_dump() for m in pair.prompt]
        lengths = [len(tokenize_conversation(tokenizer, prompt + [m.model_dump() for m in side]))
                   for side in (pair.chosen, pair.rejected)]
        if max(lengths) <= max_length:
            kept.append(pair)
    return kept


def check_fills_a_step(n: int, args, data: str, what: str = "training rows") -> None:
    """Refuse ``n`` training rows that cannot fill one optimizer step of ``args`` (a TRL/transformers
    TrainingArguments): with ``dataloader_drop_last`` a batch short of ``per_device_train_batch_size``
    x processes is dropped, so fewer rows give no step at all and the run would save its untrained
    model as trained (trl#3020). Without it a partial batch still makes a step. Raises CaiError."""
    per_step = int(args.per_device_train_batch_size) * max(int(getattr(args, "world_size", 1) or 1), 1)
    if getattr(args, "dataloader_drop_last", False) and n < per_step:
        raise CaiError(f"{n} {what}, but one step needs {per_step} (batch_size x processes) with "
                       "dataloader_drop_last: no step would be taken. Add data or lower batch_size", path=data)


def check_took_a_step(steps: int, data: str) -> None:
    """After ``trainer.train()``: a run that took no optimizer step must not be saved as a trained
    model. Raises CaiError when ``steps`` is 0."""
    if steps <= 0:
        raise CaiError("training took no optimizer step (no full batch in the data); nothing was saved as a "
                       "trained model", path=data)
