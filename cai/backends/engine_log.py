"""Keep the last lines an engine writes (stdout and stderr), so a failed start can say why in one line.

vLLM starts its engine in child processes; when one fails, the exception the parent sees says
only "Engine core initialization failed. See root cause above", and the root cause is a line the
child printed (vLLM logs to stdout, tracebacks go to stderr). :func:`tee_output` routes file
descriptors 1 and 2 through pipes while the engine starts: every line still reaches where it was
going (the user sees vLLM's log as before), and the last ones are kept for :func:`root_cause`. Children keep writing into the pipe after the start, so the
forwarding thread lives as long as the process.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections import deque
from contextlib import contextmanager

_ERROR_LINE = re.compile(r"^(?:.*?\s)?((?:[A-Za-z_][\w.]*)?(?:Error|Exception)): (.+)$")
# Wrappers the parent (or the engine core, for its workers) raises around the real error.
_GENERIC = ("initialization failed", "See root cause above", "See stack trace for root cause")


class _Tail:
    def __init__(self, keep: int):
        self.lines: deque[str] = deque(maxlen=keep)
        self.last_read = time.monotonic()

    def settle(self, quiet: float = 0.3, timeout: float = 3.0) -> None:
        """Wait until nothing new has arrived for ``quiet`` seconds (the forwarder reads the pipe
        asynchronously: a dying engine's last lines may still be in flight), at most ``timeout``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and time.monotonic() - self.last_read < quiet:
            time.sleep(0.05)


@contextmanager
def tee_output(keep: int = 400, fds: tuple[int, ...] = (1, 2)):
    """Within the block, each of ``fds`` (vLLM logs to stdout, tracebacks go to stderr) goes
    through a pipe; yields an object whose ``lines`` are the last ``keep`` lines written to any of
    them (by this process or its children), each still reaching its real destination."""
    tail = _Tail(keep)
    started = []
    try:
        for fd in fds:
            saved = os.dup(fd)
            read_fd, write_fd = os.pipe()
            out = os.dup(saved)  # the forwarder's own copy of the real destination
            threading.Thread(target=_forward, args=(read_fd, out, tail), name=f"cai-engine-fd{fd}",
                             daemon=True).start()
            os.dup2(write_fd, fd)
            os.close(write_fd)
            started.append((fd, saved))
    except OSError:  # no usable descriptor (embedded interpreters): run without the tee
        pass
    try:
        yield tail
    finally:
        for fd, saved in started:
            os.dup2(saved, fd)
            os.close(saved)


def _forward(read_fd: int, out: int, tail: _Tail) -> None:
    with os.fdopen(read_fd, "rb", buffering=0) as pipe:
        pending = b""
        while chunk := pipe.read(65536):
            try:
                os.write(out, chunk)
            except OSError:
                pass
            tail.last_read = time.monotonic()
            pending += chunk
            *done, pending = pending.split(b"\n")
            for raw in done:
                tail.lines.append(raw.decode("utf-8", "replace").rstrip("\r"))


def root_cause(lines, fallback: str) -> str:
    """The last ``SomeError: message`` line that is not the generic wrapper, else ``fallback``."""
    for line in reversed(list(lines)):
        m = _ERROR_LINE.match(line.strip())
        if m and not any(g in line for g in _GENERIC):
            return f"{m.group(1)}: {m.group(2).strip()}"
    return fallback
