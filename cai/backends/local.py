"""Checks and loaders shared by the backends that load a model locally (transformers, vllm)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from cai.core.errors import CaiError, looked_at

log = logging.getLogger("cai.backends")

_CAUSAL_SUFFIXES = ("ForCausalLM", "LMHeadModel", "ForConditionalGeneration")


def _looks_like_path(model: str) -> bool:
    return model.startswith(("/", "./", "../", "~")) or model.count("/") > 1 or "\\" in model


def check_causal_lm(model: str, *, trust_remote_code: bool = False) -> Any:
    """Fail with a clear CaiError unless ``model`` is a causal LM; returns its config."""
    from transformers import AutoConfig

    path = Path(model).expanduser()
    if _looks_like_path(model) and not path.exists():
        raise CaiError(f"model path {model!r} does not exist{looked_at(model)}")
    if path.exists() and not (path / "config.json").is_file():
        raise CaiError(f"model {model!r}: no config.json there, not a Hugging Face model directory")
    try:
        config = AutoConfig.from_pretrained(
            str(path) if path.exists() else model, trust_remote_code=trust_remote_code
        )
    except (OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CaiError(f"model {model!r} could not be loaded: {first}") from None
    architectures = list(getattr(config, "architectures", None) or [])
    if architectures and not any(a.endswith(_CAUSAL_SUFFIXES) for a in architectures):
        raise CaiError(
            f"model {model!r} is not a causal language model (architectures: "
            f"{', '.join(architectures)})"
        )
    if not architectures:
        from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

        if config.model_type not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
            raise CaiError(
                f"model {model!r} is not a causal language model (type {config.model_type!r})"
            )
    return config


def load_tokenizer(model: str, *, trust_remote_code: bool = False) -> Any:
    """The model's tokenizer, set up for left padding."""
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(model, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as exc:
        raise CaiError(f"model {model!r}: could not load its tokenizer: {exc}") from None
    tokenizer.padding_side = "left"
    from cai.models.padding import align_pad_id

    align_pad_id(tokenizer, name=model)
    return tokenizer


def model_context(config: Any, override: int | None) -> int:
    """The context length: the configured one, else the model's ``max_position_embeddings``."""
    if override:
        return override
    for name in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    get_text = getattr(config, "get_text_config", None)
    if get_text is not None and get_text() is not config:
        return model_context(get_text(), None)
    raise CaiError("cannot tell the model's context length: set max_model_len in the config")
