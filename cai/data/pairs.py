"""The preference pair: one row type shared by AI-revision, AI-feedback and human labels.

Every source (SL-CAI exports, ``cai label``, ``cai humans``, ``cai mix``) writes ``PreferencePair``
rows, and every trainer reads them. On disk a pair is TRL's conversational preference format
(``prompt``/``chosen``/``rejected`` as lists of ``{role, content}``) plus our columns, so TRL's
trainers read our datasets unchanged.

``id`` is a content hash of the prompt and the *unordered* pair of responses: the same two
answers to the same prompt get the same id whichever is chosen, which is what deduplication and
AI-vs-human disagreement reports join on.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any, Iterable, Iterator

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from cai.core.errors import CaiError, looked_at
from cai.data.pair_split import RATING_COLUMNS, SCORE_COLUMNS, SCORE_TIES, read_ratings  # noqa: F401 - re-exported
from cai.data.records import ChatMessage

log = logging.getLogger("cai.data.pairs")

SOURCES = ("ai-revision", "ai-feedback", "human")
# Count keys the readers fill in (``read_pairs(..., counts=)``), reported in every stage's summary.
INVALID = "invalid"
EMPTY_RESPONSE = "empty_response"  # dropped: a response is empty or whitespace only
PROMPT_REPEATED = "prompt_repeated"  # kept: a leading copy of the prompt was stripped from the responses
TIES_DROPPED = "ties_dropped"
MAX_SKIPS_LOGGED = 10  # rows skipped with --skip-invalid logged one line each (all are counted)


class PrincipleScore(BaseModel):
    """The raw scores of one principle's comparison.

    Probabilities are for the response that ends up as ``chosen``. ``p_first`` is from the order
    where it was shown as option (A), ``p_second`` from the swapped order (None if only one order
    was scored); ``p`` is what the label uses (their mean, after any clamping).
    """

    model_config = ConfigDict(extra="forbid")

    principle: str = Field(description="principle id@version")
    p: float = Field(ge=0.0, le=1.0)
    p_first: float | None = Field(default=None, ge=0.0, le=1.0)
    p_second: float | None = Field(default=None, ge=0.0, le=1.0)
    reasoning: str | None = Field(default=None, description="Chain-of-thought text, when used.")


class PreferencePair(BaseModel):
    """One labeled comparison of two responses to the same prompt."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(default="", description="Content hash of prompt + unordered responses (filled in if empty).")
    prompt: list[ChatMessage]
    chosen: list[ChatMessage]
    rejected: list[ChatMessage]
    source: str = Field(description="ai-revision, ai-feedback or human (other names are allowed).")
    p_chosen: float = Field(default=1.0, ge=0.0, le=1.0, description="Probability that chosen is better (soft label).")
    weight: float = Field(default=1.0, ge=0.0, description="Per-example training weight.")
    principle_ids: list[str] = Field(default_factory=list, description="principle id@version used to label.")
    record_id: str = Field(default="", description="The record or input row this pair came from.")
    labeler: str = Field(default="", description="Model or person that labeled the pair.")
    constitution_hash: str = ""
    scores: list[PrincipleScore] = Field(default_factory=list, description="Raw per-principle scores.")
    position_consistent: bool | None = Field(default=None, description="Both orders agreed (AI feedback).")
    score_chosen: float | None = Field(default=None, description="The source's rating of chosen (e.g. UltraFeedback).")
    score_rejected: float | None = Field(default=None, description="The source's rating of rejected.")
    origin: str = Field(default="", description="Where the pair was read from: file:line.")
    provenance: str = Field(default="", description="JSON object: models, sampling, seed, versions.")

    def model_post_init(self, __context: Any) -> None:
        if not self.id:
            self.id = pair_id(self.prompt, self.chosen, self.rejected)

    @field_validator("provenance", mode="before")
    @classmethod
    def _provenance_text(cls, value: Any) -> Any:  # an object in a JSONL row, its JSON text in memory
        return provenance_json(**value) if isinstance(value, dict) else value

    @property
    def identical(self) -> bool:
        """Chosen and rejected say the same thing (nothing to learn from the pair)."""
        return canonical(self.chosen) == canonical(self.rejected)

    @property
    def empty_response(self) -> bool:
        """Chosen or rejected has no text (empty or whitespace only). Such a pair is never read
        into a stage nor written: every reader drops it and counts it as ``empty_response``."""
        return not self.chosen_text.strip() or not self.rejected_text.strip()

    @property
    def chosen_text(self) -> str:
        return _text(self.chosen)

    @property
    def rejected_text(self) -> str:
        return _text(self.rejected)

    def row(self) -> dict[str, Any]:
        """The JSONL row (plain JSON types, stable column order, provenance an object)."""
        return {**(row := self.model_dump(mode="json")), "provenance": provenance_object(row["provenance"])}


