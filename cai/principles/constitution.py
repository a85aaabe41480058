"""Constitutions: YAML manifests that select principles and say how a pipeline uses them.

A :class:`ConstitutionSpec` is the manifest as written; :class:`Constitution` is the spec bound to
the principles it selects, with a content hash for provenance and the per-round principle choice.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import random
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from cai.core.diagnostics import Diagnostic, did_you_mean, unknown_key_diagnostics, validation_diagnostics
from cai.core.files import read_text_file
from cai.principles.principle import ID_PATTERN, VERSION_PATTERN, Principle
from cai.principles.templates import DEFAULT_TEMPLATES, check_template, trial_render
from cai.core.yamlutil import line_for, parse_yaml_diagnostics

Strategy = Literal["random", "round-robin", "all"]
Stage = Literal["revision", "feedback"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


EMPTY_SELECTION = ("selects no principles: list principle ids (principles: [id, ...]) or select principles with "
                   "ids or tags (principles: {ids: [...], tags: [...]})")


class Selection(_Strict):
    """Which principles: the union of ``ids`` (globs allowed) and ``tags``, minus ``exclude``.

    A plain list (``principles: [kind, harm-*]``) is the shorthand for ``{ids: [...]}``."""

    ids: list[str] = Field(default_factory=list, description="Principle ids or globs (harm-*).")
    tags: list[str] = Field(default_factory=list, description="Every principle with any of these tags.")
    exclude: list[str] = Field(default_factory=list, description="Ids or globs to leave out.")

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data):
        if isinstance(data, (list, tuple)):
            if not data:
                raise ValueError(EMPTY_SELECTION)
            return {"ids": list(data)}
        return data

    @model_validator(mode="after")
    def _not_empty(self) -> "Selection":
        if not self.ids and not self.tags:
            raise ValueError(EMPTY_SELECTION)
        return self


class Sampling(_Strict):
    """How each critique round picks principles for a record."""

    strategy: Strategy = Field(default="random", description="random (weighted, seeded), round-robin or all.")
    seed: int = Field(default=0, description="Seed for the random strategy.")
    per_round: int = Field(default=1, ge=1, description="Principles per round (ignored by 'all').")


class Message(_Strict):
    role: Literal["system", "user", "assistant"]
    content: str


class Exemplar(_Strict):
    """A few-shot demonstration: a whole chat transcript."""

    messages: list[Message] = Field(min_length=2)


class Templates(_Strict):
    """Overrides of the default prompt templates (sandboxed Jinja)."""

    critique: str | None = None
    revision: str | None = None
    preference: str | None = None

    @field_validator("critique", "revision", "preference")
    @classmethod
    def _usable(cls, source: str | None, info) -> str | None:
        # Checked per field so an error points at the template's own line.
        # A template that cannot render (a loop past the bounds, an unsafe call) fails here, at
        # load, not after a model has drafted every prompt.
        problem = (check_template(info.field_name, source) or trial_render(info.field_name, source)
                   if source is not None else None)
        if problem:
            raise ValueError(problem)
        return source


class ConstitutionSpec(_Strict):
    """A constitution manifest as written in ``constitution/NAME.yaml``."""

    name: str = Field(pattern=ID_PATTERN, description="Name; equals the file name stem.")
    version: str = Field(pattern=VERSION_PATTERN, description="Semantic version.")
    description: str = Field(default="", description="What this constitution is for.")
    principles: Selection = Field(description="Which principles it uses.")
    weights: dict[str, Annotated[float, Field(gt=0)]] = Field(
        default_factory=dict, description="Per-principle weights (override)."
    )
    sampling: Sampling = Field(default_factory=Sampling, description="How rounds pick principles.")
    rounds: int = Field(default=1, ge=1, le=16, description="Critique/revision rounds per prompt.")
    stages: list[Stage] = Field(
        default_factory=lambda: ["revision", "feedback"], min_length=1,
        description="Pipeline stages this constitution drives.",
    )
    system_prompt: str | None = Field(default=None, description="System message for drafting.")
    exemplars: list[Exemplar] = Field(default_factory=list, description="Few-shot transcripts.")
    templates: Templates = Field(default_factory=Templates, description="Prompt template overrides.")
    priorities: list[str] = Field(default_factory=list, description="Tags in order of precedence.")


CONSTITUTION_KEYS = tuple(ConstitutionSpec.model_fields)


class Constitution:
    """A constitution bound to its principles: what the pipeline uses."""

    def __init__(self, spec: ConstitutionSpec, principles: list[Principle], path: str | None = None):
        self.spec = spec
        self.path = path
        rank = {tag: i for i, tag in enumerate(spec.priorities)}
        def priority(p: Principle) -> int:
            return min((rank[t] for t in p.tags if t in rank), default=len(rank))
        # Ordered by precedence, then id: 'all' applies them in this order.
        self.principles: list[Principle] = sorted(principles, key=lambda p: (priority(p), p.id))
        self._priority = {p.id: priority(p) for p in self.principles}
        self.hash = content_hash(spec, self.principles)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def ref(self) -> str:
        """``name@version#hash12``: how provenance names this constitution."""
        return f"{self.spec.name}@{self.spec.version}#{self.hash[:12]}"

    def weight(self, principle: Principle) -> float:
        return self.spec.weights.get(principle.id, principle.weight)

    def priority(self, principle: Principle) -> int:
        """0 is the highest precedence."""
        return self._priority[principle.id]

    def template(self, kind: str) -> str:
        return getattr(self.spec.templates, kind) or DEFAULT_TEMPLATES[kind]

    def pick(self, key: str, round_index: int) -> list[Principle]:
        """The principles a record (named by a stable ``key``) gets in a round. Deterministic."""
        s = self.spec.sampling
        n = len(self.principles)
        if s.strategy == "all":
            return list(self.principles)
        k = min(s.per_round, n)
        if s.strategy == "round-robin":
            start = (_stable_int(key) + round_index * k) % n
            return [self.principles[(start + j) % n] for j in range(k)]
        rng = random.Random(f"{s.seed}:{key}:{round_index}")
        pool = list(self.principles)
        chosen = []
        for _ in range(k):  # weighted sampling without replacement
            weights = [self.weight(p) for p in pool]
            i = rng.choices(range(len(pool)), weights=weights)[0]
            chosen.append(pool.pop(i))
        return chosen


