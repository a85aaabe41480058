"""Backends by name, imported only when asked for.

Each entry is a small function that imports its module and returns the backend class, so the base
install never imports vLLM (or torch, for ``openai``/``scripted``) until that backend is chosen.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydantic import BaseModel

    from cai.backends.base import Backend

_REGISTRY: dict[str, Callable[[], type[Backend]]] = {}


def register_backend(name: str) -> Callable:
    """Decorator: register a zero-argument function returning a :class:`Backend` subclass."""

    def wrap(loader: Callable[[], type[Backend]]):
        _REGISTRY[name] = loader
        return loader

    return wrap


# The built-in backends by module and class: imported by name (importlib) only when chosen, so
# this module depends on none of them and a base install never imports vLLM or torch here.
_BUILTIN: dict[str, tuple[str, str]] = {
    "transformers": ("cai.backends.transformers_backend", "TransformersBackend"),
    "vllm": ("cai.backends.vllm_backend", "VLLMBackend"),
    "openai": ("cai.backends.openai_backend", "OpenAIBackend"),
    "scripted": ("cai.backends.scripted", "ScriptedBackend"),
}


def _builtin_loader(module: str, cls: str) -> Callable[[], type[Backend]]:
    def load() -> type[Backend]:
        import importlib

        return getattr(importlib.import_module(module), cls)

    return load


for _name, (_module, _cls) in _BUILTIN.items():
    _REGISTRY[_name] = _builtin_loader(_module, _cls)


def auto_backend() -> tuple[str, str]:
    """The backend ``auto`` stands for on this machine, and why: vLLM when a CUDA device and
    vLLM are both present, transformers otherwise (vLLM on CPU works but starts slowly)."""
    import importlib.util

    has_vllm = importlib.util.find_spec("vllm") is not None
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except ImportError:  # pragma: no cover - torch is a dependency
        has_cuda = False
    if has_cuda and has_vllm:
        return "vllm", "a CUDA device and vLLM are present"
    if has_cuda:
        return "transformers", "CUDA is present but vLLM is not installed"
    return "transformers", "no CUDA device"


def available_backends() -> list[str]:
    """Registered backend names (whether or not their dependencies are installed)."""
    return sorted([*_REGISTRY, "auto"])


def backend_class(name: str) -> type[Backend]:
    """The class registered under ``name``; raises ValueError for an unknown name."""
    if name == "auto":
        name = auto_backend()[0]
    try:
        loader = _REGISTRY[name]
    except KeyError:
        raise ValueError(
            f"unknown backend {name!r}; choose one of: {', '.join(available_backends())}"
        ) from None
    return loader()


def backend_options_model(name: str) -> type[BaseModel] | None:
    """The pydantic model that validates ``BackendConfig.options`` for this backend."""
    return backend_class(name).Options
