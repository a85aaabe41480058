"""Where prompts come from: the fields every prompt-reading config shares (issue 27 item 4).

`cai generate`, `cai sample`, `cai train ppo` and `cai train grpo|rloo` read prompts the same way;
these fields are declared once here, so a concept has one name, one default and one help text
everywhere (the flags are generated from them: :mod:`cai.cli.fields`).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

PromptFormat = Literal["auto", "jsonl", "csv", "hf", "hh"]


class PromptSource(BaseModel):
    """The prompt input of a stage: a file or dataset folder and how to read its rows."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    prompts: str
    """Prompts: JSONL, CSV, an HF dataset folder or HH-RLHF transcripts."""
    prompt_format: PromptFormat = "auto"
    """Prompt file format (auto: from the file's extension and content)."""
    prompt_column: str = "prompt"
    """Column with the prompt text or HH transcript (a ``messages`` column is used when present)."""
    id_column: str | None = None
    """Column with stable prompt ids (default: a row's ``id``, else a hash of its content)."""
    hh_turns: Literal["first", "all"] = "first"
    """HH prompts: the first human turn, or all turns up to the last human one."""
    system_prompt: str | None = None
    """System message put before every prompt that has none."""

    def reader(self, system_prompt: str | None = None):
        """A :class:`cai.data.prompts.PromptReader` over these prompts; ``system_prompt`` is used
        when this config sets none (a constitution's own). Raises CaiError for a missing file."""
        from cai.data.prompts import PromptReader

        return PromptReader(self.prompts, self.prompt_format, self.prompt_column, self.id_column,
                            self.hh_turns, self.system_prompt or system_prompt)
