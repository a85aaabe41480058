"""Models for the Python API: a name, a :class:`~cai.backends.BackendConfig` or a loaded backend.

A backend the caller passes in stays open (the caller owns it); one the call loads from a name or
a config is closed when the call ends, so a vLLM engine never keeps its memory into the next
stage of a script.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, Union

from cai.backends import Backend, BackendConfig, load_backend

ModelLike = Union[str, BackendConfig, Backend, None]
"""A model: a known name (``smollm2-135m-instruct``), a local folder, a ``.gguf`` file, a hub id,
a :class:`BackendConfig`, or an already loaded :class:`Backend`. None: the embedded default."""


def backend_config(model: ModelLike, backend: str = "auto", options: dict[str, Any] | None = None) -> BackendConfig:
    """The :class:`BackendConfig` for a model given by name or config (``backend``/``options``
    apply to a name only)."""
    from cai.models import DEFAULT_MODEL

    if isinstance(model, BackendConfig):
        return model
    if isinstance(model, Backend):
        return model.config
    return BackendConfig(backend=backend, model=model or DEFAULT_MODEL, options=dict(options or {}))


def build(config_cls, **fields: Any):
    """``config_cls(**fields)`` without the None-valued fields (unset, so defaults and "only with"
    rules apply), a pydantic error turned into one CaiError line naming the field."""
    from pydantic import ValidationError

    from cai.core.diagnostics import unknown_field_hint
    from cai.core.errors import CaiError

    try:
        return config_cls(**{k: v for k, v in fields.items() if v is not None})
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(map(str, err["loc"]))
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown argument" + unknown_field_hint(config_cls, err["loc"])
        raise CaiError(f"{where + ': ' if where else ''}{msg}") from None


class Models:
    """Load each distinct model once for a call, and close what was loaded on exit."""

    def __init__(self) -> None:
        self._loaded: dict[str, Backend] = {}
        self._owned: list[Backend] = []

    def get(self, model: ModelLike, backend: str = "auto", options: dict[str, Any] | None = None) -> Backend:
        if isinstance(model, Backend):
            return model
        cfg = backend_config(model, backend, options)
        key = cfg.model_dump_json()
        if key not in self._loaded:
            loaded = load_backend(cfg)
            self._loaded[key] = loaded
            self._owned.append(loaded)
        return self._loaded[key]

    def close(self) -> None:
        while self._owned:
            self._owned.pop().close()


@contextlib.contextmanager
def open_models() -> Iterator[Models]:
    """``with open_models() as m: m.get("smollm2-135m-instruct")``: every loaded backend is closed on exit,
    errors included."""
    m = Models()
    try:
        yield m
    finally:
        m.close()


@contextlib.contextmanager
def quiet_datasets() -> Iterator[None]:
    """Hide ``datasets``' progress bars while the API writes exports (they would fill a notebook's
    output); progress goes through :mod:`logging` instead."""
    try:
        import datasets
    except ImportError:  # pragma: no cover - datasets is a base dependency
        yield
        return
    was_enabled = datasets.utils.logging.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        if was_enabled:
            datasets.enable_progress_bars()
