"""Printing what `cai train ...` and `cai score` return: a summary line and the evaluation table."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table


def _num(value, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def print_reward_eval(metrics: dict, console: Console | None = None) -> None:
    """Accuracy with its 95% interval, calibration and margins per source, then all pairs (the
    margin quantiles p05/p95 are in eval.json)."""
    from cai.core.rates import SMALL_SAMPLE, wilson

    console = console or Console()
    table = Table(title="held-out evaluation (Δ = r_chosen − r_rejected)", box=None)
    table.add_column("source", no_wrap=True)
    for name in ("pairs", "accuracy [95% CI]", "ECE", "ECE soft", "Δ mean", "Δ p50"):
        table.add_column(name, justify="right", no_wrap=True)
    rows = list(metrics["by_source"].items()) + [("all", metrics["all"])]
    small = False
    for source, m in rows:
        margin = m["margin"]
        accuracy = _num(m["accuracy"], 2)
        if m.get("accuracy") is not None and m.get("n"):
            low, high = wilson(m["accuracy"] * m["n"], m["n"])
            accuracy += f" [{low:.2f}, {high:.2f}]"
            small = small or m["n"] < SMALL_SAMPLE
        table.add_row(source, str(m["n"]), accuracy, _num(m["ece"]), _num(m["ece_soft"]),
                      _num(margin["mean"], 2), _num(margin["p50"], 2))
    console.print(table)
    if small:
        console.print(f"small sample: fewer than {SMALL_SAMPLE} held-out pairs in a row; read its accuracy "
                      "by the interval", soft_wrap=True)


def print_train_summary(kind: str, summary: dict) -> None:
    """The end of a training run: steps, losses, evaluation, where the model is."""
    console = Console()
    if kind == "reward" and summary.get("eval"):
        print_reward_eval(summary["eval"], console)
    elif summary.get("eval"):
        shown = {k: v for k, v in summary["eval"].items()
                 if isinstance(v, float) and k not in ("runtime", "epoch") and not k.endswith("_per_second")}
        console.print("eval: " + ", ".join(f"{k} {v:.4g}" for k, v in sorted(shown.items())), soft_wrap=True)
    from cai.train.templates import report_line

    if (line := report_line(summary.get("chat_template"))) is not None:
        console.print(line, soft_wrap=True, markup=False)
    extra = f", loss type {summary['loss_type']}" if "loss_type" in summary else ""
    console.print(
        f"cai train {kind}: {summary['steps']} steps in {summary['train_seconds']:.1f}s, "
        f"final loss {summary['final_loss']:.4f} (mean {summary['train_loss']:.4f}){extra} → {summary['out']}",
        soft_wrap=True,
    )
