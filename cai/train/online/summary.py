"""The summary of a GRPO/RLOO run (``OUT/summary.json``) and its printed table."""

from __future__ import annotations

from cai import __version__
from cai.train.ppo.metrics import summarize, summary_window


def summarize_run(cfg, rows: list[dict], funcs: list, resumed_from: str | None = None) -> dict:
    """PPO's start/end figures (means over the first and last steps, never overlapping), each reward
    source's start/end, the zero-spread groups and the judge's work with their counts, provenance."""
    out = summarize(rows)
    out.update(algorithm=cfg.algorithm, out=cfg.out, model=cfg.model, prompts=cfg.prompts,
               rewards=[r.model_dump() for r in cfg.rewards], resumed_from=resumed_from, cai_version=__version__)
    if rows:
        w = summary_window(len(rows))
        for r in cfg.rewards:
            key = f"rewards/{r.name}/mean"
            head = [x[key] for x in rows[:w] if x.get(key) is not None]
            tail = [x[key] for x in rows[-w:] if x.get(key) is not None]
            if head and tail:
                out[key] = {"start": sum(head) / len(head), "end": sum(tail) / len(tail)}
        out["groups"] = {"zero_spread": sum(x["groups/zero_spread"] for x in rows),
                         "n": sum(x["groups/total"] for x in rows)}
        if "judge/calls" in rows[0]:
            out["judge"] = {k: sum(x.get(f"judge/{k}", 0) for x in rows) for k in ("calls", "judgements", "seconds")}
    for f in funcs:
        if f.counts:
            out.setdefault("counts", {})[f.name] = dict(f.counts)
    return out


def print_run_summary(summary: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"cai train {summary['algorithm']} → {summary['out']}  ({summary['steps']} steps, "
                        f"{summary.get('seconds', 0):.1f}s)", box=None)
    for col, justify in (("metric", "left"), ("start", "right"), ("end", "right")):
        table.add_column(col, justify=justify)
    for key, value in summary.items():
        if isinstance(value, dict) and set(value) == {"start", "end"}:
            table.add_row(key, f"{value['start']:.4g}", f"{value['end']:.4g}")
    console = Console()
    console.print(table)
    if "groups" in summary:
        g = summary["groups"]
        console.print(f"zero-spread groups (no learning signal): {g['zero_spread']} of n={g['n']}")
    if "judge" in summary:
        j = summary["judge"]
        console.print(f"judge: {j['judgements']} judgements in {j['calls']} calls, {j['seconds']:.1f}s")
    from cai.train.templates import report_line

    if (line := report_line(summary.get("chat_template"))) is not None:
        console.print(line, soft_wrap=True, markup=False)
    warnings = ", ".join(f"{k} ({v} steps)" for k, v in summary.get("warning_steps", {}).items()) or "none"
    console.print(f"reward-hacking warnings: {warnings}")
    console.print(f"policy → {summary['out']}/policy")
