"""vLLM on a CPU machine with defaults, and engine start failures that say why."""

from __future__ import annotations

import pytest

from cai.backends.engine_log import root_cause, tee_output
from cai.backends.vllm_backend import VLLMOptions, engine_memory_kwargs
from cai.core.errors import CaiError

# What vLLM 0.32 prints when its engine process cannot start, and what the parent then raises.
ENGINE_LOG = """\
(EngineCore pid=11) ERROR 11-29 12:40:49 [core.py:1210] EngineCore failed to start.
(EngineCore pid=11) ERROR 11-29 12:40:49 [core.py:1210] Traceback (most recent call last):
(EngineCore pid=11) ERROR 11-29 12:40:49 [core.py:1210]   File "vllm/v1/worker/cpu_worker.py", line 82, in __init__
(EngineCore pid=11) ERROR 11-29 12:40:49 [core.py:1210] ValueError: Available memory on node 0 (7.89/9.21 GiB) on startup is less than desired CPU memory utilization (0.9, 8.29 GiB).
Exception: WorkerProc initialization failed due to an exception in a background process. See stack trace for root cause.
RuntimeError: Engine core initialization failed. See root cause above. Failed core proc(s): {}
"""


def test_root_cause_is_the_engine_process_error_not_the_wrapper():
    cause = root_cause(ENGINE_LOG.splitlines(), "fallback")
    assert cause.startswith("ValueError: Available memory on node 0") and "See root cause" not in cause
    assert root_cause(["INFO all good", "RuntimeError: Engine core initialization failed. See root cause above"],
                      "the exception") == "the exception"


def test_tee_keeps_child_lines_and_passes_them_through(capfd):
    import subprocess
    import sys

    with tee_output() as tail:
        subprocess.run([sys.executable, "-c", "import sys; sys.stderr.write('KeyError: boom\\n')"], check=True)
    import time

    for _ in range(50):  # the forwarding thread reads asynchronously
        if "KeyError: boom" in tail.lines:
            break
        time.sleep(0.05)
    assert "KeyError: boom" in tail.lines
    assert "KeyError: boom" in capfd.readouterr().err  # still shown to the user


def test_cpu_defaults_size_the_kv_cache_and_run_eager():
    cpu = engine_memory_kwargs(VLLMOptions(), on_cpu=True)
    assert cpu["enforce_eager"] is True and "gpu_memory_utilization" not in cpu
    assert 0.5 * 2**30 <= cpu["kv_cache_memory_bytes"] <= 4 * 2**30
    gpu = engine_memory_kwargs(VLLMOptions(), on_cpu=False)
    assert gpu == {"enforce_eager": False}  # vLLM's own defaults on a GPU
    explicit = engine_memory_kwargs(VLLMOptions(gpu_memory_utilization=0.3, enforce_eager=False), on_cpu=True)
    assert explicit == {"enforce_eager": False, "gpu_memory_utilization": 0.3}
    given = engine_memory_kwargs(VLLMOptions(engine_kwargs={"kv_cache_memory_bytes": 2**30}), on_cpu=True)
    assert "kv_cache_memory_bytes" not in given  # the user's own value is passed through engine_kwargs


@pytest.mark.vllm
def test_default_engine_on_cpu(vllm_backend):
    info = vllm_backend.describe()
    assert info["enforce_eager"] is True and "kv_cache_memory_bytes" in vllm_backend.engine_kwargs
    [[c]] = vllm_backend.generate(["Hello"])
    assert c.completion_tokens > 0


@pytest.mark.vllm
@pytest.mark.slow
def test_engine_start_failure_names_the_root_cause(tiny_llama):
    pytest.importorskip("vllm")
    from cai.backends import load_backend

    with pytest.raises(CaiError) as err:  # 99% of the node's RAM cannot be free on any machine running tests
        load_backend(backend="vllm", model=str(tiny_llama), dtype="float32", max_model_len=512,
                     options={"gpu_memory_utilization": 0.99})
    message = str(err.value)
    assert "Available memory" in message and "See root cause above" not in message
    assert len(message.splitlines()) == 1


@pytest.mark.vllm
def test_penalties_are_the_same_on_transformers_and_vllm(vllm_backend, hf_backend):
    from cai.backends import SamplingConfig

    prompts = ["Tell me about the sea and the sea and the sea", "List colours: red, red, red,"]
    for knobs in ({}, {"frequency_penalty": 1.5}, {"repetition_penalty": 1.5}):
        s = SamplingConfig(temperature=0.0, max_tokens=16, **knobs)
        for prompt in prompts:  # one row per call: transformers' repetition penalty also counts padding
            [[ours]] = hf_backend.generate([prompt], s)
            [[theirs]] = vllm_backend.generate([prompt], s)
            # vLLM holds back an unfinished UTF-8 byte sequence; transformers decodes it as U+FFFD
            assert ours.text.rstrip("\ufffd") == theirs.text.rstrip("\ufffd"), knobs


def test_frequency_penalty_counts_only_generated_tokens(hf_backend):
    from cai.backends import SamplingConfig

    prompts = ["Tell me about the sea and the sea and the sea", "List colours: red, red, red,"]
    s = SamplingConfig(temperature=0.0, max_tokens=16, frequency_penalty=1.5)
    batched = [row[0].text for row in hf_backend.generate(prompts, s)]
    alone = [hf_backend.generate([p], s)[0][0].text for p in prompts]
    assert batched == alone  # left padding does not shift what counts as generated
    plain = [row[0].text for row in hf_backend.generate(prompts, SamplingConfig(temperature=0.0, max_tokens=16))]
    assert plain != batched  # the knob does something
