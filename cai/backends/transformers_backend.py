"""The ``transformers`` backend: a Hugging Face causal LM in this process (CPU or GPU).

Batched generation with left padding; prompts are sorted by length before batching so each
batch pads little; ``torch.inference_mode`` throughout. Choice scoring reads next-token log-probs
from one forward pass per batch of prompts (plus one per prefix of multi-token labels).
Seeded sampling draws each sequence from its own generator (:class:`SeededSampler`), so a
request's samples depend on its prompt, the sampling settings and the seed only, as on vLLM.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from cai.backends.base import (
    NEUTRAL_SAMPLING,
    Backend,
    BackendConfig,
    Batch,
    Completion,
    Labels,
    SamplingConfig,
    as_conversations,
    option_lists,
)
from cai.backends.chat import ChatRenderer, resolve_chat_template
from cai.backends.choices import PlanCache, combine_rows
from cai.backends.local import check_causal_lm, load_tokenizer, model_context
from cai.core.errors import CaiError

_DTYPES = {
    "float32": "float32",
    "fp32": "float32",
    "bfloat16": "bfloat16",
    "bf16": "bfloat16",
    "float16": "float16",
    "fp16": "float16",
    "half": "float16",
}


class TransformersOptions(BaseModel):
    """Options of the ``transformers`` backend."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    batch_size: int = Field(16, ge=1)
    """Conversations per forward/generate batch (each with ``n`` samples)."""
    device: str = "auto"
    """``auto`` (CUDA if available, else CPU), ``cpu``, ``cuda``, ``cuda:1``, ``mps``."""
    trust_remote_code: bool = False
    """Allow model code from the model repository."""


