"""Build a tiny random-weight Llama with a trained byte-level BPE tokenizer and a chat template.

Everything is made locally (``tokenizers`` + ``transformers``), so tests and benchmarks run
offline. The tokenizer is trained on a generated corpus in which the option labels ``A``-``E``
and ``1``-``5`` are frequent, so each of them is a single token both bare (``"A"``) and after a
space (``" A"``); :func:`build_tiny_llama` checks this and fails loudly otherwise.

The default size (two layers, width 128, ``head_dim`` 64) loads into vLLM's CPU backend, whose
attention rejects a ``head_dim`` of 16. Weights are random but initialised with a larger spread
than usual, so next-token distributions are peaked and greedy decoding is stable across
backends.

    from cai.testing import build_tiny_llama
    path = build_tiny_llama("/tmp/tiny-llama")            # ~0.5M parameters
    path = build_tiny_llama("/tmp/bench-llama", hidden_size=256, num_layers=4)  # a few M
"""

from __future__ import annotations

import json
import random
from pathlib import Path

BOS, EOS, PAD = "<s>", "<|end|>", "<pad>"
ROLE_TOKENS = ["<|system|>", "<|user|>", "<|assistant|>"]
LABELS = ["A", "B", "C", "D", "E", "1", "2", "3", "4", "5"]

TINY_CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "<|{{ message['role'] }}|>\n{{ message['content'] }}<|end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
"""Chat template of the tiny model: ``<|role|>\\ncontent<|end|>\\n`` per message."""

_WORDS = (
    "the a model answer question response principle critique revision helpful harmless honest "
    "assistant user please explain why how what which option choose best rating score is are "
    "was be not more less good bad safe unsafe polite rude clear vague true false because and "
    "or but if then so this that it you we they write story poem code help me with about"
).split()


def _corpus(rng: random.Random, n_lines: int) -> list[str]:
    """Generated training text: filler sentences plus many option-label contexts."""
    lines = []
    for _ in range(n_lines):
        words = rng.choices(_WORDS, k=rng.randint(4, 14))
        label = rng.choice(LABELS)
        lines.append(" ".join(words) + ".")
        lines.append(
            rng.choice(
                [
                    f"Answer: {label}",
                    f"The answer is {label}.",
                    f"Option {label} is better.",
                    f"({label}) {' '.join(words[:3])}",
                    f"{label}",
                    f"{label}. {' '.join(words[:4])}",
                    f"Rating: {label} out of 5",
                    f"choose {label} or {rng.choice(LABELS)}",
                ]
            )
        )
    return lines


def _train_tokenizer(vocab_size: int, seed: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=[PAD, BOS, EOS, *ROLE_TOKENS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(_corpus(random.Random(seed), 4000), trainer=trainer)
    for label in LABELS:
        for text in (label, " " + label):
            ids = tokenizer.encode(text, add_special_tokens=False).ids
            if len(ids) != 1:
                raise RuntimeError(f"tiny tokenizer: {text!r} is {len(ids)} tokens, expected 1")
    return tokenizer


def build_tiny_llama(
    path: str | Path,
    *,
    hidden_size: int = 128,
    num_layers: int = 2,
    num_heads: int = 2,
    num_kv_heads: int | None = None,
    intermediate_size: int | None = None,
    vocab_size: int = 1024,
    max_position_embeddings: int = 1024,
    initializer_range: float = 0.1,
    chat_template: str | None = TINY_CHAT_TEMPLATE,
    seed: int = 0,
    generation_config: dict | None = None,
) -> Path:
    """Write a tiny Llama (fp32 safetensors + tokenizer + chat template) to ``path``.

    ``head_dim`` is ``hidden_size // num_heads`` and must be 64 or more for vLLM's CPU backend.
    ``vocab_size`` is an upper bound: the generated corpus yields a vocabulary of ~500 tokens.
    ``chat_template=None`` writes a tokenizer without a chat template. ``generation_config`` adds
    sampling defaults to ``generation_config.json`` as many published models ship them (e.g.
    ``{"repetition_penalty": 1.5, "top_k": 3}``). Returns ``path``.
    Rebuilding with the same arguments gives the same files.
    """
    import torch
    from transformers import (
        GenerationConfig,
        LlamaConfig,
        LlamaForCausalLM,
        PreTrainedTokenizerFast,
    )

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tok = PreTrainedTokenizerFast(
        tokenizer_object=_train_tokenizer(vocab_size, seed),
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        padding_side="left",
        model_max_length=max_position_embeddings,
    )
    if chat_template is not None:
        tok.chat_template = chat_template
    tok.save_pretrained(path)

    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=hidden_size,
        intermediate_size=intermediate_size or 2 * hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_kv_heads or num_heads,
        head_dim=hidden_size // num_heads,
        max_position_embeddings=max_position_embeddings,
        initializer_range=initializer_range,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config).to(torch.float32).eval()
    model.generation_config = GenerationConfig(
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
        **(generation_config or {}),
    )
    model.save_pretrained(path, safe_serialization=True)
    (path / "cai_tiny.json").write_text(json.dumps({"seed": seed, "hidden_size": hidden_size}))
    return path
