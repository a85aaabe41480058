"""Seeded sampling on the transformers backend: a request's samples depend on its prompt, the
sampling settings and the seed only, never on the other requests in the call (as on vLLM), so a
resumed or re-chunked run samples the same text."""

from __future__ import annotations

import pytest

from cai.backends import SamplingConfig, load_backend

PROMPTS = [
    "Which is better, A or B?",
    "hello there",
    "Rate this answer from 1 to 5: the model was polite and clear, because it explained why.",
    "Please write a poem about a helpful assistant.",
    "?",
]
TARGET = PROMPTS[3]
SAMPLED = SamplingConfig(temperature=1.0, max_tokens=12, seed=7)


def texts(backend, prompts, sampling):
    return [[c.text for c in row] for row in backend.generate(prompts, sampling)]


@pytest.fixture(scope="module")
def batch_of_one(tiny_llama):
    """The same model with batch_size 1: every prompt decoded alone."""
    backend = load_backend(backend="transformers", model=str(tiny_llama), dtype="float32",
                           max_model_len=512, options={"batch_size": 1, "device": "cpu"})
    yield backend
    backend.close()


def test_a_prompt_samples_the_same_text_in_any_batch(hf_backend, batch_of_one):
    penalised = SAMPLED.model_copy(update={"n": 2, "top_p": 0.9, "temperature": 0.8, "frequency_penalty": 0.5,
                                           "stop": ["e"]})
    for sampling in (SAMPLED, penalised):
        [alone] = texts(hf_backend, [TARGET], sampling)
        in_batch = texts(hf_backend, PROMPTS, sampling)  # batch_size 4: two length-sorted batches
        reordered = texts(hf_backend, PROMPTS[::-1], sampling)
        sub_batched = texts(batch_of_one, [PROMPTS[0], TARGET, PROMPTS[2]], sampling)
        assert in_batch[3] == reordered[1] == sub_batched[1] == alone
        assert in_batch == reordered[::-1]
        assert texts(batch_of_one, PROMPTS, sampling) == in_batch
        assert len({row[0] for row in in_batch}) > 1


def test_different_seeds_sample_different_text(hf_backend):
    by_seed = [tuple(row[0] for row in texts(hf_backend, PROMPTS, SAMPLED.model_copy(update={"seed": seed})))
               for seed in (0, 1, 2)]
    assert len(set(by_seed)) == 3


def test_n_samples_of_a_request_differ_and_reproduce(hf_backend):
    sampling = SAMPLED.model_copy(update={"n": 3})
    [row] = texts(hf_backend, [TARGET], sampling)
    assert len(row) == 3 and len(set(row)) > 1
    assert texts(hf_backend, [PROMPTS[0], TARGET], sampling)[1] == row
    # sample j is seeded seed + j (as vLLM seeds the samples of a request)
    assert texts(hf_backend, [TARGET], SAMPLED.model_copy(update={"seed": SAMPLED.seed + 1}))[0][0] == row[1]


def test_tiny_top_p_is_greedy(hf_backend):
    greedy = texts(hf_backend, PROMPTS, SamplingConfig(temperature=0, max_tokens=12))
    nucleus = texts(hf_backend, PROMPTS, SAMPLED.model_copy(update={"top_p": 1e-6, "temperature": 1.5}))
    assert nucleus == greedy
    assert texts(hf_backend, PROMPTS, SAMPLED) != greedy


def test_top_p_keeps_only_the_nucleus(hf_backend):
    # With top_p just above the top token's probability, only the two most likely tokens can be drawn.
    import torch

    prompt = hf_backend.renderer.ids([{"role": "user", "content": TARGET}])
    with torch.inference_mode():
        probs = torch.softmax(hf_backend.model(torch.tensor([prompt])).logits[0, -1].float(), -1)
    top = probs.topk(2)
    top_p = top.values[0].item() + 1e-3
    first = {texts(hf_backend, [TARGET], SamplingConfig(temperature=1.0, max_tokens=1, top_p=top_p, seed=s))[0][0]
             for s in range(40)}
    assert first == {hf_backend.tokenizer.decode([t], skip_special_tokens=True) for t in top.indices.tolist()}


def test_unseeded_sampling_still_samples(hf_backend):
    out = texts(hf_backend, [TARGET] * 4, SamplingConfig(temperature=1.0, max_tokens=12, n=2))
    assert len({t for row in out for t in row}) > 1