class TransformersBackend(Backend):
    name = "transformers"
    Options = TransformersOptions

    def __init__(self, config: BackendConfig):
        super().__init__(config)
        import torch
        from transformers import AutoModelForCausalLM

        from cai.models import resolve_model

        opts: TransformersOptions = self.options
        self.model_path = path = resolve_model(config.model)
        hf_config = check_causal_lm(path, trust_remote_code=opts.trust_remote_code)
        self.tokenizer = load_tokenizer(path, trust_remote_code=opts.trust_remote_code)
        template = resolve_chat_template(self.tokenizer, config.chat_template, config.model)
        self.renderer = ChatRenderer(self.tokenizer, template)
        device = opts.device
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        if config.dtype == "auto":
            dtype = torch.float32 if self.device.type == "cpu" else "auto"
        elif config.dtype in _DTYPES:
            dtype = getattr(torch, _DTYPES[config.dtype])
        else:
            raise CaiError(
                f"unknown dtype {config.dtype!r}; use auto, float32, bfloat16 or float16"
            )
        try:
            model = AutoModelForCausalLM.from_pretrained(
                path, dtype=dtype, trust_remote_code=opts.trust_remote_code
            )
        except (OSError, ValueError) as exc:
            raise CaiError(f"model {config.model!r} could not be loaded: {exc}") from None
        self.model = model.to(self.device).eval()
        self.context = model_context(hf_config, config.max_model_len)
        self.pad_id = self.tokenizer.pad_token_id
        eos = self.model.generation_config.eos_token_id or self.tokenizer.eos_token_id
        self.eos_ids = set(eos if isinstance(eos, list) else [eos])
        self.ignored_generation_config = _neutralize_generation_config(self.model)
        self._plans = PlanCache(self.renderer.encode_text)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "device": str(self.device), "dtype": str(self.model.dtype),
                "sampling_extras": dict(NEUTRAL_SAMPLING), "generation_config_ignored": self.ignored_generation_config}

    # -- generation -------------------------------------------------------------------------

    def generate(
        self, conversations: Batch, sampling: SamplingConfig | None = None
    ) -> list[list[Completion]]:
        rows = as_conversations(conversations)
        if not rows:
            return []
        sampling = sampling or SamplingConfig()
        fitted = self.renderer.fit(rows, sampling.max_tokens, self.config.on_overflow, self.context)
        results: list[list[Completion]] = [[] for _ in rows]
        for chunk in self._batches([ids for ids, _ in fitted]):
            outs = self._generate_batch([fitted[i][0] for i in chunk], sampling)
            for i, samples in zip(chunk, outs, strict=True):
                results[i] = [c.model_copy(update={"truncated": fitted[i][1]}) for c in samples]
        return results

    def _batches(self, rows: list[list[int]]) -> list[list[int]]:
        """Row indices grouped into batches of similar length."""
        order = sorted(range(len(rows)), key=lambda i: len(rows[i]))
        size = self.options.batch_size
        return [order[k : k + size] for k in range(0, len(order), size)]

    def _pad(self, rows: list[list[int]]):
        from cai.models.padding import pad_rows

        ids, mask = pad_rows(rows, self.pad_id, "left")
        return ids.to(self.device), mask.to(self.device)  # (B, T), (B, T)

    def _generate_batch(self, rows: list[list[int]], s: SamplingConfig) -> list[list[Completion]]:
        import torch
        from transformers import LogitsProcessorList

        copies = s.n if s.temperature == 0 else 1  # greedy: decode once, copy n times
        n = s.n // copies
        seeded = s.seed is not None and s.temperature > 0
        # Seeded: each of a row's n samples is its own sequence (b * n + j), drawn by SeededSampler
        # with do_sample off (HF's greedy mode takes one sequence per input row).
        input_ids, mask = self._pad([r for r in rows for _ in range(n)] if seeded else rows)  # (B', T)
        processors = []
        if s.frequency_penalty:
            processors.append(FrequencyPenalty(s.frequency_penalty, input_ids.shape[1]))
        kwargs: dict[str, Any] = dict(
            max_new_tokens=s.max_tokens,
            num_return_sequences=1 if seeded else n,
            pad_token_id=self.pad_id,
            eos_token_id=sorted(self.eos_ids),
            do_sample=s.temperature > 0 and not seeded,
        )
        if s.temperature > 0 and not seeded:
            kwargs.update(temperature=s.temperature, top_p=s.top_p, top_k=0)
        else:
            kwargs.update(temperature=None, top_p=None, top_k=None)
        if seeded:  # last, after the penalties; seeds as vLLM's: sample j of a request gets seed + j
            seeds = [s.seed + j for _ in rows for j in range(n)]
            processors.append(SeededSampler(seeds, s.temperature, s.top_p))
        if s.stop:
            kwargs.update(stop_strings=list(s.stop), tokenizer=self.tokenizer)
        if s.repetition_penalty != 1.0:
            kwargs["repetition_penalty"] = s.repetition_penalty
        if processors:
            kwargs["logits_processor"] = LogitsProcessorList(processors)
        with torch.inference_mode():
            out = self.model.generate(input_ids=input_ids, attention_mask=mask, **kwargs)
        new = out[:, input_ids.shape[1] :].tolist()  # (B * n, new_tokens)
        return [
            [
                self._completion(new[b * n + j], len(rows[b]), s)
                for _ in range(copies)
                for j in range(n)
            ]
            for b in range(len(rows))
        ]

    def _completion(self, tokens: list[int], prompt_len: int, s: SamplingConfig) -> Completion:
        finish = "length"
        for k, tok in enumerate(tokens):
            if tok in self.eos_ids:
                tokens, finish = tokens[: k + 1], "stop"
                break
        else:  # max_tokens or a stop string ended it; drop the padding after a stop
            while tokens and tokens[-1] == self.pad_id:
                tokens = tokens[:-1]
        text = self.tokenizer.decode(tokens, skip_special_tokens=True)
        cut = [text.find(stop) for stop in s.stop if stop and stop in text]
        if cut:
            text, finish = text[: min(cut)], "stop"
        return Completion(
            text=text, prompt_tokens=prompt_len, completion_tokens=len(tokens), finish_reason=finish
        )

    # -- choice scoring ---------------------------------------------------------------------

    def score_choices(self, prompts: Batch, options: Labels) -> list[dict[str, float]]:
        rows = as_conversations(prompts)
        if not rows:
            return []
        plans = [self._plans(labels) for labels in option_lists(options, len(rows))]
        queries = self.renderer.choice_queries(rows, plans, self.config.on_overflow, self.context)
        answers = self._next_token_logprobs([q[1] for q in queries], [q[2] for q in queries])
        return combine_rows(plans, [q[0] for q in queries], answers)

    def _next_token_logprobs(
        self, rows: list[list[int]], wanted: list[tuple[int, ...]]
    ) -> list[dict[int, float]]:
        """For each row, log p(token | row) of the wanted next tokens, batched forward passes."""
        import torch

        answers: list[dict[int, float]] = [{} for _ in rows]
        for chunk in self._batches(rows):
            input_ids, mask = self._pad([rows[i] for i in chunk])  # (B, T)
            positions = (mask.cumsum(-1) - 1).clamp(min=0)  # (B, T)
            with torch.inference_mode():
                logits = self.model(
                    input_ids=input_ids,
                    attention_mask=mask,
                    position_ids=positions,
                    logits_to_keep=1,
                ).logits[:, -1, :]  # (B, V)
            logps = torch.log_softmax(logits.float(), dim=-1).cpu()
            for b, i in enumerate(chunk):
                answers[i] = {t: logps[b, t].item() for t in wanted[i]}
        return answers

    def close(self) -> None:
        self.model = None


