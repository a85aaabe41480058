"""Metrics: one JSON line per step in ``OUT/metrics.jsonl``, a live progress display, a summary.

Keys are namespaced as in cleanrl/TRL: ``objective/*`` (reward, KL, β), ``policy/*`` (entropy,
clipfrac, approxkl), ``loss/*``, ``value/*``, ``response/*`` (length, EOS, repetition), ``time/*``
(seconds and throughput) and ``monitor/*`` (reward-hacking warnings).
"""

from __future__ import annotations

import json
from pathlib import Path


class MetricsLog:
    """Append-only ``metrics.jsonl`` that can be cut back to a checkpoint's step on resume."""

    def __init__(self, path: Path):
        self.path = path

    def truncate(self, last_step: int) -> None:
        """Keep only the lines of steps ≤ ``last_step`` (a resumed run rewrites what came after)."""
        if not self.path.exists():
            return
        lines = [line for line in self.path.read_text().splitlines() if line.strip()]
        kept = []
        for n, line in enumerate(lines, 1):
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                if n == len(lines):  # a write cut short by a kill: the step is rerun from its checkpoint
                    break
                from cai.core.errors import CaiError

                raise CaiError(f"line {n} is not JSON; use a new --out folder", path=str(self.path)) from None
            if row.get("step", 0) <= last_step:
                kept.append(line)
        self.path.write_text("".join(line + "\n" for line in kept))

    def append(self, row: dict) -> None:
        with self.path.open("a") as fh:
            fh.write(json.dumps(row) + "\n")
            fh.flush()

    def read(self) -> list[dict]:
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]


class LiveDisplay:
    """A rich progress bar whose line shows the latest reward, KL, β and throughput."""

    def __init__(self, total: int, start: int, enabled: bool):
        self.enabled = enabled
        if not enabled:
            return
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        self.console = Console(stderr=True)
        self.lines = None
        if not self.console.is_terminal:  # a log file: one plain line per step instead of a redrawn bar
            from cai.core.progress import LogLines

            self.lines = LogLines("ppo", self.console, total=total - start, unit="steps")
            return
        self.progress = Progress(TextColumn("[bold]ppo"), BarColumn(bar_width=20), MofNCompleteColumn(), TimeElapsedColumn(),
                                 TimeRemainingColumn(), TextColumn("{task.fields[stats]}"), console=self.console)
        self.task = self.progress.add_task("ppo", total=total, completed=start, stats="")

    def __enter__(self):
        if self.enabled and self.lines is None:
            self.progress.start()
        return self

    def __exit__(self, *exc):
        if self.enabled and self.lines is None:
            self.progress.stop()

    def update(self, m: dict) -> None:
        if not self.enabled:
            return
        stats = (f"reward {m['objective/reward_mean']:+.3f}  kl {m['objective/kl']:.2f}  β {m['objective/beta']:.3g}  "
                 f"len {m['response/length_mean']:.0f}  {m['time/tokens_per_s']:.0f} tok/s  {m['time/step_s']:.2f} s/step")
        if self.lines is not None:
            self.lines.advance(1, f"(step {m['step']}) {stats}")
            return
        self.progress.update(self.task, completed=m["step"], stats=stats)

    def warn(self, message: str) -> None:
        from rich.markup import escape

        if self.enabled:
            self.console.print(f"[yellow]warning[/yellow] {escape(message)}")


SUMMARY_KEYS = ("objective/reward_mean", "objective/kl", "objective/beta", "response/length_mean",
                "policy/entropy", "time/step_s")


def summary_window(steps: int, window: int = 5) -> int:
    """How many steps the start and end figures of a run average: up to ``window``, never more than
    half the run, so start and end never share a step."""
    return max(1, min(window, steps // 2))


def summarize(rows: list[dict], window: int = 5) -> dict:
    """First and last values (means over ``window`` steps, at most half the run so that start and
    end never share a step) of the main metrics, plus warning counts."""
    if not rows:
        return {"steps": 0}
    window = summary_window(len(rows), window)
    head, tail = rows[:window], rows[-window:]
    out: dict = {"steps": rows[-1]["step"]}
    for key in SUMMARY_KEYS:
        if key in rows[0]:
            out[key] = {"start": sum(r[key] for r in head) / len(head), "end": sum(r[key] for r in tail) / len(tail)}
    counts: dict[str, int] = {}
    for r in rows:
        for w in r.get("monitor/warnings", []):
            kind = w.split(":", 1)[0]
            counts[kind] = counts.get(kind, 0) + 1
    out["warning_steps"] = counts
    out["reward_inputs_cut"] = sum(r.get("response/reward_input_cut", 0) for r in rows)
    out["seconds"] = sum(r.get("time/step_s", 0.0) for r in rows)
    return out


def print_summary(summary: dict, out: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"cai train ppo → {out}  ({summary['steps']} steps, {summary.get('seconds', 0):.1f}s)", box=None)
    table.add_column("metric")
    table.add_column("start", justify="right")
    table.add_column("end", justify="right")
    for key in SUMMARY_KEYS:
        if key in summary:
            table.add_row(key, f"{summary[key]['start']:.4g}", f"{summary[key]['end']:.4g}")
    console = Console()
    console.print(table)
    warnings = ", ".join(f"{k} ({v} steps)" for k, v in summary.get("warning_steps", {}).items()) or "none"
    console.print(f"reward-hacking warnings: {warnings}")
    if summary.get("reward_inputs_cut"):
        console.print(f"reward-model inputs cut from the left to fit reward_max_length: {summary['reward_inputs_cut']}")
