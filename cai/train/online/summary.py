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
        by_source(cfg, rows, out)
    for f in funcs:
        if f.counts:
            out.setdefault("counts", {})[f.name] = dict(f.counts)
        if (health := getattr(getattr(f, "judge", None), "health", None)) is not None:
            out["judge_health"] = health.to_dict()
    return out


def by_source(cfg, rows: list[dict], out: dict) -> None:
    """Split the reward's change over the run by source, and say when the constitution moved little.

    Adds ``gain_by_source`` (per source: weight, start, end, change, ``weighted_change`` = weight x
    change; these sum to the optimised reward's change, as TRL sums weight x source),
    ``constitution_spread`` (mean within-group std of the constitution reward over the steps that
    generated, with the groups counted) and ``reward_warnings`` (one line each): the constitution's
    spread below ``cfg.min_judge_spread``, and a gain that came mostly from another source (a guard
    the policy learnt to satisfy, e.g. ending its turn, while the constitution stayed put)."""
    gains = {}
    for r in cfg.rewards:
        if (v := out.get(f"rewards/{r.name}/mean")) is not None:
            change = v["end"] - v["start"]
            gains[r.name] = {"weight": r.weight, "start": v["start"], "end": v["end"], "change": change,
                             "weighted_change": r.weight * change}
    out["gain_by_source"] = gains
    warnings: list[str] = []
    if "constitution" in cfg.reward_names:
        fresh = [x for x in rows if x.get("groups/total") and x.get("rewards/constitution/group_std") is not None]
        if fresh:
            spread = sum(x["rewards/constitution/group_std"] for x in fresh) / len(fresh)
            groups = sum(x["groups/total"] for x in fresh)
            out["constitution_spread"] = {"mean_group_std": spread, "steps": len(fresh), "groups": groups,
                                          "min": cfg.min_judge_spread}
            if spread < cfg.min_judge_spread:
                warnings.append(f"the constitution reward barely varies within groups (mean within-group std "
                                f"{spread:.4f} < {cfg.min_judge_spread:g}, {len(fresh)} steps, n={groups} groups): "
                                "it gives the policy almost nothing to learn from")
    total = out.get("objective/reward_mean")
    if total and "constitution" in gains and len(gains) > 1:
        change = total["end"] - total["start"]
        own = gains["constitution"]["weighted_change"]
        other, top = max((g["weighted_change"], name) for name, g in gains.items() if name != "constitution")
        if change > 0 and own < 0.5 * change and other > own:
            warnings.append(f"most of the reward's gain ({change:+.3f}) came from '{top}' ({other:+.3f}), not the "
                            f"constitution ({gains['constitution']['start']:.3f} -> "
                            f"{gains['constitution']['end']:.3f}, {own:+.3f})")
    out["reward_warnings"] = warnings


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
    if "judge_health" in summary:
        from cai.judge.health import JudgeHealth

        for line in JudgeHealth.from_dict(summary["judge_health"]).lines("constitution judge", principles=False):
            console.print(line, soft_wrap=True, markup=False)
    if gains := summary.get("gain_by_source"):
        total = summary.get("objective/reward_mean", {})
        head = f"reward {total['start']:+.3f} -> {total['end']:+.3f} ({total['end'] - total['start']:+.3f}) " if total else ""
        console.print(head + "by source: " + "; ".join(
            f"{name} x{g['weight']:g} {g['start']:+.3f} -> {g['end']:+.3f} ({g['weighted_change']:+.3f})"
            for name, g in gains.items()), soft_wrap=True, markup=False)
    for w in summary.get("reward_warnings", []):
        console.print(f"warning: {w}", soft_wrap=True, markup=False)
    from cai.train.templates import report_line

    if (line := report_line(summary.get("chat_template"))) is not None:
        console.print(line, soft_wrap=True, markup=False)
    warnings = ", ".join(f"{k} ({v} steps)" for k, v in summary.get("warning_steps", {}).items()) or "none"
    console.print(f"reward-hacking warnings: {warnings}")
    console.print(f"policy → {summary['out']}/policy")
