"""`cai run`: the whole loop from one recipe. Parses flags, calls :func:`cai.loop.runner.run_loop`."""

from __future__ import annotations

from typing import Optional

import typer


def run(
    recipe: str = typer.Argument(..., help="The loop recipe (YAML), e.g. recipes/loop-quickstart.yaml."),
    out: Optional[str] = typer.Option(None, "--out", help="Run folder (default: the recipe's out)."),
    start: Optional[str] = typer.Option(None, "--from", help="Start at this stage (earlier ones must be done); round-K/STAGE for a later round."),
    until: Optional[str] = typer.Option(None, "--until", help="Stop after this stage."),
    force: Optional[str] = typer.Option(None, "--force", help="Redo this stage and everything after it."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print what each stage would do (skip, resume, redo, run) and why; run nothing."),
) -> None:
    """Run the whole constitutional loop from one recipe; rerun to resume, skipping finished stages."""
    from cai.loop.runner import run_loop

    run_loop(recipe, out=out, start=start, until=until, force=force, dry_run=dry_run)
