"""`cai run`: the whole loop from one recipe. Parses flags, calls :func:`cai.loop.runner.run_loop`."""

from __future__ import annotations

from typing import Optional

import typer

_STAGE = "STAGE is one of generate, sft, sample, label, route, humans, mix, reward, ppo, dpo, eval, report"


def run(
    recipe: str = typer.Argument(..., metavar="RECIPE", help="The loop recipe (YAML), e.g. recipes/loop-quickstart.yaml."),
    out: Optional[str] = typer.Option(None, "--out", metavar="RUN", help="Run folder (default: the recipe's out)."),
    start: Optional[str] = typer.Option(None, "--from", metavar="STAGE", help=f"Start at this stage (earlier ones must be done); round-K/STAGE for a later round. {_STAGE}."),
    until: Optional[str] = typer.Option(None, "--until", metavar="STAGE", help="Stop after this stage (round-K/STAGE for a later round)."),
    force: Optional[str] = typer.Option(None, "--force", metavar="STAGE", help="Redo this stage and everything after it, even if done."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print what each stage would do (skip, resume, redo, run) and why; run nothing."),
) -> None:
    """Run the whole constitutional loop from one recipe; rerun the same command to resume after a stop
    or crash (finished stages are skipped, interrupted ones continue, changed ones are redone with
    everything after them). Exit code 3: the humans stage waits for labels (the message says where)."""
    from cai.loop.runner import run_loop

    run_loop(recipe, out=out, start=start, until=until, force=force, dry_run=dry_run)
