"""The embedded model (SmolLM2-135M-Instruct) on this machine: transformers vs vLLM, eager and
compiled. Engine start time and generation throughput, side by side in one run.

Each configuration runs in its own subprocess (so one engine's memory and threads never overlap
another's), loads the model through cai's backends exactly as ``cai generate`` does, then decodes
the same prompts greedily in one batched call. Printed: start seconds (backend construction,
including vLLM's engine start and, when compiled, torch.compile), tokens/s, and each
configuration's ratios to transformers. On CPU this is what chose vLLM's ``enforce_eager``
default (``cai.backends.vllm_backend``).

    python benchmarks/embedded_model.py                           # all three, ~6-10 min on 2 cores
    python benchmarks/embedded_model.py --configs transformers,vllm-eager --prompts 32
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

CONFIGS = {
    "transformers": {"backend": "transformers"},
    "vllm-eager": {"backend": "vllm", "options": {"enforce_eager": True}},
    "vllm-compiled": {"backend": "vllm", "options": {"enforce_eager": False}},
}


def run_one(name: str, model: str, n_prompts: int, max_tokens: int) -> dict:
    """In this process: build the backend, time it, decode, return the figures."""
    from cai.backends import SamplingConfig, load_backend

    questions = ["What is the capital of France?", "Give me three tips for sleeping better.",
                 "Explain what a prime number is.", "How do I boil an egg?",
                 "Write a haiku about autumn.", "Why is the sky blue?",
                 "What does a compiler do?", "Name two uses of vinegar at home."]
    prompts = [[{"role": "user", "content": f"{questions[i % len(questions)]} (#{i})"}] for i in range(n_prompts)]
    t0 = time.perf_counter()
    backend = load_backend({"model": model, **CONFIGS[name]})
    start = time.perf_counter() - t0
    sampling = SamplingConfig(temperature=0.0, max_tokens=max_tokens)
    backend.generate(prompts[:2], SamplingConfig(temperature=0.0, max_tokens=4))  # first-call warm-up
    t0 = time.perf_counter()
    out = backend.generate(prompts, sampling)
    seconds = time.perf_counter() - t0
    tokens = sum(c.completion_tokens for row in out for c in row)
    backend.close()
    return {"config": name, "start_s": round(start, 1), "tokens": tokens, "gen_s": round(seconds, 2),
            "tok_per_s": round(tokens / seconds, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--configs", default=",".join(CONFIGS))
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--one", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print("RESULT " + json.dumps(run_one(args.one, args.model, args.prompts, args.max_tokens)), flush=True)
        return
    from cai.models import resolve_model

    resolve_model(args.model)  # convert once, outside the timings
    rows = []
    for name in args.configs.split(","):
        proc = subprocess.run([sys.executable, __file__, "--one", name, "--model", args.model,
                               "--prompts", str(args.prompts), "--max-tokens", str(args.max_tokens)],
                              capture_output=True, text=True)
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
        if proc.returncode or not lines:
            print(f"{name}: failed (exit {proc.returncode}): {proc.stderr.strip().splitlines()[-1:]}")
            continue
        rows.append(json.loads(lines[-1][7:]))
        print(f"{name}: {rows[-1]}", flush=True)
    base = next((r for r in rows if r["config"] == "transformers"), None)
    print(f"\n{args.prompts} prompts x {args.max_tokens} tokens, greedy, model {args.model}")
    print(f"{'config':<15}{'start s':>9}{'tok/s':>9}{'start vs tf':>13}{'tok/s vs tf':>13}")
    for r in rows:
        rs = f"{r['start_s'] / base['start_s']:.2f}x" if base else "-"
        rt = f"{r['tok_per_s'] / base['tok_per_s']:.2f}x" if base else "-"
        print(f"{r['config']:<15}{r['start_s']:>9}{r['tok_per_s']:>9}{rs:>13}{rt:>13}")


if __name__ == "__main__":
    main()
