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


# The library shipped with cai: ``cai/library/{principles,constitution,recipes,suites}``, package data in a
# wheel and the same folder in an editable install or a clone (whose top-level principles/,
# constitution/ and recipes/ are links to it). One lookup for all three: its principles can always be
# selected by id or glob, its constitutions by name, its recipes by path.
SHIPPED = Path(__file__).resolve().parents[1] / "library"
SHIPPED_KINDS = ("principles", "constitution", "recipes", "suites")
_said_missing: set[str] = set()


def shipped_dir(kind: str) -> Path | None:
    """The shipped ``principles``, ``constitution``, ``recipes`` or (evaluation) ``suites`` folder;
    None when this install has none, said once on stderr (an install built without its package data)."""
    if kind not in SHIPPED_KINDS:
        raise ValueError(f"unknown library folder {kind!r}; one of {', '.join(SHIPPED_KINDS)}")
    folder = SHIPPED / kind
    if folder.is_dir():
        return folder
    if kind not in _said_missing:
        import sys

        _said_missing.add(kind)
        print(f"note: this install of cai has no shipped {kind} ({folder} is missing); "
              "reinstall the package, or use your own folders", file=sys.stderr)
    return None


def split_dirs(spec: str | Path | list | None) -> list[Path]:
    """Principle folders from a list, or a string of several joined by ``os.pathsep`` (``a:b``)."""
    import os

    if spec is None:
        return []
    parts = spec if isinstance(spec, (list, tuple)) else str(spec).split(os.pathsep)
    return [Path(p) for p in map(str, parts) if p.strip()]


def load_principles_dir(directory: str | Path | list) -> dict[str, Principle]:
    """All principles under one folder, or several (a list, or joined by ``os.pathsep``); raise a
    one-line CaiError on the first problem (a missing folder names the full path it looked at; one id
    in two folders names both files)."""
    folders = split_dirs(directory)
    for folder in folders:
        if not folder.is_dir():
            looked = "" if folder.is_absolute() else f" (looked at {folder.resolve()})"
            raise CaiError(f"principles directory not found: {folder}{looked}; "
                           "pass --principles-dir DIR (several: DIR1:DIR2)")
    result = load_principle_set(folders)
    for d in result.diagnostics:
        if d.severity == "error":
            raise d.to_error()
    return result.principles


def shipped_principles(exclude: list[Path] | None = None) -> dict[str, Principle]:
    """The shipped principles (empty when there are none, or when they are among ``exclude``)."""
    folder = shipped_dir("principles")
    if folder is None or any(_same(folder, e) for e in exclude or []):
        return {}
    return load_principles_dir(folder)


def _is_glob(pattern: str) -> bool:
    return any(c in pattern for c in "*?[")


def needs_library(ids: list[str], available: dict) -> bool:
    """True when a selection has an exact id that ``available`` lacks, or a glob matching none of it."""
    import fnmatch

    return any((not _is_glob(i) and i not in available) or (_is_glob(i) and not fnmatch.filter(available, i))
               for i in ids)


def from_library(ids: list[str], available: dict, library: dict) -> dict:
    """The library entries a selection reaches: exact ids that ``available`` lacks, and every library
    id a glob matches when the glob matches nothing in ``available`` (one's own ids come first)."""
    import fnmatch

    extra = {}
    for i in ids:
        if not _is_glob(i):
            if i not in available and i in library:
                extra[i] = library[i]
        elif not fnmatch.filter(available, i):
            extra.update({pid: library[pid] for pid in fnmatch.filter(library, i)})
    return extra


def _same(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False


def find_constitution(ref: str, folders: list[Path] | None = None) -> Path:
    """The constitution ``ref`` names: a YAML file, or a name looked up as ``NAME.yaml`` under each of
    ``folders``' ``constitution/``, then ``./constitution/``, then the shipped library's. Raises a
    CaiError that lists every place it looked."""
    path = Path(ref).expanduser()
    if path.is_file():
        return path
    looked = [path.resolve()]
    if not path.suffix and "/" not in ref:
        shipped = shipped_dir("constitution")
        bases = [f / "constitution" for f in folders or []] + [Path("constitution")] + ([shipped] if shipped else [])
        for base in bases:
            for suffix in CONSTITUTION_SUFFIXES:
                candidate = base / f"{ref}{suffix}"
                if candidate.is_file():
                    return candidate
            looked.append((base / f"{ref}.yaml").resolve())
    where = ", ".join(dict.fromkeys(str(p) for p in looked))
    raise CaiError(f"constitution not found: {ref} (looked at {where}); give a YAML file, or a name under "
                   "one of those constitution/ folders")


def find_recipe(ref: str | Path) -> Path:
    """The recipe file ``ref`` names: the path itself when it exists, else the shipped recipe of that
    name (``recipes/loop-quickstart.yaml`` or ``loop-quickstart.yaml`` from an install that has no
    ``recipes/`` folder), said in one note; else ``ref`` unchanged, for the reader's own error."""
    path = Path(ref).expanduser()
    if path.exists() or path.is_absolute():
        return path
    shipped = shipped_dir("recipes")
    parts = path.parts[1:] if path.parts[:1] == ("recipes",) else path.parts
    if shipped is not None and parts:
        candidate = shipped.joinpath(*parts)
        if candidate.is_file():
            from cai.core.renames import note

            note(f"{ref} is not here; running the shipped recipe {candidate} (its files are read from "
                 "there, the run folder is written here)")
            return candidate
    return path


def starter_dir() -> Path:
    """The starter project ``cai init`` copies (``cai/library/starter``); a CaiError when this install
    lacks it."""
    folder = SHIPPED / "starter"
    if not folder.is_dir():
        raise CaiError(f"this install of cai has no starter project ({folder} is missing); reinstall the package")
    return folder


def write_starter(dest: str | Path, force: bool = False) -> list[Path]:
    """Copy the starter project (a principle, a constitution, a prompts file, a loop recipe) into
    ``dest``, created if missing; returns the files written, relative to ``dest``. Raises a CaiError
    naming the files that already exist (nothing is written) unless ``force``."""
    import shutil

    source = starter_dir()
    dest = Path(dest)
    files = sorted(p.relative_to(source) for p in source.rglob("*") if p.is_file())
    if dest.exists() and not dest.is_dir():
        raise CaiError(f"{dest} is a file; give a folder for the starter project")
    clash = [str(dest / f) for f in files if (dest / f).exists()]
    if clash and not force:
        raise CaiError(f"{dest}: would overwrite {', '.join(clash)}; pass --force to replace them, or pick an empty folder")
    for f in files:
        (dest / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source / f, dest / f)
    return files
