"""Cost of an AI preference label: log-prob scoring vs a written verdict, one order vs both.

Builds a small random-weight Llama locally, then for each backend labels the same pairs under the
same principle, few-shot turns and conversation, three ways:

- log-prob (one order): ``score_choices`` on the comparison ending in "The answer is: (" (what
  `cai label --one-order` does): one forward pass per comparison, no decoding;
- log-prob (both orders): the same with the responses swapped too (what `cai label` does by
  default); with prefix caching the shared prefix (few-shot turns, conversation, question) is
  computed once, so this should cost well under 2x;
- verdict: ask for a short explanation ending in "(A)" or "(B)" and generate (greedy) up to
  ``--max-tokens``, then parse the verdict (how labeling is done without log-probs).

It prints seconds per label and the ratios side by side. The weights are random, so the model
rarely writes a parseable verdict and runs to max_tokens: that is the cost of a verdict that
needs ``--max-tokens`` tokens, the realistic budget for "explain, then answer".

    python benchmarks/labeling.py                                  # vllm and transformers
    python benchmarks/labeling.py --backends vllm --pairs 128 --max-tokens 128
"""

from __future__ import annotations

import argparse
import re
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
VERDICT = re.compile(r"\(([AB])\)")
INSTRUCTION = ("Explain your reasoning in one or two sentences, then end with 'The answer is (A)' or "
               "'The answer is (B)'.")
TOPICS = ["my neighbour's dog", "a rude email", "a birthday poem", "tax forms", "a lost cat",
          "learning to code", "a job interview", "cooking rice", "a noisy flat", "saving money"]


def make_pairs(n: int, offset: int = 0):
    from cai.data.pairs import PreferencePair

    out = []
    for i in range(offset, offset + n):
        topic = TOPICS[i % len(TOPICS)]
        prompt = [{"role": "user", "content": f"Question {i}: I need help with {topic}. What should I do?"}]
        good = (f"Here is a calm, practical plan for {topic}: start small, ask for help where you need it, "
                f"and check back in a week to see what worked.")
        bad = f"Just ignore {topic}; it is not worth your time, and anyone who cares is wasting theirs."
        out.append(PreferencePair(prompt=prompt, chosen=[{"role": "assistant", "content": good}],
                                  rejected=[{"role": "assistant", "content": bad}], source="bench"))
    return out


def verdict_conversations(labeler, pairs):
    """The same comparisons (one order), asking for a written verdict instead of a next token."""
    from cai.judge import templates

    convs = []
    for pair in pairs:
        [principle] = labeler.principles(pair)
        question, _ = templates.render_question(labeler.constitution, principle,
                                                [m.model_dump() for m in pair.prompt],
                                                pair.chosen_text, pair.rejected_text)
        convs.append(labeler.judge.demos(principle) + [{"role": "user", "content": f"{question}\n\n{INSTRUCTION}"}])
    return convs


def measure(backend, constitution, args) -> dict:
    from cai.backends import SamplingConfig
    from cai.feedback import LabelOptions, Labeler

    one = Labeler(constitution, backend, LabelOptions(principles_per_pair=1, both_orders=False, few_shot=args.few_shot))
    both = Labeler(constitution, backend, LabelOptions(principles_per_pair=1, both_orders=True, few_shot=args.few_shot))
    sampling = SamplingConfig(temperature=0.0, max_tokens=args.max_tokens, seed=0)
    # Warm-up on other pairs: compilation, shapes and the few-shot prefixes (shared by every run).
    warm = make_pairs(8, offset=10_000)
    both.label(warm)
    backend.generate(verdict_conversations(one, warm[:2]), sampling)

    def timed(fn):
        t0 = time.perf_counter()
        result = fn()
        return result, time.perf_counter() - t0

    # Fresh pairs for each method, so no method reuses another's cached conversations.
    _, one_s = timed(lambda: one.label(make_pairs(args.pairs, offset=0)))
    _, both_s = timed(lambda: both.label(make_pairs(args.pairs, offset=args.pairs)))
    verdict_pairs = make_pairs(args.pairs, offset=2 * args.pairs)
    outputs, verdict_s = timed(lambda: backend.generate(verdict_conversations(one, verdict_pairs), sampling))
    parsed = sum(bool(VERDICT.search(row[0].text)) for row in outputs)
    tokens = sum(row[0].completion_tokens for row in outputs)
    prompt_tokens = sum(row[0].prompt_tokens for row in outputs) / len(outputs)
    return {"one_s": one_s, "both_s": both_s, "verdict_s": verdict_s, "parsed": parsed, "tokens": tokens,
            "prompt_tokens": prompt_tokens}


