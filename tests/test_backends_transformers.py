"""The transformers backend on a tiny local Llama: batching, sampling, scoring, bad input."""

from __future__ import annotations

import json
import math

import pytest
import torch

from cai.backends import SamplingConfig, load_backend
from cai.core.errors import CaiError

GREEDY = SamplingConfig(temperature=0, max_tokens=6)
QUESTIONS = [
    "Which is better, A or B?",
    "hello there",
    "Rate this answer from 1 to 5: the model was polite and clear, because it explained why.",
    "Please write a poem about a helpful assistant.",
    "?",
]


def manual_next_logprobs(backend, text: str) -> torch.Tensor:
    """log p(next token | text) straight from the model, no batching or padding."""
    ids = torch.tensor([backend.tokenizer.encode(text, add_special_tokens=False)])
    with torch.inference_mode():
        return torch.log_softmax(backend.model(ids).logits[0, -1].float(), -1)


def test_generate_shapes_counts_and_finish(hf_backend):
    out = hf_backend.generate(QUESTIONS, SamplingConfig(temperature=1.0, max_tokens=5, n=3, seed=0))
    assert [len(row) for row in out] == [3] * len(QUESTIONS)
    for row, q in zip(out, QUESTIONS, strict=False):
        ids = hf_backend.renderer.ids([{"role": "user", "content": q}])
        for c in row:
            assert c.prompt_tokens == len(ids) and not c.truncated
            assert 1 <= c.completion_tokens <= 5
            assert c.finish_reason == ("length" if c.completion_tokens == 5 else "stop")


def test_greedy_n_samples_are_copies(hf_backend):
    out = hf_backend.generate(QUESTIONS[:2], SamplingConfig(temperature=0, max_tokens=4, n=3))
    assert [len({c.text for c in row}) for row in out] == [1, 1] and len(out[0]) == 3


def test_empty_batch_is_a_no_op(hf_backend):
    assert hf_backend.generate([], GREEDY) == []
    assert hf_backend.score_choices([], ["A", "B"]) == []


def test_batched_greedy_equals_one_at_a_time(hf_backend):
    """Left padding and length-sorted batches change nothing in the outputs."""
    batched = [row[0].text for row in hf_backend.generate(QUESTIONS, GREEDY)]
    single = [hf_backend.generate([q], GREEDY)[0][0].text for q in QUESTIONS]
    assert batched == single
    assert len(set(batched)) > 1


def test_seed_makes_sampling_reproducible(hf_backend):
    s = SamplingConfig(temperature=1.0, max_tokens=8, n=2, seed=123)
    first = [[c.text for c in row] for row in hf_backend.generate(QUESTIONS[:2], s)]
    again = [[c.text for c in row] for row in hf_backend.generate(QUESTIONS[:2], s)]
    assert first == again
    other = hf_backend.generate(QUESTIONS[:2], s.model_copy(update={"seed": 124}))
    assert [[c.text for c in row] for row in other] != first


def test_stop_strings_cut_the_text(hf_backend):
    full = hf_backend.generate(QUESTIONS, SamplingConfig(temperature=0, max_tokens=12))
    # stop at a character that occurs in a greedy answer
    row, text = next((i, r[0].text) for i, r in enumerate(full) if len(r[0].text.strip()) > 3)
    stop = text.strip()[2]
    cut = hf_backend.generate(
        [QUESTIONS[row]], SamplingConfig(temperature=0, max_tokens=12, stop=[stop])
    )
    c = cut[0][0]
    assert c.text == text[: text.find(stop)]
    assert c.finish_reason == "stop" and stop not in c.text


def test_continues_a_prefilled_assistant_message(hf_backend):
    conv = [
        {"role": "user", "content": "Which is better?"},
        {"role": "assistant", "content": "Answer:"},
    ]
    text = hf_backend.renderer.text(conv)
    assert text.endswith("<|assistant|>\nAnswer:")
    [[c]] = hf_backend.generate([conv], GREEDY)
    assert c.prompt_tokens == len(hf_backend.renderer.encode_text(text))


def test_score_choices_matches_the_model_and_sums_to_one(hf_backend):
    conv = [{"role": "user", "content": QUESTIONS[0]}]
    [probs] = hf_backend.score_choices([conv], ["A", "B"])
    lp = manual_next_logprobs(hf_backend, hf_backend.renderer.text(conv))
    tok = hf_backend.tokenizer
    mass = {
        lab: sum(
            lp[tok.encode(t, add_special_tokens=False)[0]].exp().item() for t in (lab, " " + lab)
        )
        for lab in "AB"
    }
    total = sum(mass.values())
    assert probs == pytest.approx({lab: m / total for lab, m in mass.items()}, abs=1e-6)
    assert sum(probs.values()) == pytest.approx(1.0)
    assert 0.01 < probs["A"] < 0.99  # the tiny model is not degenerate


def test_score_choices_multi_token_labels(hf_backend):
    tok = hf_backend.tokenizer
    assert len(tok.encode("harmless", add_special_tokens=False)) == 1
    multi = "Ziggurat"
    ids = tok.encode(multi, add_special_tokens=False)
    assert len(ids) > 1
    prompt = hf_backend.renderer.text([{"role": "user", "content": QUESTIONS[1]}])
    logp = 0.0
    for k, t in enumerate(ids):  # chain rule, one forward pass per prefix
        logp += manual_next_logprobs(hf_backend, prompt + tok.decode(ids[:k]))[t].item()
    space_ids = tok.encode(" " + multi, add_special_tokens=False)
    space_logp = sum(
        manual_next_logprobs(hf_backend, prompt + tok.decode(space_ids[:k]))[t].item()
        for k, t in enumerate(space_ids)
    )
    a = sum(
        manual_next_logprobs(hf_backend, prompt)[tok.encode(t, add_special_tokens=False)[0]]
        .exp()
        .item()
        for t in ("A", " A")
    )
    expected = (math.exp(logp) + math.exp(space_logp)) / (math.exp(logp) + math.exp(space_logp) + a)
    [probs] = hf_backend.score_choices([QUESTIONS[1]], [multi, "A"])
    assert probs[multi] == pytest.approx(expected, rel=1e-4)


