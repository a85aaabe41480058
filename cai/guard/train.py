"""`cai guard train`: a sequence classifier on guard data, saved as a standard Hugging Face
sequence-classification folder with guard.json (threshold) and a model card.

Written with transformers' ``Trainer``: TRL has no classification trainer (its RewardTrainer
scores pairs, not single texts).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from cai.core.errors import CaiError
from cai.core.rates import estimate_text, proportion
from cai.guard.classify import GUARD_FILE, Guard, marked, threshold_for
from cai.guard.config import GuardTrainConfig


def train_file(path: str | Path, split: str = "train") -> Path:
    """The absolute path of the rows :func:`read_rows` reads: ``{split}.jsonl`` in a guard-data
    folder, or the JSONL file itself."""
    path = Path(path)
    return (path / f"{split}.jsonl" if path.is_dir() else path).resolve()


def read_rows(path: str | Path, split: str = "train") -> list[dict]:
    """Labelled rows (``text``, ``role``, ``label`` 0/1) from a guard-data folder's ``{split}.jsonl``
    or a JSONL file. Raises CaiError naming the file and line of a row without them."""
    from cai.core.files import jsonl_rows

    path = Path(path)
    file = path / f"{split}.jsonl" if path.is_dir() else path
    if not file.exists():
        raise CaiError(f"no guard data at {file}: run 'cai guard data' first")
    rows = []
    for where, row in jsonl_rows(file):
        if not isinstance(row.get("text"), str) or row.get("role") not in ("input", "output") \
                or row.get("label") not in (0, 1):
            raise CaiError("a guard row needs text (string), role (input|output) and label (0|1)", path=str(file),
                           line=where)
        rows.append(row)
    return rows


def rates(scores: list[float], labels: list[int], threshold: float) -> dict:
    """Catch rate (share of label-1 rows flagged) and false-positive rate (share of label-0 rows
    flagged), each a rate dict with n and a Wilson interval (None without such rows)."""
    harmful = [s for s, y in zip(scores, labels, strict=True) if y == 1]
    benign = [s for s, y in zip(scores, labels, strict=True) if y == 0]
    return {"catch_rate": proportion(sum(s >= threshold for s in harmful), len(harmful)) if harmful else None,
            "false_positive_rate": proportion(sum(s >= threshold for s in benign), len(benign)) if benign else None}


def train_guard(config: GuardTrainConfig, console=None) -> dict:
    """Train the guard; returns the summary (also ``OUT/summary.json``). Refuses before loading a
    model when the data holds only one class or fewer rows than one batch. Raises CaiError."""
    import datasets
    import torch
    from transformers import (AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding, Trainer,
                              TrainingArguments)

    say = console.print if console is not None else print
    if Path(config.out).exists() and not Path(config.out).is_dir():  # before any training time is spent
        raise CaiError("--out must be a folder, and this is a file", path=config.out)
    rows = read_rows(config.data, "train")
    labels = {r["label"] for r in rows}
    if len(labels) < 2:
        raise CaiError(f"{config.data}: the training rows hold only label {labels or '{}'}; a guard needs both "
                       "violations (1) and benign rows (0)")
    if len(rows) < config.batch_size:
        raise CaiError(f"{config.data}: {len(rows)} training rows, fewer than one batch ({config.batch_size}); "
                       "lower --batch-size or generate more data")
    from cai.models import resolve_model

    base = resolve_model(config.model)  # a known name (the embedded model), a .gguf file or a folder
    tokenizer = AutoTokenizer.from_pretrained(base)
    tokenizer.truncation_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForSequenceClassification.from_pretrained(
        base, num_labels=2, id2label={0: "safe", 1: "violation"}, label2id={"safe": 0, "violation": 1})
    model.config.pad_token_id = tokenizer.pad_token_id
    ds = datasets.Dataset.from_list([{"text": marked(r["text"], r["role"]), "label": r["label"]} for r in rows])
    ds = ds.map(lambda b: tokenizer(b["text"], truncation=True, max_length=config.max_length), batched=True,
                remove_columns=["text"])
    out = Path(config.out)
    cuda = torch.cuda.is_available()
    args = TrainingArguments(
        output_dir=str(out / "checkpoints"), max_steps=config.max_steps, per_device_train_batch_size=config.batch_size,
        learning_rate=config.learning_rate, seed=config.seed, report_to=[], save_strategy="no", logging_steps=10,
        use_cpu=not cuda, bf16=False, disable_tqdm=True)
    started = time.perf_counter()
    trainer = Trainer(model=model, args=args, train_dataset=ds, data_collator=DataCollatorWithPadding(tokenizer))
    result = trainer.train()
    if trainer.state.global_step == 0:
        raise CaiError("the guard took no training step; nothing was saved (check --max-steps and the data)")
    out.mkdir(parents=True, exist_ok=True)
    trainer.save_model(str(out))
    tokenizer.save_pretrained(str(out))
    seconds = time.perf_counter() - started
    meta = {"threshold": 0.5, "target_fpr": config.target_fpr, "max_length": config.max_length, "markers": "input/output",
            "base_model": config.model, "data": str(config.data),
            "train_file": str(train_file(config.data)), "train_rows": len(rows), "steps": trainer.state.global_step}
    (out / GUARD_FILE).write_text(json.dumps(meta, indent=2))
    guard = Guard(out)
    train_scores = guard.scores([r["text"] for r in rows], [r["role"] for r in rows])
    meta["threshold"] = threshold_for([s for s, r in zip(train_scores, rows, strict=True) if r["label"] == 0],
                                      config.target_fpr)
    figures = {"train": rates(train_scores, [r["label"] for r in rows], meta["threshold"])}
    try:
        test = read_rows(config.data, "test") if Path(config.data).is_dir() else []
    except CaiError:
        test = []
    if test:
        scores = guard.scores([r["text"] for r in test], [r["role"] for r in test])
        figures["test"] = rates(scores, [r["label"] for r in test], meta["threshold"])
        figures["test"]["principles"] = sorted({r.get("principle", "") for r in test})
    meta["figures"] = figures
    (out / GUARD_FILE).write_text(json.dumps(meta, indent=2))
    (out / "README.md").write_text(model_card(meta, config))
    summary = {"out": str(out), "steps": trainer.state.global_step, "train_loss": round(result.training_loss, 4),
               "seconds": round(seconds, 1), "threshold": meta["threshold"], "figures": figures}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    split = "test" if "test" in figures else "train"
    say(f"guard train: {summary['steps']} steps, loss {summary['train_loss']}, threshold {meta['threshold']:.3f} "
        f"(target false-positive rate {config.target_fpr:.0%} on the train benign rows)")
    say(f"  {split}: catch rate {estimate_text(figures[split]['catch_rate'])}, false positives "
        f"{estimate_text(figures[split]['false_positive_rate'])}" + ("" if split == "test" else
                                                                     " (in-sample: no test split)"))
    return summary


def model_card(meta: dict, config: GuardTrainConfig) -> str:
    """The guard's model card: what it is for, what it was trained on, its figures with n."""
    def line(split: str) -> str:
        f = meta["figures"].get(split)
        if not f:
            return f"- {split}: none"
        return (f"- {split}: catch rate {estimate_text(f['catch_rate'])}; false-positive rate "
                f"{estimate_text(f['false_positive_rate'])}")

    return "\n".join([
        "---", "library_name: transformers", "pipeline_tag: text-classification", "tags: [cai, guard, constitutional-classifier]",
        "---", "", "# cai guard", "",
        "A sequence classifier that flags user messages and assistant responses that break the principles of a "
        "constitution (label 1, `violation`) and passes the rest (label 0, `safe`). Each text is prefixed with "
        "`[user message]` or `[assistant response]`.", "",
        "## Training", "",
        f"- base model: `{meta['base_model']}`", f"- data: `{meta['data']}` ({meta['train_rows']} rows, generated "
        "and labelled from a constitution by `cai guard data`)",
        f"- steps: {meta['steps']}, batch size {config.batch_size}, learning rate {config.learning_rate}", "",
        "## Figures (95% Wilson intervals)", "",
        f"Threshold {meta['threshold']:.4f}, set so that at most {meta['target_fpr']:.0%} of the training split's "
        "benign rows are flagged.", "", line("train"), line("test"), "",
        "The test split holds principles the guard never saw in training. Data generated and labelled by a weak "
        "model are weak data: read the judge's health in the data folder's summary.json before trusting these figures.",
        "",
    ])