def _text(messages: list[ChatMessage]) -> str:
    return "\n".join(m.content for m in messages)


def canonical(messages: Iterable[ChatMessage | dict]) -> list[list[str]]:
    """Messages as comparable [role, stripped content] lists: what the pair id and the
    identical-responses check compare."""
    out = []
    for m in messages:
        d = m.model_dump() if isinstance(m, ChatMessage) else m
        out.append([d["role"], d["content"].strip()])
    return out


def pair_id(prompt, first, second) -> str:
    """Order-independent content hash: swapping the two responses gives the same id."""
    a, b = sorted(json.dumps(canonical(x), ensure_ascii=False) for x in (first, second))
    blob = json.dumps([canonical(prompt), a, b], ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]


def provenance_json(**fields: Any) -> str:
    return json.dumps(fields, sort_keys=True, ensure_ascii=False, default=str)


def provenance_object(text: str) -> Any:
    """Provenance text as the JSON object it holds (text that is not one stays text)."""
    try:
        return value if isinstance(value := json.loads(text or "0"), dict) else text
    except ValueError:
        return text


def features():
    """Explicit ``datasets`` features, so files from different sources share one schema."""
    from datasets import Features, List, Value

    msg = List({"role": Value("string"), "content": Value("string")})
    score = {"principle": Value("string"), "p": Value("float64"), "p_first": Value("float64"),
             "p_second": Value("float64"), "reasoning": Value("string")}
    return Features({
        "id": Value("string"), "prompt": msg, "chosen": msg, "rejected": msg,
        "source": Value("string"), "p_chosen": Value("float64"), "weight": Value("float64"),
        "principle_ids": List(Value("string")), "record_id": Value("string"), "labeler": Value("string"),
        "constitution_hash": Value("string"), "scores": List(score), "position_consistent": Value("bool"),
        "score_chosen": Value("float64"), "score_rejected": Value("float64"),
        "origin": Value("string"), "provenance": Value("string"),
    })


# ---------------------------------------------------------------- writing


def write_pairs(pairs: Iterable[PreferencePair], target: str | Path, *, empty_tables: bool = False) -> int:
    """Write a preference dataset folder: ``data.jsonl``, ``data.parquet`` and ``hf/`` (save_to_disk).

    Rows stream into staged files (memory bounded by one batch) that replace the old ones only once
    complete, so an interrupted write never leaves a half-written dataset behind. With no pairs,
    ``empty_tables`` still writes an empty ``hf/`` and Parquet file. A pair with an empty response is
    never written (the stages drop and count them before; this is the last guard, logged).
    """
    left_out = [0]

    def rows():
        for p in pairs:
            if p.empty_response:
                left_out[0] += 1
                continue
            yield p.row()

    count = write_rows(rows(), Path(target), features(), empty_tables=empty_tables)
    if left_out[0]:
        log.warning("%s: left out %d pair(s) with an empty response", target, left_out[0])
    return count


