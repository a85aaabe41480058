"""`cai sample`: K responses per prompt, then unlabeled pairs for `cai label`."""

from __future__ import annotations

from typing import Optional

import typer

from cai.cli.common import backend_config, load_yaml_config, validate_config
from cai.cli.fields import apply_fields, takes_fields
from cai.feedback.config import SampleConfig

_SAMPLE_FIELDS = [
    "prompts", "out", "n", "pairing", "max_pairs", "drop_truncated", "limit", "chunk_size", "flush_seconds",
    "prompt_format", "prompt_column", "id_column", "hh_turns", "system_prompt",
]


@takes_fields(SampleConfig, _SAMPLE_FIELDS,
              nested={"sampling": ["temperature", "top_p", "max_tokens", "seed", "frequency_penalty"]})
def sample(
    model: Optional[str] = typer.Option(None, help="Policy model: a local folder, hub id, .gguf file or known name (default: smollm2-135m-instruct)."),
    backend: str = typer.Option("auto", help="auto (vLLM with CUDA, else transformers), vllm, transformers or openai."),
    backend_option: list[str] = typer.Option([], "--backend-option", "-O", help="key=value backend option (repeatable)."),
    workers: Optional[int] = typer.Option(None, help="Ray workers, each holding its own copy of the model (needs cai-constitution[ray])."),
    ray_address: Optional[str] = typer.Option(None, help="Ray cluster for the workers (auto, HOST:6379); default: a local one."),
    config: Optional[str] = typer.Option(None, "--config", help="YAML config; flags override it."),
    *, fields: dict,
) -> None:
    """Sample K responses per prompt (one request each) and form unlabeled pairs in OUT/pairs.jsonl."""
    from cai.feedback import run_sample

    data = load_yaml_config(config)
    apply_fields(data, fields)
    data["policy"] = backend_config(data.get("policy"), backend, model, backend_option, required=True,
                                    workers=workers, ray_address=ray_address)
    cfg = validate_config(SampleConfig, data, config)
    summary = run_sample(cfg)
    from rich.console import Console

    Console().print(
        f"cai sample → {cfg.out}: {summary['prompts']} prompts x {cfg.n} samples, {summary['pairs']} pairs "
        f"({summary['pairing']}) in {cfg.out}/pairs.jsonl; resumed from {summary['resumed_from']}; "
        f"{summary['completion_tokens']} tokens in {summary['seconds']:.1f}s ({summary['tokens_per_second']} tok/s)"
    )
    if summary["prompts_without_pairs"]:
        Console().print(f"warning: {summary['prompts_without_pairs']} of {summary['prompts']} prompts got fewer than "
                        "two distinct responses and gave no pair")