def _stable_int(key: str) -> int:
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big")


def content_hash(spec: ConstitutionSpec, principles: list[Principle]) -> str:
    """sha256 of the normalized manifest and every selected principle (formatting-insensitive)."""
    payload = {
        "constitution": spec.model_dump(mode="json"),
        "principles": [p.normalized() for p in sorted(principles, key=lambda p: p.id)],
    }
    blob = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()


# --------------------------------------------------------------------------- parsing and binding


def parse_constitution_text(text: str, path: str) -> tuple[ConstitutionSpec | None, dict, list[Diagnostic]]:
    """Parse and validate a manifest. Returns ``(spec, key_lines, diagnostics)``; never raises."""
    data, lines, diags = parse_yaml_diagnostics(text, path)
    if diags:
        return None, lines, diags
    if not isinstance(data, dict):
        return None, lines, [Diagnostic(path, 1, "a constitution must be a YAML mapping of key: value")]
    diags = unknown_key_diagnostics(data, CONSTITUTION_KEYS, lines, path, "constitution")
    selection = data.get("principles")
    if "principles" in data and (selection is None or selection == [] or selection == {}):
        return None, lines, [Diagnostic(path, line_for(lines, ("principles",)), f"principles: {EMPTY_SELECTION}")]
    if isinstance(selection, (str, int, float, bool)):
        return None, lines, [Diagnostic(path, line_for(lines, ("principles",)),
                                        f"principles: {selection!r} is one value; write a list of principle ids "
                                        f"(principles: [{selection}]) or select by ids or tags "
                                        "(principles: {ids: [...], tags: [...]})")]
    if isinstance(selection, list):  # the shorthand: principles: [id, ...] selects those ids
        data = {**data, "principles": {"ids": selection}}
        lines = {**lines, **{("principles", "ids", *loc[1:]): ln for loc, ln in lines.items()
                             if len(loc) >= 2 and loc[0] == "principles" and isinstance(loc[1], int)}}
    for section, model in (("principles", Selection), ("sampling", Sampling), ("templates", Templates)):
        if isinstance(data.get(section), dict):
            nested = {loc[1:]: ln for loc, ln in lines.items() if len(loc) == 2 and loc[0] == section}
            diags += unknown_key_diagnostics(data[section], model.model_fields, nested, path, f"'{section}'")
    if diags:
        return None, lines, diags
    try:
        spec = ConstitutionSpec.model_validate(data)
    except ValidationError as exc:
        return None, lines, validation_diagnostics(exc, path, lambda loc: line_for(lines, loc), default_line=1)
    stem = Path(path).stem
    if spec.name != stem:
        return None, lines, [Diagnostic(path, lines.get(("name",)), f"name '{spec.name}' must equal the file name stem '{stem}'")]
    return spec, lines, []


