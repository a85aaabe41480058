"""Build the backend a config names: one process, or Ray workers over several copies."""

from __future__ import annotations

import sys
from typing import Any

from cai.backends.base import Backend, BackendConfig
from cai.backends.ray_backend import RayBackend
from cai.backends.registry import backend_class


def load_backend(config: BackendConfig | dict[str, Any] | None = None, **fields: Any) -> Backend:
    """Build the backend a config names. Any of::

        load_backend(BackendConfig(backend="vllm", model="m"))
        load_backend({"backend": "vllm", "model": "m"})
        load_backend(backend="vllm", model="m")

    Keyword fields override those of ``config``. With ``workers`` above 1 or a ``ray_address``,
    the backend is a :class:`~cai.backends.ray_backend.RayBackend` over that many copies.
    """
    if not isinstance(config, BackendConfig) or fields:
        data = config.model_dump() if isinstance(config, BackendConfig) else dict(config or {})
        config = BackendConfig.model_validate({**data, **fields})
    note = f" (auto: {config.auto_reason})" if config.auto_reason else ""
    if config.workers > 1 or config.ray_address:
        backend = RayBackend(config)
        note += f" on {config.workers} Ray workers"
    else:
        backend = backend_class(config.backend)(config)
    print(f"cai: backend {config.backend}{note}, model {config.model}", file=sys.stderr, flush=True)
    return backend
