"""Progress bars per stage with throughput, and the per-stage figures for the run summary."""

from __future__ import annotations

from collections import defaultdict

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from cai.core.progress import LogLines, is_plain


class StageProgress:
    """One bar for records, one per stage; each stage shows items/s and generated tokens/s.
    Not on a terminal: one plain line per stage call and per finished chunk (with an ETA)."""

    STAGES = ("draft", "critique", "revision")

    def __init__(self, total: int, console: Console | None = None):
        self.console = console or Console(stderr=True)
        self.total = total
        self.items: dict[str, int] = defaultdict(int)
        self.tokens: dict[str, int] = defaultdict(int)
        self.seconds: dict[str, float] = defaultdict(float)
        self._progress = Progress(
            TextColumn("{task.description:<9}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), console=self.console,
        )
        self._tasks: dict[str, int] = {}
        self._lines = LogLines("generate", self.console, total, "records") if is_plain(self.console) else None

    def __enter__(self) -> "StageProgress":
        if self._lines:
            self._lines.line(f"{self.total} records to do")
            return self
        self._progress.start()
        self._tasks["records"] = self._progress.add_task("records", total=self.total, rate="")
        for stage in self.STAGES:
            self._tasks[stage] = self._progress.add_task(stage, total=None, rate="")
        return self

    def __exit__(self, *exc) -> None:
        if not self._lines:
            self._progress.stop()

    def advance(self, stage: str, n: int, tokens: int, seconds: float) -> None:
        self.items[stage] += n
        self.tokens[stage] += tokens
        self.seconds[stage] += seconds
        s = max(self.seconds[stage], 1e-9)
        rate = f"{self.items[stage] / s:.1f} it/s {self.tokens[stage] / s:.0f} tok/s"
        if self._lines:
            self._lines.line(f"{stage}: {n} items, {tokens} tokens in {seconds:.1f}s "
                             f"({tokens / max(seconds, 1e-9):.0f} tok/s)")
            return
        self._progress.update(self._tasks[stage], completed=self.items[stage], rate=rate)

    def records_done(self, n: int) -> None:
        if self._lines:
            self._lines.advance(n, "written")
            return
        self._progress.advance(self._tasks["records"], n)

    def stats(self) -> dict:
        return {
            stage: {"items": self.items[stage], "completion_tokens": self.tokens[stage],
                    "seconds": round(self.seconds[stage], 3)}
            for stage in self.STAGES if self.items[stage]
        }
