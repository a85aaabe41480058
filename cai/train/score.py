"""Score responses with a trained reward model: batched forward passes, no decoding.

Sequences are built exactly as TRL's RewardTrainer builds them (the chat template over
prompt + response, no generation prompt), sorted by length into batches, right-padded, and the
scalar head's output is the reward.

    model, tokenizer = load_reward_model("runs/rm")
    rewards = score_conversations(model, tokenizer, [prompt + [{"role": "assistant", "content": "..."}]])
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any, Iterable

from pydantic import BaseModel, ConfigDict, Field

from cai.core.errors import CaiError, looked_at


class ScoreConfig(BaseModel):
    """`cai score`: what to score and with which reward model (the flags, ``--config`` and
    :func:`score` take these fields)."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    file: str
    """Preference pairs (a file or folder), or responses: JSONL of {prompt, response} or {messages}
    rows, or CSV with prompt and response columns."""
    model: str
    """Reward model: a `cai train reward` folder, hub id or known name."""
    out: str | None = None
    """Write the scored rows here as JSONL (default: stdout)."""
    batch_size: int = Field(16, ge=1)
    """Sequences per forward pass."""
    max_length: int | None = Field(None, ge=2)
    """Cut longer sequences from the left to this many tokens, counted (default, and at most: the
    reward model's context)."""
    device: str | None = None
    """cpu, cuda, cuda:1, ... (default: cuda when available)."""


def score(cfg: ScoreConfig) -> dict:
    """Score ``cfg.file`` with ``cfg.model`` (:func:`score_file`); returns the summary."""
    return score_file(cfg.model, cfg.file, out=cfg.out, batch_size=cfg.batch_size, max_length=cfg.max_length,
                      device=cfg.device)


def load_reward_model(path: str, *, device: str | None = None, dtype: str | None = None):
    """A sequence-classification model with one output (the reward) and its tokenizer."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from transformers.utils import logging as hf_logging

    from cai.models import resolve_model

    path = resolve_model(path)  # a known name or a .gguf file becomes its local folder
    looks_local = path.startswith(("/", ".", "~")) or path.count("/") != 1  # hub ids are "org/name"
    if looks_local and not Path(path).exists():
        raise CaiError(f"no such reward model folder{looked_at(path)}", path=path)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    kwargs: dict[str, Any] = {"dtype": getattr(torch, dtype) if dtype else torch.float32}
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # stderr stays for the summary line and errors
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModelForSequenceClassification.from_pretrained(path, **kwargs)
    except (OSError, ValueError) as exc:
        raise CaiError(f"cannot load a reward model: {str(exc).splitlines()[0]}", path=path) from None
    finally:
        if bars:
            hf_logging.enable_progress_bar()
    if model.config.num_labels != 1:
        raise CaiError(f"not a reward model: {model.config.num_labels} outputs, expected 1", path=path)
    from cai.models.padding import align_pad_id

    align_pad_id(tokenizer, model, name=path)  # the pad id the head skips is the one padded with
    return model.to(device).eval(), tokenizer


def fit_context(model, tokenizer, max_length: int | None) -> int | None:
    """``max_length`` capped by what the model can read: its ``max_position_embeddings`` and its
    tokenizer's ``model_max_length`` (where set). A reward read past the context is not a reward."""
    limits = [n for n in (getattr(getattr(model, "config", None), "max_position_embeddings", None),
                          getattr(tokenizer, "model_max_length", None), max_length)
              if isinstance(n, int) and 1 < n < 10**8]
    return min(limits) if limits else None


def keep_end(ids: list[int], max_length: int | None, bos_id: int | None = None) -> tuple[list[int], bool]:
    """``(ids, cut)``: ``ids`` cut from the left to ``max_length`` tokens, keeping a leading BOS.

    A reward head reads the last token, so a sequence over the limit loses the start of its prompt,
    never the end of its response (cutting from the right would give every response to a long
    prompt the same reward). ``cut`` says whether anything was dropped.
    """
    if max_length is None or len(ids) <= max_length:
        return list(ids), False
    head = [ids[0]] if bos_id is not None and ids[0] == bos_id and max_length > 1 else []
    return head + list(ids[len(ids) - (max_length - len(head)):]), True


