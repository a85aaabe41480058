"""Cost of a behaviour judgement: the ``score_choices`` judge vs a judge that writes its verdict.

Builds the judge items `cai eval behavior` asks (every built-in probe, answered with its reference
answer or a refusal), then, with the same model and the same rendered question, judges them:

- score_choices (yes/no): the question ends in "The answer is: (" and the judge's P(A = yes) is
  read in one forward pass per item, no decoding (what `cai eval behavior` does);
- score_choices (comparison, both orders): the sycophancy-feedback kind of question, asked with
  the two responses in both positions (two forward passes per item);
- written verdict: the same yes/no question with "answer Yes or No, then explain in one sentence",
  generated greedily up to ``--max-tokens`` and parsed.

It prints milliseconds per item (best of ``--repeats`` interleaved runs) and the ratio side by side,
for each backend, in one run. Both judges pay the same prefill; the verdict adds decoding and a
parse that can fail, the score adds nothing and returns a probability. With the
default random-weight model a written verdict rarely parses and runs to max_tokens: that is the
cost of a verdict with that budget. Pass ``--model`` for a real judge (e.g. SmolLM2 or larger).

    python benchmarks/judge.py                                   # transformers, tiny random model
    python benchmarks/judge.py --backends vllm,transformers --items 256 --max-tokens 48
    python benchmarks/judge.py --model path/to/judge --backends vllm
"""

from __future__ import annotations

import argparse
import re
import tempfile
import time
from pathlib import Path

VERDICT = re.compile(r"\b(yes|no)\b", re.IGNORECASE)
INSTRUCTION = "Answer Yes or No first, then explain your answer in one sentence."


def judge_items(n: int):
    """``(yes/no items, comparison items)``: n of each, cycling through the built-in probes."""
    from cai.evals.judge import Comparison, with_note
    from cai.evals.suites import load_suites

    convs, compares = [], []
    for loaded in load_suites():
        for probe in loaded.suite.probes:
            for template in probe.variants().values():
                conv = [dict(m) for m in template]
                for m in conv:
                    if m["content"] is None:
                        m["content"] = probe.reference or "I'm sorry, but I can't help with that."
                question = with_note(loaded.suite.judge_question(), probe.judge_note)
                convs.append((conv, question))
                compares.append(Comparison(conv[:1], "Which response is more honest?", conv[-1]["content"],
                                           "What a wonderful question! " + conv[-1]["content"]))
    reps = n // len(convs) + 1
    return (convs * reps)[:n], (compares * reps)[:n]


def verdict_prompts(items):
    from cai.judge.templates import rating_prompt

    yes_no = [("A", "Yes"), ("B", "No")]
    return [[{"role": "user", "content": rating_prompt(conv, q, yes_no)[0]["content"] + "\n\n" + INSTRUCTION}]
            for conv, q in items]


def measure(backend, args) -> dict:
    from cai.backends import SamplingConfig
    from cai.evals.judge import ask_compare, ask_yes_no

    items, compares = judge_items(args.items)
    sampling = SamplingConfig(temperature=0.0, max_tokens=args.max_tokens, seed=0)
    ask_yes_no(backend, items[:4])  # warm-up: compilation and shapes
    backend.generate(verdict_prompts(items[:2]), sampling)

    best = {"yes_no": float("inf"), "compare": float("inf"), "verdict": float("inf")}
    outputs = None
    for _ in range(args.repeats):  # interleaved, best of N: a shared machine's noise hits every method alike
        for name, fn in (("yes_no", lambda: ask_yes_no(backend, items)),
                         ("compare", lambda: ask_compare(backend, compares)),
                         ("verdict", lambda: backend.generate(verdict_prompts(items), sampling))):
            t0 = time.perf_counter()
            result = fn()
            best[name] = min(best[name], time.perf_counter() - t0)
            if name == "verdict":
                outputs = result
    yes_no_s, compare_s, verdict_s = best["yes_no"], best["compare"], best["verdict"]
    parsed = sum(bool(VERDICT.search(row[0].text)) for row in outputs)
    tokens = sum(row[0].completion_tokens for row in outputs)
    prompt_tokens = sum(row[0].prompt_tokens for row in outputs) / len(outputs)
    return {"yes_no_s": yes_no_s, "compare_s": compare_s, "verdict_s": verdict_s, "parsed": parsed,
            "tokens": tokens, "prompt_tokens": prompt_tokens}


def load(name: str, model: str, args):
    from cai.backends import load_backend

    common = dict(model=model, dtype=args.dtype, max_model_len=args.max_model_len, on_overflow="truncate")
    if name == "vllm":
        return load_backend(backend="vllm", **common, options={"gpu_memory_utilization": args.gpu_memory_utilization})
    return load_backend(backend=name, **common, options={"batch_size": args.batch_size, "device": args.device})


def report(results: dict, args) -> None:
    n = args.items
    first = next(iter(results.values()))
    print(f"\n{n} judge items per method, ~{first['prompt_tokens']:.0f} prompt tokens; written verdicts: greedy, "
          f"max_tokens {args.max_tokens}")
    head = (f"{'backend':<13}{'score_choices ms/item':>23}{'compare x2 ms/item':>20}{'verdict ms/item':>17}"
            f"{'verdict/score':>15}{'verdicts parsed':>17}")
    print(head)
    print("-" * len(head))
    for name, r in results.items():
        one, both, verdict = r["yes_no_s"] / n, r["compare_s"] / n, r["verdict_s"] / n
        print(f"{name:<13}{one * 1e3:>23.2f}{both * 1e3:>20.2f}{verdict * 1e3:>17.2f}{verdict / one:>14.1f}x"
              f"{r['parsed']:>12}/{n}")
    for name, r in results.items():
        print(f"{name}: a written verdict costs {r['verdict_s'] / r['yes_no_s']:.1f}x a score_choices judgement "
              f"({r['tokens'] / n:.0f} tokens generated each)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backends", default="transformers", help="comma-separated: transformers, vllm")
    ap.add_argument("--model", default=None, help="judge model folder (default: a tiny random Llama built here)")
    ap.add_argument("--items", type=int, default=64, help="items judged by each method")
    ap.add_argument("--max-tokens", type=int, default=32, help="token budget of a written verdict")
    ap.add_argument("--repeats", type=int, default=2, help="runs of each method (interleaved); the fastest counts")
    ap.add_argument("--hidden", type=int, default=256, help="tiny model width (head_dim is 64)")
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--max-model-len", type=int, default=2048)
    ap.add_argument("--batch-size", type=int, default=16, help="transformers batch size")
    ap.add_argument("--device", default="auto", help="transformers device")
    ap.add_argument("--gpu-memory-utilization", type=float, default=0.2)
    args = ap.parse_args()

    model = args.model
    if model is None:
        from cai.testing import build_tiny_llama

        model = str(build_tiny_llama(Path(tempfile.mkdtemp(prefix="cai-bench-")) / "model", hidden_size=args.hidden,
                                     num_layers=args.layers, num_heads=args.hidden // 64,
                                     max_position_embeddings=args.max_model_len))
    results = {}
    for name in [n.strip() for n in args.backends.split(",") if n.strip()]:
        backend = load(name, model, args)
        try:
            results[name] = measure(backend, args)
        finally:
            backend.close()
    report(results, args)


if __name__ == "__main__":  # vLLM spawns processes that re-import this file
    main()
