"""One progress bar with throughput (items/s, and generated tokens/s when there are any); plain
lines with an ETA when the output is not a terminal."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from cai.core.progress import LogLines, is_plain


class Throughput:
    def __init__(self, total: int, unit: str, console: Console | None = None, name: str = "cai"):
        self.unit = unit
        console = console or Console(stderr=True)
        self._lines = LogLines(name, console, total, unit) if is_plain(console) else None
        self.items = self.tokens = 0
        self.seconds = 0.0
        self._progress = Progress(
            TextColumn(f"{unit:<8}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(), console=console,
        )
        self._task = self._progress.add_task(unit, total=total, rate="")

    def __enter__(self) -> Throughput:
        if not self._lines:
            self._progress.start()
        return self

    def __exit__(self, *exc) -> None:
        if not self._lines:
            self._progress.stop()

    def advance(self, n: int, seconds: float, tokens: int = 0) -> None:
        self.items += n
        self.tokens += tokens
        self.seconds += seconds
        s = max(self.seconds, 1e-9)
        rate = f"{self.items / s:.2f} {self.unit}/s"
        if self.tokens:
            rate += f" {self.tokens / s:.0f} tok/s"
        if self._lines:
            self._lines.advance(n, rate)
            return
        self._progress.update(self._task, advance=n, rate=rate)