def tokenize_conversation(tokenizer, messages: list[dict], max_length: int | None = None,
                          counts: Counter | None = None) -> list[int]:
    """Token ids of a whole conversation as the RewardTrainer sees it, cut from the left to
    ``max_length`` (:func:`keep_end`); a cut adds one to ``counts["truncated"]``."""
    from cai.backends.chat import apply_template

    if not getattr(tokenizer, "chat_template", None):
        raise CaiError("the reward model's tokenizer has no chat template")
    ids = apply_template(tokenizer, messages, tokenize=True, return_dict=True)["input_ids"]
    ids, cut = keep_end(ids, max_length, tokenizer.bos_token_id)
    if cut and counts is not None:
        counts["truncated"] += 1
    return ids


def score_token_ids(model, pad_token_id: int, sequences: list[list[int]], *, batch_size: int = 16) -> list[float]:
    """Rewards of tokenized sequences, batched by length (longest first), in input order."""
    import torch

    from cai.models.padding import pad_rows

    device = next(model.parameters()).device
    order = sorted(range(len(sequences)), key=lambda i: -len(sequences[i]))
    rewards = [0.0] * len(sequences)
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            input_ids, mask = pad_rows([sequences[i] for i in idx], pad_token_id, "right")
            logits = model(input_ids=input_ids.to(device), attention_mask=mask.to(device), use_cache=False).logits
            for row, value in zip(idx, logits.squeeze(-1).float().tolist()):
                rewards[row] = value
    return rewards


def score_conversations(model, tokenizer, conversations: list[list[dict]], *, batch_size: int = 16,
                        max_length: int | None = None, counts: Counter | None = None) -> list[float]:
    """One reward per conversation (prompt messages followed by the response); conversations cut
    to ``max_length`` are counted in ``counts["truncated"]``."""
    sequences = [tokenize_conversation(tokenizer, c, max_length, counts) for c in conversations]
    return score_token_ids(model, tokenizer.pad_token_id, sequences, batch_size=batch_size)


def score_pairs(model, tokenizer, pairs, *, batch_size: int = 16, max_length: int | None = None,
                counts: Counter | None = None):
    """``(r_chosen, r_rejected)`` lists for PreferencePairs, chosen and rejected scored in one pass."""
    convs = []
    for p in pairs:
        prompt = [m.model_dump() for m in p.prompt]
        convs.append(prompt + [m.model_dump() for m in p.chosen])
        convs.append(prompt + [m.model_dump() for m in p.rejected])
    rewards = score_conversations(model, tokenizer, convs, batch_size=batch_size, max_length=max_length,
                                  counts=counts)
    return rewards[0::2], rewards[1::2]


# ---------------------------------------------------------------- files


def _response_conversation(row: dict, where: str) -> list[dict]:
    """A ``{prompt, response}`` (or ``completion``) row or a ``{messages}`` row as one conversation."""
    if "messages" in row:
        messages = row["messages"]
    else:
        prompt = row.get("prompt")
        response = row.get("response", row.get("completion"))
        if prompt is None or response is None:
            raise CaiError(f"{where}: expected prompt and response (or messages), or chosen and rejected")
        prompt = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt
        response = [{"role": "assistant", "content": response}] if isinstance(response, str) else response
        messages = list(prompt) + list(response)
    if not isinstance(messages, list) or not all(isinstance(m, dict) and "role" in m and "content" in m
                                                 for m in messages):
        raise CaiError(f"{where}: messages must be a list of {{role, content}}")
    return [{"role": m["role"], "content": m["content"]} for m in messages]


def _response_rows(path: Path, is_csv: bool):
    """``(line, row)`` of a responses file: CSV rows (prompt, response columns) or JSONL objects."""
    from cai.core.files import csv_rows, jsonl_rows

    yield from csv_rows(path) if is_csv else jsonl_rows(path)


