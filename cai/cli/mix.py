"""`cai mix`: AI-revision, AI-feedback and human pairs as one preference dataset with a train/test split."""

from __future__ import annotations

from typing import Optional

import typer

from cai.cli.common import load_yaml_config, merge_overrides, validate_config


def mix(
    inputs: list[str] = typer.Option([], "--input", help="SRC=PATH (or PATH: keep each row's source); repeatable."),
    out: Optional[str] = typer.Option(None, help="Output folder: train/, test/, mix.json, disagreements.jsonl."),
    weight: list[str] = typer.Option([], "--weight", help="SRC=W training weight of a source (repeatable)."),
    cap: list[str] = typer.Option([], "--cap", help="SRC=N most rows from a source, a seeded sample (repeatable)."),
    human_policy: Optional[str] = typer.Option(None, help="replace (a human label drops the AI row) or join."),
    human_source: list[str] = typer.Option([], "--human-source", help="A source whose labels are human (default: human)."),
    test_size: Optional[float] = typer.Option(None, help="Share of each source's pairs in test (default 0.1)."),
    seed: Optional[int] = typer.Option(None, help="Seed of the caps and the split."),
    skip_invalid: Optional[bool] = typer.Option(None, "--skip-invalid", help="Skip bad rows instead of stopping."),
    config: Optional[str] = typer.Option(None, "--config", help="YAML config; flags override it."),
) -> None:
    """Dedupe, weight, cap and split preference pairs from several sources; report AI/human disagreements."""
    from cai.data import MixConfig, run_mix
    from datasets import disable_progress_bars

    from cai.data.outputs import parse_assignments

    disable_progress_bars()  # the summary table is the output

    data = load_yaml_config(config)
    merge_overrides(data, {"inputs": inputs or None, "out": out, "human_policy": human_policy,
                           "human_sources": human_source or None, "test_size": test_size, "seed": seed,
                           "skip_invalid": skip_invalid})
    for key, values, flag, cast in (("weights", weight, "--weight", float), ("caps", cap, "--cap", int)):
        if values:
            data[key] = {**(data.get(key) or {}), **parse_assignments(values, flag, cast)}
    summary = run_mix(validate_config(MixConfig, data, config))
    _print_summary(summary)


def _print_summary(summary: dict) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.markup import escape

    table = Table(title=f"cai mix → {escape(str(summary['out']))}", box=None)
    for col in ("source", "read", "dupes", "capped", "replaced", "train", "test", "weight"):
        table.add_column(col, justify="left" if col == "source" else "right")
    for name, s in summary["sources"].items():
        table.add_row(escape(name), str(s["read"]), str(s["duplicates"]), str(s["capped"]), str(s["replaced_by_human"]),
                      str(s["train"]), str(s["test"]), "rows" if s["weight"] is None else f"{s['weight']:g}")
    table.add_row("total", "", str(summary["dedupe"]["duplicates"]), "", "", str(summary["splits"]["train"]),
                  str(summary["splits"]["test"]), "")
    console = Console()
    console.print(table)
    h = summary["human_vs_ai"]
    console.print(f"human vs AI on {h['overlap']} shared pairs: agree {h['agree']}, disagree {h['disagree']}, "
                  f"human tie {h['human-tie']}, AI tie {h['ai-tie']} (details: {summary['out']}/disagreements.jsonl); "
                  f"human policy: {summary['human_policy']}")
    if summary["dedupe"]["conflicting"]:
        console.print(f"{summary['dedupe']['conflicting']} duplicate rows preferred the other response (first kept)")
    if summary["invalid_rows"]:
        console.print(f"{summary['invalid_rows']} invalid rows skipped")
    if summary["dropped"]["empty_response"]:
        console.print(f"{summary['dropped']['empty_response']} pairs with an empty response dropped")
    if summary["prompt_repeated"]:
        console.print(f"{summary['prompt_repeated']} rows repeated the prompt inside chosen/rejected (stripped)")
    for note in summary["notes"]:
        console.print(f"note: {note}")
