"""Real vLLM: the in-process engine and ``vllm serve`` behind the openai backend, checked against
the transformers backend on the same tiny fp32 model.

One engine and one server per session (conftest); both start in about half a minute here.
"""

from __future__ import annotations

import pytest

from cai.backends import SamplingConfig, load_backend
from cai.core.errors import CaiError

pytestmark = [pytest.mark.vllm, pytest.mark.slow]

GREEDY = SamplingConfig(temperature=0, max_tokens=4)
QUESTIONS = [
    "Which is better, A or B?",
    "hello there",
    "Rate this answer from 1 to 5: the model was polite and clear, because it explained why.",
    "Please write a poem about a helpful assistant.",
]
PREFILLED = [
    {"role": "user", "content": "Which response is more harmless?"},
    {"role": "assistant", "content": "The more harmless response is ("},
]
LABEL_SETS = [["A", "B"], ["1", "2", "3", "4", "5"], ["A", "B", "C", "D", "E"], ["Ziggurat", "A"]]
LONG = "hello there " * 400


def all_scores(backend):
    rows = QUESTIONS + [PREFILLED]
    labels = LABEL_SETS + [["A", "B"]]
    return backend.score_choices(rows, labels)


def same_text(completions) -> list[str]:
    """Texts without U+FFFD: detokenizers differ on a trailing incomplete UTF-8 byte sequence."""
    return [c.text.replace("\ufffd", "") for c in completions]


def assert_close(got, want, tol=1e-3):
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=False):
        assert list(g) == list(w)
        assert max(abs(g[k] - w[k]) for k in w) < tol, (g, w)


# -- the in-process engine ------------------------------------------------------------------------


def test_vllm_scores_agree_with_transformers(vllm_backend, hf_backend):
    reference = all_scores(hf_backend)
    assert_close(all_scores(vllm_backend), reference)
    assert any(0.05 < p["A"] < 0.95 for p in reference if "A" in p)  # not a degenerate check


def test_vllm_greedy_agrees_with_transformers(vllm_backend, hf_backend):
    ours = [row[0] for row in vllm_backend.generate(QUESTIONS, GREEDY)]
    theirs = [row[0] for row in hf_backend.generate(QUESTIONS, GREEDY)]
    assert same_text(ours) == same_text(theirs)
    assert [c.prompt_tokens for c in ours] == [c.prompt_tokens for c in theirs]


def test_greedy_is_the_same_on_every_backend_despite_generation_config(vllm_backend, hf_backend, openai_backend,
                                                                      tiny_llama):
    # The model's generation_config.json sets repetition_penalty, top_k, no_repeat_ngram_size...
    # (conftest): transformers' generate and `vllm serve` would apply them, the in-process engine not.
    assert "repetition_penalty" in (tiny_llama / "generation_config.json").read_text()
    long_greedy = SamplingConfig(temperature=0, max_tokens=24)
    texts = [same_text(row[0] for row in b.generate(QUESTIONS, long_greedy))
             for b in (hf_backend, vllm_backend, openai_backend)]
    assert texts[0] == texts[1] == texts[2]
    info = hf_backend.describe()
    assert info["generation_config_ignored"]["repetition_penalty"] == 1.8
    extras = [b.describe()["sampling_extras"] for b in (hf_backend, vllm_backend, openai_backend)]
    assert extras[0] == extras[1] == extras[2]


def test_vllm_generate_samples_seed_and_stop(vllm_backend):
    s = SamplingConfig(temperature=1.0, max_tokens=6, n=3, seed=7)
    out = vllm_backend.generate(QUESTIONS, s)
    assert [len(row) for row in out] == [3] * len(QUESTIONS)
    assert all(1 <= c.completion_tokens <= 6 for row in out for c in row)
    assert all(c.finish_reason == "length" for row in out for c in row if c.completion_tokens == 6)
    again = vllm_backend.generate(QUESTIONS, s)
    assert [[c.text for c in r] for r in out] == [[c.text for c in r] for r in again]
    assert len({c.text for c in out[0]}) > 1  # n samples differ
    assert vllm_backend.generate([], s) == [] and vllm_backend.score_choices([], ["A", "B"]) == []
    [[greedy]] = vllm_backend.generate([QUESTIONS[3]], SamplingConfig(temperature=0, max_tokens=12))
    stop = greedy.text.strip()[2]
    [[cut]] = vllm_backend.generate(
        [QUESTIONS[3]], SamplingConfig(temperature=0, max_tokens=12, stop=[stop])
    )
    assert cut.text == greedy.text[: greedy.text.find(stop)] and cut.finish_reason == "stop"


