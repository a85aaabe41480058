"""Errors a user can act on.

Every error that reaches the command line is a :class:`CaiError`: the CLI prints its one-line
message (``path:line: message``) and exits with its ``exit_code``, never a traceback.
"""

from __future__ import annotations

from pathlib import Path


class CaiError(Exception):
    """An error caused by input or environment, explained in one line."""

    exit_code = 2
    kind = "error"
    """How the CLI labels the message (``error: ...``); a pause that waits for the user says so."""

    def __init__(self, message: str, *, path: str | Path | None = None, line: int | None = None):
        self.message = message
        self.path = str(path) if path is not None else None
        self.line = line
        super().__init__(self.format())

    def format(self) -> str:
        if self.path is None:
            return self.message
        where = self.path if self.line is None else f"{self.path}:{self.line}"
        return f"{where}: {self.message}"


class MissingDependencyError(CaiError):
    """An optional dependency is not installed; the message says which extra to install."""

    def __init__(self, package: str, extra: str, purpose: str):
        super().__init__(
            f"{purpose} needs the '{package}' package, which is not installed: "
            f'pip install "cai[{extra}]"'
        )


def require(module: str, *, extra: str, purpose: str):
    """Import an optional dependency or raise a one-line install hint."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - depends on the environment
        if exc.name and exc.name.split(".")[0] != module.split(".")[0]:
            raise
        raise MissingDependencyError(module.split(".")[0], extra, purpose) from None


def looked_at(path: str | Path) -> str:
    """`` (looked at /full/path)`` for a relative path, so a "not found" error says where it looked
    whatever folder the command ran in; empty for an absolute path (the message has it already)."""
    path = Path(path).expanduser()
    return "" if path.is_absolute() else f" (looked at {path.resolve()})"
