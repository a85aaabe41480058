"""Multiple-choice evaluation files (HHH-style): rows of ``prompt`` (listing options ``(A) ...``),
``corrects`` and ``incorrects``. Reading, validating and scoring them. The model is right on a row
when a correct option gets the highest probability."""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass
from pathlib import Path

from cai.core.errors import CaiError
from cai.judge.health import failure_text
from cai.judge.templates import DEFAULT_ANSWER_PREFIX, split_answer_prefix

OPTION_LINE = re.compile(r"^\s*\(([A-Z])\)\s?(.*?)\s*$", re.MULTILINE)
LETTER = re.compile(r"^\(?([A-Z])\)?$")


@dataclass
class ChoiceRow:
    prompt: str
    corrects: list[str]  # option letters
    incorrects: list[str]
    origin: str

    @property
    def options(self) -> list[str]:
        return sorted(set(self.corrects) | set(self.incorrects))

    def conversation(self) -> list[dict]:
        question, prefix = split_answer_prefix(self.prompt)
        return [{"role": "user", "content": question},
                {"role": "assistant", "content": prefix or DEFAULT_ANSWER_PREFIX}]


def is_choice_file(path: Path) -> bool:
    """A JSON(L) file whose first row has ``corrects`` and ``incorrects``."""
    if not path.is_file() or path.suffix not in (".jsonl", ".json"):
        return False
    with open(path, encoding="utf-8-sig", errors="replace") as fh:
        first = next((line for line in fh if line.strip()), "")
    try:
        row = json.loads(first)
    except json.JSONDecodeError:
        return False
    if isinstance(row, list):  # a .json array: look at its first element
        row = row[0] if row else {}
    return isinstance(row, dict) and "corrects" in row and "incorrects" in row


def _rows(path: Path):
    text = path.read_text(encoding="utf-8-sig")  # the one rule: cai.core.files.open_text
    stripped = text.lstrip()
    if path.suffix == ".json" and stripped.startswith("["):
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as exc:
            raise CaiError(f"invalid JSON: {exc.msg}", path=str(path), line=exc.lineno) from None
        yield from ((i, row) for i, row in enumerate(rows, 1))
        return
    for lineno, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                yield lineno, json.loads(line)
            except json.JSONDecodeError as exc:
                raise CaiError(f"invalid JSON: {exc.msg}", path=str(path), line=lineno) from None


def read_choice_rows(path: str | Path, limit: int | None = None, seed: int = 0) -> list[ChoiceRow]:
    """Every row, validated (a one-line error names file, line and field)."""
    path = Path(path)
    out = []
    for lineno, row in _rows(path):
        if limit is not None and len(out) >= limit:
            break
        out.append(_parse(row, seed, str(path), lineno))
    if not out:
        raise CaiError("no rows", path=str(path))
    return out


def _parse(row, seed: int, path: str, line: int) -> ChoiceRow:
    def fail(message: str):
        raise CaiError(message, path=path, line=line)

    if not isinstance(row, dict):
        fail("a row must be a JSON object")
    prompt = row.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        fail("'prompt' must be a non-empty string")
    lists = {}
    for field in ("corrects", "incorrects"):
        value = row.get(field)
        if not isinstance(value, list) or not value or not all(isinstance(v, str) and v.strip() for v in value):
            fail(f"'{field}' must be a non-empty list of option texts or letters")
        lists[field] = [v.strip() for v in value]
    listed = {m.group(1): m.group(2) for m in OPTION_LINE.finditer(prompt)}
    if not listed and not all(LETTER.match(v) for vs in lists.values() for v in vs):
        # Texts, and a prompt that lists no options: show them, in a seeded shuffled order.
        texts = lists["corrects"] + lists["incorrects"]
        order = random.Random(f"{seed}:{line}").sample(range(len(texts)), len(texts))
        letters = [chr(ord("A") + k) for k in range(len(texts))]
        listed = {letters[k]: texts[i] for k, i in enumerate(order)}
        prompt = prompt.rstrip() + "\n\nOptions:\n" + "\n".join(f"({k}) {v}" for k, v in listed.items())
    by_text = {text: letter for letter, text in listed.items()}
    letters = {}
    for field, values in lists.items():
        letters[field] = []
        for i, value in enumerate(values):
            m = LETTER.match(value)
            if m and (not listed or m.group(1) in listed):
                letters[field].append(m.group(1))
            elif value in by_text:
                letters[field].append(by_text[value])
            else:
                fail(f"{field}[{i}]: {value[:40]!r} is not one of the options the prompt lists")
    both = set(letters["corrects"]) & set(letters["incorrects"])
    if both:
        fail(f"option ({sorted(both)[0]}) is both correct and incorrect")
    return ChoiceRow(prompt, letters["corrects"], letters["incorrects"], f"{path}:{line}")


def score_rows(backend, rows: list[ChoiceRow], chunk_size: int = 64,
               health=None) -> tuple[list[dict[str, float] | None], list[str]]:
    """Option probabilities per row, a chunk of rows per score_choices call, and the rows the
    model could not take (too long, refused by the chat template) as ``["file:line: why", ...]``:
    such a row fails alone (None in its place), the others are scored. ``health``: a
    :class:`cai.judge.health.HealthTracker` that checks each row (NaN, label mass below its floor
    fail the row too) and keeps the judge-health record."""
    from cai.backends.rows import score_rows as score_each

    out, failures = [], []
    for start in range(0, len(rows), chunk_size):
        chunk = rows[start:start + chunk_size]
        probs, rejected = score_each(backend, [r.conversation() for r in chunk], [r.options for r in chunk])
        for i, p in enumerate(probs):
            if health is None:
                continue
            reason = health.judgement(p, id=chunk[i].origin)
            if p is not None and reason is not None:
                failures.append(f"{chunk[i].origin}: {failure_text(reason, p, health.policy)}")
                probs[i] = None
        out += probs
        failures += [f"{chunk[i].origin}: {why}" for i, why in rejected.items()]
    return out, failures
