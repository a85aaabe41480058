"""`cai models`: the models cai knows by name, and their local folders."""

from __future__ import annotations

import typer

app = typer.Typer(rich_markup_mode=None, help="Models known by name (the embedded default model) and GGUF conversion.",
                  no_args_is_help=True)


@app.command("list")
def list_models() -> None:
    """Known model names, where each comes from, and whether it is present on this machine."""
    from rich.console import Console

    from cai.models import DEFAULT_MODEL, cache_dir, model_status

    console = Console(highlight=False)
    for row in model_status():
        default = " (default)" if row.name == DEFAULT_MODEL else ""
        console.print(f"[bold]{row.name}[/bold]{default}  {row.params} params, {row.license}")
        console.print(f"  source: {row.source}, {'installed' if row.installed else 'NOT installed'}")
        console.print(f"  folder: {row.prepared or ('prepared on first use' if row.installed else '-')}")
        console.print(f"  {row.description}")
    console.print(f"cache: {cache_dir()} (set CAI_MODELS_DIR to move it); any .gguf file path is "
                  "accepted as a model too.")


@app.command("path")
def path(name: str = typer.Argument(..., help="A known name or a .gguf file.")) -> None:
    """Print the local Hugging Face folder for NAME, preparing it on first use."""
    from cai.core.errors import CaiError
    from cai.models import known_model, resolve_model

    if known_model(name) is None and not name.lower().endswith(".gguf"):
        raise CaiError(f"unknown model name {name!r}: see `cai models list` (or give a .gguf file)")
    typer.echo(resolve_model(name))
