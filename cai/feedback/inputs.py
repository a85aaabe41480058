"""The pairs `cai label` compares: `cai sample` output, any preference dataset, or an SL-CAI run.

Whatever the source, a pair is two responses to one prompt; any label it carries is ignored (the
responses are treated as unordered, and the pair id does not depend on their order). Pairs whose
two responses are the same text, pairs with an empty response, and repeats of a pair already seen,
are skipped and counted.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from cai.core.errors import CaiError, looked_at
from cai.data.pairs import EMPTY_RESPONSE, PreferencePair, pair_from_row, read_pairs


def sl_records_path(path: Path) -> Path | None:
    """The records.jsonl of an SL-CAI run folder (or the file itself), else None."""
    if path.is_file() and path.name == "records.jsonl":
        return path
    if path.is_dir() and (path / "records.jsonl").is_file():
        return path / "records.jsonl"
    return None


def _raw_pairs(path: Path, skip_invalid: bool, counts: Counter) -> Iterator[PreferencePair]:
    records = sl_records_path(path)
    if records is None:
        # read_pairs fills in invalid, empty_response and prompt_repeated as it goes.
        yield from read_pairs(path, skip_invalid=skip_invalid, counts=counts)
        return
    from cai.sl.export import preference_rows

    # SL-CAI: the final revision against the draft, one pair per revised record.
    for row in preference_rows(records):
        yield pair_from_row(row, origin=row.get("origin") or records.name)


def iter_inputs(path: str | Path, *, skip_invalid: bool = False, limit: int | None = None,
                counts: Counter | None = None) -> Iterator[PreferencePair]:
    """Distinct, comparable pairs in file order (at most ``limit``); ``counts`` collects the
    skipped ones: ``identical``, ``duplicate``, ``invalid``, ``empty_response`` (and
    ``prompt_repeated``: rows kept after stripping a prompt repeated in their responses)."""
    path = Path(path)
    if not path.exists():
        raise CaiError(f"no such file or folder{looked_at(path)}", path=str(path))
    counts = counts if counts is not None else Counter()
    seen: set[str] = set()
    taken = 0
    for pair in _raw_pairs(path, skip_invalid, counts):
        if limit is not None and taken >= limit:
            return
        if pair.empty_response:
            counts[EMPTY_RESPONSE] += 1
            continue
        problem = _problem(pair)
        if problem:
            if not skip_invalid:
                raise CaiError(f"{pair.origin or path}: {problem} (use --skip-invalid to skip bad rows)")
            counts["invalid"] += 1
            continue
        if pair.identical:
            counts["identical"] += 1
            continue
        if pair.id in seen:
            counts["duplicate"] += 1
            continue
        seen.add(pair.id)
        taken += 1
        yield pair


def _problem(pair: PreferencePair) -> str | None:
    if not any(m.role == "user" for m in pair.prompt):
        return "the prompt has no user message"
    return None
