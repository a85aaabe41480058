"""Reading every input of every stage before the loop starts, and errors in a recipe's words.

``cai run`` (and ``--dry-run``) opens each prompt file and human label file a stage will read and
parses every row with the same reader the stage uses, so a wrong column is reported before stage 1,
not at stage 8. Errors that library code words for a command's flags (``pass --prompt-column``)
are reworded into the recipe field that sets the same thing (``set prompt_column``): in a recipe
the user has no flags.
"""

from __future__ import annotations

import re
from pathlib import Path

from cai.core.errors import CaiError
from cai.loop.recipe import Stage

# Options that the recipe sets at its top level for every stage (not in a stage's block).
TOP_LEVEL = {"prompts", "prompt_format", "prompt_column", "id_column", "principles_dir", "constitution"}
_FLAG = re.compile(r"--([a-z][a-z0-9-]*)")
_COMMAND = re.compile(r"`?cai [a-z][^;()`]*`?")  # a whole command to run: its flags stay flags


def recipe_field(flag: str, stage: str) -> str:
    """The recipe field for a command's ``--flag`` (options are the kebab-case of their field)."""
    field = flag.removeprefix("--").replace("-", "_")
    if field in TOP_LEVEL and not (stage == "humans" and field == "prompt_column"):
        return f"{field} (at the top level of the recipe)"
    return f"{stage}.{field}"


def reword(message: str, stage: str) -> str:
    """``message`` with each flag outside a quoted ``cai ...`` command replaced by its recipe field;
    "pass"/"use" before it become "set"."""
    kept = [(m.start(), m.end()) for m in _COMMAND.finditer(message)]

    def swap(m: re.Match) -> str:
        if any(a <= m.start() < b for a, b in kept):
            return m.group(0)
        return recipe_field(m.group(0), stage)

    out = _FLAG.sub(swap, message)
    return re.sub(r"\b(pass|use) (?=\S+ \(at the top level|[a-z]+\.[a-z_]+)", "set ", out)


def in_recipe_words(exc: CaiError, stage: str) -> CaiError:
    """``exc`` with its message reworded for a recipe (same class, path and line)."""
    exc.message = reword(exc.message, stage)
    exc.args = (exc.format(),)
    return exc


def check_stage_inputs(stages: list[Stage], run: Path, source: str) -> None:
    """Read every prompt file and human label file of ``stages`` as the stage will (all rows,
    their columns and ids); raise the first problem as a CaiError in the recipe's words, prefixed
    with the stage. Files inside the run folder are made by earlier stages and skipped."""
    inside = str(run.resolve()) + "/"
    seen: set[tuple] = set()
    for stage in stages:
        try:
            _check(stage, inside, seen)
        except CaiError as exc:
            raise CaiError(f"{stage.name}: {reword(exc.format(), stage.name)}", path=source) from None


def _check(stage: Stage, inside: str, seen: set[tuple]) -> None:
    cfg = stage.config
    prompts = getattr(cfg, "prompts", None)
    if isinstance(prompts, str) and not str(Path(prompts).resolve()).startswith(inside):
        key = ("prompts", prompts, cfg.prompt_format, cfg.prompt_column, cfg.id_column)
        if key not in seen:
            seen.add(key)
            from cai.data.prompts import PromptReader

            for _ in PromptReader(prompts, cfg.prompt_format, cfg.prompt_column, cfg.id_column,
                                  getattr(cfg, "hh_turns", "first")):
                pass
    if stage.name == "humans" and cfg["humans"].labels:
        humans = cfg["humans"]
        from cai.humans.importers import check_labels

        check_labels(humans.labels, humans.format, skip_invalid=humans.skip_invalid, csv_mapping=humans.csv_mapping())
