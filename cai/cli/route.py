"""`cai route`: send the AI-labeled pairs most worth a human look to the labeling page."""

from __future__ import annotations

from typing import Optional

import typer

from cai.cli.common import load_yaml_config, validate_config
from cai.cli.fields import apply_fields, takes_fields
from cai.data.route import RouteConfig

_ROUTE_FIELDS = ["pairs", "budget", "out", "diversity", "seed", "exclude", "skip_invalid"]


@takes_fields(RouteConfig, _ROUTE_FIELDS)
def route(
    # weights is a mapping (component -> weight): written NAME=W, not a generated flag
    weights: list[str] = typer.Option([], "--weights", metavar="NAME=W",
                                      help=f"{RouteConfig.model_fields['weights'].description} Written "
                                           "uncertainty=W,disagreement=W,position=W; unnamed ones keep 1."),
    config: Optional[str] = typer.Option(None, "--config", help="YAML config; flags override it."),
    *, fields: dict,
) -> None:
    """Rank AI labels by uncertainty, principle disagreement and position inconsistency; keep the top N as tasks."""
    from cai.data import run_route
    from datasets import disable_progress_bars

    from cai.data.outputs import parse_assignments

    disable_progress_bars()  # the summary table is the output

    data = load_yaml_config(config)
    apply_fields(data, fields)
    if weights:
        data["weights"] = {**(data.get("weights") or {}), **parse_assignments(weights, "--weights", float)}
    summary = run_route(validate_config(RouteConfig, data, config))
    _print_summary(summary)


def _print_summary(summary: dict, top: int = 15) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.markup import escape

    table = Table(title=f"cai route → {escape(str(summary['out']))}", box=None)
    for col in ("rank", "id", "score", "uncert.", "disagr.", "position", "focus principle"):
        table.add_column(col, justify="left" if col in ("id", "focus principle") else "right")
    for s in summary["selected"][:top]:
        table.add_row(str(s["rank"]), escape(s["id"]), f"{s['score']:.3f}", f"{s['uncertainty']:.2f}",
                      f"{s['disagreement']:.2f}", f"{s['position']:.2f}", escape(s["focus_principle"] or "-"))
    console = Console()
    console.print(table)
    c = summary["counts"]
    if c["selected"] > top:
        console.print(f"… {c['selected'] - top} more in {summary['out']}/report.csv")
    console.print(
        f"selected {c['selected']} of {c['eligible']} eligible pairs (budget {summary['budget']}); read {c['read']}, "
        f"skipped: human {c['human_skipped']}, excluded {c['excluded']}, duplicates {c['duplicates']}, "
        f"invalid {c['invalid']}, empty response {c['empty_response']}")
    if summary["by_principle"]:
        console.print("by focus principle: " + ", ".join(f"{k} {v}" for k, v in summary["by_principle"].items()))
