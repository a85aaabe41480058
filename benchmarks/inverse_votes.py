"""Votes per second: a principle's vote from log-probabilities vs an ICAI-style generated JSON verdict.

`cai principles test --pairs` asks the judge each principle's question about each pair with three
options, (A), (B) and (C) "does not apply", and reads the option probabilities from one forward
pass per order (both orders; no decoding). ICAI (rdnfn/icai) and Feedback Forensics instead ask
the model to *write* a JSON verdict and parse it. This script times both on the same model, the
same pairs and principles (the hidden-rule pairs of ``cai.inverse.synthetic``, its rules and decoys):

- log-prob: :func:`cai.inverse.votes.vote`, both orders (2 forward passes per vote);
- JSON: the same comparison, once, ending in an instruction to answer ``{"vote": "A" | "B" |
  "None"}``; greedy decoding up to ``--max-tokens``, then parsed (a vote that does not parse is
  lost, as in ICAI).

It prints votes per second for each and their ratio, and how many JSON verdicts parsed.

    python benchmarks/inverse_votes.py                              # tiny random model, transformers
    python benchmarks/inverse_votes.py --model smollm2-135m-instruct --pairs 12 --principles 4
"""

from __future__ import annotations

import argparse
import re
import tempfile
import time
from pathlib import Path

JSON_VOTE = re.compile(r'"vote"\s*:\s*"(A|B|None)"')
INSTRUCTION = ('Does the principle prefer (A), prefer (B), or not apply to these responses? Reply with JSON only: '
               '{"vote": "A"}, {"vote": "B"} or {"vote": "None"}.')


def setup(args):
    from cai.inverse.synthetic import DECOYS, RULES, make_pairs
    from cai.principles.principle import Principle

    texts = ([r.phrasings[0] for r in RULES] + list(DECOYS)) * (args.principles // 6 + 1)
    principles = [Principle(id=f"p{i}", version="1.0.0", title=f"p{i}", tags=["bench"], preference=t)
                  for i, t in enumerate(texts[:args.principles])]
    return make_pairs(args.pairs), make_pairs(4, offset=10_000), principles


def json_conversations(pairs, principles, constitution) -> list[list[dict]]:
    """The same comparison as the log-prob vote (order 0), asking for a written JSON verdict."""
    from cai.judge import templates

    out = []
    for pair in pairs:
        for p in principles:
            text, _ = templates.render_question(constitution, p, [m.model_dump() for m in pair.prompt],
                                                pair.chosen_text, pair.rejected_text)
            out.append([{"role": "user", "content": f"{text}\n{INSTRUCTION}"}])
    return out


def measure(backend, args) -> dict:
    from cai.backends import SamplingConfig
    from cai.inverse.votes import judging_constitution, vote

    pairs, warm, principles = setup(args)
    constitution = judging_constitution(principles)
    sampling = SamplingConfig(temperature=0.0, max_tokens=args.max_tokens, seed=0)
    vote(backend, principles, warm, constitution=constitution)  # warm-up: shapes, caches
    backend.generate(json_conversations(warm[:1], principles[:1], constitution), sampling)
    t0 = time.perf_counter()
    rows = vote(backend, principles, pairs, constitution=constitution)
    logprob_s = time.perf_counter() - t0
    convs = json_conversations(pairs, principles, constitution)
    t0 = time.perf_counter()
    outputs = backend.generate(convs, sampling)
    json_s = time.perf_counter() - t0
    parsed = sum(bool(JSON_VOTE.search(o[0].text)) for o in outputs)
    return {"votes": len(rows), "logprob_s": logprob_s, "json_s": json_s, "parsed": parsed,
            "tokens": sum(o[0].completion_tokens for o in outputs)}


def load(args):
    from cai.backends import load_backend

    model = args.model
    if model == "tiny":
        from cai.testing import build_tiny_llama

        model = str(build_tiny_llama(Path(tempfile.mkdtemp(prefix="cai-bench-")) / "model", hidden_size=args.hidden,
                                     num_layers=args.layers, num_heads=max(1, args.hidden // 64)))
    options = {"device": args.device, "batch_size": args.batch_size} if args.backend == "transformers" else {}
    return load_backend(backend=args.backend, model=model, dtype=args.dtype, options=options)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="tiny", help="tiny (random, built here), a folder, or a known name")
    ap.add_argument("--backend", default="transformers", help="transformers or vllm")
    ap.add_argument("--pairs", type=int, default=16)
    ap.add_argument("--principles", type=int, default=6)
    ap.add_argument("--max-tokens", type=int, default=24, help="token budget of a JSON verdict")
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--batch-size", type=int, default=16)
    args = ap.parse_args()
    backend = load(args)
    try:
        r = measure(backend, args)
    finally:
        backend.close()
    lp, js = r["votes"] / r["logprob_s"], r["votes"] / r["json_s"]
    print(f"{args.pairs} pairs x {args.principles} principles = {r['votes']} votes, model {args.model} ({args.backend})")
    print(f"log-prob votes (both orders, 3 options): {lp:.2f} votes/s ({r['logprob_s']:.2f} s)")
    print(f"JSON verdicts (one order, greedy, max {args.max_tokens} tokens): {js:.2f} votes/s ({r['json_s']:.2f} s, "
          f"{r['tokens'] / r['votes']:.1f} tokens each, {r['parsed']}/{r['votes']} parsed)")
    print(f"log-prob votes per second / JSON votes per second: {lp / js:.2f}x")


if __name__ == "__main__":
    main()
