"""Keep the last lines an engine writes to stderr, so a failed start can say why in one line.

vLLM starts its engine in child processes; when one fails, the exception the parent sees says
only "Engine core initialization failed. See root cause above", and the root cause is a line the
child printed. :func:`tee_stderr` routes file descriptor 2 through a pipe while the engine starts:
every line still reaches the real stderr (the user sees vLLM's log as before), and the last ones
are kept for :func:`root_cause`. Children keep writing into the pipe after the start, so the
forwarding thread lives as long as the process.
"""

from __future__ import annotations

import os
import re
import threading
from collections import deque
from contextlib import contextmanager

_ERROR_LINE = re.compile(r"^(?:.*?\s)?((?:[A-Za-z_][\w.]*)?(?:Error|Exception)): (.+)$")
_GENERIC = ("Engine core initialization failed", "See root cause above")


class _Tail:
    def __init__(self, keep: int):
        self.lines: deque[str] = deque(maxlen=keep)


@contextmanager
def tee_stderr(keep: int = 400):
    """Within the block, fd 2 goes through a pipe; yields an object whose ``lines`` are the last
    ``keep`` lines written (by this process or its children)."""
    tail = _Tail(keep)
    try:
        saved = os.dup(2)
        read_fd, write_fd = os.pipe()
    except OSError:  # no usable fd 2 (embedded interpreters): run without the tee
        yield tail
        return
    out = os.dup(saved)  # the forwarder's own copy of the real stderr

    def forward() -> None:
        with os.fdopen(read_fd, "rb", buffering=0) as pipe:
            pending = b""
            while chunk := pipe.read(65536):
                try:
                    os.write(out, chunk)
                except OSError:
                    pass
                pending += chunk
                *done, pending = pending.split(b"\n")
                for raw in done:
                    tail.lines.append(raw.decode("utf-8", "replace").rstrip("\r"))

    threading.Thread(target=forward, name="cai-engine-stderr", daemon=True).start()
    os.dup2(write_fd, 2)
    os.close(write_fd)
    try:
        yield tail
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def root_cause(lines, fallback: str) -> str:
    """The last ``SomeError: message`` line that is not the generic wrapper, else ``fallback``."""
    for line in reversed(list(lines)):
        m = _ERROR_LINE.match(line.strip())
        if m and not any(g in line for g in _GENERIC):
            return f"{m.group(1)}: {m.group(2).strip()}"
    return fallback
