"""`cai humans …`: import human preference labels, label pairs on a local page, export them, rater stats."""

from __future__ import annotations

from typing import Optional

import typer

from cai.cli.common import load_yaml_config, validate_config
from cai.cli.fields import apply_fields, takes_fields
from cai.core.errors import CaiError
from cai.humans.config import CSV_FIELDS, ExportConfig, ImportConfig, ServeConfig, StatsConfig

app = typer.Typer(rich_markup_mode=None, help="Human preference labels: import HH/TRL/CSV, a local labeling page, export.",
                  no_args_is_help=True)


def _config(model, config: Optional[str], fields: dict, **arguments):
    """The command's config: ``--config``, then the flags, then the positional arguments given."""
    data = load_yaml_config(config)
    apply_fields(data, fields)
    for key, value in arguments.items():
        if value is not None:
            data[key] = value
        elif key not in data:
            raise CaiError(f"missing argument {key.upper()} (or {key}: in --config)", path=config)
    return validate_config(model, data, config)


_CONFIG_OPTION = typer.Option(None, "--config", help="YAML config; flags and arguments override it.")


@app.command("import")
@takes_fields(ImportConfig, ["format", "out", "skip_invalid", *CSV_FIELDS, "ties"])
def import_(
    file: Optional[str] = typer.Argument(None, help="HH-RLHF JSONL(.gz), TRL preference data (JSONL/Parquet/folder), "
                                         "CSV (or file: in --config)."),
    config: Optional[str] = _CONFIG_OPTION,
    *, fields: dict,
) -> None:
    """Import human preference labels as PreferencePair rows (source=human)."""
    from cai.humans.importers import import_labels

    cfg = _config(ImportConfig, config, fields, file=file)
    summary = import_labels(cfg.file, cfg.format, cfg.out, skip_invalid=cfg.skip_invalid,
                            csv_mapping=cfg.csv_mapping(), ties=cfg.ties)
    typer.echo(summary.line())


@app.command()
@takes_fields(ServeConfig, ["db", "host", "port", "token", "labeler", "lease", "raters_per_task", "guidelines",
                            "constitution", "principles_dir", "gold", "gold_rate"])
def serve(
    tasks: Optional[str] = typer.Argument(None, help="Pairs to label: a pairs file or folder (JSONL, Parquet, "
                                          "save_to_disk; or tasks: in --config)."),
    config: Optional[str] = _CONFIG_OPTION,
    *, fields: dict,
) -> None:
    """Serve a local labeling page: pick A, B or tie for each pair; labels are stored at once."""
    from cai.humans.server import serve as run_server

    cfg = _config(ServeConfig, config, fields, tasks=tasks)
    run_server(cfg.tasks, cfg.db, host=cfg.host, port=cfg.port, token=cfg.token, labeler=cfg.labeler,
               lease_seconds=cfg.lease, raters_per_task=cfg.raters_per_task, guidelines=cfg.guidelines,
               constitution=cfg.constitution, principles=cfg.principles_dir, gold=cfg.gold, gold_rate=cfg.gold_rate,
               echo=typer.echo)


@app.command()
@takes_fields(ExportConfig, ["db", "out", "min_gold_accuracy", "disagreements"])
def export(config: Optional[str] = _CONFIG_OPTION, *, fields: dict) -> None:
    """Write the human labels as PreferencePair rows: one per task, p_chosen = share of raters
    preferring chosen (a rater's "about the same" counts half), weight = number of raters;
    disagreements (split) are told apart from ties in the summary and in provenance.consensus."""
    from cai.humans.export import export_labels, summary_line

    cfg = _config(ExportConfig, config, fields)
    s = export_labels(cfg.db, cfg.out, min_gold_accuracy=cfg.min_gold_accuracy, disagreements=cfg.disagreements)
    typer.echo(summary_line(s))


@app.command()
@takes_fields(StatsConfig, ["db", "margin"])
def stats(
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON (default: tables)."),
    config: Optional[str] = _CONFIG_OPTION,
    *, fields: dict,
) -> None:
    """Per-rater counts and speed, gold accuracy, agreement with each other (Krippendorff's alpha) and with the AI."""
    import json

    from cai.humans.stats import rater_stats

    cfg = _config(StatsConfig, config, fields)
    report = rater_stats(cfg.db, margin=cfg.margin)
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
