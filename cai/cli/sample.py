"""`cai sample`: K responses per prompt, then unlabeled pairs for `cai label`."""

from __future__ import annotations

from typing import Optional

import typer

from cai.cli.common import backend_config, load_yaml_config, merge_overrides, validate_config


def sample(
    prompts: Optional[str] = typer.Option(None, help="Prompts: JSONL, CSV, HF dataset folder or HH-RLHF file."),
    model: Optional[str] = typer.Option(None, help="Policy model: a local folder, hub id, .gguf file or known name (default: smollm2-135m-instruct)."),
    backend: str = typer.Option("auto", help="auto (vLLM with CUDA, else transformers), vllm, transformers or openai."),
    backend_option: list[str] = typer.Option([], "--backend-option", "-O", help="key=value backend option (repeatable)."),
    n: Optional[int] = typer.Option(None, "--n", help="Responses per prompt (K), sampled in one request."),
    out: Optional[str] = typer.Option(None, help="Output folder."),
    pairing: Optional[str] = typer.Option(None, help="all (K choose 2), adjacent or random."),
    max_pairs: Optional[int] = typer.Option(None, help="At most this many pairs per prompt."),
    temperature: Optional[float] = typer.Option(None, help="Sampling temperature."),
    top_p: Optional[float] = typer.Option(None, help="Nucleus sampling."),
    max_tokens: Optional[int] = typer.Option(None, help="Most tokens per response."),
    seed: Optional[int] = typer.Option(None, help="Sampling seed."),
    drop_truncated: Optional[bool] = typer.Option(None, "--drop-truncated/--keep-truncated",
                                                  help="Leave out responses cut off by max_tokens."),
    limit: Optional[int] = typer.Option(None, help="Only the first N prompts."),
    chunk_size: Optional[int] = typer.Option(None, help="Prompts per backend call."),
    prompt_format: Optional[str] = typer.Option(None, help="auto, jsonl, csv, hf or hh."),
    prompt_column: Optional[str] = typer.Option(None, help="Column with the prompt (or HH transcript)."),
    id_column: Optional[str] = typer.Option(None, help="Column with prompt ids."),
    system_prompt: Optional[str] = typer.Option(None, help="System message for every prompt."),
    workers: Optional[int] = typer.Option(None, help="Ray workers, each holding its own copy of the model (needs cai-constitution[ray])."),
    ray_address: Optional[str] = typer.Option(None, help="Ray cluster for the workers (auto, HOST:6379); default: a local one."),
    config: Optional[str] = typer.Option(None, "--config", help="YAML config; flags override it."),
) -> None:
    """Sample K responses per prompt (one request each) and form unlabeled pairs in OUT/pairs.jsonl."""
    from cai.feedback import SampleConfig, run_sample

    data = load_yaml_config(config)
    merge_overrides(data, {
        "prompts": prompts, "out": out, "n": n, "pairing": pairing, "max_pairs": max_pairs,
        "drop_truncated": drop_truncated, "limit": limit, "chunk_size": chunk_size,
        "prompt_format": prompt_format, "prompt_column": prompt_column, "id_column": id_column,
        "system_prompt": system_prompt,
    })
    merge_overrides(data.setdefault("sampling", {}),
                    {"temperature": temperature, "top_p": top_p, "max_tokens": max_tokens, "seed": seed})
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
