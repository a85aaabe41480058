"""Backends by name, imported only when asked for.

Each entry is a small function that imports its module and returns the backend class, so the base
install never imports vLLM (or torch, for ``openai``/``scripted``) until that backend is chosen.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pydantic import BaseModel

    from cai.backends.base import Backend, BackendConfig

_REGISTRY: dict[str, Callable[[], type[Backend]]] = {}


def register_backend(name: str) -> Callable:
    """Decorator: register a zero-argument function returning a :class:`Backend` subclass."""

    def wrap(loader: Callable[[], type[Backend]]):
        _REGISTRY[name] = loader
        return loader

    return wrap


@register_backend("transformers")
def _transformers():
    from cai.backends.transformers_backend import TransformersBackend

    return TransformersBackend


@register_backend("vllm")
def _vllm():
    from cai.backends.vllm_backend import VLLMBackend

    return VLLMBackend


@register_backend("openai")
def _openai():
    from cai.backends.openai_backend import OpenAIBackend

    return OpenAIBackend


@register_backend("scripted")
def _scripted():
    from cai.backends.scripted import ScriptedBackend

    return ScriptedBackend


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


def load_backend(config: BackendConfig | dict[str, Any] | None = None, **fields: Any) -> Backend:
    """Build the backend a config names. Any of::

        load_backend(BackendConfig(backend="vllm", model="m"))
        load_backend({"backend": "vllm", "model": "m"})
        load_backend(backend="vllm", model="m")

    Keyword fields override those of ``config``. With ``workers`` above 1 or a ``ray_address``,
    the backend is a :class:`~cai.backends.ray_backend.RayBackend` over that many copies.
    """
    from cai.backends.base import BackendConfig

    if not isinstance(config, BackendConfig) or fields:
        data = config.model_dump() if isinstance(config, BackendConfig) else dict(config or {})
        config = BackendConfig.model_validate({**data, **fields})
    import sys

    note = f" (auto: {config.auto_reason})" if config.auto_reason else ""
    if config.workers > 1 or config.ray_address:
        from cai.backends.ray_backend import RayBackend

        backend = RayBackend(config)
        note += f" on {config.workers} Ray workers"
    else:
        backend = backend_class(config.backend)(config)
    print(f"cai: backend {config.backend}{note}, model {config.model}", file=sys.stderr, flush=True)
    return backend
