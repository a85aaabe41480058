"""Recipes for ``cai train``: one pydantic model per trainer, shared by YAML files and CLI flags.

Each recipe names the model, the data and the output folder, the handful of knobs people change
most (steps, batch size, learning rate, length), and a ``trl:`` mapping passed unchanged to TRL's
config class (``RewardConfig``, ``SFTConfig``, ``DPOConfig``) for everything else. Unknown keys
are rejected with the key named, at the top level and inside ``trl:``.

On a machine without CUDA the TRL config gets ``use_cpu=True, bf16=False`` whatever the recipe
says (TRL defaults to bf16).
"""

from __future__ import annotations

import sys

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from cai.core.errors import CaiError

# DPO losses offered by TRL 1.16 (DPOConfig.loss_type).
DPO_LOSSES = (
    "sigmoid", "hinge", "ipo", "exo_pair", "nca_pair", "robust", "bco_pair", "sppo_hard", "aot",
    "aot_unpaired", "apo_zero", "apo_down", "discopop", "sft", "sigmoid_norm",
)


class LoraSettings(BaseModel):
    """LoRA adapters (peft) instead of full fine-tuning; merged into the weights when saving."""

    model_config = ConfigDict(extra="forbid")

    r: int = Field(default=16, ge=1, description="Adapter rank.")
    alpha: int = Field(default=32, ge=1, description="LoRA alpha (scale = alpha / r).")
    dropout: float = Field(default=0.05, ge=0.0, lt=1.0, description="Dropout on the adapter input.")
    target_modules: str | list[str] = Field(default="all-linear", description="Modules that get adapters.")


