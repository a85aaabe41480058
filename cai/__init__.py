"""cai: Constitutional AI with principles as files.

Importing :mod:`cai` is cheap: heavy optional dependencies (vLLM, TRL) are imported lazily
by the modules that need them.
"""

from importlib.metadata import PackageNotFoundError, version as _version

try:
    __version__ = _version("cai")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+local"

__all__ = ["__version__"]
