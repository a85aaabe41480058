"""How `cai principles test --pairs` scales as principles x pairs grow, with and without prefix reuse.

Every principle asked about a pair sees the same conversation and responses. With the pair-first
template (:data:`cai.inverse.votes.PAIR_FIRST`, the default) the pair's text is a prompt prefix
shared by all principles, and the question comes last; with the question-first template (`cai
label`'s, ``--question-first``) only the conversation is shared. A prefix-caching backend (vLLM)
computes a shared prefix once, so the pair-first layout should cost less per vote as principles
grow; a backend without a prefix cache (transformers) pays for every prompt in full either way.

For each (principles, pairs) cell it times :func:`cai.inverse.votes.vote` (both orders, three
options) with each layout, and prints milliseconds per vote, the ratio question-first / pair-first,
and the share of each prompt that is a prefix shared with the other principles' prompts for the
same pair and order (characters; the reuse available to a prefix cache).

    python benchmarks/inverse_scaling.py                                 # transformers, tiny model
    python benchmarks/inverse_scaling.py --backend vllm --principles 2,8,32 --pairs 8,32
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def shared_share(backend, principles, pairs, constitution) -> float:
    """Mean share of a prompt's characters that a prefix shared by all principles covers."""
    from cai.judge import Judge, PairItem

    judge = Judge(backend, constitution, abstain="Neither.")
    shares = []
    for pair in pairs:
        items = [PairItem([m.model_dump() for m in pair.prompt], pair.chosen_text, pair.rejected_text, [p])
                 for p in principles]
        texts = ["\n".join(m["content"] for m in conv) for _, _, order, conv, _ in judge.comparisons(items) if order == 0]
        shares.append(len(os.path.commonprefix(texts)) / (sum(map(len, texts)) / len(texts)))
    return sum(shares) / len(shares)


def cell(backend, n_principles: int, n_pairs: int, offset: int, repeats: int) -> dict:
    from cai.inverse.synthetic import DECOYS, RULES, make_pairs
    from cai.inverse.votes import judging_constitution, vote
    from cai.principles.principle import Principle

    texts = [ph for r in RULES for ph in r.phrasings] + list(DECOYS)
    principles = [Principle(id=f"p{i}", version="1.0.0", title=f"p{i}", tags=["bench"],
                            preference=f"{texts[i % len(texts)].rstrip('.')} ({i}).") for i in range(n_principles)]
    out = {}
    for name, first in (("pair-first", True), ("question-first", False)):
        constitution = judging_constitution(principles, pair_first=first)
        best = None
        for r in range(repeats):  # fresh pairs each time: nothing cached from an earlier run
            pairs = make_pairs(n_pairs, offset=offset + (2 * r + first) * n_pairs)
            t0 = time.perf_counter()
            vote(backend, principles, pairs, constitution=constitution)
            s = time.perf_counter() - t0
            best = s if best is None else min(best, s)
        out[name] = {"ms_per_vote": 1000 * best / (n_principles * n_pairs),
                     "shared": shared_share(backend, principles, make_pairs(2, offset=offset), constitution)}
    return out


def load(args):
    from cai.backends import load_backend

    from cai.testing import build_tiny_llama

    model = args.model or str(build_tiny_llama(Path(tempfile.mkdtemp(prefix="cai-bench-")) / "model",
                                               hidden_size=args.hidden, num_layers=args.layers,
                                               num_heads=max(1, args.hidden // 64), max_position_embeddings=4096))
    if args.backend == "vllm":
        return load_backend(backend="vllm", model=model, dtype=args.dtype, max_model_len=4096,
                            options={"enable_prefix_caching": not args.no_prefix_caching})
    return load_backend(backend="transformers", model=model, dtype=args.dtype,
                        options={"device": args.device, "batch_size": args.batch_size})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backend", default="transformers", help="transformers or vllm")
    ap.add_argument("--model", default=None, help="model folder (default: a tiny random Llama built here)")
    ap.add_argument("--principles", default="2,4,8", help="comma-separated principle counts")
    ap.add_argument("--pairs", default="4,8", help="comma-separated pair counts")
    ap.add_argument("--repeats", type=int, default=2, help="best of this many runs per cell")
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--no-prefix-caching", action="store_true", help="vllm: turn prefix caching off")
    args = ap.parse_args()
    backend = load(args)
    rows = []
    try:
        cell(backend, 2, 2, offset=1, repeats=1)  # warm-up: weights paged in, kernels and shapes
        offset = 100_000
        for p in _ints(args.principles):
            for n in _ints(args.pairs):
                rows.append((p, n, cell(backend, p, n, offset, args.repeats)))
                offset += 10_000
    finally:
        backend.close()
    cache = "off" if args.no_prefix_caching or args.backend != "vllm" else "on"
    print(f"\n{args.backend} (prefix cache {cache}); ms per vote (both orders, 3 options), best of {args.repeats}")
    head = (f"{'principles':>10}{'pairs':>7}{'votes':>7}{'pair-first':>12}{'question-first':>16}"
            f"{'q-first/p-first':>17}{'shared p-first':>16}{'shared q-first':>16}")
    print(head)
    print("-" * len(head))
    for p, n, r in rows:
        a, b = r["pair-first"], r["question-first"]
        print(f"{p:>10}{n:>7}{p * n:>7}{a['ms_per_vote']:>12.2f}{b['ms_per_vote']:>16.2f}"
              f"{b['ms_per_vote'] / a['ms_per_vote']:>16.2f}x{100 * a['shared']:>15.0f}%{100 * b['shared']:>15.0f}%")
    first, last = rows[0], rows[-1]
    growth = last[2]["pair-first"]["ms_per_vote"] / first[2]["pair-first"]["ms_per_vote"]
    print(f"ms per vote at {last[0]}x{last[1]} / at {first[0]}x{first[1]} (pair-first): {growth:.2f}x")


if __name__ == "__main__":
    main()
