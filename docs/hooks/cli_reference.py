"""mkdocs hook: the CLI reference page, generated from the commands themselves.

``docs/reference/cli.md`` holds the marker ``<!-- cli-reference -->``; at build time it is replaced
by the ``--help`` text of every ``cai`` command and subcommand, walked from the click command tree
that ``cai`` runs, so the page cannot drift from the flags. ``cli_markdown()`` is importable for
tests.
"""

from __future__ import annotations

import os

MARKER = "<!-- cli-reference -->"
SETTINGS_MARKER = "<!-- settings-reference -->"


def _walk(command, path: list[str]):
    yield path, command
    if hasattr(command, "list_commands"):  # a group (typer carries its own copy of click)
        ctx = command.context_class(command, info_name=" ".join(path))
        for name in command.list_commands(ctx):
            yield from _walk(command.get_command(ctx, name), [*path, name])


def cli_markdown() -> str:
    """One section per command: its name, its help text as ``cai COMMAND --help`` prints it."""
    import typer

    os.environ.setdefault("COLUMNS", "100")
    from cai.cli import main as cli_main

    cli_main._register()
    root = typer.main.get_command(cli_main.app)
    parts = []
    for path, command in _walk(root, ["cai"]):
        name = " ".join(path)
        info = command.context_class(command, info_name=name, terminal_width=100, max_content_width=100)
        help_text = command.get_help(info)
        level = "#" * min(2 + len(path) - 1, 4)
        parts.append(f"{level} `{name}`\n\n```text\n{help_text}\n```\n")
    return "\n".join(parts)


def settings_markdown() -> str:
    """Per command: its config model and, for each flag generated from it, the YAML key (the
    field's path) and the default the config gives (``cai.cli.fields``)."""
    import typer

    from cai.cli import main as cli_main
    from cai.cli.fields import default_text

    cli_main._register()
    parts = []
    for path, command in _walk(typer.main.get_command(cli_main.app), ["cai"]):
        specs = getattr(getattr(command, "callback", None), "field_flags", None)
        if not specs:
            continue
        model = command.callback.field_model
        rows = []
        for spec in specs:
            default = default_text(spec.default)
            default = "required" if default == "(required)" else default.removeprefix("(default: ").removesuffix(")")
            if spec.is_bool and isinstance(spec.default, bool):
                default = str(spec.default).lower()
            flag = " / ".join(f"`{d}`" for d in spec.decls[0].split("/"))
            default = default.replace("|", "\\|") or "—"
            rows.append(f"| {flag} | `{'.'.join(spec.path)}` | {default} |")
        parts.append(f"### `{' '.join(path)}`\n\nConfig: `{model.__module__}.{model.__name__}`\n\n"
                     "| flag | YAML key / Python argument | default |\n|---|---|---|\n" + "\n".join(rows) + "\n")
    return "\n".join(parts)


def on_page_markdown(markdown: str, page, config, files) -> str:  # noqa: ARG001 - mkdocs' hook signature
    if MARKER in markdown:
        markdown = markdown.replace(MARKER, cli_markdown())
    if SETTINGS_MARKER in markdown:
        markdown = markdown.replace(SETTINGS_MARKER, settings_markdown())
    return markdown
