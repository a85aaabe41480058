"""Progress for long work: rich bars on a terminal, plain timestamped lines in a log.

When stderr is not a terminal (CI, ``nohup``, a cluster job's log file), redrawn bars print
nothing useful; :class:`LogLines` writes one self-contained line per event instead: what was
done, throughput, elapsed time and an ETA.
"""

from __future__ import annotations

import time

from rich.console import Console


def is_plain(console: Console) -> bool:
    """True when progress should be plain lines (the console is not an interactive terminal)."""
    return not console.is_terminal


def duration(seconds: float | None) -> str:
    """``1h02m03s`` / ``2m03s`` / ``7s``; ``?`` when unknown."""
    if seconds is None or seconds != seconds or seconds < 0:
        return "?"
    s = int(round(seconds))
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


class LogLines:
    """Plain progress lines: ``cai generate: records 16/40 (40%) elapsed 1m20s ETA 2m00s``."""

    def __init__(self, name: str, console: Console, total: int | None = None, unit: str = "items"):
        self.name, self.console, self.total, self.unit = name, console, total, unit
        self.done = 0
        self.started = time.monotonic()

    def line(self, text: str) -> None:
        self.console.print(f"{time.strftime('%H:%M:%S')} {self.name}: {text}", highlight=False, markup=False,
                           soft_wrap=True)

    def advance(self, n: int, extra: str = "") -> None:
        """Count ``n`` more units done and print the overall position with an ETA."""
        self.done += n
        elapsed = time.monotonic() - self.started
        where = f"{self.unit} {self.done}"
        eta = None
        if self.total:
            where += f"/{self.total} ({100 * self.done / self.total:.0f}%)"
            if self.done:
                eta = elapsed / self.done * (self.total - self.done)
        tail = f" ETA {duration(eta)}" if self.total else ""
        self.line(f"{where}{' ' + extra if extra else ''} elapsed {duration(elapsed)}{tail}")
