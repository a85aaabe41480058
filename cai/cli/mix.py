"""`cai mix`: AI-revision, AI-feedback and human pairs as one preference dataset with a train/test split."""

from __future__ import annotations

from typing import Optional

import typer

from cai.cli.common import load_yaml_config, validate_config
from cai.cli.fields import apply_fields, takes_fields
from cai.data.mix import MixConfig

_MIX_FIELDS = ["out", "human_policy", "human_sources", "test_size", "seed", "skip_invalid"]


def _help(field: str, form: str) -> str:
    return f"{MixConfig.model_fields[field].description} {form}; repeatable."


# inputs (a list of SRC=PATH entries), weights and caps (mappings per source) are written SRC=VALUE:
# hand-written options, their help from the fields
@takes_fields(MixConfig, _MIX_FIELDS, flags={"human_sources": ("--human-sources", "--human-source")})
def mix(
    inputs: list[str] = typer.Option([], "--input", metavar="SRC=PATH", help=_help("inputs", "A bare PATH keeps each row's own source")),
    weight: list[str] = typer.Option([], "--weight", metavar="SRC=W", help=_help("weights", "Written SRC=W")),
    cap: list[str] = typer.Option([], "--cap", metavar="SRC=N", help=_help("caps", "Written SRC=N")),
    config: Optional[str] = typer.Option(None, "--config", help="YAML config; flags override it."),
    *, fields: dict,
) -> None:
    """Dedupe, weight, cap and split preference pairs from several sources; report AI/human disagreements."""
    from cai.data import run_mix
    from datasets import disable_progress_bars

    from cai.data.outputs import parse_assignments

    disable_progress_bars()  # the summary table is the output

    data = load_yaml_config(config)
    apply_fields(data, fields)
    if inputs:
        data["inputs"] = list(inputs)
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
