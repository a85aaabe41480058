"""Models by name, and GGUF files, as local Hugging Face folders.

``resolve_model(spec)`` is what every local backend and trainer calls on the model it is given:

- a known name (``smollm2-135m-instruct``) → its cached HF folder, prepared on first use;
- a path to a ``.gguf`` file (llama.cpp, Ollama) → a cached HF folder keyed by the file's sha256;
- anything else (a folder, a hub id) → unchanged.

Imports: :mod:`cai.core` only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cai.core.errors import CaiError, looked_at
from cai.models.catalog import DEFAULT_MODEL, KNOWN_MODELS, KnownModel, known_model
from cai.models.convert import cache_dir, convert_gguf, file_sha256, is_ready, prepare

__all__ = ["DEFAULT_MODEL", "KNOWN_MODELS", "KnownModel", "ModelStatus", "cache_dir", "known_model",
           "model_status", "resolve_model"]


def _key(known: KnownModel, gguf: Path) -> str:
    # Keyed by content too: a new release of the package with other weights gets its own folder.
    return f"{known.name}-{file_sha256(gguf)[:12]}"


def resolve_model(spec: str) -> str:
    """A local path transformers and vLLM can load for ``spec`` (see the module docstring).

    Raises CaiError for a known name whose package is missing (with the install command), a
    ``.gguf`` path that does not exist, or a GGUF file transformers cannot read.
    """
    known = known_model(spec)
    if known is not None:
        gguf = known.require()
        folder = prepare(_key(known, gguf), lambda tmp: {"name": known.name, "package": known.package,
                                                           **convert_gguf(gguf, tmp)}, label=known.name)
        return str(folder)
    if spec.lower().endswith(".gguf"):
        gguf = Path(spec).expanduser()
        if not gguf.is_file():
            raise CaiError(f"GGUF model file {spec!r} does not exist{looked_at(spec)}")
        digest = file_sha256(gguf)
        folder = prepare(f"gguf-{digest[:16]}", lambda tmp: {"sha256": digest, **convert_gguf(gguf, tmp)},
                         label=gguf.name)
        return str(folder)
    return spec


@dataclass
class ModelStatus:
    """One row of ``cai models list``."""

    name: str
    source: str
    license: str
    params: str
    installed: bool
    prepared: str | None
    description: str


def model_status() -> list[ModelStatus]:
    """Every known model: its source, whether its package is installed, and its prepared folder."""
    rows = []
    for known in KNOWN_MODELS.values():
        gguf = known.locate()
        prepared = None
        if gguf is not None:
            folder = cache_dir() / _key(known, gguf)
            prepared = str(folder) if is_ready(folder) else None
        rows.append(ModelStatus(known.name, f"pip: {known.package} ({known.file.rsplit('/', 1)[-1]})",
                                known.license, known.params, gguf is not None, prepared, known.description))
    return rows
