"""The `cai run` recipe: one YAML naming the constitution, the prompts, the models and a block per
stage. A stage's block takes the same fields as that stage's own command (``cai generate
--config``, ``cai train reward --config``, ...); the loop fills in the fields that wire stages
together (output folders, the previous stage's output, the models) and validates each block with
the stage's own config class, so a mistake is reported before any model time is spent.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from cai.core.errors import CaiError
from cai.humans.config import CSV_FIELDS, CsvColumns

# Every stage in loop order. ``report`` is always (re)built; ``route``/``humans``/``sft``/``dpo``
# run only when the recipe has their block; the others run unless their block is ``null``.
STAGES = ("generate", "sft", "sample", "label", "route", "humans", "mix", "reward", "ppo", "grpo", "rloo", "dpo",
          "eval", "redteam", "report")
OPTIONAL = {"sft", "route", "humans", "grpo", "rloo", "dpo", "redteam"}
ONLINE = ("grpo", "rloo")
"""Online trainers (`cai train grpo|rloo`): a third choice beside ppo and dpo."""


class Models(BaseModel):
    """The models of the loop, each a local folder, hub id, .gguf file or known name."""

    model_config = ConfigDict(extra="forbid")
    policy: str = "smollm2-135m-instruct"
    """The starting policy: drafts and revises, is fine-tuned, and is the eval's baseline."""
    feedback: str | None = None
    """The feedback (critic/labeler) model of AI labels (default: the policy)."""
    reward_base: str | None = None
    """The base the reward model is trained from (default: the policy)."""


class LoopSettings(BaseModel):
    """Iterating the loop: later rounds start from the trained policy and add the failed probes."""

    model_config = ConfigDict(extra="forbid")
    rounds: int = Field(1, ge=1, le=20)
    """Rounds of the whole loop; round k > 1 lives in RUN/round-k/."""
    feed_failures: bool = True
    """Add the probes the trained policy still fails to the next round's prompts."""
    max_new_prompts: int | None = Field(None, ge=1)
    """At most this many failed probes added per round (in suite order)."""


class HumansStage(CsvColumns):
    """Human labels next to the AI ones: import a label file, or export the labels people gave
    on the labeling page (``cai humans serve RUN/route --db DB``). The CSV column fields are
    ``cai humans import``'s (:class:`cai.humans.config.CsvColumns`)."""

    model_config = ConfigDict(extra="forbid")
    _old_names_where: ClassVar[str] = "humans."
    labels: str | None = None
    """A human label file (the formats of ``cai humans import``)."""
    format: Literal["hh", "trl", "csv"] = "trl"
    """Its format: hh, trl or csv (``cai humans import --format``)."""
    skip_invalid: bool = False
    """Skip and count label-file rows that cannot be parsed (``cai humans import --skip-invalid``)."""
    db: str | None = None
    """The labeling page's SQLite file (default with a route stage: RUN/human-labels.db)."""
    min_gold_accuracy: float | None = Field(None, ge=0.0, le=1.0)
    """Leave out raters of the db whose gold accuracy is below this (``cai humans export --min-gold-accuracy``)."""
    agreement: bool = True
    """Score the human-labeled pairs with the feedback model too: AI/human agreement (eval agreement)."""

    @model_validator(mode="after")
    def _nothing_ignored(self) -> HumansStage:
        """Refuse fields this block would ignore, so a setting never goes silently unused."""
        if self.labels and self.db:
            raise ValueError("give labels (a file to import) or db (the labeling page's), not both")
        if self.labels and self.min_gold_accuracy is not None:
            raise ValueError("min_gold_accuracy applies to the labeling page's db, not to a labels file")
        csv_only = [f for f in CSV_FIELDS if f in self.model_fields_set]
        if csv_only and (self.format != "csv" or not self.labels):
            raise ValueError(f"{csv_only[0]} is read from a CSV labels file only (labels: FILE.csv, format: csv)")
        return self


