"""Judge cost with and without prefix reuse across a group: the K completions of one prompt share it.

GRPO's constitution reward judges the K completions of each prompt together (cai.judge): groupwise,
every pair in both orders, K(K-1) comparisons that all start with the same few-shot turns, the same
conversation and the same question; pointwise, K ratings that share everything up to the response.
The judge sends a whole batch in one ``score_choices`` call with each group's prompts adjacent, so
a prefix-caching engine computes the shared prefix once per group. This script measures that:

- ``vllm-prefix``: vLLM with prefix caching on (cai's default);
- ``vllm-noprefix``: the same engine settings with prefix caching off (every prompt from scratch);
- ``transformers``: cai's transformers backend (padded batches, no prefix reuse), for reference.

It prints milliseconds per judged completion for each (best of ``--repeats`` interleaved runs) and
the ratio without/with prefix reuse, side by side in one run. The shared prefix grows with the
prompt (``--prompt-words``) and the few-shot turns; the part that differs is the completions
(``--completion-words``). Nothing is decoded: one forward pass per prompt.

    python benchmarks/judge_prefix.py                          # tiny random model, vLLM on/off
    python benchmarks/judge_prefix.py --groups 16 --k 8 --prompt-words 300
    python benchmarks/judge_prefix.py --model path/to/judge --backends vllm-prefix,vllm-noprefix,transformers
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

WORDS = ("the neighbour garden fence dog noise night letter council ask calm talk help kindly advice "
         "plan week small start check again record evidence mediation friend family quiet rules").split()

PRINCIPLE = """---
id: kind
version: 1.0.0
title: Kindness
tags: [harmless]
---
## Preference
Which response is kinder and more helpful to the person asking?

