"""Configurations of `cai humans import|serve|export|stats`: pydantic models behind the API, YAML
(``--config``) and flags (the kebab-case of each field, generated from these models).

:class:`CsvColumns` is the column map of a CSV label file; ``cai humans import`` and a ``cai run``
recipe's ``humans:`` block share it, so the same names mean the same columns in both.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

CSV_FIELDS = ("prompt_column", "chosen_column", "rejected_column", "label_column", "label_values", "rater_column")
"""The fields of :class:`CsvColumns`: read from a CSV label file only."""


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)


class CsvColumns(_Config):
    """Which CSV columns hold the prompt and the two responses, and how to read a label column.

    Without ``label_column`` the ``chosen_column`` response is the preferred one; with it,
    ``chosen_column`` and ``rejected_column`` hold responses A and B and the label says which is
    better, or a tie. The old spellings ``prompt_col``, ``chosen_col``, ``rejected_col`` and
    ``label_col`` are still read, with a note."""

    _old_names_where: ClassVar[str] = ""
    """What the note about an old field name puts before it (``humans.`` in a recipe)."""

    prompt_column: str = "prompt"
    """CSV: the prompt column."""
    chosen_column: str = "chosen"
    """CSV: the preferred response's column (with label_column: response A's)."""
    rejected_column: str = "rejected"
    """CSV: the other response's column (with label_column: response B's)."""
    label_column: str | None = None
    """CSV: the column saying which response is better (default: none, chosen_column is preferred)."""
    label_values: str = "A,B,tie"
    """CSV: the label column's values for A, B and tie (comma-separated; '|' between alternatives,
    e.g. A|left,B|right,tie|same)."""
    rater_column: str | None = None
    """CSV: the column naming who labeled each row (kept as the pair's labeler)."""

    @model_validator(mode="before")
    @classmethod
    def _old_names(cls, data: Any) -> Any:
        from cai.core.renames import accept_old_names
        from cai.humans.importers import OLD_COLUMN_NAMES

        return accept_old_names(data, OLD_COLUMN_NAMES, cls._old_names_where)

    def csv_mapping(self):
        """The :class:`cai.humans.importers.CsvMapping` these fields describe (CaiError for
        ``label_values`` that are not three comma-separated values)."""
        from cai.humans.importers import CsvMapping

        return CsvMapping.from_values(self.label_values, prompt_column=self.prompt_column,
                                      chosen_column=self.chosen_column, rejected_column=self.rejected_column,
                                      label_column=self.label_column, rater_column=self.rater_column)


class ImportConfig(CsvColumns):
    """`cai humans import`: human preference labels (HH-RLHF, TRL preference data, CSV) written as
    PreferencePair rows with source=human."""

    file: str
    """The label file: HH-RLHF JSONL (.gz), TRL preference data (JSONL, Parquet or a folder), or CSV."""
    format: Literal["hh", "trl", "csv"]
    """Its format: hh, trl or csv."""
    out: str
    """Output dataset folder (data.jsonl, data.parquet, hf/)."""
    skip_invalid: bool = False
    """Skip and count rows that cannot be parsed; without it the first such row stops the import, naming its line."""
    ties: Literal["half", "drop"] = "half"
    """Rows whose ratings are equal (score_chosen = score_rejected): half (p_chosen 0.5) or drop (left out, counted)."""

    @model_validator(mode="after")
    def _columns_of_csv_only(self) -> ImportConfig:
        """Refuse a column setting the format would ignore, so it never goes silently unused."""
        given = [f for f in CSV_FIELDS if f in self.model_fields_set]
        if given and self.format != "csv":
            raise ValueError(f"{given[0]} is read from a CSV file only (format csv), not {self.format}")
        return self


class ServeConfig(_Config):
    """`cai humans serve`: a local labeling page; each label is stored at once in a SQLite file."""

    tasks: str
    """Pairs to label: a pairs file or folder (JSONL, Parquet, save_to_disk)."""
    db: str
    """SQLite file the labels go to (created if missing)."""
    host: str = "127.0.0.1"
    """Address to listen on; other than loopback needs a token."""
    port: int = Field(8000, ge=0, le=65535)
    """Port (0: any free port)."""
    token: str | None = None
    """Access token (default: none on loopback, else generated and printed in the page's address)."""
    labeler: str = ""
    """Labeler name (default: ?rater=NAME in the address, or typed on the page)."""
    lease: float = Field(120.0, ge=0.0)
    """Seconds a shown task stays reserved for its labeler."""
    raters_per_task: int = Field(1, ge=1)
    """Different raters who label each task."""
    guidelines: str | None = None
    """Markdown file: what to judge by."""
    constitution: str | None = None
    """Constitution (name or YAML) whose questions are the guidelines."""
    principles_dir: str | None = None
    """Principles folder for routed tasks' questions (default: principles/ when it exists)."""
    gold: str | None = None
    """Pairs with known answers (chosen is right), mixed in among the tasks."""
    gold_rate: float = Field(0.1, ge=0.0, lt=1.0)
    """Share of each rater's tasks that are gold."""


class ExportConfig(_Config):
    """`cai humans export`: the labels of a labeling page as PreferencePair rows, one per task."""

    db: str
    """SQLite file written by `cai humans serve`."""
    out: str
    """Output dataset folder."""
    min_gold_accuracy: float | None = Field(None, ge=0.0, le=1.0)
    """Leave out raters whose gold accuracy is below this (0-1; default: keep every rater)."""
    disagreements: Literal["keep", "drop"] = "keep"
    """Pairs whose raters picked opposite sides: keep (p_chosen = share of raters, weight = raters:
    each label counts once) or drop (left out, counted)."""


class StatsConfig(_Config):
    """`cai humans stats`: per-rater counts, speed, gold accuracy and agreement (how the report is
    printed, ``--json`` or tables, is the command's own option, not a setting of the report)."""

    db: str
    """SQLite file written by `cai humans serve`."""
    margin: float = Field(0.2, ge=0.0)
    """Flag raters this far below the median agreement or gold accuracy."""
