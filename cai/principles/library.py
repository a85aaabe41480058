"""A library of principle and constitution files on disk."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from cai.core.diagnostics import Diagnostic
from cai.core.errors import CaiError
from cai.core.files import read_text_file
from cai.principles.principle import Principle, parse_principle_text

PRINCIPLE_SUFFIXES = (".md",)
CONSTITUTION_SUFFIXES = (".yaml", ".yml")


def discover(paths: list[str | Path], suffixes: tuple[str, ...]) -> list[Path]:
    """Files with these suffixes: the paths themselves, or found recursively under directories."""
    found: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found += sorted(f for f in p.rglob("*") if f.is_file() and f.suffix in suffixes)
        elif p.suffix in suffixes:
            found.append(p)
    return found


@dataclass
class PrincipleSet:
    """Principles loaded from files, with the diagnostics found on the way."""

    principles: dict[str, Principle] = field(default_factory=dict)
    paths: dict[str, str] = field(default_factory=dict)
    diagnostics: list[Diagnostic] = field(default_factory=list)

    def add_file(self, path: str) -> None:
        text, diags = read_text_file(path)
        self.diagnostics += diags
        if text is None:
            return
        principle, diags = parse_principle_text(text, path)
        self.diagnostics += diags
        if principle is None:
            return
        if principle.id in self.principles:
            first = self.paths[principle.id]
            self.diagnostics.append(
                Diagnostic(path, 2, f"duplicate principle id '{principle.id}' (also defined in {first})")
            )
            return
        self.principles[principle.id] = principle
        self.paths[principle.id] = path


def load_principle_set(paths: list[str | Path]) -> PrincipleSet:
    result = PrincipleSet()
    for f in discover(paths, PRINCIPLE_SUFFIXES):
        result.add_file(str(f))
    return result


def load_principles_dir(directory: str | Path) -> dict[str, Principle]:
    """All principles under a directory; raise a one-line CaiError on the first problem."""
    directory = Path(directory)
    if not directory.is_dir():
        raise CaiError(f"principles directory not found: {directory} (pass --principles DIR)")
    result = load_principle_set([directory])
    for d in result.diagnostics:
        if d.severity == "error":
            raise d.to_error()
    return result.principles
