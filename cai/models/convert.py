"""GGUF file → a plain Hugging Face model folder, once, in a shared cache.

transformers (with the ``gguf`` package) reads GGUF files, but a GGUF-loaded model refuses
``save_pretrained`` and vLLM wants a regular folder. So the first use of a GGUF model loads it,
copies the (dequantized) weights into a model built from its config without the quantization
marker, and saves that plus the tokenizer (with its chat template) as safetensors in bf16.

Safety of the cache, by construction:

- one conversion per folder at a time: an exclusive ``fcntl.flock`` on ``<key>.lock``; a second
  process waits for it and then finds the folder ready;
- nothing half-written is trusted: the conversion writes to ``.tmp-<key>-<pid>``, puts a
  ``cai-model.json`` marker in it last, and renames the folder into place; a folder without the
  marker is never returned, and leftovers of killed conversions are removed under the lock.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import sys
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

from cai.core.errors import CaiError

MARKER = "cai-model.json"
_HASH_INDEX = "gguf-hashes.json"


def cache_dir() -> Path:
    """Where prepared models live: ``$CAI_MODELS_DIR``, else ``$XDG_CACHE_HOME/cai/models``
    (``~/.cache/cai/models``)."""
    env = os.environ.get("CAI_MODELS_DIR")
    if env:
        return Path(env).expanduser().absolute()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return (Path(base) / "cai" / "models").absolute()


def is_ready(folder: Path) -> bool:
    """True when ``folder`` holds a complete conversion (its marker is written last)."""
    return (folder / MARKER).is_file()


def file_sha256(path: Path) -> str:
    """Content hash of a (possibly multi-GB) file, remembered by (path, size, mtime) so a file
    is read once, not on every run."""
    st = path.stat()
    key = f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}"
    index_path = cache_dir() / _HASH_INDEX
    try:
        index = json.loads(index_path.read_text())
    except (OSError, ValueError):
        index = {}
    if not isinstance(index, dict):  # not ours, or damaged: start over
        index = {}
    if key in index:
        return index[key]
    with open(path, "rb") as fh:
        digest = hashlib.file_digest(fh, "sha256").hexdigest()
    index[key] = digest
    try:
        index_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = index_path.with_name(f".{index_path.name}.{os.getpid()}")
        tmp.write_text(json.dumps(index, indent=1))
        os.replace(tmp, index_path)
    except OSError:  # a read-only cache only costs the hash again next time
        pass
    return digest


@contextmanager
def _locked(path: Path):
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(path, "a")
    except OSError as exc:
        raise CaiError(f"the model cache {path.parent} is not a writable folder ({exc.strerror}); "
                       "set CAI_MODELS_DIR to one") from None
    with fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def prepare(key: str, build: Callable[[Path], dict], *, label: str) -> Path:
    """Return ``cache_dir()/key``, building it with ``build(tmp_folder) -> metadata`` first when
    it is not there yet. Safe against concurrent callers and against a build killed midway."""
    root = cache_dir()
    dest = root / key
    if is_ready(dest):
        return dest
    with _locked(root / f"{key}.lock"):
        if is_ready(dest):  # another process finished it while we waited
            return dest
        for stale in root.glob(f".tmp-{key}-*"):  # killed conversions: nobody else holds the lock
            shutil.rmtree(stale, ignore_errors=True)
        if dest.exists():  # no marker: not ours to trust
            shutil.rmtree(dest)
        tmp = root / f".tmp-{key}-{os.getpid()}"
        print(f"cai: preparing {label} (first use only) in {dest}", file=sys.stderr, flush=True)
        started = time.perf_counter()
        try:
            meta = build(tmp)
            meta = {**meta, "seconds": round(time.perf_counter() - started, 1)}
            (tmp / MARKER).write_text(json.dumps(meta, indent=2) + "\n")
            _readable(tmp)
            os.rename(tmp, dest)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        print(f"cai: {label} ready ({meta['seconds']:.0f} s)", file=sys.stderr, flush=True)
    return dest


def _readable(folder: Path) -> None:
    """Give every file the mode a plain write would (0o666 less the umask: 0644 usually) and every
    folder 0o777 less the umask: writers that go through private temporary files (safetensors,
    tokenizers) leave 0600, which other users of a shared cache, or a container running as
    another user, cannot read."""
    mask = os.umask(0)
    os.umask(mask)
    for path in [folder, *folder.rglob("*")]:
        if path.is_symlink():
            continue
        os.chmod(path, (0o777 if path.is_dir() else 0o666) & ~mask)


def convert_gguf(gguf: Path, out: Path, *, dtype: str = "bfloat16") -> dict:
    """Write ``gguf`` as a Hugging Face folder at ``out``; returns metadata for the marker.

    Raises CaiError when the ``gguf`` package is missing or transformers cannot read the file
    (an architecture it does not support, a corrupt file).
    """
    import importlib.util

    if importlib.util.find_spec("gguf") is None:  # transformers needs it to read GGUF files
        raise CaiError("reading GGUF models needs the 'gguf' package: pip install gguf")
    import logging

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    logging.getLogger("transformers").setLevel(logging.ERROR)
    folder, name = str(gguf.parent), gguf.name
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
        loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    except Exception as exc:  # transformers raises assorted types for unsupported/corrupt files
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise CaiError(f"could not read GGUF model {gguf}: {first}") from None
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config  # save_pretrained refuses a model that carries it
    target = getattr(torch, dtype)
    config.dtype = target
    plain = AutoModelForCausalLM.from_config(config, dtype=target)
    plain.load_state_dict(loaded.state_dict(), strict=True)
    plain.generation_config = loaded.generation_config
    out.mkdir(parents=True, exist_ok=True)
    plain.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return {"source": str(gguf), "dtype": dtype, "architecture": type(plain).__name__,
            "parameters": sum(p.numel() for p in plain.parameters())}
