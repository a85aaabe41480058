"""Old names of config and recipe fields, still read: each is moved to today's name with a note.

One concept has one name everywhere (issue 23): a config field, its CLI option (the kebab-case of
the field) and the recipe key are spelled the same. A file written with a field's old name keeps
working: :func:`accept_old_names` moves the value and says so once on stderr.
"""

from __future__ import annotations

import sys
from typing import Any

_SAID: set[str] = set()


def reset_notes() -> None:
    """Forget which notes were said: each CLI invocation (``cai.cli.main.main``, which tests and
    notebooks call many times in one process) says its own notes once."""
    _SAID.clear()


def note(text: str) -> None:
    """Print ``note: text`` on stderr, once per process."""
    if text not in _SAID:
        _SAID.add(text)
        print(f"note: {text}", file=sys.stderr)


def accept_old_names(data: Any, renames: dict[str, str], where: str = "") -> Any:
    """``data`` (a mapping about to be validated) with each old key of ``renames`` moved to its new
    name; a value under both names is an error for the validator to report (the old key stays)."""
    if not isinstance(data, dict) or not any(old in data for old in renames):
        return data
    data = dict(data)
    for old, new in renames.items():
        if old in data and new not in data:
            data[new] = data.pop(old)
            note(f"{where}{old} is now {new} (the old name still works)")
    return data