def select_principles(
    spec: ConstitutionSpec, available: dict[str, Principle], path: str, lines: dict,
    library: dict[str, Principle] | None = None,
) -> tuple[list[Principle], list[Diagnostic]]:
    """Resolve the selection against the known principles; unknown ids and empty tags are errors.

    ``library`` (the shipped principles) answers exact ids that ``available`` lacks, and globs
    (``rlhf-*``) that match none of ``available``: one's own principles beside
    ``harm-high-stakes-advice`` without copying the library. A glob that matches one's own ids takes
    only those, and tags match ``available`` alone, so a constitution selecting by tag gets what its
    own folders hold."""
    from cai.principles.library import from_library

    diags: list[Diagnostic] = []
    if library:
        extra = from_library(spec.principles.ids, available, library)
        if extra:
            available = {**available, **extra}
    ids = sorted(available)
    all_tags = sorted({t for p in available.values() for t in p.tags})
    chosen: set[str] = set()
    for i, pattern in enumerate(spec.principles.ids):
        hits = fnmatch.filter(ids, pattern)
        if not hits:
            diags.append(Diagnostic(path, line_for(lines, ("principles", "ids", i)),
                                    f"selects unknown principle '{pattern}'{did_you_mean(pattern, ids)}"))
        chosen.update(hits)
    for i, tag in enumerate(spec.principles.tags):
        hits = [pid for pid in ids if tag in available[pid].tags]
        if not hits:
            diags.append(Diagnostic(path, line_for(lines, ("principles", "tags", i)),
                                    f"tag '{tag}' matches no principle{did_you_mean(tag, all_tags)}"))
        chosen.update(hits)
    for pattern in spec.principles.exclude:
        chosen -= set(fnmatch.filter(ids, pattern))
    if not chosen and not diags:
        diags.append(Diagnostic(path, line_for(lines, ("principles",)), "selects no principles after 'exclude'"))
    for pid in spec.weights:
        if pid not in chosen:
            diags.append(Diagnostic(path, line_for(lines, ("weights", pid)),
                                    f"weight for '{pid}', which this constitution does not select"))
    used_tags = {t for pid in chosen for t in available[pid].tags}
    for i, tag in enumerate(spec.priorities):
        if tag not in used_tags:
            diags.append(Diagnostic(path, line_for(lines, ("priorities", i)),
                                    f"priority tag '{tag}' matches none of the selected principles", "warning"))
    principles = [available[pid] for pid in sorted(chosen)]
    if "revision" in spec.stages:
        for p in principles:
            if p.critique is None:
                diags.append(Diagnostic(path, line_for(lines, ("principles",)),
                                        f"principle '{p.id}' has no Critique/Revision sections, which stage 'revision' needs"))
    if "feedback" in spec.stages:
        for p in principles:
            if p.preference is None:
                diags.append(Diagnostic(path, line_for(lines, ("principles",)),
                                        f"principle '{p.id}' has no '## Preference' section, which stage 'feedback' needs", "warning"))
    return principles, diags


def load_constitution(path: str | Path, principles_dir: str | Path | None = None) -> Constitution:
    """Load a constitution and the principles it selects; raise a one-line CaiError on problems.

    Principles come from ``principles_dir`` (one folder, or several joined by ``os.pathsep``), by
    default the ``principles/`` folder beside the constitution's folder (``constitution/x.yaml`` →
    ``principles/``); an id found in none of them is taken from the shipped library.
    """
    from cai.principles.library import load_principles_dir

    path = str(path)
    text, diags = read_text_file(path)
    if text is None:
        raise diags[0].to_error()
    spec, lines, diags = parse_constitution_text(text, path)
    if spec is None:
        raise next(d for d in diags if d.severity == "error").to_error()
    from cai.principles.library import needs_library, shipped_principles, split_dirs

    pdirs = split_dirs(principles_dir) or [Path(path).resolve().parent.parent / "principles"]
    available = load_principles_dir(pdirs)
    library = shipped_principles(exclude=pdirs) if needs_library(spec.principles.ids, available) else None
    principles, diags = select_principles(spec, available, path, lines, library)
    for d in diags:
        if d.severity == "error":
            raise d.to_error()
    return Constitution(spec, principles, path)
