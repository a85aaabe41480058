"""The package layout: rooms import only rooms below them, nobody but the CLI imports the CLI
(nor anything but tests the test helpers in ``cai.testing``),
no two modules import each other (directly or round a longer circle), and modules stay small.

Read from the source with :mod:`ast` (nothing is imported), so it runs in a fraction of a second.
Imports under ``if TYPE_CHECKING:`` are annotations only and are not counted.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "cai"

# Lowest first: a room may import itself and the rooms before it.
ROOMS = ["core", "testing", "models", "principles", "data", "backends", "judge", "sl", "feedback", "inverse", "humans",
         "guard", "train", "evals", "redteam", "api", "loop", "cli"]
MAX_LINES = 400
ONE_FILE_MARK = "must be one file"  # a module's docstring says why it is longer


def _module(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module(p): p for p in ROOT.rglob("*.py")}


def _is_type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (
        isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING")


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The cai modules that ``name`` imports, at any depth of its code (lazy imports count)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.split(".")[0] == "cai")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] == "cai":
                for alias in node.names:  # `from cai.x import y` where y is a module imports cai.x.y
                    sub = f"{target}.{alias.name}"
                    out.add(sub if sub in modules else target)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    out.discard(name)
    return out


def _room(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    modules = _modules()
    return {m: _imports(m, p, modules) for m, p in modules.items()}


def test_every_room_is_placed_and_documented():
    rooms = sorted(p.name for p in ROOT.iterdir() if p.is_dir() and (p / "__init__.py").exists())
    assert rooms == sorted(r for r in ROOMS if (ROOT / r).is_dir()), "add a new package to ROOMS, in its layer"
    loose = sorted(p.name for p in ROOT.glob("*.py") if p.name != "__init__.py")
    assert loose == [], f"modules loose at the top of cai/: {loose}; put each in its room"
    for room in rooms:
        doc = ast.get_docstring(ast.parse((ROOT / room / "__init__.py").read_text(encoding="utf-8"))) or ""
        assert "Imports:" in doc, f"cai/{room}/__init__.py: its docstring says what it holds and 'Imports: ...'"


def test_rooms_import_only_lower_rooms(graph):
    rank = {r: i for i, r in enumerate(ROOMS)}
    wrong = []
    for module, targets in graph.items():
        room = _room(module)
        for target in targets:
            there = _room(target)
            if room is None or there is None or there == room:
                continue
            if there in ("cli", "testing") or rank[there] > rank[room]:
                wrong.append(f"{module} imports {target}")
    assert wrong == [], "a lower room imports a higher one:\n" + "\n".join(sorted(wrong))


def test_no_import_circles(graph):
    # Tarjan's strongly connected components: any component of two or more modules is a circle.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in graph:
                continue
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    import sys

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10_000))
    try:
        for v in sorted(graph):
            if v not in index:
                strong(v)
    finally:
        sys.setrecursionlimit(limit)
    assert circles == [], "modules that import each other:\n" + "\n".join(" <-> ".join(c) for c in circles)


def test_modules_stay_small():
    long = []
    for module, path in _modules().items():
        text = path.read_text(encoding="utf-8")
        n = text.count("\n")
        doc = ast.get_docstring(ast.parse(text)) or ""
        if n > MAX_LINES and ONE_FILE_MARK not in doc:
            long.append(f"{module}: {n} lines")
    assert long == [], f"modules over {MAX_LINES} lines (split them, or say in the docstring why it " \
                       f"{ONE_FILE_MARK}):\n" + "\n".join(long)


def test_the_checks_catch_what_they_guard(tmp_path):
    """The graph reader sees lazy, relative and submodule imports, and skips TYPE_CHECKING ones."""
    pkg = tmp_path / "cai" / "sl"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from cai.loop import x\n"
                              "def f():\n    from . import b\n    from cai.cli.main import main\n")
    (pkg / "b.py").write_text("import cai.sl.a\n")
    modules = {"cai.sl": pkg / "__init__.py", "cai.sl.a": pkg / "a.py", "cai.sl.b": pkg / "b.py"}
    assert _imports("cai.sl.a", pkg / "a.py", modules) == {"cai.sl.b", "cai.cli.main"}
    assert _imports("cai.sl.b", pkg / "b.py", modules) == {"cai.sl.a"}
