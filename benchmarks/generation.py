"""Generation throughput of each available backend on the same model, side by side in one run.

Builds a small random-weight Llama locally (default ~4M parameters, fp32), then for each backend
(transformers; vllm and openai-over-`vllm serve` when vllm is installed):

- batched: every prompt in one ``generate`` call (how cai's stages call a backend);
- sequential: one request at a time in a loop (how LangChain's ConstitutionalChain calls a
  model), on a subset of the prompts, reported per prompt and extrapolated to all of them;
- score_choices: every prompt's A/B probabilities in one call.

It prints tokens/s and the ratios between backends and between batched and sequential calls.
Decoding is greedy, so every backend produces the same tokens. On CPU, vLLM pins its engine to
one core and leaves the other to the scheduler; transformers uses all cores.

    python benchmarks/generation.py                      # defaults, under ~3 minutes on 2 cores
    python benchmarks/generation.py --prompts 256 --max-tokens 128 --hidden 512 --layers 8
    python benchmarks/generation.py --backends transformers,vllm --device cuda   # on a GPU box
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

TOPICS = [
    "my neighbour's garden",
    "a rude email",
    "a birthday poem",
    "tax forms",
    "a lost cat",
    "learning to code",
    "a job interview",
    "cooking rice",
    "a noisy flat",
    "saving money",
]


def prompts(n: int, offset: int = 0) -> list[list[dict[str, str]]]:
    """Distinct chat prompts of a few dozen tokens, with a shared system prompt."""
    system = {"role": "system", "content": "You are a helpful, harmless and honest assistant."}
    return [
        [
            system,
            {
                "role": "user",
                "content": f"Question {i}: how should I deal with "
                f"{TOPICS[i % len(TOPICS)]}? Please explain why, step by step.",
            },
        ]
        for i in range(offset, offset + n)
    ]


def measure(backend, args) -> dict:
    from cai.backends import SamplingConfig

    sampling = SamplingConfig(temperature=0.0, max_tokens=args.max_tokens, seed=0)
    warm = prompts(args.prompts, offset=10_000)  # warm-up: compilation and shapes, not timed
    backend.generate(warm[:4], sampling)
    backend.score_choices(warm, ["A", "B"])
    batch = prompts(args.prompts)
    t0 = time.perf_counter()
    out = backend.generate(batch, sampling)
    batched_s = time.perf_counter() - t0
    tokens = sum(c.completion_tokens for row in out for c in row)

    seq = prompts(args.seq_prompts, offset=args.prompts)  # fresh prompts: no cached prefixes
    t0 = time.perf_counter()
    seq_tokens = sum(backend.generate([c], sampling)[0][0].completion_tokens for c in seq)
    seq_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    backend.score_choices(batch, ["A", "B"])
    score_s = time.perf_counter() - t0
    return {
        "tokens": tokens,
        "batched_s": batched_s,
        "seq_tokens": seq_tokens,
        "seq_s": seq_s,
        "score_s": score_s,
    }


def run_backend(name: str, model: Path, args) -> dict:
    from cai.backends import load_backend

    common = dict(dtype="float32", max_model_len=args.max_model_len)
    server = None
    t0 = time.perf_counter()
    if name == "transformers":
        backend = load_backend(
            backend=name,
            model=str(model),
            **common,
            options={"batch_size": args.batch_size, "device": args.device},
        )
    elif name == "vllm":
        backend = load_backend(
            backend=name,
            model=str(model),
            **common,
            options={"gpu_memory_utilization": args.gpu_memory_utilization},
        )
    else:
        from cai.testing.server import VLLMServer

        server = VLLMServer(
            model,
            served_name="bench",
            extra_args=[
                "--dtype",
                "float32",
                "--max-model-len",
                str(args.max_model_len),
                "--gpu-memory-utilization",
                str(args.gpu_memory_utilization),
            ],
        )
        server.wait_ready()
        backend = load_backend(
            backend="openai",
            model="bench",
            options={"base_urls": server.base_url, "max_concurrency": 64},
        )
    load_s = time.perf_counter() - t0
    try:
        return {"load_s": load_s, **measure(backend, args)}
    finally:
        backend.close()
        if server is not None:
            server.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--backends",
        default="auto",
        help="comma-separated subset of transformers,vllm,openai (auto: all available)",
    )
    ap.add_argument("--prompts", type=int, default=64, help="prompts in the batched call")
    ap.add_argument("--seq-prompts", type=int, default=8, help="prompts in the sequential loop")
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--hidden", type=int, default=256, help="model width (head_dim is 64)")
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--vocab", type=int, default=2048, help="tokenizer vocabulary, upper bound")
    ap.add_argument("--max-model-len", type=int, default=1024)
    ap.add_argument("--batch-size", type=int, default=64, help="transformers batch size")
    ap.add_argument("--device", default="auto", help="transformers device")
    ap.add_argument("--gpu-memory-utilization", type=float, default=0.2)
    args = ap.parse_args()

    import importlib.util

    from cai.testing import build_tiny_llama

    if args.backends == "auto":
        has_vllm = importlib.util.find_spec("vllm") is not None
        names = ["transformers", "vllm", "openai"] if has_vllm else ["transformers"]
    else:
        names = [n.strip() for n in args.backends.split(",") if n.strip()]
    model = build_tiny_llama(
        Path(tempfile.mkdtemp(prefix="cai-bench-")) / "model",
        hidden_size=args.hidden,
        num_layers=args.layers,
        num_heads=args.hidden // 64,
        vocab_size=args.vocab,
        max_position_embeddings=args.max_model_len,
    )
    from safetensors import safe_open

    with safe_open(str(model / "model.safetensors"), "pt") as fh:
        params = sum(math.prod(fh.get_slice(k).get_shape()) for k in fh.keys())
    results = {name: run_backend(name, model, args) for name in names}
    report(results, params, args)


def report(results: dict, params: int, args) -> None:
    print(
        f"\nmodel: {params / 1e6:.1f}M params "
        f"(hidden {args.hidden}, {args.layers} layers, fp32), "
        f"{args.prompts} prompts batched / {args.seq_prompts} sequential, "
        f"max_tokens {args.max_tokens}, greedy"
    )
    base = next(iter(results))
    base_tps = results[base]["tokens"] / results[base]["batched_s"]
    head = (
        f"{'backend':<13}{'load s':>8}{'batched tok/s':>15}{'sequential tok/s':>18}"
        f"{'batched/seq':>13}{f'vs {base}':>18}{'score prompts/s':>17}"
    )
    print(head)
    print("-" * len(head))
    for name, r in results.items():
        tps = r["tokens"] / r["batched_s"]
        seq_tps = r["seq_tokens"] / r["seq_s"]
        print(
            f"{name:<13}{r['load_s']:>8.1f}{tps:>15.0f}{seq_tps:>18.0f}{tps / seq_tps:>12.1f}x"
            f"{tps / base_tps:>17.2f}x{args.prompts / r['score_s']:>17.0f}"
        )
    for name, r in results.items():
        seq_all = r["seq_s"] / args.seq_prompts * args.prompts
        print(
            f"{name}: {args.prompts} prompts batched in {r['batched_s']:.2f} s; one at a time "
            f"would take ~{seq_all:.1f} s"
        )


if __name__ == "__main__":  # vLLM spawns processes that re-import this file
    main()
