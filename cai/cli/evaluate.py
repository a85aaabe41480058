"""`cai eval ...`: evaluations. `cai eval agreement`: AI labels against human labels."""

from __future__ import annotations

from typing import Optional

import typer

from cai.cli.common import backend_config, load_yaml_config, merge_overrides, validate_config
from cai.cli.label import labeling_flags

app = typer.Typer(help="Evaluate labels and models.", no_args_is_help=True)


@app.command("agreement")
def agreement(
    file: str = typer.Argument(..., help="Human pairwise labels (any preference format) or a multiple-choice file."),
    labels: Optional[str] = typer.Option(None, help="A `cai label` output to use instead of running the model."),
    model: Optional[str] = typer.Option(None, help="Feedback model: local folder or hub id."),
    backend: str = typer.Option("auto", help="auto (vLLM with CUDA, else transformers), vllm, transformers or openai."),
    backend_option: list[str] = typer.Option([], "--backend-option", "-O", help="key=value backend option (repeatable)."),
    constitution: Optional[str] = typer.Option(None, help="Constitution YAML (or a name under constitution/)."),
    limit: Optional[int] = typer.Option(None, help="Only the first N rows."),
    out: Optional[str] = typer.Option(None, help="Write the report as JSON to this file."),
    principles_per_pair: Optional[str] = typer.Option(None, help="Principles per pair (a number or 'all')."),
    both_orders: Optional[bool] = typer.Option(None, "--both-orders/--one-order", help="Score both positions and average."),
    few_shot: Optional[int] = typer.Option(None, help="Worked comparisons before each question."),
    cot: Optional[bool] = typer.Option(None, "--cot/--no-cot", help="Reason step by step before answering."),
    bins: Optional[int] = typer.Option(None, help="Confidence bins of the calibration error."),
    chunk_size: Optional[int] = typer.Option(None, help="Pairs per backend call."),
    principles: Optional[str] = typer.Option(None, help="Principles folder."),
    config: Optional[str] = typer.Option(None, "--config", help="YAML config; flags override it."),
) -> None:
    """Accuracy, calibration (ECE), position consistency and per-principle accuracy of AI labels vs humans."""
    from cai.feedback import AgreementConfig, run_agreement

    data = load_yaml_config(config)
    merge_overrides(data, {"file": file, "labels": labels, "constitution": constitution, "limit": limit,
                           "out": out, "bins": bins})
    labeling_flags(data, principles_per_pair=principles_per_pair, both_orders=both_orders, few_shot=few_shot,
                   cot=cot, cot_max_tokens=None, cot_temperature=None, clamp=None, seed=None,
                   chunk_size=chunk_size, principles=principles)
    if model or data.get("labeler"):
        data["labeler"] = backend_config(data.get("labeler"), backend, model, backend_option)
    cfg = validate_config(AgreementConfig, data, config)
    _print_report(run_agreement(cfg), cfg.out)


def _print_report(r: dict, out: str | None) -> None:
    from rich.console import Console
    from rich.table import Table

    def pct(v):
        return "n/a" if v is None else f"{v:.1%}"

    console = Console()
    table = Table(title=f"agreement with {r['file']} ({r['kind']})", box=None)
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_row("items", str(r["n"]) + (f" ({r['missing']} missing from labels)" if r["missing"] else ""))
    table.add_row("accuracy", pct(r["accuracy"]))
    table.add_row("expected calibration error", "n/a" if r["ece"] is None else f"{r['ece']:.3f}")
    table.add_row("position consistency", pct(r["position_consistency"]))
    for principle, s in r["per_principle"].items():
        table.add_row(f"  {principle}", f"{pct(s['accuracy'])} of {s['n']}")
    console.print(table)
    if r.get("skipped"):
        console.print("skipped pairs: " + ", ".join(f"{k} {v}" for k, v in r["skipped"].items()))
    if out:
        console.print(f"report written to {out}")