def write_rows(rows: Iterable[dict], target: Path, feats=None, *, empty_tables: bool = False) -> int:
    """Write rows as a dataset folder (``data.jsonl``, ``data.parquet``, ``hf/``) as they come, memory
    bounded by one batch (:mod:`cai.data.dataset_files`). ``feats``: the Arrow features (default:
    the preference pair's, :func:`features`); a ``provenance`` object in JSONL is its JSON text in Arrow."""
    from cai.data.dataset_files import write_dataset

    feats = features() if feats is None else feats

    def arrow_row(row: dict) -> dict:
        prov = row.get("provenance")
        return {**row, "provenance": provenance_json(**prov)} if isinstance(prov, dict) else row

    return write_dataset(rows, Path(target), feats, arrow_row=arrow_row if "provenance" in feats else None,
                         empty_tables=empty_tables)


# ---------------------------------------------------------------- reading


def pair_from_row(row: dict, *, source: str | None = None, origin: str = "",
                  counts: dict | None = None) -> PreferencePair:
    """One row of our format or of a TRL preference dataset (standard or conversational,
    explicit or implicit prompt) or an Anthropic HH-RLHF row, as a PreferencePair (the spellings
    are in :mod:`cai.data.pair_split`). Raises ValueError naming the field.

    ``counts[PROMPT_REPEATED]`` is incremented when a leading copy of the prompt was stripped from
    the responses. A pair with an empty response is returned as is: readers drop it
    (``PreferencePair.empty_response``).
    """
    from cai.data.pair_split import check_media, split_row

    if not isinstance(row, dict):
        raise ValueError("a row must be a JSON object")
    missing = [k for k in ("chosen", "rejected") if k not in row]
    if missing:
        raise ValueError(f"missing column(s) {', '.join(missing)}; expected prompt, chosen, rejected")
    check_media(row)
    data = dict(row)
    read_ratings(data, counts)
    prompt, chosen, rejected, repeated = split_row(data.get("prompt"), data["chosen"], data["rejected"])
    if repeated and counts is not None:
        counts[PROMPT_REPEATED] = counts.get(PROMPT_REPEATED, 0) + 1
    data.update(prompt=prompt, chosen=chosen, rejected=rejected)
    if repeated:
        data.pop("id", None)  # an id stored with the repeated prompt is not the pair's content id
    if source is not None or not data.get("source"):
        data["source"] = source or "human"
    if origin and not data.get("origin"):
        data["origin"] = origin
    known = set(PreferencePair.model_fields)
    data = {k: v for k, v in data.items() if k in known and v is not None}
    try:
        return PreferencePair.model_validate(data)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in err["loc"])
        raise ValueError(f"{where}: {err['msg']}") from None


def resolve_pairs_path(path: str | Path) -> Path:
    """A file, or a folder holding ``data.jsonl``/``pairs.jsonl``/``preferences/``/``hf``, or a saved
    ``DatasetDict`` (its ``train`` split, else its first)."""
    p = Path(path)
    if not p.exists():
        raise CaiError(f"no such file or folder{looked_at(p)}", path=str(p))
    if p.is_dir() and (p / "dataset_dict.json").is_file():
        try:
            splits = json.loads((p / "dataset_dict.json").read_text()).get("splits") or []
        except (json.JSONDecodeError, AttributeError):
            splits = []
        if not splits:
            raise CaiError("dataset_dict.json lists no splits", path=str(p))
        return p / ("train" if "train" in splits else splits[0])
    if p.is_file():
        return p
    for cand in ("data.jsonl", "pairs.jsonl", "preferences/data.jsonl", "data.parquet", "preferences/data.parquet"):
        if (p / cand).is_file():
            return p / cand
    if (p / "dataset_info.json").is_file() or (p / "hf" / "dataset_info.json").is_file():
        return p if (p / "dataset_info.json").is_file() else p / "hf"
    raise CaiError("no preference data found (expected data.jsonl, pairs.jsonl, preferences/ or a save_to_disk folder)",
                   path=str(p))