class TrainRecipe(BaseModel):
    """Fields every trainer shares."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(description="Base model: a local folder, hub id, .gguf file or known name (cai models list); "
                       "a reward model gets a scalar head, DPO's frozen reference is a copy of it.")
    data: str = Field(description="Training data: a dataset file or folder (a folder with train/ and test/ splits "
                      "is used as split).")
    out: str = Field(description="Output folder: the trained model, summary.json (and eval.json).")
    max_steps: int = Field(default=-1, description="Stop after this many optimizer steps (-1: run all epochs).")
    epochs: float = Field(default=1.0, gt=0, description="Passes over the training split.")
    learning_rate: float | None = Field(default=None, gt=0, description="Peak learning rate (default: TRL's).")
    batch_size: int = Field(default=8, ge=1, description="Examples (pairs, conversations) per device per step.")
    grad_accum: int = Field(default=1, ge=1, description="Gradient accumulation steps.")
    max_length: int | None = Field(default=1024, ge=1, description="Token limit per sequence (SFT and DPO truncate; "
                                   "a reward-model pair longer than this is skipped).")
    seed: int = Field(default=0, description="Seed of data order, the held-out split and new weights.")
    logging_steps: int = Field(default=10, ge=1, description="Log every N steps.")
    save_steps: int | None = Field(default=None, ge=1, description="Checkpoint every N steps (default: only the end).")
    gradient_checkpointing: bool | None = Field(default=None, description="Trade compute for memory (default: TRL's).")
    dtype: Literal["float32", "bfloat16", "float16", "auto"] | None = Field(
        default=None, description="Weights dtype when loading the model (default: TRL's, float32).")
    lora: LoraSettings | None = Field(default=None, description="Train LoRA adapters instead of all weights.")
    trl: dict[str, Any] = Field(default_factory=dict, description="Further fields of the TRL config, passed unchanged.")

    @field_validator("model", "data", "out")
    @classmethod
    def _not_empty(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value


class RewardRecipe(TrainRecipe):
    """``cai train reward``: a Bradley-Terry reward model with soft labels and per-pair weights."""

    data: str = Field(description="Preference data: a dataset file or folder (a folder with train/ and test/ "
                      "splits is used as split).")

    batch_size: int = Field(default=8, ge=1, description="Pairs per device per step (2x sequences).")
    center_rewards_coefficient: float | None = Field(
        default=None, ge=0, description="Penalty on (r_chosen + r_rejected)^2 keeping rewards near zero (TRL's).")
    test_size: float = Field(
        default=0.1, ge=0.0, lt=1.0, description="Held-out share when the data has no test/ split (0: no eval).")
    eval_batch_size: int = Field(default=16, ge=1, description="Sequences per forward pass when evaluating.")
    calibration_bins: int = Field(default=10, ge=1, description="Confidence bins of the ECE.")

    @model_validator(mode="before")
    @classmethod
    def _old_names(cls, data: Any) -> Any:
        from cai.core.renames import accept_old_names

        return accept_old_names(data, {"test_fraction": "test_size"})  # the name `cai mix` uses


class SFTRecipe(TrainRecipe):
    """``cai train sft``: supervised fine-tuning on SL-CAI revisions (``messages`` column)."""

    data: str = Field(description="A `cai generate` run folder (its sft/) or a dataset with a messages column "
                      "(or prompt and completion, or text).")
    batch_size: int = Field(default=8, ge=1, description="Conversations per device per step.")
    completion_only: bool = Field(
        default=True, description="Loss on the final assistant turn only (the revision), not on the prompt "
        "(--no-completion-only: on all tokens).")


class DPORecipe(TrainRecipe):
    """``cai train dpo``: direct preference optimisation on any preference export."""

    data: str = Field(description="Preference data: a dataset file or folder (a folder with train/ and test/ "
                      "splits is used as split).")

    loss_type: str = Field(
        default="sigmoid",
        description="A TRL DPO loss, or 'auto': apo_zero when every pair is ai-revision (revision vs draft), "
        "robust when any pair is ai-feedback (noisy AI labels), sigmoid otherwise.")
    beta: float = Field(default=0.1, gt=0, description="Strength of the implicit KL to the reference model.")
    label_smoothing: float | None = Field(
        default=None, ge=0.0, lt=0.5, description="Assumed label-flip rate for 'robust' (default 0.1 there).")

    @field_validator("loss_type")
    @classmethod
    def _known_loss(cls, value: str) -> str:
        if value != "auto" and value not in DPO_LOSSES:
            raise ValueError(f"unknown DPO loss '{value}'; expected auto or one of {', '.join(DPO_LOSSES)}")
        return value


# ---------------------------------------------------------------- TRL configs


TRAIN_OWNED: dict[str, str] = {
    "output_dir": "out", "max_steps": "max_steps", "num_train_epochs": "epochs",
    "per_device_train_batch_size": "batch_size", "gradient_accumulation_steps": "grad_accum",
    "max_length": "max_length", "seed": "seed", "logging_steps": "logging_steps", "save_steps": "save_steps",
    "learning_rate": "learning_rate", "gradient_checkpointing": "gradient_checkpointing",
}
"""TRL config fields that a :class:`TrainRecipe` field sets (TRL name -> cai field). A ``trl:`` key
among them is refused: it would silently replace what cai set, checked and records in summary.json."""

OWNED_BY: dict[str, dict[str, str]] = {
    "SFTRecipe": {"completion_only_loss": "completion_only"},
    "DPORecipe": {"loss_type": "loss_type", "beta": "beta", "label_smoothing": "label_smoothing"},
    "RewardRecipe": {"center_rewards_coefficient": "center_rewards_coefficient"},
}
"""Further TRL fields each trainer's recipe sets, by recipe class name."""


def owned_keys(recipe: Any) -> dict[str, str]:
    """TRL field -> the cai field (or rule) that sets it, for ``recipe``: :data:`TRAIN_OWNED` plus the
    trainer's own (:data:`OWNED_BY`), or the recipe's ``trl_owned()`` (the online trainers')."""
    if hasattr(recipe, "trl_owned"):
        return recipe.trl_owned()
    return {**TRAIN_OWNED, **OWNED_BY.get(type(recipe).__name__, {})}


