"""Importers for XSTest's published files (Röttger et al., 2024, "XSTest: A Test Suite for
Identifying Exaggerated Safety Behaviours in Large Language Models").

- prompts, ``id,prompt,type,label,...``: ``label`` is ``safe`` or ``unsafe``. Safe prompts become an
  ``over-refusal`` suite, unsafe ones (the contrast set) a ``harmful`` suite.
- annotated completions, ``prompt,completion,...,final_label`` (often with ``id``, ``type``):
  ``final_label`` is ``1_full_compliance``, ``2_full_refusal`` or ``3_partial_refusal``. Each row is
  a response to judge, with a person's label to measure the detector and the judge against. A
  prompt is unsafe when its ``label`` says so or, without that column, when its type starts with
  ``contrast_`` (XSTest's naming).

A bad prompts row is an error naming the file and line (a suite must be whole); a bad completions
row is skipped and listed with its line.
"""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

from cai.core.errors import CaiError
from cai.core.files import open_text
from cai.evals.probes import LoadedSuite, Probe, Suite

LABELS = {"1_full_compliance": "full_compliance", "2_full_refusal": "full_refusal",
          "3_partial_refusal": "partial_refusal", "full_compliance": "full_compliance",
          "full_refusal": "full_refusal", "partial_refusal": "partial_refusal"}


def unsafe_principles(xstest_type: str) -> list[str]:
    """The harm principle an unsafe XSTest prompt tests, by its type."""
    t = xstest_type.lower()
    if "privacy" in t:
        return ["harm-privacy"]
    if "discr" in t:
        return ["harm-discrimination"]
    if "historical" in t:
        return ["harm-violent-extremism"]
    return ["harm-crime-against-others"]


def _rows(path: Path, need: set[str]) -> list[tuple[int, dict]]:
    try:
        with open_text(path, newline="") as fh:
            reader = csv.DictReader(fh)
            header = set(reader.fieldnames or [])
            missing = need - header
            if missing:
                raise CaiError(f"not an XSTest file: missing column(s) {', '.join(sorted(missing))}", path=path, line=1)
            return [(reader.line_num, row) for row in reader]
    except UnicodeDecodeError:
        raise CaiError("not UTF-8 text", path=path) from None


def is_safe(row: dict, where: str, path: Path) -> bool:
    """Whether an XSTest row's prompt is safe: its ``label``, else its type (``contrast_*`` are unsafe)."""
    label = (row.get("label") or "").strip().lower()
    if label in ("safe", "unsafe"):
        return label == "safe"
    if label:
        raise CaiError(f"label must be 'safe' or 'unsafe', got '{label}'", path=path, line=int(where))
    return not (row.get("type") or "").strip().lower().startswith("contrast_")


def _probe(row: dict, line: int, path: Path, safe: bool, number: int) -> Probe:
    prompt = (row.get("prompt") or "").strip()
    if not prompt:
        raise CaiError("empty prompt", path=path, line=line)
    typ = (row.get("type") or "").strip()
    pid = (row.get("id") or "").strip() or str(number)
    return Probe(id=f"xstest-{pid}", principles=["rlhf-over-refusal"] if safe else unsafe_principles(typ),
                 type=typ, prompt=prompt)


def import_prompts(path: str | Path) -> list[LoadedSuite]:
    """XSTest's prompts as two suites: ``xstest-safe`` (over-refusal) and ``xstest-unsafe`` (harmful)."""
    path = Path(path)
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    groups: dict[bool, list[Probe]] = {True: [], False: []}
    seen: set[str] = set()
    for n, (line, row) in enumerate(_rows(path, {"prompt", "type", "label"}), 1):
        safe = is_safe(row, str(line), path)
        probe = _probe(row, line, path, safe, n)
        if probe.id in seen:
            raise CaiError(f"duplicate id '{probe.id}'", path=path, line=line)
        seen.add(probe.id)
        groups[safe].append(probe)
    out = []
    for safe, probes in groups.items():
        if probes:
            suite = Suite(suite="xstest-safe" if safe else "xstest-unsafe", version="2.0.0",
                          kind="over-refusal" if safe else "harmful",
                          description=f"Imported from XSTest prompts {path.name}", probes=probes)
            out.append(LoadedSuite(suite, str(path), sha))
    if not out:
        raise CaiError("no prompts", path=path)
    return out


def read_completions(path: str | Path) -> tuple[list[tuple[LoadedSuite, Probe, str, str, int]], list[str]]:
    """Annotated completions: ``(suite, probe, completion, human label, line)`` per row, the probes
    grouped into ``xstest-safe`` / ``xstest-unsafe`` suites built from the same file, and the bad
    rows skipped (``file:line: why``). A file without the columns, or without one good row, is an
    error."""
    path = Path(path)
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    rows, skipped = [], []
    for n, (line, row) in enumerate(_rows(path, {"prompt", "completion", "final_label"}), 1):
        raw = (row.get("final_label") or "").strip()
        try:
            if raw not in LABELS:
                raise CaiError(f"final_label must be one of {', '.join(sorted(LABELS))}, got '{raw}'", path=path,
                               line=line)
            safe = is_safe(row, str(line), path)
            probe = _probe(row, line, path, safe, n)
        except CaiError as exc:
            skipped.append(exc.format())
            continue
        probe = probe.model_copy(update={"id": f"{probe.id}-l{line}"})  # one completion per probe row
        rows.append((safe, probe, row.get("completion") or "", LABELS[raw], line))
    if not rows:
        raise CaiError("no usable completions" + (f" (first problem: {skipped[0]})" if skipped else ""), path=path)
    suites = {}
    for safe in (True, False):
        probes = [p for s, p, *_ in rows if s == safe]
        if probes:
            suites[safe] = LoadedSuite(Suite(suite="xstest-safe" if safe else "xstest-unsafe", version="2.0.0",
                                             kind="over-refusal" if safe else "harmful",
                                             description=f"XSTest completions {path.name}", probes=probes),
                                       str(path), sha)
    return [(suites[safe], probe, text, label, line) for safe, probe, text, label, line in rows], skipped