def read_pairs(path: str | Path, *, source: str | None = None, skip_invalid: bool = False,
               counts: dict | None = None, ties: str = "half") -> Iterator[PreferencePair]:
    """Stream pairs from JSONL, Parquet or a ``save_to_disk`` folder: ours, any TRL preference data or
    Anthropic HH-RLHF transcripts (see :mod:`cai.data.pair_split`).

    A bad row raises a CaiError naming file and line, or with ``skip_invalid`` is counted in
    ``counts['invalid']`` and skipped. A pair with an empty response is always dropped and counted
    in ``counts['empty_response']``; rows whose responses repeated the prompt are counted in
    ``counts['prompt_repeated']``. Rows with equal ratings (``score_chosen == score_rejected``) are
    ties: ``p_chosen`` 0.5 (``ties="half"``) or dropped and counted in ``counts['ties_dropped']``
    (``ties="drop"``); ``counts['score_columns']`` names the rating columns read.
    """
    if ties not in ("half", "drop"):
        raise CaiError(f"ties must be 'half' or 'drop', got {ties!r}")
    p = resolve_pairs_path(path)
    counts = counts if counts is not None else {}
    for key in (INVALID, EMPTY_RESPONSE, PROMPT_REPEATED):
        counts.setdefault(key, 0)
    for lineno, row, err in _iter_rows(p):
        if err is None:
            try:
                pair = pair_from_row(row, source=source, origin=f"{p.name}:{lineno}", counts=counts)
            except ValueError as exc:
                err = str(exc)
            else:
                if pair.empty_response:
                    counts[EMPTY_RESPONSE] += 1
                    continue
                if ties == "drop" and pair.score_chosen is not None and pair.score_chosen == pair.score_rejected:
                    counts[TIES_DROPPED] = counts.get(TIES_DROPPED, 0) + 1
                    continue
                yield pair
                continue
        if not skip_invalid:
            raise CaiError(err + _hint(p, row) + " (use --skip-invalid to skip bad rows)", path=str(p), line=lineno)
        counts[INVALID] += 1
        if counts[INVALID] <= MAX_SKIPS_LOGGED:  # each skipped row named by its line (the first ones)
            log.warning("%s:%d: skipped: %s", p, lineno, err)


def _hint(p: Path, row: Any) -> str:
    """For a CSV without the default columns: the command that reads it with a column map."""
    if p.name.lower().removesuffix(".gz").endswith(".csv") and isinstance(row, dict) \
            and not ({"chosen", "rejected"} <= set(row)):
        return ("; convert it with `cai humans import --format csv FILE --out DIR "
                "--prompt-column … --chosen-column … --rejected-column …`")
    return ""


def _iter_rows(p: Path) -> Iterator[tuple[int, Any, str | None]]:
    if p.is_dir() or p.suffix == ".parquet":
        from datasets import Dataset, load_from_disk

        ds = load_from_disk(str(p)) if p.is_dir() else Dataset.from_parquet(str(p))
        for i, row in enumerate(ds, 1):
            yield i, row, None
        return
    if p.name.lower().removesuffix(".gz").endswith(".csv"):
        yield from _iter_csv(p)
        return
    import gzip

    from cai.core.files import open_text

    try:
        with open_text(p) as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    yield lineno, json.loads(line), None
                except json.JSONDecodeError as exc:
                    yield lineno, None, f"invalid JSON: {exc.msg}"
    except UnicodeDecodeError:
        raise CaiError("not UTF-8 text", path=str(p)) from None
    except (OSError, EOFError) as exc:  # e.g. a truncated .gz
        raise CaiError(f"cannot read: {exc}", path=str(p)) from None


def _iter_csv(p: Path) -> Iterator[tuple[int, Any, str | None]]:
    """CSV rows (as `cai humans import --format csv` reads them with its default columns)."""
    from cai.core.files import csv_rows

    for lineno, row in csv_rows(p):
        if None in row or any(v is None for v in row.values()):
            yield lineno, None, "row has a different number of cells than the header"
            continue
        yield lineno, {k: v for k, v in row.items() if v != "" or k in ("prompt", "chosen", "rejected")}, None
