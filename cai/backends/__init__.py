"""Inference backends: one batch-first protocol (generate, score_choices), lazily loaded by name.

Importing this package imports neither torch nor vLLM; :func:`load_backend` imports only the
backend it is asked for.

Imports: :mod:`cai.core` and :mod:`cai.models`.
"""

from cai.backends.base import (
    Backend,
    BackendConfig,
    Batch,
    Completion,
    Conversation,
    Labels,
    Message,
    SamplingConfig,
)
from cai.backends.choices import ChoiceProbs, label_mass
from cai.backends.loader import load_backend
from cai.backends.registry import available_backends, register_backend

__all__ = [
    "Backend",
    "BackendConfig",
    "Batch",
    "ChoiceProbs",
    "Completion",
    "Conversation",
    "Labels",
    "Message",
    "SamplingConfig",
    "available_backends",
    "label_mass",
    "load_backend",
    "register_backend",
]
