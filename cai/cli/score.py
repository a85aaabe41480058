"""`cai score`: rewards of responses or preference pairs from a trained reward model."""

from __future__ import annotations

from typing import Optional

import typer


def score(
    file: str = typer.Argument(..., help="Preference pairs (file or folder), or responses: JSONL of {prompt, response} / {messages}, or CSV with prompt and response columns."),
    model: str = typer.Option(..., help="Reward model folder (from cai train reward)."),
    out: Optional[str] = typer.Option(None, help="Write scored rows here as JSONL (default: stdout)."),
    batch_size: int = typer.Option(16, help="Sequences per forward pass."),
    max_length: Optional[int] = typer.Option(None, help="Cut longer sequences from the left to N tokens (counted)."),
    device: Optional[str] = typer.Option(None, help="cpu, cuda, cuda:1, ... (default: cuda if available)."),
) -> None:
    """Score with a reward model: pairs get r_chosen, r_rejected and margin; responses get reward."""
    from rich.console import Console

    from cai.train.score import score_file

    summary = score_file(model, file, out=out, batch_size=batch_size, max_length=max_length, device=device)
    if summary["kind"] == "pairs":
        detail = f"accuracy {summary['accuracy']:.3f}, mean margin {summary['mean_margin']:.3f}"
    else:
        detail = f"mean reward {summary['mean_reward']:.3f}"
    if summary.get("truncated"):
        detail += (f"; {summary['truncated']} sequences cut from the left to {summary['max_length']} tokens "
                   "(--max-length or the reward model's context)")
    Console(stderr=True).print(f"cai score: {summary['rows']} {summary['kind']} scored ({detail}) → {summary['out']}",
                               soft_wrap=True)
