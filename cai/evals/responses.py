"""Reading responses produced elsewhere, to judge them without generating.

Accepted inputs:

- JSONL, one response per line, either tied to a probe of a loaded suite::

      {"suite": "over-refusal", "probe": "kill-process", "response": "Run kill PID."}
      {"suite": "sycophancy-feedback", "probe": "poem-cliche", "variant": "owned", "response": "..."}
      {"suite": "harmful", "probe": "escalation-chemistry", "messages": [...whole conversation...]}

  (``probes.jsonl`` written by ``cai eval behavior`` reads back too), or free-standing with the
  kind of request said::

      {"kind": "over-refusal", "prompt": "How do I kill a Python process?", "response": "...",
       "label": "full_refusal"}

  ``label`` (optional) is a person's refusal class: full_compliance, partial_refusal, full_refusal.
- XSTest's annotated completions CSV (``prompt,completion,...,final_label``).

A bad row is skipped and counted with its ``file:line`` (the summary lists them); a file with no
usable row is an error.
"""

from __future__ import annotations

import json
from pathlib import Path

from cai.core.errors import CaiError, looked_at
from cai.core.files import open_text
from cai.evals.rules import ProbeRun
from cai.evals.suites import LoadedSuite, Probe, Suite, load_suite
from cai.evals.xstest import LABELS, read_completions

FREE_KINDS = {"harmful": ["harm-crime-against-others"], "over-refusal": ["rlhf-over-refusal"],
              "hallucination": ["rlhf-hallucination"]}


class _Reader:
    def __init__(self, path: Path, suites: dict[str, LoadedSuite], model: str):
        self.path, self.suites, self.model = path, suites, model
        self.runs: dict[tuple[str, str], ProbeRun] = {}
        self.free: dict[str, list[Probe]] = {}
        self.skipped: list[str] = []

    def suite(self, name: str, row: dict | None = None) -> LoadedSuite:
        if name not in self.suites:
            try:
                self.suites[name] = load_suite(name)
            except CaiError:
                if row is not None and self._rebuild(name, row):  # a probes.jsonl row of an imported suite
                    return self.suites[name]
                raise ValueError(f"unknown suite '{name}' (pass it with --suites)") from None
        return self.suites[name]

    def _rebuild(self, name: str, row: dict) -> bool:
        """A suite that is no file (XSTest prompts imported from a CSV: ``xstest-safe``), rebuilt
        from the ``probes.jsonl`` rows ``cai eval behavior`` wrote for it: each row carries the
        probe's id, type, principles, kind and conversation. Single-prompt kinds only."""
        kind, convs = row.get("kind"), row.get("conversations")
        if kind not in ("harmful", "over-refusal") or not isinstance(convs, dict) or list(convs) != ["main"]:
            return False
        self.suites[name] = LoadedSuite(
            Suite.model_construct(suite=name, version=str(row.get("suite_version") or "0.0.0"), kind=kind, probes=[]),
            str(self.path), "")
        return True

    def _rebuilt_probe(self, loaded: LoadedSuite, row: dict) -> Probe | None:
        """The probe of a row of a rebuilt suite (made and added on its first row)."""
        if loaded.sha256 or loaded.path != str(self.path):
            return None
        probe = next((p for p in loaded.suite.probes if p.id == row["probe"]), None)
        if probe is None:
            messages = _messages(row["conversations"]["main"])
            prompt = next((m["content"] for m in messages if m["role"] == "user"), None)
            principles = row.get("principles") or FREE_KINDS[loaded.suite.kind]
            probe = Probe(id=str(row["probe"]), principles=list(principles), type=str(row.get("type") or ""),
                          prompt=prompt)
            loaded.suite.probes.append(probe)
        return probe

    def add(self, row: dict, line: int) -> None:
        label = row.get("label") or row.get("human_label")
        if label is not None and label not in LABELS:
            raise ValueError(f"label must be one of full_compliance, partial_refusal, full_refusal, got '{label}'")
        label = LABELS.get(label) if label else None
        if "suite" in row and "probe" in row:
            loaded = self.suite(str(row["suite"]), row)
            probe = self._rebuilt_probe(loaded, row) or next(
                (p for p in loaded.suite.probes if p.id == row["probe"]), None)
            if probe is None:
                raise ValueError(f"suite '{loaded.name}' has no probe '{row['probe']}'")
            convs = self.conversations(row, probe)
        else:
            kind = row.get("kind")
            if kind not in FREE_KINDS:
                raise ValueError("give suite and probe, or kind (one of " + ", ".join(FREE_KINDS) + ")")
            prompt, response = row.get("prompt"), row.get("response", row.get("completion"))
            if not isinstance(prompt, str) or not isinstance(response, str):
                raise ValueError("a free-standing row needs string prompt and response")
            probe = Probe(id=str(row.get("id") or f"row{line}"), principles=FREE_KINDS[kind], prompt=prompt)
            if (f"responses-{kind}", probe.id) in self.runs:
                raise ValueError(f"id '{probe.id}' given twice")
            self.free.setdefault(kind, []).append(probe)
            loaded = None
            convs = {"main": [{"role": "user", "content": prompt}, {"role": "assistant", "content": response}]}
        key = (loaded.name if loaded else f"responses-{row['kind']}", probe.id)
        run = self.runs.get(key)
        if run is None:
            run = self.runs[key] = ProbeRun(loaded, probe, self.model, {}, label, f"{self.path}:{line}")
        for variant in convs:
            if variant in run.conversations:
                raise ValueError(f"probe '{probe.id}' variant '{variant}' given twice")
        run.conversations.update(convs)

    def conversations(self, row: dict, probe: Probe) -> dict[str, list[dict]]:
        if isinstance(row.get("conversations"), dict):
            return {k: _messages(v) for k, v in row["conversations"].items()}
        variants = probe.variants()
        variant = row.get("variant") or next(iter(variants))
        if variant not in variants:
            raise ValueError(f"probe '{probe.id}' has no variant '{variant}' ({', '.join(variants)})")
        if "messages" in row:
            messages = _messages(row["messages"])
            if messages[-1]["role"] != "assistant":
                raise ValueError("messages must end with the assistant's response")
            return {variant: messages}
        response = row.get("response", row.get("completion"))
        if not isinstance(response, str):
            raise ValueError("give response (a string) or messages")
        template = variants[variant]
        if sum(m["content"] is None for m in template) != 1:
            raise ValueError(f"probe '{probe.id}' has several turns: give the whole conversation as messages")
        return {variant: template[:-1] + [{"role": "assistant", "content": response}]}

    def finish(self) -> list[ProbeRun]:
        for kind, probes in self.free.items():
            loaded = LoadedSuite(Suite(suite=f"responses-{kind}", version="0.0.0", kind=kind, probes=probes),
                                 str(self.path), "")
            for run in self.runs.values():
                if run.suite is None and run.probe in probes:
                    run.suite = loaded
        out = []
        for run in self.runs.values():
            need = set(run.probe.variants())
            if set(run.conversations) != need:
                self.skipped.append(f"{run.origin}: probe '{run.probe.id}' needs variants {sorted(need)}, "
                                    f"got {sorted(run.conversations)}")
                continue
            out.append(run)
        return out


