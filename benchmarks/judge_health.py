"""Cost of judge health next to the judge's own call: the label mass comes from the same forward pass.

The judge (:class:`cai.judge.Judge`) checks every judgement (NaN, no labels, label mass below the
floor) and keeps a health record (label mass, position consistency, length bias, per principle).
This script times, on the same pairs and the same rendered comparisons:

- the judge's scoring call alone (``backend.score_choices`` over every pair x order: the forward
  passes that also yield the label mass);
- the health checks alone: every returned row through ``HealthTracker.judgement`` plus each pair's
  comparison, then ``report()`` (what the judge adds per call);
- the whole ``Judge.pairwise`` call, for reference.

It prints microseconds per judgement for each and the health checks' share of the scoring call.

    python benchmarks/judge_health.py                                  # tiny random model, CPU
    python benchmarks/judge_health.py --model ~/.cache/cai/models/smollm2-135m-instruct-* --pairs 64
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

PAIRS = [
    ("How can I keep basil alive on a windowsill?",
     "Give it at least six hours of sun, water when the top of the soil is dry, and pinch off flower buds.",
     "Basil is a plant."),
    ("Is it safe to mix bleach and vinegar for cleaning?",
     "No. Mixing them releases chlorine gas; use one product at a time and rinse between.",
     "Sure, the mix cleans twice as well."),
    ("Give me a one-line summary of photosynthesis.",
     "Plants turn light, water and carbon dioxide into sugar and oxygen.", "It is when plants sleep at night."),
]


def best(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="judge model folder (default: a tiny random Llama built here)")
    ap.add_argument("--pairs", type=int, default=24, help="pairs judged (cycling through three examples)")
    ap.add_argument("--repeats", type=int, default=3, help="runs of each; the fastest counts")
    ap.add_argument("--hidden", type=int, default=256, help="tiny model width (head_dim is 64)")
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()

    from cai.backends import load_backend
    from cai.judge import Judge, PairItem
    from cai.judge.health import HealthPolicy, HealthTracker

    model = args.model
    if model is None:
        from cai.testing import build_tiny_llama

        model = str(build_tiny_llama(Path(tempfile.mkdtemp(prefix="cai-bench-")) / "model", hidden_size=args.hidden,
                                     num_layers=args.layers, num_heads=args.hidden // 64))
    backend = load_backend(backend="transformers", model=model, dtype="float32", max_model_len=2048,
                           on_overflow="truncate", options={"batch_size": args.batch_size, "device": args.device})
    question = "Which response is more helpful and honest?"
    items = [PairItem([{"role": "user", "content": p}], x, y, [question], key=f"pair-{i}")
             for i, (p, x, y) in enumerate((PAIRS * (args.pairs // len(PAIRS) + 1))[:args.pairs])]
    policy = HealthPolicy(min_label_mass=0.0)  # count everything, fail nothing: the same work either way
    judge = Judge(backend, health=policy)
    asked = judge.comparisons(items)
    convs = [conv for _, _, _, conv, _ in asked]
    rows = backend.score_choices(convs, ["A", "B"])  # warm-up, and the rows the health checks read
    n = len(rows)

    def health() -> None:
        tracker = HealthTracker(policy)
        for (i, c, _, _, _), row in zip(asked, rows, strict=True):
            tracker.judgement(row, id=items[i].key, principle=c)
        for item in items:
            tracker.comparison(principle=None, consistent=True, p_x=0.7, x=item.x, y=item.y)
        tracker.report()

    scoring = best(lambda: backend.score_choices(convs, ["A", "B"]), args.repeats)
    checks = best(health, max(args.repeats, 20))
    whole = best(lambda: judge.pairwise(items), args.repeats)
    masses = sorted(r.mass for r in rows if getattr(r, "mass", None) is not None)
    backend.close()
    print(f"model: {model}; {len(items)} pairs, {n} judgements (both orders)")
    if masses:
        print(f"label mass: median {masses[len(masses) // 2]:.3g}, min {masses[0]:.3g}")
    print(f"score_choices (the judge's forward passes): {1e6 * scoring / n:.1f} us per judgement")
    print(f"health checks (judgement + comparisons + report): {1e6 * checks / n:.2f} us per judgement")
    print(f"Judge.pairwise in all: {1e6 * whole / n:.1f} us per judgement")
    print(f"health checks cost {100 * checks / scoring:.2g}% of the judge's scoring call")


if __name__ == "__main__":
    main()
