"""Progress bars per stage with throughput, and the per-stage figures for the run summary."""

from __future__ import annotations

from collections import defaultdict

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


class StageProgress:
    """One bar for records, one per stage; each stage shows items/s and generated tokens/s."""

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

    def __enter__(self) -> "StageProgress":
        self._progress.start()
        self._tasks["records"] = self._progress.add_task("records", total=self.total, rate="")
        for stage in self.STAGES:
            self._tasks[stage] = self._progress.add_task(stage, total=None, rate="")
        return self

    def __exit__(self, *exc) -> None:
        self._progress.stop()

    def advance(self, stage: str, n: int, tokens: int, seconds: float) -> None:
        self.items[stage] += n
        self.tokens[stage] += tokens
        self.seconds[stage] += seconds
        s = max(self.seconds[stage], 1e-9)
        rate = f"{self.items[stage] / s:.1f} it/s {self.tokens[stage] / s:.0f} tok/s"
        self._progress.update(self._tasks[stage], completed=self.items[stage], rate=rate)

    def records_done(self, n: int) -> None:
        self._progress.advance(self._tasks["records"], n)

    def stats(self) -> dict:
        return {
            stage: {"items": self.items[stage], "completion_tokens": self.tokens[stage],
                    "seconds": round(self.seconds[stage], 3)}
            for stage in self.STAGES if self.items[stage]
        }