def check_trl_keys(recipe: TrainRecipe | Any, config_cls) -> None:
    """Reject ``trl:`` keys that are not fields of the TRL config class, and keys that set what cai
    itself sets, derives or checks (:func:`owned_keys`: e.g. ``trl: {reward_weights: [-1, 5]}`` would
    turn a guard's penalty into a bonus behind cai's check of the weights), before any model loads.
    ``recipe`` is any config with a ``trl`` mapping (a :class:`TrainRecipe`, the online trainers').
    Raises a one-line CaiError naming the key and the cai field to use instead."""
    import dataclasses

    known = {f.name for f in dataclasses.fields(config_cls)}
    owned = owned_keys(recipe)
    for key in recipe.trl:
        if key not in known:
            raise CaiError(f"trl.{key}: not a field of trl.{config_cls.__name__}")
        if key in owned:
            raise CaiError(f"trl.{key}: cai sets this itself ({_owned_hint(owned[key])}); a trl: value "
                           "would silently replace what cai checked and records in summary.json")
    for dotted, where in owned.items():  # a field inside a mapping, e.g. generation_kwargs.temperature
        parent, _, child = dotted.partition(".")
        if child and isinstance(recipe.trl.get(parent), dict) and child in recipe.trl[parent]:
            raise CaiError(f"trl.{dotted}: cai sets this itself ({_owned_hint(where)}); a trl: value would "
                           "silently replace what cai checked and records in summary.json")
    init = recipe.trl.get("model_init_kwargs")
    if getattr(recipe, "dtype", None) is not None and isinstance(init, dict) and {"dtype", "torch_dtype"} & set(init):
        raise CaiError("trl.model_init_kwargs.dtype: cai sets this itself (set the field `dtype`)")


def _owned_hint(where: str) -> str:
    return where if " " in where else f"set the field `{where}` instead"


def trl_config(config_cls, recipe: TrainRecipe, **specific: Any):
    """The TRL config for a recipe: shared fields, then trainer-specific ones, then ``trl:``.

    Without CUDA, ``use_cpu=True`` and ``bf16=False`` are forced last (:func:`build_trl_config`).
    """
    check_trl_keys(recipe, config_cls)
    kw: dict[str, Any] = dict(
        output_dir=recipe.out,
        max_steps=recipe.max_steps,
        num_train_epochs=recipe.epochs,
        per_device_train_batch_size=recipe.batch_size,
        gradient_accumulation_steps=recipe.grad_accum,
        max_length=recipe.max_length,
        seed=recipe.seed,
        logging_steps=recipe.logging_steps,
        save_strategy="steps" if recipe.save_steps else "no",
        report_to="none",
        disable_tqdm=not sys.stderr.isatty(),  # a log file gets the logged lines, not redrawn bars
    )
    if recipe.save_steps:
        kw["save_steps"] = recipe.save_steps
    if recipe.learning_rate is not None:
        kw["learning_rate"] = recipe.learning_rate
    if recipe.gradient_checkpointing is not None:
        kw["gradient_checkpointing"] = recipe.gradient_checkpointing
    if recipe.dtype is not None:
        kw["model_init_kwargs"] = {"dtype": recipe.dtype}
    kw.update(specific)
    return build_trl_config(config_cls, kw, recipe.trl)


def build_trl_config(config_cls, kw: dict[str, Any], overrides: dict[str, Any]):
    """``config_cls(**kw)`` with the recipe's ``trl:`` overrides applied last; without CUDA
    ``use_cpu=True`` and ``bf16``/``fp16`` off are forced after them. Shared by every TRL trainer
    cai runs (SFT, DPO, reward, GRPO, RLOO). Raises a one-line CaiError for settings TRL rejects."""
    import torch

    kw = {**kw, **overrides}
    if not torch.cuda.is_available():
        kw.update(use_cpu=True, bf16=False, fp16=False)
    try:
        return config_cls(**kw)
    except (TypeError, ValueError) as exc:
        raise CaiError(f"invalid training settings: {str(exc).splitlines()[0]}") from None


def peft_config(recipe: TrainRecipe, task_type: str):
    """A peft LoraConfig for the recipe's ``lora:`` block (None without one)."""
    if recipe.lora is None:
        return None
    from cai.core.errors import require

    peft = require("peft", extra="train", purpose="LoRA training")
    lora = recipe.lora
    return peft.LoraConfig(task_type=task_type, r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                           target_modules=lora.target_modules)