def score_file(model_path: str, file: str, *, out: str | None = None, batch_size: int = 16,
               max_length: int | None = None, device: str | None = None) -> dict:
    """Score a pairs file (rewards of both responses and the margin) or a JSONL of responses.

    Rows go to ``out`` as JSONL (stdout when ``out`` is None). Returns a summary.
    """
    from cai.data.pairs import read_pairs, resolve_pairs_path
    from cai.train.data import column_names

    path = Path(file)
    if not path.exists():
        raise CaiError(f"no such file or folder{looked_at(file)}", path=file)
    counts: Counter = Counter()
    is_pairs = path.is_dir() or {"chosen", "rejected"} <= set(column_names(path))
    suffix = path.name.lower().removesuffix(".gz").rsplit(".", 1)[-1]
    if not is_pairs and suffix not in ("jsonl", "json", "csv"):
        raise CaiError("responses to score must be JSONL ({prompt, response} or {messages} rows) or CSV "
                       "(prompt and response columns)", path=file)
    if is_pairs:
        read_counts: dict = {}
        pairs = list(read_pairs(resolve_pairs_path(path), counts=read_counts))
        model, tokenizer = load_reward_model(model_path, device=device)
        max_length = fit_context(model, tokenizer, max_length)
        chosen, rejected = score_pairs(model, tokenizer, pairs, batch_size=batch_size, max_length=max_length,
                                       counts=counts)
        rows: Iterable[dict] = (
            {"id": p.id, "source": p.source, "p_chosen": p.p_chosen, "r_chosen": c, "r_rejected": r, "margin": c - r}
            for p, c, r in zip(pairs, chosen, rejected)
        )
        margins = [c - r for c, r in zip(chosen, rejected)]
        summary = {"kind": "pairs", "rows": len(pairs),
                   "accuracy": sum(m > 0 for m in margins) / max(len(margins), 1),
                   "mean_margin": sum(margins) / max(len(margins), 1),
                   "empty_response_dropped": read_counts["empty_response"]}
    else:
        originals, convs, lines = [], [], []
        for lineno, row in _response_rows(path, suffix == "csv"):
            convs.append(_response_conversation(row, f"{file}:{lineno}"))
            originals.append(row)
            lines.append(lineno)
        if not convs:
            raise CaiError("nothing to score", path=file)
        model, tokenizer = load_reward_model(model_path, device=device)
        max_length = fit_context(model, tokenizer, max_length)
        rewards, failed = _score_rows(model, tokenizer, convs, batch_size, max_length, counts)
        rows = ({**row, "reward": r} if r is not None else {**row, "reward": None, "error": why}
                for row, r, why in zip(originals, rewards, failed))
        scored = [r for r in rewards if r is not None]
        summary = {"kind": "responses", "rows": len(rewards), "failed": len(rewards) - len(scored),
                   "failures": [f"{file}:{n}: {why}" for n, why in zip(lines, failed) if why][:20],
                   "mean_reward": sum(scored) / len(scored) if scored else None}
    _write_jsonl(rows, out)
    summary["truncated"] = counts["truncated"]  # sequences whose prompt start was cut to fit max_length
    summary["max_length"] = max_length  # --max-length, or the reward model's context when shorter
    summary["out"] = out or "-"
    return summary


def _score_rows(model, tokenizer, convs, batch_size, max_length, counts):
    """``(rewards, reasons)``: a conversation the reward model's chat template rejects gets reward
    None and its reason (that row fails alone, named by its line); the others are scored."""
    from cai.backends.base import PromptRejected

    sequences, failed = [], []
    for conv in convs:
        try:
            sequences.append(tokenize_conversation(tokenizer, conv, max_length, counts))
            failed.append("")
        except PromptRejected as exc:
            sequences.append(None)
            failed.append(exc.message)
    good = [s for s in sequences if s is not None]
    scores = iter(score_token_ids(model, tokenizer.pad_token_id, good, batch_size=batch_size) if good else [])
    return [next(scores) if s is not None else None for s in sequences], failed


def _write_jsonl(rows: Iterable[dict], out: str | None) -> None:
    if out is None:
        for row in rows:
            sys.stdout.write(json.dumps(row, ensure_ascii=False) + "\n")
        sys.stdout.flush()
        return
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
