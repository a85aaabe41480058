"""`cai humans …`: import human preference labels, label pairs on a local page, export them, rater stats."""

from __future__ import annotations

from typing import Optional

import typer

app = typer.Typer(rich_markup_mode=None, help="Human preference labels: import HH/TRL/CSV, a local labeling page, export.",
                  no_args_is_help=True)


@app.command("import")
def import_(
    file: str = typer.Argument(..., help="HH-RLHF JSONL(.gz), TRL preference data (JSONL/Parquet/folder), CSV."),
    fmt: str = typer.Option(..., "--format", help="hh, trl or csv."),
    out: str = typer.Option(..., "--out", help="Output dataset folder (data.jsonl, data.parquet, hf/)."),
    skip_invalid: bool = typer.Option(False, "--skip-invalid", help="Skip and count rows that can't be parsed."),
    prompt_column: str = typer.Option("prompt", help="CSV: prompt column."),
    chosen_column: str = typer.Option("chosen", help="CSV: preferred response (with --label-column: response A)."),
    rejected_column: str = typer.Option("rejected", help="CSV: other response (with --label-column: response B)."),
    label_column: Optional[str] = typer.Option(None, help="CSV: column saying which response is better."),
    label_values: str = typer.Option("A,B,tie", help="CSV: values for A, B, tie (comma-separated; '|' between alternatives)."),
    rater_column: Optional[str] = typer.Option(None, help="CSV: column naming who labeled the row (kept as labeler)."),
    ties: str = typer.Option("half", "--ties", help="Rows whose ratings are equal (score_chosen = score_rejected): "
                             "half (p_chosen 0.5) or drop (left out, counted)."),
) -> None:
    """Import human preference labels as PreferencePair rows (source=human)."""
    from cai.humans.importers import CsvMapping, import_labels

    mapping = CsvMapping.from_values(label_values, prompt_column=prompt_column, chosen_column=chosen_column,
                                     rejected_column=rejected_column, label_column=label_column,
                                     rater_column=rater_column)
    summary = import_labels(file, fmt, out, skip_invalid=skip_invalid, csv_mapping=mapping, ties=ties)
    typer.echo(summary.line())


@app.command()
def serve(
    tasks: str = typer.Argument(..., help="Pairs to label: a pairs file or folder (JSONL, Parquet, save_to_disk)."),
    db: str = typer.Option(..., "--db", help="SQLite file the labels go to (created if missing)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on; other than loopback needs a token."),
    port: int = typer.Option(8000, "--port", help="Port (0: any free port)."),
    token: Optional[str] = typer.Option(None, "--token", help="Access token (generated when --host is not loopback)."),
    labeler: str = typer.Option("", "--labeler", help="Labeler name (otherwise ?rater=NAME in the URL, or typed on the page)."),
    lease: float = typer.Option(120.0, "--lease", help="Seconds a shown task stays reserved for its labeler."),
    raters_per_task: int = typer.Option(1, "--raters-per-task", help="Different raters who label each task."),
    guidelines: Optional[str] = typer.Option(None, "--guidelines", help="Markdown file: what to judge by."),
    constitution: Optional[str] = typer.Option(None, "--constitution",
                                               help="Constitution (name or YAML) whose questions are the guidelines."),
    principles_dir: Optional[str] = typer.Option(None, "--principles-dir",
                                             help="Principles folder for routed tasks' questions (default principles/)."),
    gold: Optional[str] = typer.Option(None, "--gold", help="Pairs with known answers (chosen is right), mixed in."),
    gold_rate: float = typer.Option(0.1, "--gold-rate", help="Share of each rater's tasks that are gold."),
) -> None:
    """Serve a local labeling page: pick A, B or tie for each pair; labels are stored at once."""
    from cai.humans.server import serve as run_server

    run_server(tasks, db, host=host, port=port, token=token, labeler=labeler, lease_seconds=lease,
               raters_per_task=raters_per_task, guidelines=guidelines, constitution=constitution,
               principles=principles_dir, gold=gold, gold_rate=gold_rate, echo=typer.echo)


