"""Backend configs, the registry, label tokenization and prompt fitting: no model needed."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest
from pydantic import ValidationError

from cai.backends import BackendConfig, Completion, SamplingConfig, available_backends, load_backend
from cai.backends.base import as_conversations, option_lists
from cai.backends.chat import fit_prompt, prompt_budget
from cai.backends.choices import combine, label_spellings, plan_choices
from cai.core.errors import CaiError, MissingDependencyError

BLOCK_VLLM = """
import importlib.abc, sys
class BlockVLLM(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "vllm" or name.startswith("vllm."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, BlockVLLM())
"""


def run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=240)


# -- configs ----------------------------------------------------------------------------------


def test_sampling_config_defaults_and_validation():
    s = SamplingConfig()
    assert (s.temperature, s.top_p, s.max_tokens, s.n, s.stop, s.seed) == (
        1.0,
        1.0,
        256,
        1,
        [],
        None,
    )
    assert SamplingConfig(stop="###").stop == ["###"]
    for bad in ({"temperature": -1}, {"top_p": 0}, {"max_tokens": 0}, {"n": 0}, {"topp": 1}):
        with pytest.raises(ValidationError):
            SamplingConfig(**bad)
    assert "greedy" in SamplingConfig.model_fields["temperature"].description


def test_backend_config_validates_backend_and_its_options():
    cfg = BackendConfig(backend="vllm", model="m", options={"tensor_parallel_size": 2})
    assert cfg.backend_options().tensor_parallel_size == 2
    assert cfg.backend_options().enable_prefix_caching is True
    with pytest.raises(ValidationError, match="unknown backend 'nope'"):
        BackendConfig(backend="nope", model="m")
    with pytest.raises(ValidationError, match="batch_sise"):
        BackendConfig(backend="transformers", model="m", options={"batch_sise": 4})
    with pytest.raises(ValidationError):
        BackendConfig(backend="transformers", model="m", on_overflow="drop")
    urls = BackendConfig(
        backend="openai", model="m", options={"base_urls": "http://a/v1, http://b/v1"}
    )
    assert urls.backend_options().base_urls == ["http://a/v1", "http://b/v1"]


def test_backend_config_round_trips_through_json():
    cfg = BackendConfig(
        backend="openai", model="m", on_overflow="truncate", options={"max_concurrency": 4}
    )
    assert BackendConfig.model_validate(json.loads(cfg.model_dump_json())) == cfg


def test_registry_and_load_backend_forms():
    assert {"vllm", "transformers", "openai", "scripted"} <= set(available_backends())
    a = load_backend(BackendConfig(backend="scripted", model="s", options={"replies": ["x"]}))
    b = load_backend({"backend": "scripted", "model": "s"}, options={"replies": ["y"]})
    c = load_backend(backend="scripted", model="s", options={"replies": ["z"]})
    assert [x.generate(["q"])[0][0].text for x in (a, b, c)] == ["x", "y", "z"]
    assert a.describe() == {"backend": "scripted", "model": "s", "dtype": "auto"}
    with pytest.raises(ValidationError):
        load_backend(backend="scripted")  # no model


def test_completion_fields():
    c = Completion(text="hi", prompt_tokens=3, completion_tokens=1, finish_reason="stop")
    assert c.truncated is False
    with pytest.raises(ValidationError):
        Completion(text="hi", prompt_tokens=3, completion_tokens=1, finish_reason="eos")


# -- batch checks -----------------------------------------------------------------------------


def test_as_conversations_normalizes_and_rejects():
    assert as_conversations(["hi"]) == [[{"role": "user", "content": "hi"}]]
    assert as_conversations([]) == []
    with pytest.raises(CaiError, match="single one"):
        as_conversations("hi")
    with pytest.raises(CaiError, match="row 1"):
        as_conversations(["ok", []])
    with pytest.raises(CaiError, match="row 0: each message"):
        as_conversations([[{"role": "user"}]])


def test_option_lists():
    assert option_lists(["A", "B"], 2) == [["A", "B"], ["A", "B"]]
    assert option_lists([["A", "B"], ["1", "2", "3"]], 2) == [["A", "B"], ["1", "2", "3"]]
    with pytest.raises(CaiError, match="3 option lists for 2"):
        option_lists([["A", "B"]] * 3, 2)
    with pytest.raises(CaiError, match="row 0: options must be two or more distinct"):
        option_lists(["A", "A"], 1)
    with pytest.raises(CaiError):
        option_lists("AB", 1)


# -- label variants and the prefix tree ---------------------------------------------------------

VOCAB = {
    "A": [1],
    " A": [2],
    "B": [3],
    " B": [4],
    "Yes": [5, 6],
    " Yes": [7, 6],
    "No": [8],
    " No": [8],
}


def test_plan_single_token_labels_is_one_query():
    plan = plan_choices(["A", "B"], VOCAB.__getitem__)
    assert plan.variants == (((1,), (2,)), ((3,), (4,)))
    assert plan.queries == (((), (1, 2, 3, 4)),)
    assert plan.longest == 1
    assert label_spellings(" A") == ["A", " A"]


def test_plan_multi_token_and_deduplicated_variants():
    plan = plan_choices(["Yes", "No"], VOCAB.__getitem__)
    assert plan.variants == (((5, 6), (7, 6)), ((8,),))  # " No" == "No": counted once
    assert dict(plan.queries) == {(): (5, 7, 8), (5,): (6,), (7,): (6,)}
    answers = [
        {5: math.log(0.2), 7: math.log(0.1), 8: math.log(0.3)},
        {6: math.log(0.5)},
        {6: math.log(1.0)},
    ]
    probs = combine(plan, answers)
    yes, no = 0.2 * 0.5 + 0.1 * 1.0, 0.3
    assert probs["Yes"] == pytest.approx(yes / (yes + no))
    assert probs["No"] == pytest.approx(no / (yes + no))


def test_plan_rejects_labels_that_tokenize_the_same():
    with pytest.raises(CaiError, match="tokenize the same"):
        plan_choices(["No", " No"], VOCAB.__getitem__)


def test_combine_zero_probability_everywhere():
    plan = plan_choices(["A", "B"], VOCAB.__getitem__)
    with pytest.raises(CaiError, match="zero probability"):
        combine(plan, [{1: -math.inf, 2: -math.inf, 3: -math.inf, 4: -math.inf}])


# -- prompt fitting ---------------------------------------------------------------------------


def test_fit_prompt_truncates_from_the_left_keeping_bos():
    assert fit_prompt([1, 2, 3], 3, "error", 0, 10) == ([1, 2, 3], False)
    assert fit_prompt([0, 1, 2, 3, 4], 3, "truncate", 0, 10, bos_id=0) == ([0, 3, 4], True)
    assert fit_prompt([5, 1, 2, 3, 4], 3, "truncate", 0, 10, bos_id=0) == ([2, 3, 4], True)
    # The row is named by the caller (file line or id), not by its position in a batch.
    from cai.backends.base import PromptRejected

    with pytest.raises(PromptRejected, match="^prompt has 5 tokens"):
        fit_prompt([1, 2, 3, 4, 5], 3, "error", 7, 10)
    with pytest.raises(CaiError, match="max_tokens=10 leaves no room"):
        prompt_budget(10, 10)


# -- the base install -------------------------------------------------------------------------


def test_import_cai_imports_neither_vllm_nor_torch():
    code = (
        "import sys, cai, cai.backends; from cai.backends import BackendConfig\n"
        "BackendConfig(backend='vllm', model='m')\n"
        "BackendConfig(backend='transformers', model='m')\n"
        "heavy = ('vllm', 'torch', 'transformers')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))"
    )
    out = run_python(code)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


@pytest.mark.slow
def test_base_install_without_vllm_runs_transformers_backend(tiny_llama):
    code = (
        BLOCK_VLLM
        + f"""
import json, sys
from cai.backends import SamplingConfig, load_backend
from cai.core.errors import CaiError
b = load_backend(backend="transformers", model={str(tiny_llama)!r})
out = b.generate(["Which is better, A or B?"], SamplingConfig(temperature=0, max_tokens=4))
probs = b.score_choices(["Which is better, A or B?"], ["A", "B"])
try:
    load_backend(backend="vllm", model={str(tiny_llama)!r})
    hint = None
except CaiError as exc:
    hint = str(exc)
print(json.dumps({{"tokens": out[0][0].completion_tokens, "p": sum(probs[0].values()), "hint": hint,
                  "vllm_loaded": any(m.split(".")[0] == "vllm" for m in sys.modules)}}))
"""
    )
    out = run_python(code)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["tokens"] == 4 and result["p"] == pytest.approx(1.0)
    assert result["hint"] == (
        "the vllm backend needs the 'vllm' package, which is not installed: "
        'pip install "cai-constitution[vllm]"'
    )
    assert result["vllm_loaded"] is False


def test_missing_dependency_is_a_one_line_install_hint(monkeypatch):
    import importlib

    real = importlib.import_module

    def fake(name, *args):
        if name.split(".")[0] == "vllm":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return real(name, *args)

    monkeypatch.setattr(importlib, "import_module", fake)
    with pytest.raises(MissingDependencyError) as info:
        load_backend(backend="vllm", model="/nonexistent/model")
    assert "\n" not in str(info.value) and 'pip install "cai-constitution[vllm]"' in str(info.value)


def test_pad_rows_left_and_right():
    from cai.models.padding import pad_rows

    ids, mask = pad_rows([[5, 6, 7], [8]], pad_id=0, side="left")
    assert ids.tolist() == [[5, 6, 7], [0, 0, 8]] and mask.tolist() == [[1, 1, 1], [0, 0, 1]]
    ids, mask = pad_rows([[5, 6, 7], [8]], pad_id=0, side="right")
    assert ids.tolist() == [[5, 6, 7], [8, 0, 0]] and mask.tolist() == [[1, 1, 1], [1, 0, 0]]