## Examples
```yaml
- prompt: "My code fails."
  response: "Your code is garbage."
  violates: true
  revision: "Let's look at the error together: what does it say?"
```
"""


def text(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n)).capitalize() + "."


def groups(args):
    """``(constitution, [GroupItem])``: ``--groups`` prompts with ``--k`` completions each."""
    from cai.judge import GroupItem
    from cai.principles.constitution import load_constitution

    root = Path(tempfile.mkdtemp(prefix="cai-bench-const-"))
    (root / "principles").mkdir()
    (root / "constitution").mkdir()
    (root / "principles" / "kind.md").write_text(PRINCIPLE)
    path = root / "constitution" / "bench.yaml"
    path.write_text("name: bench\nversion: 0.1.0\nprinciples:\n  ids: [kind]\nsampling:\n  strategy: all\n"
                    "stages: [feedback]\n")
    constitution = load_constitution(path)
    [principle] = constitution.principles
    rng = random.Random(0)
    out = []
    for g in range(args.groups):
        prompt = [{"role": "user", "content": f"Question {g}: " + text(rng, args.prompt_words)}]
        out.append(GroupItem(prompt, [text(rng, args.completion_words) for _ in range(args.k)], principle))
    return constitution, out


def load(name: str, model: str, args):
    from cai.backends import load_backend

    common = dict(model=model, dtype=args.dtype, max_model_len=args.max_model_len, on_overflow="truncate")
    if name.startswith("vllm"):
        options = {"enable_prefix_caching": name == "vllm-prefix"}
        if args.gpu_memory_utilization is not None:
            options["gpu_memory_utilization"] = args.gpu_memory_utilization
        return load_backend(backend="vllm", **common, options=options)
    if name == "transformers":
        return load_backend(backend="transformers", **common, options={"batch_size": args.batch_size,
                                                                         "device": args.device})
    raise SystemExit(f"unknown backend config {name!r}: vllm-prefix, vllm-noprefix or transformers")


def measure(backend, constitution, items, args) -> dict:
    from cai.judge import RATINGS_5, Judge, PointItem

    group_judge = Judge(backend, constitution, few_shot=args.few_shot)
    point_judge = Judge(backend, constitution, scale=RATINGS_5)
    points = [PointItem(g.prompt, r, g.principles) for g in items for r in g.responses]
    group_judge.groupwise(items[:1])  # warm-up: compilation and shapes (a different group would also do)
    warm = group_judge.stats["prompts"]
    best = {"groupwise": float("inf"), "pointwise": float("inf")}
    for _ in range(args.repeats):
        for name, fn in (("groupwise", lambda: group_judge.groupwise(items)),
                         ("pointwise", lambda: point_judge.pointwise(points))):
            if args.reset_cache and hasattr(backend, "llm"):
                backend.llm.reset_prefix_cache()  # each run starts cold: only reuse within the batch counts
            t0 = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - t0)
    prompts = (group_judge.stats["prompts"] - warm) // args.repeats  # K(K-1) per group: pairs x both orders
    return {**best, "group_prompts": prompts, "point_prompts": len(points)}


def report(results: dict, args) -> None:
    n = args.groups * args.k
    print(f"\n{args.groups} groups x K={args.k} completions ({n} judged), prompts ~{args.prompt_words} words, "
          f"completions ~{args.completion_words} words, few-shot {args.few_shot}")
    head = f"{'backend':<15}{'groupwise ms/completion':>25}{'pointwise ms/completion':>25}{'prompts (g/p)':>16}"
    print(head)
    print("-" * len(head))
    for name, r in results.items():
        print(f"{name:<15}{r['groupwise'] / n * 1e3:>25.2f}{r['pointwise'] / n * 1e3:>25.2f}"
              f"{r['group_prompts']:>9}/{r['point_prompts']}")
    on, off = results.get("vllm-prefix"), results.get("vllm-noprefix")
    if on and off:
        print(f"prefix reuse: groupwise {off['groupwise'] / on['groupwise']:.2f}x faster, "
              f"pointwise {off['pointwise'] / on['pointwise']:.2f}x faster (vLLM, caching off / on)")
    hf = results.get("transformers")
    if hf and on:
        print(f"transformers / vllm-prefix: groupwise {hf['groupwise'] / on['groupwise']:.2f}x, "
              f"pointwise {hf['pointwise'] / on['pointwise']:.2f}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backends", default="vllm-prefix,vllm-noprefix",
                    help="comma-separated: vllm-prefix, vllm-noprefix, transformers")
    ap.add_argument("--model", default=None, help="judge model folder (default: a tiny random Llama built here)")
    ap.add_argument("--groups", type=int, default=8, help="prompts (groups)")
    ap.add_argument("--k", type=int, default=4, help="completions per prompt")
    ap.add_argument("--prompt-words", type=int, default=200)
    ap.add_argument("--completion-words", type=int, default=30)
    ap.add_argument("--few-shot", type=int, default=1, help="groupwise: worked comparisons before each question")
    ap.add_argument("--repeats", type=int, default=3, help="runs of each shape (interleaved); the fastest counts")
    ap.add_argument("--no-reset-cache", dest="reset_cache", action="store_false",
                    help="keep vLLM's prefix cache between runs (default: reset, so only reuse within a batch counts)")
    ap.add_argument("--hidden", type=int, default=256, help="tiny model width (head_dim is 64)")
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--max-model-len", type=int, default=2048)
    ap.add_argument("--batch-size", type=int, default=16, help="transformers batch size")
    ap.add_argument("--device", default="auto", help="transformers device")
    ap.add_argument("--gpu-memory-utilization", type=float, default=None)
    args = ap.parse_args()

    model = args.model
    if model is None:
        from cai.testing import build_tiny_llama

        model = str(build_tiny_llama(Path(tempfile.mkdtemp(prefix="cai-bench-")) / "model", hidden_size=args.hidden,
                                     num_layers=args.layers, num_heads=args.hidden // 64,
                                     max_position_embeddings=args.max_model_len))
    constitution, items = groups(args)
    results = {}
    for name in [n.strip() for n in args.backends.split(",") if n.strip()]:
        backend = load(name, model, args)
        try:
            results[name] = measure(backend, constitution, items, args)
        finally:
            backend.close()
    report(results, args)


if __name__ == "__main__":  # vLLM spawns processes that re-import this file
    main()
