"""What every training run shares: saving the final model, its stats, JSON reports."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any


def save_model(trainer, out: str):
    """Save the final model (LoRA adapters merged) and tokenizer to ``out``; returns the model."""
    model = trainer.model
    if hasattr(model, "merge_and_unload"):  # a peft model: ship plain weights that load anywhere
        model = model.merge_and_unload()
        if trainer.is_world_process_zero():
            model.save_pretrained(out)
            trainer.processing_class.save_pretrained(out)
    else:
        trainer.save_model(out)
    return model


def train_stats(trainer, result, seconds: float) -> dict[str, Any]:
    """Steps, mean and last logged training loss, wall time of `trainer.train()`."""
    losses = [e["loss"] for e in trainer.state.log_history if "loss" in e]
    return {
        "steps": result.global_step,
        "train_loss": result.training_loss,
        "final_loss": losses[-1] if losses else result.training_loss,
        "train_seconds": round(seconds, 2),
    }


def log_line(logs: dict[str, Any], step: int, max_steps: int) -> str:
    """One plain line for a TRL/transformers log entry: ``step 10/40: loss 0.6931, grad_norm 1.2``
    (numbers to 4 significant digits; the closing entry reads ``done:``)."""
    def fmt(value: Any) -> str:
        return f"{value:.4g}" if isinstance(value, float) else str(value)

    items = {k: v for k, v in logs.items() if k != "total_flos"}
    body = ", ".join(f"{k.removeprefix('train_')} {fmt(v)}" for k, v in items.items())
    if "train_runtime" in items:
        return f"done after {step} steps: {body}"
    where = f"step {step}/{max_steps}" if max_steps and max_steps > 0 else f"step {step}"
    return f"{where}: {body}"


def plain_log_lines(trainer) -> None:
    """Off a terminal (``disable_tqdm``), transformers prints each log entry as a raw dict; print one
    plain line per logging step instead (``log_line``)."""
    from transformers.trainer_callback import PrinterCallback, TrainerCallback

    if not trainer.args.disable_tqdm:
        return

    class PlainLogLines(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and state.is_local_process_zero:
                print(log_line(logs, state.global_step, state.max_steps), flush=True)

    trainer.remove_callback(PrinterCallback)
    trainer.add_callback(PlainLogLines())


def train_and_save(trainer, recipe, facts: dict[str, Any]) -> dict[str, Any]:
    """Train, evaluate on the trainer's eval set (if any), save the model and, on the main
    process, ``OUT/summary.json``; returns the summary (``facts`` describe the data)."""
    from cai.core.runs import write_json

    plain_log_lines(trainer)
    started = time.perf_counter()
    result = trainer.train()
    from cai.train.limits import check_took_a_step

    check_took_a_step(result.global_step, recipe.data)
    summary: dict[str, Any] = {"out": recipe.out, "model": recipe.model, "data": recipe.data, **facts,
                               **train_stats(trainer, result, time.perf_counter() - started),
                               "trl": dict(recipe.trl)}
    if trainer.eval_dataset is not None:
        summary["eval"] = {k.removeprefix("eval_"): v for k, v in trainer.evaluate().items()}
    save_model(trainer, recipe.out)
    if trainer.is_world_process_zero():
        write_json(Path(recipe.out) / "summary.json", summary)
    return summary