class FrequencyPenalty:
    """OpenAI's frequency penalty as a transformers logits processor (transformers has none):
    ``logits[v] -= penalty * count of v among the generated tokens`` (the prompt does not count).
    Rows are left-padded to one length, so generated tokens start at ``prompt_len`` in every row."""

    def __init__(self, penalty: float, prompt_len: int):
        self.penalty, self.prompt_len = penalty, prompt_len

    def __call__(self, input_ids, scores):  # (B, T) token ids, (B, V) logits
        import torch

        generated = input_ids[:, self.prompt_len:]
        if generated.shape[1] == 0:
            return scores
        counts = torch.zeros_like(scores).scatter_add_(
            1, generated, torch.ones_like(generated, dtype=scores.dtype))  # (B, V)
        return scores - self.penalty * counts


class SeededSampler:
    """Per-sequence seeded sampling as a transformers logits processor, placed last and used with
    ``do_sample=False``: it applies temperature and top-p to each row's scores, draws the row's
    next token with the row's own ``torch.Generator`` and returns scores that are ``-inf`` except
    for the drawn token, which greedy selection then takes.

    HF's sampling draws every row from the one global RNG, so a sequence's tokens depend on the
    other sequences in the batch and their order. Here sequence ``i`` is seeded with ``seeds[i]``
    (the request's seed plus the sample's index, as vLLM seeds the samples of a request) and takes
    exactly one draw per step, finished or not, so its tokens depend on its prompt, the sampling
    settings and its seed only. Temperature and top-p are transformers' own warpers, so their
    meaning is that of the unseeded path (top-k and min-p stay off, see ``NEUTRAL_SAMPLING``).
    The generators live on the scores' device: the same seed draws differently on CPU and CUDA.
    """

    def __init__(self, seeds: list[int], temperature: float, top_p: float):
        from transformers import TemperatureLogitsWarper, TopPLogitsWarper

        self.seeds, self.generators = seeds, None
        self.warpers = []
        if temperature != 1.0:
            self.warpers.append(TemperatureLogitsWarper(temperature))
        if top_p < 1.0:
            self.warpers.append(TopPLogitsWarper(top_p))

    def __call__(self, input_ids, scores):  # (B, T) token ids, (B, V) logits
        import torch

        if self.generators is None:  # made on the first step, on the device the logits are on
            self.generators = [torch.Generator(device=scores.device).manual_seed(seed) for seed in self.seeds]
        for warp in self.warpers:
            scores = warp(input_ids, scores)
        probs = torch.softmax(scores.float(), dim=-1)  # (B, V)
        drawn = torch.cat([torch.multinomial(p, 1, generator=g)
                           for p, g in zip(probs, self.generators, strict=True)])  # (B,)
        out = torch.full_like(scores, float("-inf"))
        return out.scatter_(1, drawn[:, None], 0.0)


def _neutralize_generation_config(model) -> dict[str, Any]:
    """Replace the model's generation config by one that holds only its special token ids, and
    return the sampling fields of the old one that differed from transformers' defaults.

    ``generate`` fills every field a call leaves unset from ``model.generation_config`` (the
    model's ``generation_config.json``), even when a config object is passed; a file with
    ``repetition_penalty`` or ``no_repeat_ngram_size`` would change greedy output here and not on
    vLLM. Only :class:`SamplingConfig` and ``NEUTRAL_SAMPLING`` decide sampling instead.
    """
    from transformers import GenerationConfig

    from cai.backends.base import GENERATION_CONFIG_SAMPLING

    old, default = model.generation_config, GenerationConfig()
    ignored = {k: getattr(old, k, None) for k in GENERATION_CONFIG_SAMPLING
               if getattr(old, k, None) is not None and getattr(old, k, None) != getattr(default, k, None)}
    model.generation_config = GenerationConfig(
        bos_token_id=old.bos_token_id, eos_token_id=old.eos_token_id, pad_token_id=old.pad_token_id,
        decoder_start_token_id=getattr(old, "decoder_start_token_id", None))
    return ignored