class Recipe(BaseModel):
    """What ``cai run RECIPE.yaml`` reads. Stage blocks are plain mappings here; each is checked
    against its stage's own config class by :func:`build_plan`."""

    model_config = ConfigDict(extra="forbid")
    out: str
    """The run folder (RUN): one subfolder per stage."""
    constitution: str = "default"
    """Constitution YAML (or a name under constitution/)."""
    principles_dir: str | None = None
    prompts: str
    """Prompts of generate, sample and PPO (JSONL, CSV, an HF dataset folder or HH transcripts)."""
    prompt_format: str = "auto"
    prompt_column: str = "prompt"
    id_column: str | None = None
    models: Models = Field(default_factory=Models)
    backend: dict[str, Any] = Field(default_factory=dict)
    """Backend settings shared by every inference stage (BackendConfig fields but ``model``)."""
    seed: int = 0
    """The seed every stage gets unless its block sets its own."""
    loop: LoopSettings = Field(default_factory=LoopSettings)
    generate: dict | None = Field(default_factory=dict)
    sft: dict | None = None
    sample: dict | None = Field(default_factory=dict)
    label: dict | None = Field(default_factory=dict)
    route: dict | None = None
    humans: dict | None = None
    mix: dict | None = Field(default_factory=dict)
    reward: dict | None = Field(default_factory=dict)
    ppo: dict | None = Field(default_factory=dict)
    grpo: dict | None = None
    """`cai train grpo` fields (its rewards: the constitution as judge, the reward model, guards)."""
    rloo: dict | None = None
    """`cai train rloo` fields, as ``grpo``."""
    dpo: dict | None = None
    eval: dict | None = Field(default_factory=dict)
    redteam: dict | None = None
    """`cai redteam` fields: an attacker writes attacks on each principle against the round's trained
    policy; what broke it joins the next round's prompts (with ``loop.feed_failures``)."""

    @model_validator(mode="before")
    @classmethod
    def _one_trainer(cls, data: Any) -> Any:
        if isinstance(data, dict) and any(data.get(t) is not None for t in ONLINE):
            given = [t for t in ("ppo", *ONLINE, "dpo") if t in data and data[t] is not None]
            if len(given) > 1:
                raise ValueError(f"give one policy trainer (ppo, grpo, rloo or dpo), not {' and '.join(given)}")
            return {**data, "ppo": None}
        if isinstance(data, dict) and data.get("dpo") is not None:
            if data.get("ppo") not in (None, {}) and "ppo" in data:
                raise ValueError("give a ppo block or a dpo block, not both (set ppo: null to use DPO)")
            data = {**data, "ppo": None}
        return data

    @model_validator(mode="after")
    def _needs(self) -> Recipe:
        if self.ppo is not None and self.reward is None:
            raise ValueError("ppo needs the reward stage (remove reward: null, or use dpo)")
        for name in ONLINE:
            block = getattr(self, name)
            if block is not None and self.reward is None and _uses_reward_model(block):
                raise ValueError(f"{name}: the reward-model reward needs the reward stage (remove reward: null, "
                                 "or reward with the constitution alone)")
        if self.route is not None and self.label is None:
            raise ValueError("route needs the label stage")
        if self.loop.rounds > 1 and self.loop.feed_failures and self.eval is None and self.redteam is None:
            raise ValueError("loop.feed_failures needs the eval or redteam stage (their failures feed the next "
                             "round); add an eval block or set loop.feed_failures: false")
        if self.mix is not None and self.generate is None and self.label is None and self.humans is None:
            raise ValueError("mix needs at least one of generate, label, humans")
        return self


def _uses_reward_model(block: dict) -> bool:
    rewards = block.get("rewards", ["constitution"])
    rewards = [rewards] if isinstance(rewards, str) else rewards if isinstance(rewards, list) else []
    names = [r.partition("=")[0].strip() if isinstance(r, str) else r.get("name") if isinstance(r, dict) else None
             for r in rewards]
    return "reward-model" in names


@dataclass
class Stage:
    """One stage of one round, ready to run: its validated config, the stage folders and external
    files it reads (for the manifest's input hash) and the function that runs it."""

    name: str
    folder: Path
    config: Any
    """The stage's own validated config object (GenerateConfig, RewardRecipe, ...)."""
    run: Callable[[Stage], dict]
    needs: list[str] = field(default_factory=list)
    """Earlier stages (of this round, or ``round-k/name``) whose output this stage reads."""
    files: dict[str, str] = field(default_factory=dict)
    """External inputs (prompts, label files, models) by role, hashed into the manifest."""
    resumable: bool = False
    """The stage continues an interrupted run itself (generate, sample, label, ppo); others restart."""
    extra: dict = field(default_factory=dict)