def test_score_choices_per_row_labels_and_batch_invariance(hf_backend):
    rows = QUESTIONS[:3]
    labels = [["A", "B"], ["1", "2", "3", "4", "5"], ["A", "B", "C", "D", "E"]]
    batched = hf_backend.score_choices(rows, labels)
    single = [hf_backend.score_choices([q], [lab])[0] for q, lab in zip(rows, labels, strict=False)]
    assert [list(p) for p in batched] == labels
    for b, s in zip(batched, single, strict=False):
        assert b == pytest.approx(s, abs=1e-6)


def test_prefilled_answer_changes_choice_scores(hf_backend):
    plain = [{"role": "user", "content": QUESTIONS[0]}]
    prefilled = plain + [{"role": "assistant", "content": "The answer is ("}]
    p1, p2 = hf_backend.score_choices([plain, prefilled], ["A", "B"])
    assert p1["A"] != pytest.approx(p2["A"], abs=1e-4)


# -- overflow -------------------------------------------------------------------------------------

LONG = "hello there " * 400  # > 512 tokens


def test_overflow_error_names_the_row(hf_backend):
    with pytest.raises(CaiError, match=r"row 1: prompt has \d+ tokens.*on_overflow: truncate"):
        hf_backend.generate(["short", LONG], GREEDY)
    with pytest.raises(CaiError, match="row 0"):
        hf_backend.score_choices([LONG], ["A", "B"])


def test_overflow_truncate_cuts_left_and_flags(tiny_llama):
    backend = load_backend(
        backend="transformers", model=str(tiny_llama), max_model_len=64, on_overflow="truncate"
    )
    out = backend.generate(["short", LONG], SamplingConfig(temperature=0, max_tokens=4))
    assert [row[0].truncated for row in out] == [False, True]
    assert out[1][0].prompt_tokens == 64 - 4
    [probs] = backend.score_choices([LONG], ["A", "B"])
    assert sum(probs.values()) == pytest.approx(1.0)


# -- bad models ---------------------------------------------------------------------------------


def test_missing_model_path_is_a_clear_error(tmp_path):
    with pytest.raises(CaiError, match="does not exist"):
        load_backend(backend="transformers", model=str(tmp_path / "nope"))
    with pytest.raises(CaiError, match="no config.json"):
        load_backend(backend="transformers", model=str(tmp_path))


def test_not_a_causal_lm_is_a_clear_error(tmp_path):
    (tmp_path / "config.json").write_text(
        json.dumps({"model_type": "bert", "architectures": ["BertForMaskedLM"], "vocab_size": 10})
    )
    with pytest.raises(CaiError, match="not a causal language model.*BertForMaskedLM"):
        load_backend(backend="transformers", model=str(tmp_path))


def test_model_without_chat_template(tiny_llama_no_template, tmp_path):
    with pytest.raises(CaiError, match="has no chat template: set chat_template"):
        load_backend(backend="transformers", model=str(tiny_llama_no_template))
    template = (
        "{% for m in messages %}{{ m['content'] }}\n{% endfor %}"
        "{% if add_generation_prompt %}>{% endif %}"
    )
    inline = load_backend(
        backend="transformers", model=str(tiny_llama_no_template), chat_template=template
    )
    assert inline.renderer.text([{"role": "user", "content": "hi"}]) == "hi\n>"
    (tmp_path / "t.jinja").write_text(template)
    from_file = load_backend(
        backend="transformers",
        model=str(tiny_llama_no_template),
        chat_template=str(tmp_path / "t.jinja"),
    )
    [[c]] = from_file.generate(["hi"], GREEDY)
    assert c.prompt_tokens == len(from_file.renderer.encode_text("hi\n>"))
    with pytest.raises(CaiError, match="neither a Jinja template nor a file"):
        load_backend(
            backend="transformers",
            model=str(tiny_llama_no_template),
            chat_template=str(tmp_path / "missing.jinja"),
        )


def test_model_generation_config_does_not_change_sampling(tmp_path):
    # The same weights, once with sampling defaults in generation_config.json (as published models
    # ship them): greedy and seeded sampling must not change, and provenance names what was ignored.
    from cai.testing import build_tiny_llama

    plain = build_tiny_llama(tmp_path / "plain")
    tuned = build_tiny_llama(tmp_path / "tuned", generation_config={
        "do_sample": True, "temperature": 0.6, "top_k": 3, "top_p": 0.8, "repetition_penalty": 1.8,
        "no_repeat_ngram_size": 2})
    backends = [load_backend(backend="transformers", model=str(m), dtype="float32", options={"device": "cpu"})
                for m in (plain, tuned)]
    prompts = ["hello there", "Please write a poem about a helpful assistant."]
    for sampling in (SamplingConfig(temperature=0, max_tokens=16), SamplingConfig(max_tokens=8, n=2, seed=1)):
        a, b = ([[c.text for c in row] for row in be.generate(prompts, sampling)] for be in backends)
        assert a == b
    info = backends[1].describe()
    ignored = info["generation_config_ignored"]
    assert ignored["repetition_penalty"] == 1.8 and ignored["top_k"] == 3 and ignored["no_repeat_ngram_size"] == 2
    assert info["sampling_extras"]["repetition_penalty"] == 1.0
    assert backends[0].describe()["generation_config_ignored"] == {}