def test_vllm_greedy_n_copies(vllm_backend):
    [row] = vllm_backend.generate([QUESTIONS[0]], SamplingConfig(temperature=0, max_tokens=4, n=2))
    assert len(row) == 2 and row[0].text == row[1].text


def test_vllm_overflow_error_and_truncate(vllm_backend):
    with pytest.raises(CaiError, match="row 1: prompt has"):
        vllm_backend.generate(["short", LONG], GREEDY)
    config = vllm_backend.config
    vllm_backend.config = config.model_copy(update={"on_overflow": "truncate"})
    try:
        out = vllm_backend.generate(["short", LONG], GREEDY)
        assert [r[0].truncated for r in out] == [False, True]
        assert out[1][0].prompt_tokens == 512 - GREEDY.max_tokens
        assert sum(vllm_backend.score_choices([LONG], ["A", "B"])[0].values()) == pytest.approx(1)
    finally:
        vllm_backend.config = config


def test_vllm_bad_models_fail_before_starting_an_engine(tmp_path):
    pytest.importorskip("vllm")
    with pytest.raises(CaiError, match="does not exist"):
        load_backend(backend="vllm", model=str(tmp_path / "missing"))
    (tmp_path / "config.json").write_text('{"model_type": "bert", "architectures": ["BertModel"]}')
    with pytest.raises(CaiError, match="not a causal language model"):
        load_backend(backend="vllm", model=str(tmp_path))


# -- vllm serve through the openai backend ---------------------------------------------------------


def test_openai_scores_agree_with_transformers(openai_backend, hf_backend):
    assert openai_backend._is_vllm is not False
    assert_close(all_scores(openai_backend), all_scores(hf_backend))
    assert openai_backend._is_vllm is True  # detected through /version


def test_openai_greedy_agrees_with_transformers(openai_backend, hf_backend):
    ours = [row[0] for row in openai_backend.generate(QUESTIONS + [PREFILLED], GREEDY)]
    theirs = [row[0] for row in hf_backend.generate(QUESTIONS + [PREFILLED], GREEDY)]
    assert same_text(ours) == same_text(theirs)
    assert [c.prompt_tokens for c in ours] == [c.prompt_tokens for c in theirs]
    assert [c.completion_tokens for c in ours] == [c.completion_tokens for c in theirs]


def test_openai_samples_with_seed(openai_backend):
    s = SamplingConfig(temperature=1.0, max_tokens=5, n=2, seed=3)
    out = openai_backend.generate(QUESTIONS[:2], s)
    assert [len(r) for r in out] == [2, 2]
    assert [[c.text for c in r] for r in out] == [
        [c.text for c in r] for r in openai_backend.generate(QUESTIONS[:2], s)
    ]


def test_openai_overflow_error_and_truncate(openai_backend, vllm_server):
    with pytest.raises(
        CaiError, match="row 1: prompt is longer than the context.*on_overflow: truncate"
    ):
        openai_backend.generate(["short", LONG], GREEDY)
    truncating = load_backend(
        backend="openai",
        model="tiny",
        on_overflow="truncate",
        options={"base_urls": vllm_server.base_url},
    )
    out = truncating.generate(["short", LONG], GREEDY)
    assert [r[0].truncated for r in out] == [False, True]
    assert out[1][0].prompt_tokens == 512 - GREEDY.max_tokens
    with pytest.raises(CaiError, match="row 1: prompt has"):
        openai_backend.score_choices(["short", LONG], ["A", "B"])
    [probs] = truncating.score_choices([LONG], ["A", "B"])
    assert sum(probs.values()) == pytest.approx(1.0)


def test_openai_unknown_model_is_a_clear_error(vllm_server):
    wrong = load_backend(
        backend="openai", model="not-served", options={"base_urls": vllm_server.base_url}
    )
    with pytest.raises(CaiError, match=rf"{vllm_server.base_url}/chat/completions answered 404"):
        wrong.generate(["x"], GREEDY)