def deep_merge(base: dict, override: dict) -> dict:
    """``override`` on top of ``base``; nested mappings merge, everything else replaces."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def check_wired(stage: str, block: dict, wired: dict[str, str], source: str | None = None) -> None:
    """Refuse block fields the loop sets itself; ``wired`` maps dotted field -> where it comes from."""
    for dotted, origin in wired.items():
        node: Any = block
        for part in dotted.split("."):
            if not isinstance(node, dict) or part not in node:
                node = None
                break
            node = node[part]
        if node is not None:
            raise CaiError(f"{stage}.{dotted}: set by cai run ({origin}); remove it from the recipe", path=source)


def validate_block(cls, data: dict, stage: str | None, source: str | None):
    """``cls`` (a stage's own config class, or the recipe) on ``data``; the first problem becomes a
    one-line error naming ``stage.field`` (just ``field`` without a stage) and the recipe file."""
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)  # a misspelt field first: it is why another is missing
        err = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
        where = ".".join([*([stage] if stage else []), *(str(p) for p in err["loc"])])
        msg = err["msg"].removeprefix("Value error, ")  # a model validator's own rule (_one_trainer, _needs)
        if err["type"] == "extra_forbidden":
            from cai.core.diagnostics import unknown_field_hint

            msg = "unknown field" + unknown_field_hint(cls, err["loc"])
        raise CaiError(f"{where + ': ' if where else ''}{msg}", path=source) from None


def load_recipe(path: str | Path, overrides: dict | None = None) -> Recipe:
    """Read and validate a recipe YAML (``overrides`` such as ``{"out": ...}`` win over the file).
    Raises CaiError naming the file and field."""
    from cai.core.yamlutil import load_yaml_config

    data = load_yaml_config(str(path))
    data.update({k: v for k, v in (overrides or {}).items() if v is not None})
    try:
        data = relative_to_recipe(data, Path(path).parent)
    except CaiError as err:
        if err.path is None:
            err.path = str(path)
        raise
    return validate_block(Recipe, data, None, str(path))


def relative_to_recipe(data: dict, folder: Path) -> dict:
    """The lookup rule of a recipe: the files it reads (prompts, constitution, principles_dir,
    humans.labels and humans.db, local models written ``./x`` or ``../x``) are relative to the
    recipe's folder, wherever ``cai run`` is started; ``out``, the run folder, is relative to where
    it runs, like every command's ``--out``. A name (``constitution: default``) is looked up under
    the recipe's ``constitution/`` first, then ``./constitution/`` and the shipped library's. A
    path that only exists relative to the current folder (the rule before) still works, with a note."""
    import os

    from cai.core.renames import note

    def resolve(value, field: str, must_exist: bool = True):
        if not isinstance(value, str) or not value.strip() or Path(value).expanduser().is_absolute():
            return value
        beside = folder / value
        if beside.exists() or not must_exist:
            return _short(beside)
        if Path(value).exists() and not _same_folder(folder, Path.cwd()):
            note(f"{field}: '{value}' is read relative to the current folder; recipes name files relative to "
                 f"their own folder ({folder}), so write {os.path.relpath(Path(value).resolve(), folder.resolve())}")
            return value
        return _short(beside)

    data = _expand_path_vars(dict(data))
    if "prompts" in data:  # absent stays absent: 'Field required', not 'a valid string' for None
        data["prompts"] = resolve(data["prompts"], "prompts")
    if isinstance(data.get("principles_dir"), (str, list)):
        parts = data["principles_dir"] if isinstance(data["principles_dir"], list) else \
            str(data["principles_dir"]).split(os.pathsep)
        data["principles_dir"] = os.pathsep.join(str(resolve(str(p), "principles_dir")) for p in parts)
    ref = data.get("constitution", "default")
    if isinstance(ref, str):
        named = not Path(ref).suffix and "/" not in ref
        own = next((folder / "constitution" / f"{ref}{x}" for x in (".yaml", ".yml")
                    if (folder / "constitution" / f"{ref}{x}").is_file()), None) if named else None
        data["constitution"] = _short(own) if own else (ref if named else resolve(ref, "constitution"))
    if isinstance(data.get("humans"), dict):
        humans = dict(data["humans"])
        humans["labels"] = resolve(humans.get("labels"), "humans.labels")
        humans["db"] = resolve(humans.get("db"), "humans.db", must_exist=False)
        data["humans"] = humans
    if isinstance(data.get("models"), dict):
        data["models"] = {k: resolve(v, f"models.{k}") if isinstance(v, str) and v.startswith(("./", "../")) else v
                          for k, v in data["models"].items()}
    return data


PATH_FIELDS = ("out", "prompts", "principles_dir", "constitution")
"""Recipe fields that name files or folders: ``$VAR``/``${VAR}``/``~`` expand in these (and in
``humans.labels``, ``humans.db`` and ``models.*``) before the lookup rule applies."""


def _expand_path_vars(data: dict) -> dict:
    from cai.core.yamlutil import expand_env

    for key in PATH_FIELDS:
        if isinstance(data.get(key), str):
            data[key] = expand_env(data[key], key)
        elif key == "principles_dir" and isinstance(data.get(key), list):  # several folders
            data[key] = [expand_env(v, f"{key}[{i}]") if isinstance(v, str) else v for i, v in enumerate(data[key])]
    for block, keys in (("humans", ("labels", "db")), ("models", None)):
        if isinstance(data.get(block), dict):
            inner = dict(data[block])
            for k, v in inner.items():
                if isinstance(v, str) and (keys is None or k in keys):
                    inner[k] = expand_env(v, f"{block}.{k}")
            data[block] = inner
    return data


def _same_folder(a: Path, b: Path) -> bool:
    return a.resolve() == b.resolve()


def _short(path: Path) -> str:
    """``path`` relative to the current folder when it is inside it (stage keys stay as they were
    for a recipe run from its project's root), else absolute."""
    import os

    full = path.resolve()
    try:
        return os.path.relpath(full) if full.is_relative_to(Path.cwd().resolve()) else str(full)
    except ValueError:
        return str(full)
