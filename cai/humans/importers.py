"""Import human preference labels: Anthropic HH-RLHF, TRL preference datasets, CSV with a column map.

Every format becomes ``PreferencePair`` rows with ``source="human"``, written by
:func:`cai.data.pairs.write_pairs`. A row that cannot be parsed stops the import with a ``CaiError``
naming file and line, or with ``skip_invalid`` is counted and skipped. A pair whose chosen and
rejected responses are the same is dropped and counted: it teaches a reward model nothing. So is a
pair with an empty (or whitespace-only) response, in every format: it is never written.

HH-RLHF rows hold two whole transcripts (``"\\n\\nHuman: …\\n\\nAssistant: …"``) that differ only in
the last assistant turn: the shared turns become the prompt, the two last turns chosen/rejected.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

from cai.core.errors import CaiError, looked_at
from cai.core.files import csv_rows
from cai.data.pair_split import prompt_messages, split_hh
from cai.data.pairs import (EMPTY_RESPONSE, INVALID, PROMPT_REPEATED, RATING_COLUMNS, SCORE_COLUMNS, SCORE_TIES,
                       TIES_DROPPED, PreferencePair, pair_from_row, provenance_json, read_pairs, write_pairs)

FORMATS = ("hh", "trl", "csv")
SKIP_HINT = " (use --skip-invalid to skip bad rows)"


@dataclass(init=False)
class CsvMapping:
    """Which CSV columns hold the prompt and the two responses, and how to read a label column.

    Without ``label_column`` the ``chosen_column`` response is the preferred one. With it,
    ``chosen_column`` and ``rejected_column`` hold responses A and B and the label says which is
    better (or a tie). ``rater_column`` names a column whose value becomes each pair's ``labeler``.
    The same names are ``cai humans import``'s flags (``--prompt-column`` ...) and the fields of a
    ``cai run`` recipe's ``humans:`` block; the old ``prompt_col`` spellings are still accepted.
    """

    prompt_column: str
    chosen_column: str
    rejected_column: str
    label_column: str | None
    rater_column: str | None
    label_a: list[str]
    label_b: list[str]
    label_tie: list[str]

    def __init__(self, prompt_column: str = "prompt", chosen_column: str = "chosen", rejected_column: str = "rejected",
                 label_column: str | None = None, rater_column: str | None = None, label_a: list[str] | None = None,
                 label_b: list[str] | None = None, label_tie: list[str] | None = None, **old: str | None):
        for key, value in old.items():  # prompt_col, chosen_col, rejected_col, label_col (before issue 23)
            if key not in OLD_COLUMN_NAMES:
                raise TypeError(f"CsvMapping() got an unexpected keyword argument '{key}'")
            if OLD_COLUMN_NAMES[key] == "prompt_column":
                prompt_column = value
            elif OLD_COLUMN_NAMES[key] == "chosen_column":
                chosen_column = value
            elif OLD_COLUMN_NAMES[key] == "rejected_column":
                rejected_column = value
            else:
                label_column = value
        self.prompt_column, self.chosen_column, self.rejected_column = prompt_column, chosen_column, rejected_column
        self.label_column, self.rater_column = label_column, rater_column
        self.label_a, self.label_b, self.label_tie = label_a or ["A"], label_b or ["B"], label_tie or ["tie"]

    @classmethod
    def from_values(cls, label_values: str = "A,B,tie", **columns) -> CsvMapping:
        """A mapping from ``--label-values``' text: three comma-separated values for A, B and tie,
        ``|`` between alternatives (``"A|left,B|right,tie|same"``)."""
        values = [v.strip() for v in label_values.split(",")]
        if len(values) != 3 or not all(values):
            raise CaiError(f"--label-values expects three comma-separated values (A,B,tie), got '{label_values}'")
        a, b, tie = ([alt.strip() for alt in v.split("|") if alt.strip()] for v in values)
        return cls(label_a=a, label_b=b, label_tie=tie, **columns)


OLD_COLUMN_NAMES = {"prompt_col": "prompt_column", "chosen_col": "chosen_column",
                    "rejected_col": "rejected_column", "label_col": "label_column"}


@dataclass
class ImportSummary:
    read: int = 0
    written: int = 0
    invalid: int = 0
    identical: int = 0
    empty_response: int = 0
    prompt_repeated: int = 0
    score_ties: int = 0
    """Rows whose two ratings (``score_chosen``/``score_rejected``) were equal: written as p = 0.5."""
    ties_dropped: int = 0
    """Such rows left out (``ties="drop"``)."""
    score_columns: str = ""
    """The rating columns read, kept on every pair as ``score_chosen``/``score_rejected``."""
    out: str = ""

    def line(self) -> str:
        text = (f"read {self.read} rows: wrote {self.written} pairs to {self.out}, "
                f"skipped {self.invalid} invalid, dropped {self.identical} identical, "
                f"{self.empty_response} with an empty response")
        if self.prompt_repeated:
            text += f"; stripped the prompt repeated inside the responses of {self.prompt_repeated}"
        if self.score_columns:
            ties = (f"dropped {self.ties_dropped} ties" if self.ties_dropped
                    else f"{self.score_ties} ties written with p_chosen 0.5")
            text += f"; read ratings from {self.score_columns} (kept on each pair): {ties}"
        return text


class _Invalid(ValueError):
    """A row that cannot be parsed; carries its line number."""

    def __init__(self, message: str, line: int):
        super().__init__(message)
        self.line = line


def import_labels(path: str | Path, fmt: str, out: str | Path, *, skip_invalid: bool = False,
                  csv_mapping: CsvMapping | None = None, ties: str = "half") -> ImportSummary:
    """Read ``path`` in ``fmt`` (hh, trl or csv) and write the pairs to the folder ``out``.
    Rows with equal ratings (UltraFeedback's ``score_chosen``/``score_rejected``) are ties:
    p_chosen 0.5 (``ties="half"``) or left out and counted (``ties="drop"``).

    The output folder is replaced only once every row has been read: a bad row (without
    ``skip_invalid``) leaves whatever was there before untouched.
    """
    path = Path(path)
    summary = ImportSummary(out=str(out))
    rows = _read(path, fmt, summary, skip_invalid, csv_mapping, ties)
    provenance = provenance_json(imported_from=str(path), format=fmt,
                                 imported_at=datetime.now(timezone.utc).isoformat(timespec="seconds"))
    pairs = _keep_distinct(rows, summary, provenance)
    first = next(pairs, None)  # look before writing: an import with nothing to write keeps the old output
    if first is None:
        what = "no rows" if summary.read == 0 else "no usable pairs"
        raise CaiError(f"{what} to import ({summary.invalid} invalid, {summary.identical} identical, "
                       f"{summary.empty_response} with an empty response)", path=str(path))
    # write_pairs streams to a temporary file and replaces data.jsonl only when complete.
    summary.written = write_pairs(itertools.chain([first], pairs), out)
    return summary


def check_labels(path: str | Path, fmt: str, *, skip_invalid: bool = False,
                 csv_mapping: CsvMapping | None = None) -> ImportSummary:
    """Read ``path`` as :func:`import_labels` would, writing nothing: the same errors (missing
    columns, bad label values, ...) and counts, for checking a label file before a run."""
    path = Path(path)
    summary = ImportSummary(out="")
    rows = _read(path, fmt, summary, skip_invalid, csv_mapping)
    summary.written = sum(1 for _ in _keep_distinct(rows, summary, ""))
    if not summary.written:
        raise CaiError(f"no usable pairs to import ({summary.invalid} invalid, {summary.identical} identical, "
                       f"{summary.empty_response} with an empty response)", path=str(path))
    return summary


def _read(path: Path, fmt: str, summary: ImportSummary, skip_invalid: bool,
          csv_mapping: CsvMapping | None, ties: str = "half") -> Iterator[PreferencePair]:
    if fmt not in FORMATS:
        raise CaiError(f"unknown format '{fmt}'; expected one of {', '.join(FORMATS)}")
    if not path.exists():
        raise CaiError(f"no such file or folder{looked_at(path)}", path=str(path))
    if fmt == "hh":
        return _hh_pairs(path, summary, skip_invalid)
    if fmt == "csv":
        return _csv_pairs(path, csv_mapping or CsvMapping(), summary, skip_invalid, ties)
    return _trl_pairs(path, summary, skip_invalid, ties)


def _keep_distinct(pairs: Iterator[PreferencePair], summary: ImportSummary,
                   provenance: str) -> Iterator[PreferencePair]:
    for pair in pairs:
        if pair.empty_response:
            summary.empty_response += 1
            continue
        if pair.identical:
            summary.identical += 1
            continue
        if not pair.provenance:
            pair.provenance = provenance
        yield pair


def _report(exc: _Invalid, path: Path, summary: ImportSummary, skip_invalid: bool) -> None:
    if not skip_invalid:
        raise CaiError(str(exc) + SKIP_HINT, path=str(path), line=exc.line)
    summary.invalid += 1


# ---------------------------------------------------------------- Anthropic HH-RLHF


def _hh_pairs(path: Path, summary: ImportSummary, skip_invalid: bool) -> Iterator[PreferencePair]:
    for lineno, row in _jsonl_rows(path, summary, skip_invalid):
        try:
            missing = [k for k in ("chosen", "rejected") if k not in row]
            if missing:
                raise ValueError(f"missing column(s) {', '.join(missing)}; an HH row has 'chosen' and 'rejected'")
            prompt, chosen, rejected = split_hh(row["chosen"], row["rejected"])
            yield pair_from_row({"prompt": prompt, "chosen": chosen, "rejected": rejected},
                                source="human", origin=f"{path.name}:{lineno}")
        except ValueError as exc:
            _report(_Invalid(str(exc), lineno), path, summary, skip_invalid)


def _jsonl_rows(path: Path, summary: ImportSummary, skip_invalid: bool) -> Iterator[tuple[int, dict]]:
    if path.is_dir():
        raise CaiError("expected a JSONL file (optionally .gz), got a folder", path=str(path))
    from cai.core.files import jsonl_rows

    def invalid(lineno: int, message: str) -> None:
        summary.read += 1
        _report(_Invalid(message, lineno), path, summary, skip_invalid)

    for lineno, row in jsonl_rows(path, on_error=invalid):
        summary.read += 1
        yield lineno, row


# ---------------------------------------------------------------- TRL preference datasets


def _trl_pairs(path: Path, summary: ImportSummary, skip_invalid: bool, ties: str = "half") -> Iterator[PreferencePair]:
    """Any TRL preference dataset ``read_pairs`` understands (a saved DatasetDict: its train split)."""
    counts: dict = {}
    for pair in read_pairs(path, source="human", skip_invalid=skip_invalid, counts=counts, ties=ties):
        summary.read += 1
        yield pair
    summary.score_ties, summary.score_columns = counts.get(SCORE_TIES, 0), counts.get(SCORE_COLUMNS, "")
    summary.ties_dropped = counts.get(TIES_DROPPED, 0)
    summary.read += summary.ties_dropped
    summary.invalid = counts[INVALID]
    summary.empty_response += counts[EMPTY_RESPONSE]
    summary.prompt_repeated = counts[PROMPT_REPEATED]
    summary.read += summary.invalid + counts[EMPTY_RESPONSE]


# ---------------------------------------------------------------- CSV


def _csv_pairs(path: Path, mapping: CsvMapping, summary: ImportSummary, skip_invalid: bool,
               ties: str = "half") -> Iterator[PreferencePair]:
    """Rating columns beside the responses (``score_chosen``/``score_rejected``, ...) are read as
    in every other format: kept on the pair, equal ratings a tie (``ties``)."""
    if path.is_dir():
        raise CaiError("expected a CSV file, got a folder", path=str(path))
    labels = {}
    for verdict, values in (("A", mapping.label_a), ("B", mapping.label_b), ("tie", mapping.label_tie)):
        for value in values:
            labels[value.strip().lower()] = verdict
    wanted = [("--prompt-column", mapping.prompt_column), ("--chosen-column", mapping.chosen_column),
              ("--rejected-column", mapping.rejected_column), ("--label-column", mapping.label_column),
              ("--rater-column", mapping.rater_column)]

    def check_header(header: list[str]) -> None:
        missing = [(flag, c) for flag, c in wanted if c and c not in header]
        if missing:  # the options for the columns not found, and a header cell that differs only in case
            folded = {h.strip().lower(): h for h in header}
            near = [f"'{folded[c.strip().lower()]}'" for _, c in missing if c.strip().lower() in folded]
            raise CaiError(f"no column(s) {', '.join(c for _, c in missing)} (columns: {', '.join(header) or 'none'}); "
                           f"pass {'/'.join(dict.fromkeys(f for f, _ in missing))}"
                           + (f" (did you mean {', '.join(near)}?)" if near else ""), path=str(path), line=1)

    counts: dict = {}
    for lineno, row in csv_rows(path, check_header):
        summary.read += 1
        try:
            pair = _csv_pair(row, mapping, labels, f"{path.name}:{lineno}", counts)
        except ValueError as exc:
            _report(_Invalid(str(exc), lineno), path, summary, skip_invalid)
            continue
        summary.score_ties, summary.score_columns = counts.get(SCORE_TIES, 0), counts.get(SCORE_COLUMNS, "")
        if ties == "drop" and pair.score_chosen is not None and pair.score_chosen == pair.score_rejected:
            summary.ties_dropped += 1
            continue
        yield pair


def _csv_pair(row: dict, mapping: CsvMapping, labels: dict[str, str], origin: str,
              counts: dict | None = None) -> PreferencePair:
    cells = {}
    for col in (mapping.prompt_column, mapping.chosen_column, mapping.rejected_column):
        value = row.get(col)
        if value is None:
            raise ValueError(f"row has too few cells (no '{col}')")
        if col == mapping.prompt_column and not value.strip():
            raise ValueError(f"column '{col}' is empty")  # an empty response is dropped and counted instead
        cells[col] = value
    prompt_text = cells[mapping.prompt_column]
    prompt = prompt_messages(prompt_text.strip())  # an HH transcript becomes its turns
    first, second = cells[mapping.chosen_column].strip(), cells[mapping.rejected_column].strip()
    ratings = next(({a: row[a], b: row[b]} for a, b in RATING_COLUMNS if a in row and b in row), {})
    p_chosen = None  # without a label column: 1.0, or 0.5 where the ratings are equal
    if mapping.label_column:
        raw = (row.get(mapping.label_column) or "").strip()
        verdict = labels.get(raw.lower())
        if verdict is None:
            allowed = ", ".join(mapping.label_a + mapping.label_b + mapping.label_tie)
            raise ValueError(f"column '{mapping.label_column}': '{raw}' is not a label ({allowed}); "
                             "--label-values gives your sheet's values for A, B and tie "
                             "(e.g. --label-values 'left,right,same')")
        p_chosen = 0.5 if verdict == "tie" else 1.0
        if verdict == "B":
            first, second = second, first
            ratings = dict(zip(ratings, reversed(list(ratings.values()))))
    data = {"prompt": prompt, "chosen": first, "rejected": second, **ratings}
    if p_chosen is not None:
        data["p_chosen"] = p_chosen
    pair = pair_from_row(data, source="human", origin=origin, counts=counts)
    if mapping.rater_column:
        pair.labeler = (row.get(mapping.rater_column) or "").strip()
    return pair
