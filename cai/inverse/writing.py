"""Proposed principles as principle files and a constitution, ready for `cai generate` and `cai label`.

A proposal "Select the response that X." becomes a principle whose preference question is the
proposal itself, whose critique request asks whether the response X, and whose revision request
asks for a rewrite so that it X: so it can drive SL-CAI as well as AI feedback. Its description
records where it came from: the data's hash, the models, the votes file, and its measures on the
train pairs and the selected set's on the held-out pairs. The files lint clean (the test
suite runs `cai principles lint` on them).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import yaml

from cai.core.runs import write_atomic
from cai.inverse.proposals import LEAD
from cai.principles.principle import Principle, principle_to_markdown

STOPWORDS = {"a", "an", "the", "to", "of", "and", "or", "its", "it", "is", "in", "on", "for", "that", "this",
             "be", "by", "as", "at", "more", "most", "their", "your", "any"}
VERSION = "0.1.0"
TAG = "proposed"


def body_of(text: str) -> str:
    """The words after "Select the response that", without the full stop."""
    return text.removeprefix(LEAD).strip().rstrip(".").strip()


def slug(text: str, taken: set[str], words: int = 5) -> str:
    """A principle id from the proposal's key words, unique among ``taken`` (which it joins)."""
    parts = [w for w in re.findall(r"[a-z0-9]+", body_of(text).lower()) if w not in STOPWORDS][:words]
    base = "-".join(parts) or "principle"
    if not base[0].isalpha():
        base = f"p-{base}"
    pid, k = base, 2
    while pid in taken:
        pid, k = f"{base}-{k}", k + 1
    taken.add(pid)
    return pid


def candidate_principle(text: str, pid: str, description: str = "") -> Principle:
    """The principle a proposal stands for (critique, revision and preference requests)."""
    body = body_of(text)
    title = body[:1].upper() + body[1:]
    return Principle(
        id=pid, version=VERSION, title=title[:120], tags=[TAG], description=description,
        critique=f"Check whether the assistant's last response {body}. Point out specifically where it does not.",
        revision=f"Rewrite the assistant's last response so that it {body}, keeping what was good about it.",
        preference=f"{LEAD} {body}.",
    )


def _est(m: dict | None) -> str:
    if not m or m.get("value") is None:
        return "n/a"
    ci = m.get("ci")
    return f"{m['value']:.3f}" + (f" (95% CI {ci[0]:.3f} to {ci[1]:.3f})" if ci else "")


def provenance_text(measures: dict, info: dict) -> str:
    """The description paragraph that says where a proposed principle came from."""
    return (
        f"Proposed by `cai principles propose` from {info['file']} (data sha256 {info['data_hash'][:16]}), "
        f"proposer {info['proposer']}, judge {info['judge']}; proposed {info['size']} time(s) over "
        f"{info['train']} train pairs. On the train pairs: relevance {_est(measures['relevance'])}, "
        f"accuracy {_est(measures['accuracy'])}, strength {_est(measures['strength'])} "
        f"({measures['agree']} agree, {measures['disagree']} disagree, {measures['abstain']} abstain). "
        f"The selected set on {info['held_out']} held-out pairs: accuracy {_est(info['held_out_accuracy'])}. "
        f"Votes: {info['votes']}; cai {info['cai_version']}."
    )


def write_outputs(out: Path, principles: Sequence[Principle], name: str, description: str) -> list[Path]:
    """``OUT/principles/<id>.md`` for each principle and ``OUT/constitution/<name>.yaml`` using all
    of them (every principle, each comparison and critique round)."""
    written = []
    (out / "principles").mkdir(parents=True, exist_ok=True)
    (out / "constitution").mkdir(parents=True, exist_ok=True)
    for p in principles:
        path = out / "principles" / f"{p.id}.md"
        write_atomic(path, [principle_to_markdown(p)])
        written.append(path)
    spec = {"name": name, "version": VERSION, "description": description,
            "principles": {"ids": [p.id for p in principles]},
            "sampling": {"strategy": "all", "seed": 0, "per_round": 1}, "rounds": 1,
            "stages": ["revision", "feedback"]}
    path = out / "constitution" / f"{name}.yaml"
    write_atomic(path, [yaml.safe_dump(spec, sort_keys=False, allow_unicode=True, width=100)])
    return written + [path]
