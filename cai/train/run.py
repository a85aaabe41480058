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


def train_and_save(trainer, recipe, facts: dict[str, Any]) -> dict[str, Any]:
    """Train, evaluate on the trainer's eval set (if any), save the model and, on the main
    process, ``OUT/summary.json``; returns the summary (``facts`` describe the data)."""
    from cai.core.runs import write_json

    started = time.perf_counter()
    result = trainer.train()
    summary: dict[str, Any] = {"out": recipe.out, "model": recipe.model, "data": recipe.data, **facts,
                               **train_stats(trainer, result, time.perf_counter() - started)}
    if trainer.eval_dataset is not None:
        summary["eval"] = {k.removeprefix("eval_"): v for k, v in trainer.evaluate().items()}
    save_model(trainer, recipe.out)
    if trainer.is_world_process_zero():
        write_json(Path(recipe.out) / "summary.json", summary)
    return summary