@app.command()
def export(
    db: str = typer.Option(..., "--db", help="SQLite file written by `cai humans serve`."),
    out: str = typer.Option(..., "--out", help="Output dataset folder."),
    min_gold_accuracy: Optional[float] = typer.Option(
        None, "--min-gold-accuracy", help="Leave out raters whose gold accuracy is below this (0-1)."),
    disagreements: str = typer.Option(
        "keep", "--disagreements", help="Pairs whose raters picked opposite sides: keep (p_chosen = share of "
        "raters, weight = raters: each label counts once) or drop (left out, counted)."),
) -> None:
    """Write the human labels as PreferencePair rows: one per task, p_chosen = share of raters
    preferring chosen (a rater's "about the same" counts half), weight = number of raters;
    disagreements (split) are told apart from ties in the summary and in provenance.consensus."""
    from cai.core.errors import CaiError
    from cai.humans.export import export_labels, summary_line

    if disagreements not in ("keep", "drop"):
        raise CaiError(f"--disagreements must be keep or drop, not {disagreements!r}")
    s = export_labels(db, out, min_gold_accuracy=min_gold_accuracy, disagreements=disagreements)
    typer.echo(summary_line(s))


@app.command()
def stats(
    db: str = typer.Option(..., "--db", help="SQLite file written by `cai humans serve`."),
    margin: float = typer.Option(0.2, "--margin", help="Flag raters this far below the median agreement/gold accuracy."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Per-rater counts and speed, gold accuracy, agreement with each other (Krippendorff's alpha) and with the AI."""
    import json

    from cai.humans.stats import rater_stats

    report = rater_stats(db, margin=margin)
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    _print_stats(report)


def _fmt(value, spec: str = ".2f") -> str:
    return "-" if value is None else format(value, spec)


def _print_stats(r: dict) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    # rater names and paths are data: escaped, so `[red]zed[/red]` shows as written and `[/bold]eve`
    # cannot break the table
    console = Console()
    table = Table(title=f"raters in {escape(r['db'])}", box=None)
    for col in ("rater", "labels", "median s", "agree w/ others", "gold acc.", "agree w/ AI", "flag"):
        table.add_column(col, justify="left" if col in ("rater", "flag") else "right")
    for name, s in r["raters"].items():
        gold = f"{_fmt(s['gold_accuracy'])} ({s['gold_labels']})" if s["gold_labels"] else "-"
        table.add_row(escape(name), str(s["labels"]), _fmt(s["median_seconds"], ".1f"),
                      _fmt(s["agreement_with_others"]), gold, _fmt(s["agreement_with_ai"]), "FLAG" if s["flags"] else "")
    console.print(table)
    for name, s in r["raters"].items():
        for reason in s["flags"]:
            console.print(f"flagged {name}: {reason}", soft_wrap=True, markup=False, highlight=False)
    for names in r.get("same_rater", []):
        console.print(f"warning: {', '.join(repr(n) for n in names)} differ only in case, width or spacing and are "
                      "counted as different raters here (labels stored before names were matched); their "
                      "agreement with each other says nothing", soft_wrap=True, markup=False, highlight=False)
    if r["pairwise"]:
        pairs = Table(title="pairwise agreement", box=None)
        for col in ("raters", "shared", "agreement", "alpha"):
            pairs.add_column(col, justify="left" if col == "raters" else "right")
        for p in r["pairwise"]:
            pairs.add_row(escape(" & ".join(p["raters"])), str(p["shared"]), _fmt(p["agreement"]), _fmt(p["alpha"]))
        console.print(pairs)
    o = r["overall"]
    console.print(f"{r['labels']} labels on {r['labeled_tasks']} of {r['tasks']} tasks, {r['multi_rated_tasks']} "
                  f"labeled by two or more raters; overall agreement {_fmt(o['agreement'])}, "
                  f"Krippendorff's alpha {_fmt(o['alpha'])}", soft_wrap=True, markup=False)
