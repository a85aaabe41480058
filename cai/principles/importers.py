"""Convert published critique/revision instruction sets into principle files and a constitution.

Supported inputs:
- ``anthropic``: the CAI paper repository's critique/revision JSON,
  ``{"name": {"prompt": ["CritiqueRequest: ..."], "edit_request": "RevisionRequest: ..."}}``,
  or its RL multiple-choice principle list, a JSON list of strings ending in ``Options:``.
- ``hf``: Hugging Face llm-swarm constitution JSON,
  ``{"constitutions": [{"critic": ..., "revision": ...}], "system_chat": [[{role, content}, ...]]}``,
  or just the list of ``{"critic": ..., "revision": ...}``.
- ``langchain``: a JSON list, or dict, of ``{name, critique_request, revision_request}``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from cai.principles.constitution import ConstitutionSpec, Exemplar, Message, Sampling, Selection
from cai.core.errors import CaiError
from cai.core.files import read_text_file
from cai.principles.principle import Principle, principle_to_markdown

FORMATS = ("anthropic", "hf", "langchain")
_WRAPPERS = re.compile(r"^\s*(CritiqueRequest|Critique|RevisionRequest|Revision)\s*:\s*", re.IGNORECASE)
# The few-shot format ends a request with the cue for the answer: "...\n\nCritique:".
_CUES = re.compile(r"\n\s*(Critique|Revision)\s*:\s*$", re.IGNORECASE)


def strip_wrapper(text: str) -> str:
    """Drop a leading ``CritiqueRequest:``-style label, a trailing ``Critique:`` cue and whitespace."""
    text = _WRAPPERS.sub("", text.strip(), count=1).strip()
    return _CUES.sub("", text).strip()


def slug(text: str) -> str:
    s = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    s = re.sub(r"-+", "-", s)
    if not s or not s[0].isalpha():
        s = "p-" + s if s else "p"
    return s[:60].rstrip("-")


class Imported:
    """The result of an import: principles and the constitution spec that lists them."""

    def __init__(self, principles: list[Principle], spec: ConstitutionSpec):
        self.principles = principles
        self.spec = spec

    def write(self, out: str | Path) -> list[Path]:
        import yaml

        out = Path(out)
        pdir, cdir = out / "principles", out / "constitution"
        pdir.mkdir(parents=True, exist_ok=True)
        cdir.mkdir(parents=True, exist_ok=True)
        written = []
        for p in self.principles:
            target = pdir / f"{p.id}.md"
            target.write_text(principle_to_markdown(p), encoding="utf-8")
            written.append(target)
        target = cdir / f"{self.spec.name}.yaml"
        data = self.spec.model_dump(mode="json", exclude_defaults=True)
        data = {"name": self.spec.name, "version": self.spec.version, **data}
        target.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100), encoding="utf-8")
        written.append(target)
        return written


def _unique(base: str, taken: set[str]) -> str:
    name, i = base, 2
    while name in taken:
        name = f"{base}-{i}"
        i += 1
    taken.add(name)
    return name


def _load_json(path: str):
    text, diags = read_text_file(path)
    if text is None:
        raise diags[0].to_error()
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise CaiError(f"invalid JSON: {exc.msg}", path=path, line=exc.lineno) from None


def import_file(fmt: str, path: str | Path, name: str | None = None, tag: str | None = None) -> Imported:
    if fmt not in FORMATS:
        raise CaiError(f"unknown format '{fmt}'; choose one of: {', '.join(FORMATS)}")
    path = str(path)
    data = _load_json(path)
    name = slug(name or f"{fmt}-{Path(path).stem}")
    tag = slug(tag or f"imported-{fmt}")
    make = {"anthropic": _anthropic, "hf": _hf, "langchain": _langchain}[fmt]
    principles, exemplars, stages = make(data, path, tag)
    if not principles:
        raise CaiError("no principles found in the file", path=path)
    spec = ConstitutionSpec(
        name=name, version="1.0.0",
        description=f"Imported from {Path(path).name} ({fmt} format).",
        principles=Selection(tags=[tag]), sampling=Sampling(strategy="random", seed=0),
        stages=stages, exemplars=exemplars,
    )
    return Imported(principles, spec)


def _principle(pid: str, tag: str, title: str, **sections) -> Principle:
    return Principle(id=pid, version="1.0.0", title=title, tags=[tag], **sections)


def _anthropic(data, path, tag):
    taken: set[str] = set()
    if isinstance(data, list):  # RL multiple-choice principle list
        out = []
        for i, item in enumerate(data):
            if not isinstance(item, str) or not item.strip():
                raise CaiError(f"item {i} must be a non-empty string", path=path)
            question = re.sub(r"\s*Options:\s*$", "", item.strip()).strip()
            if not question:
                raise CaiError(f"item {i} holds no question before 'Options:'", path=path)
            pid = _unique(f"{tag}-choice-{i + 1}", taken)
            out.append(_principle(pid, tag, _title(question), preference=question))
        return out, [], ["feedback"]
    if not isinstance(data, dict):
        raise CaiError("expected a JSON object of named critique/revision entries or a list of strings", path=path)
    out = []
    for key, entry in data.items():
        if not isinstance(entry, dict) or "prompt" not in entry or "edit_request" not in entry:
            raise CaiError(f"entry '{key}' needs 'prompt' and 'edit_request'", path=path)
        prompt = entry["prompt"]
        critique = prompt[0] if isinstance(prompt, list) and prompt else prompt
        if not _text(critique) or not _text(entry["edit_request"]):
            raise CaiError(f"entry '{key}': 'prompt' and 'edit_request' must be non-empty text", path=path)
        pid = _unique(slug(f"{tag}-{key}"), taken)
        out.append(_principle(pid, tag, f"{key} (imported)", critique=strip_wrapper(critique),
                              revision=strip_wrapper(entry["edit_request"])))
    return out, [], ["revision"]


def _hf(data, path, tag):
    if isinstance(data, list):  # the older llm-swarm file: just the list of {critic, revision}
        data = {"constitutions": data}
    if not isinstance(data, dict) or not isinstance(data.get("constitutions"), list):
        raise CaiError("expected an object with a 'constitutions' list (or a list of {critic, revision})", path=path)
    taken: set[str] = set()
    out = []
    for i, entry in enumerate(data["constitutions"]):
        if not isinstance(entry, dict) or not _text(entry.get("critic")) or not _text(entry.get("revision")):
            raise CaiError(f"constitutions[{i}] needs non-empty 'critic' and 'revision'", path=path)
        pid = _unique(f"{tag}-{i + 1}", taken)
        out.append(_principle(pid, tag, _title(strip_wrapper(entry["critic"])),
                              critique=strip_wrapper(entry["critic"]), revision=strip_wrapper(entry["revision"])))
    exemplars = []
    chats = data.get("system_chat") or []
    if not isinstance(chats, list):
        raise CaiError("'system_chat' must be a list of chats", path=path)
    for j, chat in enumerate(chats):
        try:
            exemplars.append(Exemplar(messages=[Message(role=m["role"], content=m["content"]) for m in chat]))
        except (KeyError, TypeError, ValueError):
            raise CaiError(f"system_chat[{j}] must be a list of {{role, content}} messages", path=path) from None
    return out, exemplars, ["revision"]


def _langchain(data, path, tag):
    if isinstance(data, dict):
        entries = [dict(v, name=v.get("name", k)) if isinstance(v, dict) else v for k, v in data.items()]
    elif isinstance(data, list):
        entries = data
    else:
        raise CaiError("expected a JSON list or object of {name, critique_request, revision_request}", path=path)
    taken: set[str] = set()
    out = []
    for i, e in enumerate(entries):
        if not isinstance(e, dict) or not _text(e.get("critique_request")) or not _text(e.get("revision_request")):
            raise CaiError(f"principle {i} needs 'critique_request' and 'revision_request'", path=path)
        name = str(e.get("name") or f"principle-{i + 1}")
        pid = _unique(slug(f"{tag}-{name}"), taken)
        out.append(_principle(pid, tag, name.replace("_", " ").strip() or pid,
                              critique=strip_wrapper(e["critique_request"]), revision=strip_wrapper(e["revision_request"])))
    return out, [], ["revision"]


def _text(value) -> bool:
    """A non-empty string once its ``CritiqueRequest:``-style wrapper is stripped."""
    return isinstance(value, str) and bool(strip_wrapper(value))


def _title(text: str, limit: int = 60) -> str:
    first = text.strip().split("\n")[0]
    return first if len(first) <= limit else first[: limit - 1].rsplit(" ", 1)[0] + "…"
