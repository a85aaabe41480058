"""`cai principles …`: lint, list, show, scaffold, schema and import principle files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from cai.cli.fields import apply_fields, takes_fields
from cai.core.errors import CaiError
from cai.inverse.config import PrincipleTestConfig

app = typer.Typer(rich_markup_mode=None, help="Author and check principle files and constitutions.", no_args_is_help=True)

DEFAULT_PATHS = ["principles", "constitution"]


@app.command()
def lint(
    paths: list[str] = typer.Argument(None, help="Files or folders (default: principles/ constitution/)."),
    strict: bool = typer.Option(False, "--strict", help="Treat warnings as errors."),
) -> None:
    """Check principle and constitution files; print path:line: message for each problem."""
    from cai.principles.lint import lint_paths

    report = lint_paths(paths or DEFAULT_PATHS)
    for d in report.diagnostics:
        typer.echo(d.format(), err=d.severity == "error")
    summary = (
        f"{report.principles} principles, {report.constitutions} constitutions: "
        f"{len(report.errors)} errors, {len(report.warnings)} warnings"
    )
    typer.echo(summary, err=True)
    raise typer.Exit(report.exit_code(strict))


def _load_all(principles_dir: str):
    """The principles of ``principles_dir``; the default ``principles`` where there is none (outside a
    project) is the shipped library, said on stderr."""
    from cai.principles.library import load_principles_dir, shipped_dir

    shipped = shipped_dir("principles")
    if principles_dir == "principles" and not Path("principles").is_dir() and shipped is not None:
        typer.echo(f"no principles/ here: the shipped library ({shipped}); --principles-dir DIR for yours", err=True)
        return load_principles_dir(shipped)
    return load_principles_dir(principles_dir)


@app.command("list")
def list_(
    tag: Optional[str] = typer.Option(None, "--tag", help="Only principles with this tag."),
    principles_dir: Optional[str] = typer.Option(
        None, "--principles-dir", help="Principles folder (default: principles/; with --constitution: beside it)."),
    constitution: Optional[str] = typer.Option(
        None, help="Only the principles this constitution (YAML, or a name under constitution/) selects."),
) -> None:
    """List principles: id@version, tags and title."""
    from rich.console import Console
    from rich.table import Table
    from rich.markup import escape

    if constitution is not None:
        from cai.sl.pipeline import resolve_constitution

        principles = {p.id: p for p in resolve_constitution(constitution, principles_dir).principles}
    else:
        principles = _load_all(principles_dir or "principles")
    rows = [p for p in principles.values() if tag is None or tag in p.tags]
    if tag is not None and not rows:
        raise CaiError(f"no principle has tag '{tag}'")
    table = Table("id@version", "tags", "title", box=None, pad_edge=False)
    for p in sorted(rows, key=lambda p: p.id):
        table.add_row(*(escape(v) for v in (p.ref, ",".join(p.tags), p.title)))  # data, not rich markup
    Console(width=160).print(table)


@app.command()
def show(
    principle_id: str = typer.Argument(..., metavar="ID"),
    principles_dir: str = typer.Option("principles", "--principles-dir", help="Principles folder."),
) -> None:
    """Show one principle, rendered."""
    from rich.console import Console
    from rich.markdown import Markdown

    from cai.core.diagnostics import did_you_mean

    principles = _load_all(principles_dir)
    if principle_id not in principles:
        raise CaiError(f"no principle '{principle_id}'{did_you_mean(principle_id, principles)}")
    p = principles[principle_id]
    lines = [f"# {p.title}", f"`{p.ref}` · tags: {', '.join(p.tags)} · weight {p.weight:g}", ""]
    if p.description:
        lines += [p.description, ""]
    for heading, text in (("Critique", p.critique), ("Revision", p.revision), ("Preference", p.preference)):
        if text:
            lines += [f"## {heading}", text, ""]
    for i, ex in enumerate(p.examples, 1):
        verdict = "violates" if ex.violates else "does not violate"
        lines += [f"### Example {i} ({verdict})", f"**User:** {ex.prompt}", "", f"**Response:** {ex.response}", ""]
        if ex.critique:
            lines += [f"**Critique:** {ex.critique}", ""]
        if ex.revision:
            lines += [f"**Revision:** {ex.revision}", ""]
    Console().print(Markdown("\n".join(lines)))


@app.command()
def new(
    principle_id: str = typer.Argument(..., metavar="ID"),
    principles_dir: str = typer.Option("principles", "--principles-dir", help="Principles folder."),
    title: Optional[str] = typer.Option(None, help="Title (default: from the id)."),
    tags: str = typer.Option("custom", help="Comma-separated tags."),
) -> None:
    """Write a scaffold principle file that lints clean, ready to edit."""
    from cai.principles.scaffold import write_scaffold

    path = write_scaffold(principle_id, principles_dir, title=title, tags=[t.strip() for t in tags.split(",") if t.strip()])
    typer.echo(f"wrote {path}")


@app.command()
def schema(kind: str = typer.Argument("principle", help="principle or constitution")) -> None:
    """Print the JSON Schema of principle files or constitution manifests."""
    from cai.principles.constitution import ConstitutionSpec
    from cai.principles.principle import Principle

    models = {"principle": Principle, "constitution": ConstitutionSpec}
    if kind not in models:
        raise CaiError(f"unknown schema '{kind}'; choose principle or constitution")
    typer.echo(json.dumps(models[kind].model_json_schema(), indent=2))


@app.command("import")
def import_(
    file: str = typer.Argument(..., help="The JSON file to convert."),
    fmt: str = typer.Option(..., "--from", help="anthropic, hf or langchain."),
    out: str = typer.Option(..., "--out", help="Output folder (gets principles/ and constitution/)."),
    name: Optional[str] = typer.Option(None, help="Constitution name (default: from the file)."),
    tag: Optional[str] = typer.Option(None, help="Tag given to every imported principle."),
) -> None:
    """Convert Anthropic, Hugging Face or LangChain principle sets into principle files."""
    from cai.principles.importers import import_file
    from cai.principles.lint import lint_paths

    imported = import_file(fmt, file, name=name, tag=tag)
    written = imported.write(out)
    report = lint_paths([Path(out) / "principles", Path(out) / "constitution"])
    for d in report.errors:
        typer.echo(d.format(), err=True)
    typer.echo(f"wrote {len(written) - 1} principles and constitution {imported.spec.name} under {out}")
    raise typer.Exit(report.exit_code())


_TEST_FIELDS = [
    "pairs", "constitution", "principles_dir", "out", "min_accuracy", "min_strength", "worst", "few_shot", "pair_first",
    "chunk_size", "n_boot", "seed", "limit", "skip_invalid", "min_label_mass", "judge_health",
]


@app.command("test")
@takes_fields(PrincipleTestConfig, _TEST_FIELDS)
def test_(
    ids: list[str] = typer.Argument(None, help="Principle ids or patterns (harm-*); default: all with examples."),
    model: Optional[str] = typer.Option(None, help="Judge model: a local folder, hub id, .gguf file or known name (default: smollm2-135m-instruct)."),
    backend: str = typer.Option("auto", help="auto (vLLM with CUDA, else transformers), vllm, transformers or openai."),
    backend_option: list[str] = typer.Option([], "--backend-option", "-O", help="key=value backend option (repeatable)."),
    config: Optional[str] = typer.Option(None, "--config", help="YAML config; flags override it."),
    *, fields: dict,
) -> None:
    """Ask a judge model each principle's question on its own examples (or, with --pairs, vote on labeled pairs)."""
    from rich.console import Console
    from rich.table import Table
    from rich.markup import escape

    from cai.cli.common import backend_config, load_yaml_config, validate_config

    data = load_yaml_config(config)
    apply_fields(data, fields)
    if ids:
        data["principles"] = list(ids)
    data["judge"] = backend_config(data.get("judge"), backend, model, backend_option, required=True)
    cfg = validate_config(PrincipleTestConfig, data, config)
    if cfg.pairs is not None:
        from cai.cli.principles_pairs import test_pairs

        return test_pairs(cfg)
    from cai.backends import load_backend
    from cai.evals.principle_check import check_principles, select

    chosen = select(_load_all(cfg.principles_dir or "principles"), cfg.principles or None)
    with load_backend(cfg.judge) as judge:
        results = check_principles(judge, chosen)
    table = Table("principle", "examples", "accuracy", "violations flagged", "clean passed", "P(violates) per example",
                  box=None, pad_edge=False)
    failing = []
    for r in results:
        if r["accuracy"] < cfg.min_accuracy:
            failing.append(r["id"])
        probs = " ".join(f"{'V' if e['violates'] else 'C'}:{e['p_violates']:.2f}" for e in r["examples"])
        table.add_row(escape(r["ref"]), str(r["n"]), f"{r['accuracy']:.0%}", r["violations_flagged"], r["clean_passed"], probs)
    Console(width=160).print(table)
    if cfg.out:
        Path(cfg.out).parent.mkdir(parents=True, exist_ok=True)
        Path(cfg.out).write_text(json.dumps({"model": cfg.judge.model, "min_accuracy": cfg.min_accuracy,
                                             "principles": results}, indent=2))
    if failing:
        typer.echo(f"{len(failing)} principle(s) under {cfg.min_accuracy:.0%} accuracy: {', '.join(failing)}", err=True)
        raise typer.Exit(1)


def _register_propose() -> None:
    from cai.cli.principles_pairs import propose

    app.command("propose")(propose)


_register_propose()
