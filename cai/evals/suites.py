"""Probe suites from files: built-in ones by name, YAML files, folders, and XSTest prompt CSVs.

The suite format (fields, kinds) is documented in :mod:`cai.evals.probes`; its types are
re-exported here.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from pydantic import ValidationError

from cai.core.diagnostics import validation_diagnostics
from cai.core.errors import CaiError
from cai.core.files import read_text_file
from cai.core.yamlutil import YamlProblem, line_for, load_yaml
from cai.evals.probes import KINDS, NEUTRAL, OWNED, Kind, KindInfo, LoadedSuite, Probe, Suite, Turn
from cai.evals.xstest import import_prompts

__all__ = ["KINDS", "NEUTRAL", "OWNED", "Kind", "KindInfo", "LoadedSuite", "Probe", "Suite", "Turn",
           "builtin_dir", "builtin_names", "load_suite", "load_suites", "parse_suite"]


def builtin_dir() -> Path:
    """The folder of the suites that ship with cai (``cai/library/suites``, package data), found by
    the same lookup as the shipped principles, constitutions and recipes."""
    from cai.principles.library import SHIPPED, shipped_dir

    return shipped_dir("suites") or SHIPPED / "suites"


def builtin_names() -> list[str]:
    """Names of the built-in suites (their file stems)."""
    return sorted(p.stem for p in builtin_dir().glob("*.yaml"))


def parse_suite(text: str, path: str) -> LoadedSuite:
    """Parse and validate one suite file's text; a one-line CaiError (file:line: field: problem)."""
    try:
        data, lines, _ = load_yaml(text)
    except YamlProblem as p:
        raise CaiError(p.message, path=path, line=p.line) from None
    if not isinstance(data, dict):
        raise CaiError("a suite file is a YAML mapping (suite, version, kind, probes)", path=path, line=1)
    try:
        suite = Suite.model_validate(data)
    except ValidationError as exc:
        raise validation_diagnostics(exc, path, lambda loc: line_for(lines, loc), 1)[0].to_error() from None
    return LoadedSuite(suite, path, hashlib.sha256(text.encode()).hexdigest(), lines)


def load_suite(ref: str | Path) -> LoadedSuite:
    """A suite from a file path, or a built-in suite by name (``harmful``, ``over-refusal``, ...)."""
    path = Path(ref)
    if not path.exists() and not path.suffix:
        candidate = builtin_dir() / f"{ref}.yaml"
        if candidate.exists():
            path = candidate
        else:
            raise CaiError(f"no suite '{ref}': give a YAML file or one of {', '.join(builtin_names())}")
    text, diags = read_text_file(str(path))
    if text is None:
        raise diags[0].to_error()
    return parse_suite(text, str(path))


def load_suites(refs: list[str] | None = None) -> list[LoadedSuite]:
    """Suites by name or path (folders: every ``*.yaml`` inside; an XSTest prompts ``.csv`` gives
    two suites, see :mod:`cai.evals.xstest`); all built-in suites when empty.
    Raises CaiError on a bad file or two suites with the same name."""
    paths: list[str | Path] = []
    for ref in refs or builtin_names():
        p = Path(ref)
        paths += sorted(p.glob("*.yaml")) if p.is_dir() else [ref]
    out, seen = [], {}
    for ref in paths:
        out += import_prompts(ref) if str(ref).endswith(".csv") else [load_suite(ref)]
    for loaded in out:
        if loaded.name in seen:
            raise CaiError(f"suite '{loaded.name}' is also defined in {seen[loaded.name]}", path=loaded.path)
        seen[loaded.name] = loaded.path
    return out


def check_principle_ids(suites: list[LoadedSuite], principles_dir: str | None = None) -> None:
    """Every probe's ``principles`` must name principles that exist: in ``principles_dir`` (the
    user's own, one folder or several joined by ``os.pathsep``) or in the shipped library. An unknown
    id (a typo, a principle renamed, one's own principle without ``--principles-dir``) is a one-line
    CaiError at the probe's line naming where it looked and the nearest known id, rather than a
    probe quietly judged by other principles."""
    from cai.core.diagnostics import did_you_mean
    from cai.principles.library import load_principles_dir, shipped_dir, shipped_principles, split_dirs

    own = load_principles_dir(principles_dir) if principles_dir else {}
    shipped = shipped_principles(exclude=split_dirs(principles_dir) if principles_dir else None)
    known = {**shipped, **own}
    if not known:
        return  # no library to check against (a bare install without the shipped files)
    looked = [str(Path(d).resolve()) for d in split_dirs(principles_dir)] if principles_dir else []
    if shipped_dir("principles") is not None:
        looked.append(f"{shipped_dir('principles')} (shipped)")
    hint = "" if principles_dir else "; for your own principles pass --principles-dir DIR (principles_dir: in a config)"
    for loaded in suites:
        for i, probe in enumerate(loaded.suite.probes):
            for j, pid in enumerate(probe.principles):
                if pid not in known:
                    line = line_for(loaded.lines, ("probes", i, "principles", j)) or \
                        line_for(loaded.lines, ("probes", i)) if loaded.lines else None
                    raise CaiError(f"probe '{probe.id}' names unknown principle '{pid}'"
                                   f"{did_you_mean(pid, known)} (looked in {', '.join(looked)}){hint}",
                                   path=loaded.path, line=line)
