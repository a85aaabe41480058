"""Diagnostics: problems found in principle and constitution files, located by path and line."""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import Iterable, Literal

from pydantic import ValidationError

from cai.core.errors import CaiError

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Diagnostic:
    path: str
    line: int | None
    message: str
    severity: Severity = "error"

    def format(self) -> str:
        where = self.path if self.line is None else f"{self.path}:{self.line}"
        prefix = "" if self.severity == "error" else "warning: "
        return f"{where}: {prefix}{self.message}"

    def to_error(self) -> CaiError:
        return CaiError(self.message, path=self.path, line=self.line)


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """A ' (did you mean 'x'?)' suffix, or '' when nothing is close."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def unknown_field_hint(model, loc) -> str:
    """For pydantic's 'Extra inputs are not permitted' at ``loc`` of ``model`` (a BaseModel class):
    a did-you-mean suffix from the fields of the model that holds it ('' when none is close)."""
    import typing

    for part in loc[:-1]:
        field = getattr(model, "model_fields", {}).get(part) if isinstance(part, str) else None
        if field is None:
            return ""
        candidates = [field.annotation, *typing.get_args(field.annotation)]
        model = next((c for c in candidates if hasattr(c, "model_fields")), None)
    fields = getattr(model, "model_fields", None)
    if not fields or not isinstance(loc[-1], str):
        return ""
    names = list(fields) + [f.alias for f in fields.values() if f.alias]
    return did_you_mean(loc[-1], names)


def unknown_key_diagnostics(
    data: dict, allowed: Iterable[str], lines: dict[tuple, int], path: str, what: str
) -> list[Diagnostic]:
    allowed = list(allowed)
    out = []
    for key in data:
        if key not in allowed:
            out.append(
                Diagnostic(
                    path,
                    lines.get((key,)),
                    f"unknown {what} key '{key}'{did_you_mean(str(key), allowed)}; "
                    f"allowed: {', '.join(allowed)}",
                )
            )
    return out


# Words for the regex patterns fields use, so errors say "a semantic version such as 1.0.0"
# rather than print the regex. Filled in by the modules that define the patterns.
PATTERN_HINTS: dict[str, str] = {}


def validation_diagnostics(
    exc: ValidationError, path: str, line_of, default_line: int | None = None
) -> list[Diagnostic]:
    """Turn pydantic errors into diagnostics; ``line_of(loc)`` maps an error location to a line."""
    out = []
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])
        field = ".".join(str(p) for p in loc)
        msg = err["msg"]
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        hint = PATTERN_HINTS.get((err.get("ctx") or {}).get("pattern", ""))
        if err["type"] == "string_pattern_mismatch" and hint:
            msg = f"'{err['input']}' is not {hint}"
        line = line_of(loc)
        if err["type"] == "string_type" and isinstance(err.get("input"), (int, float, bool)):
            msg = _quote_hint(err["input"], loc, path, line)
        # A whole-model error (no location) reads on its own: "missing section ..."
        text = f"{field}: {msg}" if field else msg
        out.append(Diagnostic(path, line if line is not None else default_line, text))
    return out


def _quote_hint(value, loc: tuple, path: str, line: int | None) -> str:
    """For a string field YAML read as a number or boolean (``version: 1.10`` is the float 1.1):
    say so and how to quote it, with the value as written when the line can be read."""
    written = None
    if line:
        try:
            with open(path, encoding="utf-8-sig") as fh:
                text = next((t for i, t in enumerate(fh, 1) if i == line), "")
            key, sep, rest = text.partition(":")
            written = rest.split(" #")[0].strip() if sep and str(loc[-1]) in key else None
        except (OSError, UnicodeDecodeError):
            written = None
    kind = "a boolean" if isinstance(value, bool) else "a number"
    shown = written or str(value).lower() if isinstance(value, bool) else written or str(value)
    # Versions here are semantic (MAJOR.MINOR.PATCH): "1.10" quoted would fail next, so say "1.10.0".
    suggest = f"{shown}.0" if str(loc[-1]) == "version" and re.fullmatch(r"\d+\.\d+", shown) else shown
    return (f"should be text, but YAML read {shown} as {kind} ({value!r}); quote it: "
            f'{loc[-1]}: "{suggest}"')


def raise_first_error(diagnostics: list[Diagnostic]) -> None:
    for d in diagnostics:
        if d.severity == "error":
            raise d.to_error()