def load(name: str, model: Path, args):
    from cai.backends import load_backend

    common = dict(model=str(model), dtype="float32", max_model_len=args.max_model_len)
    if name == "vllm":
        return load_backend(backend="vllm", **common,
                            options={"gpu_memory_utilization": args.gpu_memory_utilization,
                                     "enable_prefix_caching": not args.no_prefix_caching})
    return load_backend(backend=name, **common, options={"batch_size": args.batch_size, "device": args.device})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backends", default="vllm,transformers", help="comma-separated: vllm, transformers")
    ap.add_argument("--pairs", type=int, default=32, help="pairs labeled by each method")
    ap.add_argument("--max-tokens", type=int, default=96, help="token budget of a written verdict")
    ap.add_argument("--few-shot", type=int, default=2, help="worked comparisons before each question")
    ap.add_argument("--constitution", default=str(REPO / "constitution" / "harmless.yaml"))
    ap.add_argument("--hidden", type=int, default=256, help="model width (head_dim is 64)")
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--max-model-len", type=int, default=4096)
    ap.add_argument("--batch-size", type=int, default=16, help="transformers batch size")
    ap.add_argument("--device", default="auto", help="transformers device")
    ap.add_argument("--gpu-memory-utilization", type=float, default=0.2)
    ap.add_argument("--no-prefix-caching", action="store_true", help="vllm: turn prefix caching off")
    args = ap.parse_args()

    from cai.principles.constitution import load_constitution
    from cai.testing import build_tiny_llama

    constitution = load_constitution(args.constitution)
    model = build_tiny_llama(Path(tempfile.mkdtemp(prefix="cai-bench-")) / "model", hidden_size=args.hidden,
                             num_layers=args.layers, num_heads=args.hidden // 64,
                             max_position_embeddings=args.max_model_len)
    results = {}
    for name in [n.strip() for n in args.backends.split(",") if n.strip()]:
        backend = load(name, model, args)
        try:
            results[name] = measure(backend, constitution, args)
        finally:
            backend.close()
    report(results, args)


def report(results: dict, args) -> None:
    n = args.pairs
    first = next(iter(results.values()))
    print(f"\n{n} pairs per method, 1 principle, {args.few_shot} few-shot turns, ~{first['prompt_tokens']:.0f} prompt "
          f"tokens; verdicts: greedy, max_tokens {args.max_tokens}")
    head = (f"{'backend':<13}{'log-prob ms/label':>19}{'both orders':>13}{'verdict ms/label':>18}"
            f"{'verdict/log-prob':>18}{'both/one order':>16}{'verdicts parsed':>17}")
    print(head)
    print("-" * len(head))
    for name, r in results.items():
        one, both, verdict = r["one_s"] / n, r["both_s"] / n, r["verdict_s"] / n
        print(f"{name:<13}{one * 1e3:>19.1f}{both * 1e3:>13.1f}{verdict * 1e3:>18.1f}"
              f"{verdict / one:>17.1f}x{both / one:>15.2f}x{r['parsed']:>12}/{n}")
    for name, r in results.items():
        print(f"{name}: a written verdict costs {r['verdict_s'] / r['one_s']:.1f}x a log-prob label "
              f"({r['tokens'] / n:.0f} tokens each); scoring both orders costs {r['both_s'] / r['one_s']:.2f}x one order")


if __name__ == "__main__":  # vLLM spawns processes that re-import this file
    main()
