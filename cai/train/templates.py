"""Rows a chat template takes, checked before a TRL trainer sees the dataset.

TRL's trainers apply the chat template themselves while they prepare a dataset (SFT, DPO, reward)
or before every generation (GRPO, RLOO), and one row the template refuses stops the run with a
Jinja traceback. :func:`template_rows` renders each row as the trainer will, through cai's one
rule (:func:`cai.backends.chat.template_input`): a system turn the template refuses is merged into
the first user turn (said once), and a row the template rejects for any other reason is left out,
counted and named by its file line or id. Rows the template takes as they are stay untouched.

What each trainer renders (``kind``): ``sft`` the prompt (with a generation prompt) and prompt +
completion, or the whole ``messages``; ``dpo`` the prompt and prompt + chosen / + rejected;
``reward`` prompt + chosen / + rejected; ``prompt`` (GRPO, RLOO) the prompt with a generation prompt.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from cai.core.errors import CaiError

log = logging.getLogger("cai.train")

KINDS = ("sft", "dpo", "reward", "prompt")
SHOWN = 20
"""Rows left out that are logged one by one (all are in the summary)."""


def _chat(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(m, dict) and "role" in m for m in value)


def renders(row: dict, kind: str) -> list[tuple[list[dict], bool]]:
    """The conversations the trainer of ``kind`` renders from ``row``: (messages, add_generation_prompt)."""
    if kind == "sft":
        if _chat(row.get("messages")):
            return [(row["messages"], False)]
        if _chat(row.get("prompt")) and _chat(row.get("completion")):
            return [(row["prompt"], True), (row["prompt"] + row["completion"], False)]
        return []  # plain text: no template
    prompt = row["prompt"]
    if kind == "prompt":
        return [(prompt, True)]
    sides = [(prompt + row["chosen"], False), (prompt + row["rejected"], False)]
    return [(prompt, True), *sides] if kind == "dpo" else sides


def _merged(row: dict) -> dict:
    from cai.backends.chat import merge_system

    return {k: merge_system(v) if _chat(v) and any(m["role"] == "system" for m in v) else v for k, v in row.items()}


def _take(row: dict, kind: str, tokenizer: Any, template: str | None, also: Callable[[dict], None] | None) -> dict:
    """``row`` as the template takes it (itself, or with its system turns merged); PromptRejected otherwise."""
    from cai.backends.chat import template_input

    changed = False
    for messages, opening in renders(row, kind):
        taken = template_input(tokenizer, messages, template, tokenize=False, add_generation_prompt=opening)
        changed = changed or len(taken) != len(messages)
    if changed:  # merge every system turn of the row, then check the merged row as the trainer will see it
        row = _merged(row)
        for messages, opening in renders(row, kind):
            template_input(tokenizer, messages, template, tokenize=False, add_generation_prompt=opening)
    if also is not None:
        also(row)
    return row


def template_rows(rows: Sequence[dict], names: Sequence[str], tokenizer: Any, kind: str, *,
                  template: str | None = None, also: Callable[[dict], None] | None = None,
                  path: str | None = None, quiet: bool = False, required: bool = True) -> tuple[list[dict], dict]:
    """The rows the chat template takes, and a report: ``{"system_merged": n, "rejected": n,
    "rejected_rows": ["NAME: why", ...]}``. ``names`` name the rows (``file:line`` or an id);
    ``also`` is a further check of a taken row (e.g. a reward model's template) that raises
    :class:`~cai.backends.base.PromptRejected`. Raises CaiError (naming ``path``) when no row is
    left, unless not ``required`` (an evaluation split)."""
    kept, report = _template_rows(rows, names, tokenizer, kind, template, also, path, quiet, required)
    return [row for _, row in kept], report


def _template_rows(rows, names, tokenizer, kind, template, also, path, quiet, required=True
                   ) -> tuple[list[tuple[int, dict]], dict]:
    from cai.backends.base import PromptRejected

    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    kept, rejected, merged = [], [], 0
    for i, (row, name) in enumerate(zip(rows, names, strict=True)):
        try:
            taken = _take(row, kind, tokenizer, template, also)
        except PromptRejected as exc:
            rejected.append(f"{name}: {exc.message}")
            continue
        merged += taken is not row
        kept.append((i, taken))
    if rejected and not quiet:
        for why in rejected[:SHOWN]:
            log.warning("row left out: %s", why)
        if len(rejected) > SHOWN:
            log.warning("... and %d more rows left out (all are in the summary)", len(rejected) - SHOWN)
    if rows and not kept and required:
        raise CaiError(f"nothing to train on: the chat template rejected all {len(rows)} rows "
                       f"(first: {rejected[0]})", path=path)
    return kept, {"system_merged": merged, "rejected": len(rejected), "rejected_rows": rejected}


def add_reports(*reports: dict) -> dict:
    """One report for several splits (counts added, rows listed in order)."""
    return {"system_merged": sum(r["system_merged"] for r in reports), "rejected": sum(r["rejected"] for r in reports),
            "rejected_rows": [w for r in reports for w in r["rejected_rows"]]}


def report_line(report: dict | None) -> str | None:
    """One line for the end of a run: rows left out by the chat template (the first named) and
    system turns merged; None when the template took every row as it was."""
    if not report or not (report["rejected"] or report["system_merged"]):
        return None
    parts = []
    if report["rejected"]:
        parts.append(f"{report['rejected']} rows left out (first: {report['rejected_rows'][0]}; all in summary.json)")
    if report["system_merged"]:
        parts.append(f"{report['system_merged']} rows with the system turn merged into the first user turn")
    return "chat template: " + ", ".join(parts)


def trainer_tokenizer(model: str, trl: dict | None = None) -> tuple[Any, str | None]:
    """The tokenizer TRL loads for ``model`` and the template it will use: ``trl.chat_template_path``
    (a ``.jinja`` file, or a tokenizer folder whose template TRL copies) over the tokenizer's own."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model)
    override = (trl or {}).get("chat_template_path")
    if not override:
        return tokenizer, None
    if Path(override).is_file():
        return tokenizer, Path(override).read_text(encoding="utf-8")
    return tokenizer, AutoTokenizer.from_pretrained(override).chat_template


def template_dataset(ds, names: Sequence[str], tokenizer: Any, kind: str, *, template: str | None = None,
                     path: str | None = None, required: bool = True) -> tuple[Any, dict]:
    """:func:`template_rows` for a ``datasets.Dataset`` (or None): the same dataset when the
    template takes every row as it is, else a new one of the taken rows (None when none is left)."""
    if ds is None:
        return None, add_reports()
    kept, report = template_rows(ds.to_list(), names, tokenizer, kind, template=template, path=path,
                                 required=required)
    if not report["system_merged"] and not report["rejected"]:
        return ds, report
    from datasets import Dataset

    return (Dataset.from_list(kept) if kept else None), report


def template_pairs(pairs: list, tokenizer: Any, kind: str, *, template: str | None = None,
                   path: str | None = None, quiet: bool = False, required: bool = True) -> tuple[list, dict]:
    """:func:`template_rows` for :class:`~cai.data.pairs.PreferencePair` s (named by ``origin``,
    ``file:line``, else by id); a merged pair gets the merged prompt (its id stays). An empty list
    stays empty."""
    from cai.data.records import ChatMessage

    if not pairs:
        return [], add_reports()
    rows = [{"prompt": [m.model_dump() for m in p.prompt], "chosen": [m.model_dump() for m in p.chosen],
             "rejected": [m.model_dump() for m in p.rejected]} for p in pairs]
    kept, report = _template_rows(rows, [p.origin or p.id for p in pairs], tokenizer, kind, template, None, path,
                                  quiet, required)
    return [pairs[i] if row is rows[i] else
            pairs[i].model_copy(update={"prompt": [ChatMessage(**m) for m in row["prompt"]]}) for i, row in kept], report
