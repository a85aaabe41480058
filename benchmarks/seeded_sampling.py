"""Cost of per-request seeded sampling on the transformers backend, side by side in one run.

Samples the same prompts (temperature 1.0, top_p 0.95) on one backend two ways:

- global RNG: ``seed=None``, transformers' own ``do_sample=True`` path (one global RNG for the
  batch; what seeded sampling used before it became per request);
- seeded: ``seed=0``, one ``torch.Generator`` per sequence (``SeededSampler``), whose text does
  not depend on the other prompts in the call.

Each path runs ``--repeats`` times, alternating, after one untimed warm-up; the best run counts.
Prints generated tokens per second of each path, by wall clock and by this process's CPU time
(steadier on a shared machine), and their ratios. Lengths differ between the paths (the text
does), so tokens/s is the fair figure, not seconds.

    python benchmarks/seeded_sampling.py                                   # tiny random Llama, ~1 min
    python benchmarks/seeded_sampling.py --model smollm2-135m-instruct --prompts 16 --max-tokens 32
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

QUESTIONS = ["What is the capital of France?", "Give me three tips for sleeping better.",
             "Explain what a prime number is.", "How do I boil an egg?", "Write a haiku about autumn.",
             "Why is the sky blue?", "What does a compiler do?", "Name two uses of vinegar at home."]


def timed(backend, prompts, sampling) -> tuple[float, float, int]:
    """Wall and CPU seconds of one batched ``generate`` call, and the tokens it generated."""
    t0, c0 = time.perf_counter(), time.process_time()
    out = backend.generate(prompts, sampling)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return wall, cpu, sum(c.completion_tokens for row in out for c in row)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="model name or folder (default: a tiny random Llama)")
    ap.add_argument("--prompts", type=int, default=32)
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--n", type=int, default=1, help="samples per prompt")
    ap.add_argument("--batch-size", type=int, default=16, help="transformers batch size")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the CLI does: no spinning OpenMP waits

    from cai.backends import SamplingConfig, load_backend

    if args.model is None:
        from cai.testing import build_tiny_llama

        model = str(build_tiny_llama(Path(tempfile.mkdtemp(prefix="cai-bench-")) / "model",
                                     hidden_size=256, num_layers=4, num_heads=4, vocab_size=2048))
    else:
        model = args.model
    backend = load_backend(backend="transformers", model=model, dtype="float32",
                           options={"batch_size": args.batch_size, "device": args.device})
    prompts = [[{"role": "user", "content": f"{QUESTIONS[i % len(QUESTIONS)]} (#{i})"}]
               for i in range(args.prompts)]
    base = SamplingConfig(temperature=1.0, top_p=0.95, max_tokens=args.max_tokens, n=args.n)
    paths = {"global RNG": base, "seeded": base.model_copy(update={"seed": 0})}
    for sampling in paths.values():  # warm-up, untimed
        backend.generate(prompts[: args.batch_size], sampling)
    wall: dict[str, float] = {}  # best tokens/s per path
    cpu: dict[str, float] = {}
    for _ in range(args.repeats):
        for name, sampling in paths.items():
            w, c, tokens = timed(backend, prompts, sampling)
            wall[name], cpu[name] = max(wall.get(name, 0.0), tokens / w), max(cpu.get(name, 0.0), tokens / c)
    vocab = backend.model.config.vocab_size
    print(f"\nmodel: {args.model or 'tiny random Llama'} (vocab {vocab}), {args.prompts} prompts x n={args.n}, "
          f"max_tokens {args.max_tokens}, batch_size {args.batch_size}, {backend.device}, best of {args.repeats}")
    print(f"{'path':<12}{'tok/s wall':>12}{'tok/s CPU':>11}")
    for name in paths:
        print(f"{name:<12}{wall[name]:>12.0f}{cpu[name]:>11.0f}")
    print(f"seeded / global RNG throughput: {wall['seeded'] / wall['global RNG']:.2f}x wall, "
          f"{cpu['seeded'] / cpu['global RNG']:.2f}x CPU")
    backend.close()


if __name__ == "__main__":
    main()
