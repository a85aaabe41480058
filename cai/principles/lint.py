"""`cai principles lint`: every problem in principle and constitution files, as path:line: message."""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path

from cai.principles.constitution import parse_constitution_text, select_principles
from cai.core.diagnostics import Diagnostic
from cai.core.files import read_text_file
from cai.principles.library import CONSTITUTION_SUFFIXES, PRINCIPLE_SUFFIXES, PrincipleSet, discover, needs_library
from cai.principles.principle import Principle

NEAR_DUPLICATE_RATIO = 0.85


@dataclass
class LintReport:
    diagnostics: list[Diagnostic] = field(default_factory=list)
    principles: int = 0
    constitutions: int = 0

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity == "error"]

    @property
    def warnings(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity == "warning"]

    def exit_code(self, strict: bool = False) -> int:
        if self.errors or (strict and self.warnings):
            return 2
        return 0


def lint_paths(paths: list[str | Path]) -> LintReport:
    report = LintReport()
    for p in map(Path, paths):
        if not p.exists():
            report.diagnostics.append(Diagnostic(str(p), None, "no such file or directory"))
    principle_files = discover(paths, PRINCIPLE_SUFFIXES)
    constitution_files = discover(paths, CONSTITUTION_SUFFIXES)

    pset = PrincipleSet()
    for f in principle_files:
        pset.add_file(str(f))
    if constitution_files and not principle_files:
        # Linting constitutions alone: check them against the library beside them.
        sibling = constitution_files[0].resolve().parent.parent / "principles"
        for f in discover([sibling], PRINCIPLE_SUFFIXES):
            pset.add_file(str(f))
        pset.diagnostics = []  # those files are not what is being linted
        principle_files = []
    report.diagnostics += pset.diagnostics
    report.principles = len(pset.principles)

    used: set[str] = set()
    library = None
    for f in constitution_files:
        path = str(f)
        text, diags = read_text_file(path)
        report.diagnostics += diags
        if text is None:
            continue
        spec, lines, diags = parse_constitution_text(text, path)
        report.diagnostics += diags
        if spec is None:
            continue
        report.constitutions += 1
        report.diagnostics += _templates_that_cannot_finish(spec, path, lines)
        if library is None and needs_library(spec.principles.ids, pset.principles):
            # ids (and globs) one's own folders lack come from the shipped library
            library = _shipped_beside(paths)
        selected, diags = select_principles(spec, pset.principles, path, lines, library)
        report.diagnostics += diags
        used.update(p.id for p in selected)

    if principle_files:
        report.diagnostics += near_duplicates(pset)
        report.diagnostics += scaffold_placeholders(pset)
        # "Unused" is only known when every constitution could be read.
        if constitution_files and report.constitutions == len(constitution_files):
            for pid, principle_path in sorted(pset.paths.items()):
                if pid not in used:
                    report.diagnostics.append(
                        Diagnostic(principle_path, 2, f"principle '{pid}' is not used by any constitution", "warning")
                    )
    report.diagnostics.sort(key=lambda d: (d.path, d.line or 0))
    return report


def _templates_that_cannot_finish(spec, path: str, lines) -> list[Diagnostic]:
    """Render each template the constitution overrides once, with sample values and the render
    bounds (time, output, memory): one that cannot finish is an error at its line."""
    from cai.core.yamlutil import line_for
    from cai.principles.templates import trial_render

    out = []
    for kind in ("critique", "revision", "preference"):
        source = getattr(spec.templates, kind)
        problem = trial_render(kind, source) if source is not None else None
        if problem:
            out.append(Diagnostic(path, line_for(lines, ("templates", kind)), f"templates.{kind}: {problem}"))
    return out


def _shipped_beside(paths: list[str | Path]) -> dict:
    """The shipped principles, unless they are what is being linted (then they are already in)."""
    from cai.principles.library import shipped_principles

    try:
        return shipped_principles(exclude=[Path(p) for p in paths] + [Path(p).parent for p in paths])
    except Exception:  # noqa: BLE001 - a broken shipped library is reported when it is linted itself
        return {}


def scaffold_placeholders(pset: PrincipleSet) -> list[Diagnostic]:
    """Warn about text that `cai principles new` wrote for the author to replace."""
    from cai.principles.scaffold import placeholders_left

    out = []
    for pid, p in sorted(pset.principles.items()):
        path = pset.paths[pid]
        left = placeholders_left(p)
        if not left:
            continue
        try:
            lines = Path(path).read_text(encoding="utf-8-sig").splitlines()
        except OSError:
            lines = []
        for text in left:
            line = next((i for i, ln in enumerate(lines, 1) if text in ln), None)
            out.append(Diagnostic(path, line, f"placeholder text from `cai principles new` is still here "
                                              f"('{text[:40]}'); replace it with your own", "warning"))
    return out


def _signature(p: Principle) -> list[str]:
    # Compared word by word: as telling as characters for prose, and fast enough for big libraries.
    text = " ".join(filter(None, [p.critique, p.revision, p.preference]))
    return re.findall(r"\w+", text.lower())


def near_duplicates(pset: PrincipleSet, threshold: float = NEAR_DUPLICATE_RATIO) -> list[Diagnostic]:
    """Warn about principles whose requests are nearly the same text."""
    items = sorted(pset.principles.items())
    sigs = [(pid, _signature(p)) for pid, p in items]
    out = []
    for i, (a, sa) in enumerate(sigs):
        for b, sb in sigs[i + 1 :]:
            matcher = difflib.SequenceMatcher(None, sa, sb, autojunk=False)
            if matcher.real_quick_ratio() < threshold or matcher.quick_ratio() < threshold:
                continue
            ratio = matcher.ratio()
            if ratio >= threshold:
                out.append(Diagnostic(pset.paths[b], 2, f"principle '{b}' is a near-duplicate of '{a}' ({ratio:.0%} similar)", "warning"))
    return out