def _messages(value) -> list[dict]:
    if not isinstance(value, list) or not value or not all(
            isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str) for m in value):
        raise ValueError("messages must be a non-empty list of {role, content} with string content")
    return [{"role": m["role"], "content": m["content"]} for m in value]


def read_responses(path: str | Path, suites: list[LoadedSuite], model: str = "candidate") -> tuple[list[ProbeRun], list[str]]:
    """``(runs, skipped rows as "file:line: why")`` from a responses file (see the module doc)."""
    path = Path(path)
    if not path.exists():
        raise CaiError(f"no such file{looked_at(path)}", path=path)
    if path.suffix == ".csv":
        rows, skipped = read_completions(path)
        runs = [ProbeRun(s, p, model, {"main": [{"role": "user", "content": p.prompt},
                                                 {"role": "assistant", "content": text}]}, label, f"{path}:{line}")
                for s, p, text, label, line in rows]
        return runs, skipped
    reader = _Reader(path, {s.name: s for s in suites}, model)
    with open_text(path) as fh:
        for line, text in enumerate(fh, 1):
            if not text.strip():
                continue
            try:
                row = json.loads(text)
                if not isinstance(row, dict):
                    raise ValueError("a row must be a JSON object")
                reader.add(row, line)
            except (ValueError, TypeError) as exc:  # JSONDecodeError is a ValueError
                reader.skipped.append(f"{path}:{line}: {exc}")
    runs = reader.finish()
    if not runs:
        first = reader.skipped[0] if reader.skipped else f"{path}: empty"
        raise CaiError(f"no usable responses ({len(reader.skipped)} bad rows; first: {first})")
    return runs, reader.skipped
